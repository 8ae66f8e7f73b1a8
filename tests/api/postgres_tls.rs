//! TLS to PostgreSQL: `sslmode=verify-full` against the test cluster's own CA works and is
//! encrypted as the server sees it; a CA that did not sign the server's certificate stops the
//! connection with an error that says so. Skipped without `ETAPE_TEST_POSTGRES_URL` and
//! `ETAPE_TEST_POSTGRES_CA` (`scripts/lib.sh`'s `ensure_postgres` sets both).

use chrono::{DateTime, TimeDelta, Utc};
use etape::adapters::store::postgres::PostgresStore;
use serde_json::json;

use crate::helpers::{spawn_app_with, TEST_NOW};

/// A CA that signed nothing the test cluster holds (P-256, valid until 2126).
const UNRELATED_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBtDCCAVugAwIBAgIUZ9+V2D8QwTmMs7tGYbcCY+bWzbQwCgYIKoZIzj0EAwIw
LzEtMCsGA1UEAwwkZXRhcGUgdGVzdDogYSBDQSB0aGF0IHNpZ25lZCBub3RoaW5n
MCAXDTI2MTIwMjA3MjE0OVoYDzIxMjYxMTA4MDcyMTQ5WjAvMS0wKwYDVQQDDCRl
dGFwZSB0ZXN0OiBhIENBIHRoYXQgc2lnbmVkIG5vdGhpbmcwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAAStMverqo+dzL+lk3DqydfbRQUaf4TDChv7rBxJWF79j6gI
RK27fxm9TTo8Ec6bWROZx1nPhQKv0Gcwwzt00TTFo1MwUTAdBgNVHQ4EFgQUZOpp
/EolPGSkodk96snjlG5vlrUwHwYDVR0jBBgwFoAUZOpp/EolPGSkodk96snjlG5v
lrUwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiAuBRy09ssmvHwT
AuXV6mgAdYFWsOIJjjzd1W3ie5LKLQIgJEokJJSncGoSZ7O7e4Gi6zD2Q/2tazeG
qUeX2wT8YqQ=
-----END CERTIFICATE-----
";

/// The server's URL and its CA file, or `None` (and a note) when the suite has no TLS cluster.
fn tls_server() -> Option<(String, String)> {
    let server = crate::helpers::postgres_server()?;
    match std::env::var("ETAPE_TEST_POSTGRES_CA") {
        Ok(ca) if !ca.is_empty() => Some((server, ca)),
        _ => {
            eprintln!("PostgreSQL TLS tests skipped: ETAPE_TEST_POSTGRES_CA is not set");
            None
        }
    }
}

/// `url` with `parameters` added to its query.
fn with_query(url: &str, parameters: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{parameters}")
}

/// The database's name, the last segment of a `postgres://` URL's path.
fn database_name(url: &str) -> String {
    let path = url.split('?').next().unwrap();
    path.rsplit('/').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_service_runs_on_postgres_over_verified_tls() {
    let Some((server, ca)) = tls_server() else {
        return;
    };
    let database =
        PostgresStore::scratch_database(&server, &format!("tls_{}", std::process::id())).unwrap();
    let verified = with_query(&database, &format!("sslmode=verify-full&sslrootcert={ca}"));
    let app = spawn_app_with(|settings| settings.storage.url = Some(verified.clone())).await;

    let now: DateTime<Utc> = TEST_NOW.parse().unwrap();
    let (status, shipment) = app
        .post_json(
            "/v1/shipments",
            &json!({"reference": "TLS-1", "vehicle_id": "TLS-1", "vehicle_class": "articulated",
                    "origin": {"lat": 46.2, "lon": 4.84},
                    "stops": [{"id": "lyon", "lat": 45.76, "lon": 4.84}],
                    "planned_departure": (now + TimeDelta::hours(1)).to_rfc3339()}),
        )
        .await;
    assert_eq!(status, 201, "{shipment}");

    // The server's view of the service's own connections: every one encrypted.
    let name = database_name(&database);
    let plain = database.clone();
    let sessions = tokio::task::spawn_blocking(move || {
        PostgresStore::connect(&plain)
            .unwrap()
            .sessions_tls(&name)
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!sessions.is_empty(), "the service holds connections");
    assert!(sessions.iter().all(|&tls| tls), "{sessions:?}");

    // The CA may come from `storage.ca_file` instead of the URL.
    let from_setting = with_query(&database, "sslmode=verify-full");
    let encrypted = tokio::task::spawn_blocking(move || {
        PostgresStore::connect_with(&from_setting, Some(std::path::Path::new(&ca)))
            .unwrap()
            .session_is_tls()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(encrypted);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_ca_that_did_not_sign_the_server_stops_the_connection_and_says_why() {
    let Some((server, _)) = tls_server() else {
        return;
    };
    // A database of its own: connecting migrates it.
    let server =
        PostgresStore::scratch_database(&server, &format!("tls_refused_{}", std::process::id()))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let unrelated = dir.path().join("unrelated-ca.pem");
    std::fs::write(&unrelated, UNRELATED_CA).unwrap();
    let outcome = tokio::task::spawn_blocking(move || {
        let refused = PostgresStore::connect(&with_query(
            &server,
            &format!("sslmode=verify-full&sslrootcert={}", unrelated.display()),
        ))
        .err()
        .expect("an unknown issuer is refused")
        .to_string();
        // `require` encrypts without checking (libpq's meaning), so the same CA is not needed.
        let unverified = PostgresStore::connect(&with_query(&server, "sslmode=require"))
            .unwrap()
            .session_is_tls()
            .unwrap();
        let plain = PostgresStore::connect(&server)
            .unwrap()
            .session_is_tls()
            .unwrap();
        let without_ca = PostgresStore::connect(&with_query(&server, "sslmode=verify-full"))
            .err()
            .expect("verify-full without a CA is refused")
            .to_string();
        let unknown_mode =
            PostgresStore::connect(&with_query(&server, "sslmode=verify-everything"))
                .err()
                .expect("an unknown mode is refused")
                .to_string();
        (refused, unverified, plain, without_ca, unknown_mode)
    })
    .await
    .unwrap();
    let (refused, unverified, plain, without_ca, unknown_mode) = outcome;
    assert!(
        refused.contains("TLS") && refused.contains("certificate"),
        "{refused}"
    );
    assert!(refused.contains("UnknownIssuer"), "{refused}");
    assert!(unverified, "sslmode=require is encrypted");
    assert!(!plain, "no sslmode is plain TCP, as before");
    assert!(without_ca.contains("needs a CA"), "{without_ca}");
    assert!(unknown_mode.contains("verify-everything"), "{unknown_mode}");
}
