//! Keys, roles and tenant isolation, through the real server.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, TEST_NOW};

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value, Option<String>) {
    let url = format!("{}{path}", app.address);
    // A client without a default key: each call says who it is.
    etape::adapters::webhooks::install_tls_provider();
    let client = reqwest::Client::new();
    let mut request = match method {
        "get" => client.get(url),
        "post" => client.post(url),
        "delete" => client.delete(url),
        other => panic!("no method {other}"),
    };
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|value| value.to_str().unwrap().to_owned());
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        challenge,
    )
}

#[tokio::test]
async fn every_v1_route_wants_a_valid_key_and_its_role() {
    let app = spawn_app().await;
    let (status, error, challenge) = call(&app, "get", "/v1/shipments", None, None).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (401, Some("unauthorized"))
    );
    assert_eq!(challenge.as_deref(), Some("Bearer realm=\"etape\""));
    let (status, _, challenge) =
        call(&app, "get", "/v1/shipments", Some("etp_abc_def"), None).await;
    assert_eq!(status, 401);
    assert!(challenge.unwrap().contains("invalid_token"));
    // Health, metrics and the document stay open to probes and scrapers.
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert_eq!(
            app.client
                .get(format!("{}{path}", app.address))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let shipment = json!({"reference": "R", "vehicle_id": "V", "vehicle_class": "van",
        "stops": [{"id": "a", "lat": 48.85, "lon": 2.35}], "planned_departure": TEST_NOW});
    let (status, error, _) = call(
        &app,
        "post",
        "/v1/shipments",
        Some(&app.keys["dispatcher"]),
        Some(&shipment),
    )
    .await;
    assert_eq!((status, error["code"].as_str()), (403, Some("forbidden")));
    let (status, _, _) = call(
        &app,
        "get",
        "/v1/shipments",
        Some(&app.keys["dispatcher"]),
        None,
    )
    .await;
    assert_eq!(status, 200, "dispatchers read shipments");
    let (status, _, _) = call(
        &app,
        "get",
        "/v1/shipments",
        Some(&app.keys["partner"]),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) = call(
        &app,
        "get",
        "/v1/organisations",
        Some(&app.keys["carrier"]),
        None,
    )
    .await;
    assert_eq!(status, 403);

    // The admin issues a key, sees it listed without its secret, revokes it: it stops at once.
    let admin = Some(app.keys["admin"].as_str());
    let (status, issued, _) = call(
        &app,
        "post",
        "/v1/organisations/demo/keys",
        admin,
        Some(&json!({"name": "TMS", "roles": ["carrier"]})),
    )
    .await;
    assert_eq!(status, 201, "{issued}");
    let key = issued["key"].as_str().unwrap().to_owned();
    assert_eq!(
        call(&app, "get", "/v1/shipments", Some(&key), None).await.0,
        200
    );
    let (_, listed, _) = call(&app, "get", "/v1/organisations/demo/keys", admin, None).await;
    assert_eq!(listed.as_array().unwrap().len(), 5);
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|key| key.get("key").is_none()));
    let path = format!("/v1/keys/{}", issued["id"].as_str().unwrap());
    assert_eq!(call(&app, "delete", &path, admin, None).await.0, 204);
    let (status, error, _) = call(&app, "get", "/v1/shipments", Some(&key), None).await;
    assert_eq!(
        (status, error["message"].as_str()),
        (401, Some("the key was revoked"))
    );
    let (status, error, _) = call(
        &app,
        "post",
        "/v1/organisations/nobody/keys",
        admin,
        Some(&json!({"name": "x", "roles": ["pilot"]})),
    )
    .await;
    assert_eq!((status, error["field"].as_str()), (400, Some("roles[0]")));
}

/// Organisation `demo` owns a shipment, a webhook and a vehicle's pings; organisation `other`,
/// with every role, tries every route on them and gets 403 or 404, or its own empty lists.
#[tokio::test]
async fn no_organisation_reaches_another_ones_data() {
    let app = spawn_app().await;
    let admin = Some(app.keys["admin"].as_str());
    let (status, _, _) = call(
        &app,
        "post",
        "/v1/organisations",
        admin,
        Some(&json!({"id": "other", "name": "Other carrier"})),
    )
    .await;
    assert_eq!(status, 201);
    let mut other_keys = Vec::new();
    for role in ["carrier", "dispatcher", "partner"] {
        let (_, issued, _) = call(
            &app,
            "post",
            "/v1/organisations/other/keys",
            admin,
            Some(&json!({"name": role, "roles": [role]})),
        )
        .await;
        other_keys.push((role, issued["key"].as_str().unwrap().to_owned()));
    }
    // What `demo` owns.
    let (_, shipment) = app
        .post_json(
            "/v1/shipments",
            &json!({"reference": "SECRET-1", "vehicle_id": "V-1", "vehicle_class": "rigid",
                "stops": [{"id": "a", "lat": 48.85, "lon": 2.35}, {"id": "b", "lat": 45.76, "lon": 4.84}],
                "planned_departure": TEST_NOW}),
        )
        .await;
    let shipment_id = shipment["id"].as_str().unwrap().to_owned();
    let (_, webhook) = app
        .post_json(
            "/v1/webhooks",
            &json!({"url": "http://127.0.0.1:9/", "events": ["arrived"]}),
        )
        .await;
    let webhook_id = webhook["id"].as_str().unwrap().to_owned();
    let ping = json!([{"vehicle_id": "V-1", "timestamp": "2026-11-28T08:59:00Z", "lat": 48.9, "lon": 2.4}]);
    let (status, _) = app.post_json("/v1/positions", &ping).await;
    assert_eq!(status, 200);

    let trips = include_str!("../../data/example/trips.csv");
    let uploaded: Value = crate::helpers::json_of(
        app.client
            .post(format!("{}/v1/history", app.address))
            .bearer_auth(&app.keys["partner"])
            .body(trips),
    )
    .await;
    let upload_id = uploaded["upload"]["id"].as_str().unwrap().to_owned();
    let event = json!({"stop_index": 0, "kind": "arrived"});
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("get", format!("/v1/shipments/{shipment_id}"), None),
        ("post", format!("/v1/shipments/{shipment_id}/cancel"), None),
        (
            "post",
            format!("/v1/shipments/{shipment_id}/events"),
            Some(event),
        ),
        ("get", format!("/v1/shipments/{shipment_id}/eta"), None),
        (
            "get",
            format!("/v1/shipments/{shipment_id}/eta/history"),
            None,
        ),
        ("delete", format!("/v1/webhooks/{webhook_id}"), None),
        ("get", format!("/v1/webhooks/{webhook_id}/deliveries"), None),
        ("get", "/v1/organisations".into(), None),
        ("get", "/v1/organisations/demo/keys".into(), None),
        (
            "post",
            "/v1/organisations/demo/keys".into(),
            Some(json!({"name": "x", "roles": ["admin"]})),
        ),
        ("delete", format!("/v1/keys/{}", "anything"), None),
        ("get", format!("/v1/history/{upload_id}/export"), None),
        ("delete", format!("/v1/history/{upload_id}"), None),
        ("get", "/v1/models".into(), None),
        ("post", "/v1/models/train".into(), None),
        ("get", "/v1/models/jobs/anything".into(), None),
        ("post", "/v1/models/anything/activate".into(), None),
        // No model has learnt from the other organisation: its report does not exist.
        ("get", "/v1/partners/me/report".into(), None),
    ];
    for (role, key) in &other_keys {
        for (method, path, body) in &routes {
            let (status, answer, _) = call(&app, method, path, Some(key), body.as_ref()).await;
            assert!(
                status == 403 || status == 404,
                "{role} of another organisation: {method} {path} answered {status}: {answer}"
            );
            assert!(!answer.to_string().contains("SECRET-1"));
        }
        // Lists are their own: empty, never the other's.
        for path in [
            "/v1/shipments",
            "/v1/webhooks",
            "/v1/vehicles/V-1/positions",
        ] {
            let (status, answer, _) = call(&app, "get", path, Some(key), None).await;
            assert!(status == 403 || status == 200, "{role} {path}: {status}");
            if status == 200 {
                let items = answer.get("items").unwrap_or(&answer);
                assert_eq!(
                    items.as_array().unwrap().len(),
                    0,
                    "{role} {path}: {answer}"
                );
            }
        }
    }
    // The other organisation's own V-1 is another vehicle: its pings do not move ours.
    let (_, other_carrier) = &other_keys[0];
    let foreign = json!([{"vehicle_id": "V-1", "timestamp": "2026-11-28T08:59:30Z", "lat": 43.3, "lon": 5.4}]);
    let (status, _, _) = call(
        &app,
        "post",
        "/v1/positions",
        Some(other_carrier),
        Some(&foreign),
    )
    .await;
    assert_eq!(status, 200);
    let ours: Value = app
        .get("/v1/vehicles/V-1/positions")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ours.as_array().unwrap().len(), 1);
    // And everything of ours is intact.
    let (_, shipment) = {
        let response = app.get(&format!("/v1/shipments/{shipment_id}")).await;
        (
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
        )
    };
    assert_eq!(shipment["status"], "in_transit");
    let hooks: Value = app.get("/v1/webhooks").await.json().await.unwrap();
    assert_eq!(hooks.as_array().unwrap().len(), 1);
    let exported = app
        .client
        .get(format!("{}/v1/history/{upload_id}/export", app.address))
        .bearer_auth(&app.keys["partner"])
        .send()
        .await
        .unwrap();
    assert_eq!(exported.text().await.unwrap(), trips);
    // The other partner's standing is its own.
    let (_, partner_key) = &other_keys[2];
    let (_, me, _) = call(&app, "get", "/v1/partners/me", Some(partner_key), None).await;
    assert_eq!(
        (me["organisation"].as_str(), me["uploads"].as_u64()),
        (Some("other"), Some(0))
    );
}

/// `etape keys` works on the data directory; a running service accepts a new key at once and
/// refuses a revoked one within a second.
#[tokio::test]
async fn keys_made_on_the_command_line_work_on_a_running_service() {
    use std::process::Command;

    let data = tempfile::tempdir().unwrap();
    let server = crate::helpers::RunningBinary::start(data.path(), &["--no-demo".as_ref()], &[]);
    let etape = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_etape"))
            .args(args)
            .arg("--data-dir")
            .arg(data.path())
            .envs(crate::helpers::store_url(data.path()).map(|url| ("ETAPE__STORAGE__URL", url)))
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let (ok, _, error) = etape(&[
        "keys",
        "create",
        "--organisation",
        "martin",
        "--name",
        "TMS",
        "--role",
        "carrier",
    ]);
    assert!(!ok);
    assert!(error.contains("--new-organisation-name"), "{error}");
    let (ok, _, error) = etape(&[
        "keys",
        "create",
        "--organisation",
        "demo",
        "--name",
        "x",
        "--role",
        "pilot",
    ]);
    assert!(!ok && error.contains("unknown role"), "{error}");
    let (ok, key, _) = etape(&[
        "keys",
        "create",
        "--organisation",
        "martin",
        "--new-organisation-name",
        "Transports Martin",
        "--name",
        "TMS",
        "--role",
        "carrier",
        "--role",
        "dispatcher",
    ]);
    assert!(ok);
    let key = key.trim().to_owned();
    let client = reqwest::Client::new();
    let shipments = |key: String| {
        let (client, url) = (client.clone(), format!("{}/v1/shipments", server.base));
        async move {
            client
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let mut status = 401;
    for _ in 0..30 {
        status = shipments(key.clone()).await;
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
    let (_, listed, _) = etape(&["keys", "list", "--organisation", "martin"]);
    let id = listed.split('\t').next().unwrap().to_owned();
    assert!(
        listed.contains("carrier,dispatcher") && listed.contains("active"),
        "{listed}"
    );
    assert!(!listed.contains(&key));
    let (ok, _, _) = etape(&["keys", "revoke", &id]);
    assert!(ok);
    let mut status = 200;
    for _ in 0..30 {
        status = shipments(key.clone()).await;
        if status == 401 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 401);
    assert!(!etape(&["keys", "revoke", "nothing"]).0);
}
