//! Evidence under faults and abuse: SIGKILL at random moments during ingestion and uploads,
//! per-key rate limits, request deadlines, CORS, secrets kept out of the logs, and webhooks
//! that would have the service call its own networks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::helpers::{demo_keys, lille_to_marseille, spawn_app_with, RunningBinary};

const PINGS_PER_BATCH: i64 = 50;
const TRIPS_PER_UPLOAD: usize = 200;
const VEHICLE: &str = "CRASH-1";
const TRIPS_HEADER: &str = "trip_id,vehicle_class,origin_lat,origin_lon,destination_lat,destination_lon,departure_time,arrival_time,distance_km,stops,dwell_minutes,load_tonnes\n";

fn stamp(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Pings are 100 ms apart: thousands of batches stay within the last hours, none in the future.
const PING_SPACING_MS: i64 = 100;

/// A batch's pings, from its own offset, so that a batch is told by its timestamps.
fn batch_body(start: DateTime<Utc>, batch: i64) -> String {
    (0..PINGS_PER_BATCH)
        .map(|n| {
            let ping = batch * PINGS_PER_BATCH + n;
            format!(
                "{{\"vehicle_id\":\"{VEHICLE}\",\"timestamp\":\"{}\",\"lat\":45.0,\"lon\":{:.5},\"speed_kmh\":60}}\n",
                (start + TimeDelta::milliseconds(ping * PING_SPACING_MS))
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                4.0 + ping as f64 * 0.00001,
            )
        })
        .collect()
}

/// A trips table of its own ids.
fn upload_body(upload: usize) -> String {
    let mut body = String::from(TRIPS_HEADER);
    for n in 0..TRIPS_PER_UPLOAD {
        body.push_str(&format!(
            "U{upload:03}-{n:04},rigid,48.85,2.35,45.76,4.84,2025-03-04T05:40:00+01:00,2025-03-04T13:{:02}:00+01:00,470,0,0,{}\n",
            n % 60,
            upload % 20
        ));
    }
    body
}

/// What was acknowledged before a kill: ping batches by number, uploads by id with their rows.
#[derive(Clone, Default)]
struct Acknowledged {
    batches: BTreeSet<i64>,
    uploads: HashMap<String, u64>,
}

/// Checks that the restarted service has every acknowledged batch and upload, whole, and no
/// partial one.
async fn check_nothing_lost(
    server: &RunningBinary,
    partner: &str,
    start: DateTime<Utc>,
    acknowledged: &Acknowledged,
    round: usize,
) {
    let mut per_batch: BTreeMap<i64, i64> = BTreeMap::new();
    let mut since = Some(stamp(start - TimeDelta::minutes(1)));
    while let Some(from) = since.take() {
        let response = server
            .client
            .get(format!("{}/v1/vehicles/{VEHICLE}/positions", server.base))
            .query(&[("since", from.as_str()), ("limit", "5000")])
            .send()
            .await
            .unwrap();
        since = response
            .headers()
            .get("x-next-since")
            .map(|next| next.to_str().unwrap().to_owned());
        let pings: Value = response.json().await.unwrap();
        for ping in pings.as_array().expect("a list of pings") {
            let at = DateTime::parse_from_rfc3339(ping["timestamp"].as_str().unwrap())
                .unwrap()
                .with_timezone(&Utc);
            *per_batch
                .entry((at - start).num_milliseconds() / PING_SPACING_MS / PINGS_PER_BATCH)
                .or_default() += 1;
        }
    }
    for batch in &acknowledged.batches {
        assert_eq!(
            per_batch.get(batch),
            Some(&PINGS_PER_BATCH),
            "round {round}: acknowledged batch {batch} is not whole"
        );
    }
    for (batch, count) in &per_batch {
        assert_eq!(
            *count, PINGS_PER_BATCH,
            "round {round}: batch {batch} is partly there"
        );
    }
    let uploads: Value = crate::helpers::json_of(
        server
            .client
            .get(format!("{}/v1/history", server.base))
            .bearer_auth(partner),
    )
    .await;
    let listed: HashMap<String, u64> = uploads
        .as_array()
        .expect("a list of uploads")
        .iter()
        .map(|upload| {
            (
                upload["id"].as_str().unwrap().to_owned(),
                upload["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    for (id, rows) in &acknowledged.uploads {
        assert_eq!(
            listed.get(id),
            Some(rows),
            "round {round}: acknowledged upload {id} lost"
        );
    }
    for (id, rows) in &listed {
        // An upload committed just before the kill, whose answer never left, may be there:
        // whole.
        assert_eq!(
            *rows, TRIPS_PER_UPLOAD as u64,
            "round {round}: upload {id} is partial"
        );
    }
}

/// Twenty times: pings and uploads flow in, the server is killed with SIGKILL at a random
/// moment, restarted, and must hold every ping batch and upload it acknowledged, whole, and no
/// partial one. `ETAPE_CRASH_SEED` replays a run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let seed = std::env::var("ETAPE_CRASH_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!("ETAPE_CRASH_SEED={seed}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let data = tempfile::tempdir().unwrap();
    let args = ["--no-demo".as_ref()];
    let env = [("ETAPE__MODEL__DIR", "target/tmp/no-model-here")];
    let start = (Utc::now() - TimeDelta::hours(6))
        .duration_trunc(TimeDelta::seconds(1))
        .unwrap();
    let acknowledged = Arc::new(Mutex::new(Acknowledged::default()));
    let (mut next_batch, mut next_upload) = (0i64, 0usize);
    let mut partner = String::new();
    for round in 0..20 {
        let mut server = RunningBinary::start(data.path(), &args, &env);
        if round == 0 {
            partner = demo_keys(data.path())["partner"].clone();
        }
        let so_far = acknowledged.lock().unwrap().clone();
        check_nothing_lost(&server, &partner, start, &so_far, round).await;
        let pinger = {
            let (client, base, acknowledged) = (
                server.client.clone(),
                server.base.clone(),
                acknowledged.clone(),
            );
            let first = next_batch;
            tokio::spawn(async move {
                for batch in first.. {
                    let response = client
                        .post(format!("{base}/v1/positions"))
                        .header("content-type", "application/x-ndjson")
                        .body(batch_body(start, batch))
                        .send()
                        .await;
                    match response {
                        Ok(response) if response.status() == 200 => {
                            let Ok(outcome) = response.json::<Value>().await else {
                                return batch + 1;
                            };
                            assert_eq!(outcome["accepted"], PINGS_PER_BATCH, "{outcome}");
                            acknowledged.lock().unwrap().batches.insert(batch);
                        }
                        _ => return batch + 1,
                    }
                }
                unreachable!()
            })
        };
        let uploader = {
            let (client, base, acknowledged, partner) = (
                server.client.clone(),
                server.base.clone(),
                acknowledged.clone(),
                partner.clone(),
            );
            let first = next_upload;
            tokio::spawn(async move {
                for upload in first.. {
                    let response = client
                        .post(format!("{base}/v1/history"))
                        .bearer_auth(&partner)
                        .header("content-type", "text/csv")
                        .body(upload_body(upload))
                        .send()
                        .await;
                    let Ok(response) = response else {
                        return upload + 1;
                    };
                    let status = response.status();
                    if status != 201 {
                        let body = response.text().await.unwrap_or_default();
                        // Only a kill may stop an upload: any answer but 201 is a failure.
                        assert!(body.is_empty(), "upload {upload}: {status} {body}");
                        return upload + 1;
                    }
                    let Ok(answer) = response.json::<Value>().await else {
                        return upload + 1;
                    };
                    acknowledged.lock().unwrap().uploads.insert(
                        answer["upload"]["id"].as_str().unwrap().to_owned(),
                        answer["upload"]["rows"].as_u64().unwrap(),
                    );
                }
                unreachable!()
            })
        };
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..700))).await;
        server.child.kill().unwrap();
        let _ = server.child.wait();
        next_batch = pinger.await.unwrap();
        next_upload = uploader.await.unwrap();
    }
    let server = RunningBinary::start(data.path(), &args, &env);
    let acknowledged = acknowledged.lock().unwrap().clone();
    check_nothing_lost(&server, &partner, start, &acknowledged, 20).await;
    println!(
        "{} ping batches and {} uploads acknowledged across 20 kills",
        acknowledged.batches.len(),
        acknowledged.uploads.len()
    );
    // The run did ingest and upload between the kills.
    assert!(
        acknowledged.batches.len() >= 20,
        "{}",
        acknowledged.batches.len()
    );
    assert!(!acknowledged.uploads.is_empty());
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after_and_others_carry_on() {
    let app = spawn_app_with(|settings| {
        settings.api.rate_limit_per_second = 1;
        settings.api.rate_limit_burst = 3;
    })
    .await;
    let request = lille_to_marseille("2026-12-01T06:00:00+01:00", "articulated");
    for _ in 0..3 {
        let (status, body) = app.post_json("/v1/eta", &request).await;
        assert_eq!(status, 200, "{body}");
    }
    let response = app.post("/v1/eta", request.to_string()).await;
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited", "{body}");
    // Another key of the same organisation has its own budget.
    let dispatcher = crate::helpers::client_with_key(&app.keys["dispatcher"]);
    let answer = dispatcher
        .post(format!("{}/v1/eta", app.address))
        .body(request.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    // Unauthenticated calls are refused before they count against anyone.
    let anonymous = reqwest::Client::new()
        .post(format!("{}/v1/eta", app.address))
        .body(request.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

/// A request that outlives its limit is answered 503 with `Retry-After`, here an ETA waiting
/// on a routing engine that never answers.
#[tokio::test]
async fn a_request_past_its_deadline_gets_503() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hanging = format!("http://{}", listener.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            keep.lock().unwrap().push(stream);
        }
    });
    let app = spawn_app_with(|settings| {
        settings.api.request_timeout_secs = 1;
        settings.feeds.routing_url = hanging.clone();
        settings.feeds.timeout_ms = 10_000;
        settings.feeds.wait_ms = 5_000;
    })
    .await;
    let started = std::time::Instant::now();
    let response = app
        .post(
            "/v1/eta",
            lille_to_marseille("2026-12-01T06:00:00+01:00", "articulated").to_string(),
        )
        .await;
    assert_eq!(response.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "timeout", "{body}");
}

#[tokio::test]
async fn only_the_services_own_origin_and_listed_ones_may_call_from_a_browser() {
    let app = spawn_app_with(|settings| {
        settings.api.cors_origins = vec!["https://tms.example.com".into()];
    })
    .await;
    let own = app.address.clone();
    let preflight = |origin: &str| {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, format!("{}/v1/eta", app.address))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    for allowed in [own.as_str(), "https://tms.example.com"] {
        let response = preflight(allowed).await.unwrap();
        assert!(response.status().is_success(), "{allowed}: {response:?}");
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            allowed,
            "{allowed}"
        );
    }
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(refused.status().is_client_error(), "{refused:?}");
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    // A simple request from elsewhere is answered, but without the header that would let the
    // page read it.
    let answer = app
        .client
        .get(format!("{}/v1/shipments", app.address))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(answer
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    let dashboard = app
        .client
        .get(format!("{}/v1/shipments", app.address))
        .header("origin", own.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(dashboard.status(), 200);
    assert_eq!(
        dashboard.headers()["access-control-allow-origin"],
        own.as_str()
    );
}

/// Keys, the pepper and the traffic feed's key never reach a log line, at debug level, through
/// key creation, good, bad and tampered keys, and failing feeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs() {
    let data = tempfile::tempdir().unwrap();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let traffic_key = "tomtom-key-7f3a9c1e55d0";
    let server = RunningBinary::start(
        data.path(),
        &["--no-demo".as_ref()],
        &[
            ("RUST_LOG", "debug"),
            ("ETAPE__MODEL__DIR", "data/models/bundled"),
            ("ETAPE__FEEDS__TRAFFIC_URL", closed.as_str()),
            ("ETAPE__FEEDS__TRAFFIC_KEY", traffic_key),
            ("ETAPE__FEEDS__WEATHER_URL", closed.as_str()),
            ("ETAPE__FEEDS__WAIT_MS", "50"),
        ],
    );
    let keys = demo_keys(data.path());
    let operator = crate::helpers::client_with_key(&keys["operator"]);
    let created: Value = crate::helpers::json_of(
        operator
            .post(format!("{}/v1/organisations/demo/keys", server.base))
            .json(&json!({"name": "TMS", "roles": ["carrier"]})),
    )
    .await;
    let new_key = created["key"].as_str().unwrap().to_owned();
    let request = lille_to_marseille(&stamp(Utc::now() + TimeDelta::hours(2)), "articulated");
    let tampered = format!("{}x", &new_key[..new_key.len() - 1]);
    for key in [new_key.as_str(), tampered.as_str(), "etp_nothing_atall"] {
        let _ = crate::helpers::client_with_key(key)
            .post(format!("{}/v1/eta", server.base))
            .body(request.to_string())
            .send()
            .await
            .unwrap();
    }
    let pepper = std::fs::read(data.path().join("pepper.key")).unwrap();
    let mut secrets: Vec<String> = keys
        .values()
        .chain(std::iter::once(&new_key))
        .flat_map(|key| {
            // The whole key and its secret part alone.
            let secret = key.rsplit('_').next().unwrap().to_owned();
            [key.clone(), secret]
        })
        .collect();
    secrets.push(traffic_key.to_owned());
    secrets.push(hex::encode(&pepper));
    if let Ok(text) = std::str::from_utf8(&pepper) {
        secrets.push(text.trim().to_owned());
    }
    let key_file = crate::helpers::shared_key_file(data.path())
        .unwrap_or_else(|| data.path().join(etape::adapters::store::sealed::KEY_FILE));
    let key = std::fs::read_to_string(key_file).expect("the webhook secrets key");
    secrets.push(key.trim().to_owned());
    // Give the feeds' background fetches time to fail and log.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = server.logs();
    assert!(logs.len() > 10, "{} log lines", logs.len());
    assert!(
        logs.iter().any(|line| line.contains("traffic")),
        "the traffic feed's failure is logged"
    );
    for line in &logs {
        for secret in &secrets {
            assert!(
                !line.contains(secret.as_str()),
                "a secret in the logs: {line}"
            );
        }
    }
}

/// Python's `json.dumps` writes "Müller-1" as `"M\u00fcller-1"`, and `"\/"` is JSON's own
/// escape of `/`: identifiers and timestamps so written are the text they stand for, in a
/// JSON array, in NDJSON and in Traccar's forward.
#[tokio::test]
async fn json_escapes_in_a_vehicle_id_are_read_as_the_text_they_stand_for() {
    let app = crate::helpers::spawn_app().await;
    let array = r#"[
        {"vehicle_id": "M\u00fcller-1", "timestamp": "2026-11-28T08:57:00\u005A", "lat": 45.76, "lon": 4.84},
        {"vehicle_id": "FR\/123", "timestamp": "2026-11-28T08:57:00Z", "lat": 45.76, "lon": 4.84}
    ]"#;
    let (status, outcome) = app
        .post_text("/v1/positions", "application/json", array.into())
        .await;
    assert_eq!(
        (status, outcome["accepted"].as_u64()),
        (200, Some(2)),
        "{outcome}"
    );
    let line = r#"{"vehicle_id": "M\u00fcller-1", "timestamp": "2026-11-28T08:58:00Z", "lat": 45.77, "lon": 4.84}"#;
    let (status, outcome) = app
        .post_text("/v1/positions", "application/x-ndjson", format!("{line}\n"))
        .await;
    assert_eq!(
        (status, outcome["accepted"].as_u64()),
        (200, Some(1)),
        "{outcome}"
    );
    let forward = r#"{
        "position": {"fixTime": "2026-11-28T08:59:00.000+00:00", "latitude": 45.78, "longitude": 4.84,
                     "valid": true, "attributes": {"driver": "J\u00e9r\u00f4me"}},
        "device": {"uniqueId": "M\u00fcller-1", "name": "Actros \/ 12"}
    }"#;
    let (status, outcome) = app
        .post_text("/v1/positions", "application/json", forward.into())
        .await;
    assert_eq!(
        (status, outcome["accepted"].as_u64()),
        (200, Some(1)),
        "{outcome}"
    );
    let stored: Value = app
        .get("/v1/vehicles/Müller-1/positions")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stored.as_array().map(Vec::len), Some(3), "{stored}");
}

/// A number out of range (which a `serde_json::Value` cannot hold) or of the wrong type fails
/// its own item, as a bad value does; the other items are answered.
#[tokio::test]
async fn a_batch_item_that_does_not_read_fails_alone() {
    let app = crate::helpers::spawn_app().await;
    let good = lille_to_marseille("2026-12-01T06:00:00+01:00", "van").to_string();
    let huge = good.replacen("\"lat\":50.63", "\"lat\":1e309", 1);
    let wrong = good.replacen("\"vehicle_class\":\"van\"", "\"vehicle_class\":7", 1);
    assert!(huge.contains("1e309") && wrong.contains(":7"), "{good}");
    let body = format!(r#"{{"requests": [{good}, {huge}, {wrong}, {good}]}}"#);
    let (status, answer) = app
        .post_text("/v1/eta/batch", "application/json", body)
        .await;
    assert_eq!(status, 200, "{answer}");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "{answer}");
    assert!(results[0]["eta"].is_string(), "{answer}");
    assert_eq!(results[1]["error"]["code"], "invalid_value", "{answer}");
    assert_eq!(results[1]["error"]["field"], "origin.lat", "{answer}");
    assert_eq!(results[2]["error"]["code"], "invalid_value", "{answer}");
    assert_eq!(results[2]["error"]["field"], "vehicle_class", "{answer}");
    assert_eq!(results[3]["eta"], results[0]["eta"]);
}

/// A key an object repeats would be read as its last value by this service and perhaps as its
/// first by a proxy or a log: the body is refused, and the repeated field named.
#[tokio::test]
async fn a_repeated_key_anywhere_in_a_body_is_refused_and_named() {
    let app = crate::helpers::spawn_app().await;
    let good = lille_to_marseille("2026-12-01T06:00:00+01:00", "van").to_string();
    let two_origins = r#"{"origin": {"lat": 50.63, "lon": 3.06}, "destination": {"lat": 43.30, "lon": 5.37},
        "origin": {"lat": 43.30, "lon": 5.37}, "departure_time": "2026-12-01T06:00:00+01:00", "vehicle_class": "van"}"#;
    let cases = [
        (
            "/v1/eta/batch",
            format!(r#"{{"requests": [{good}, {two_origins}]}}"#),
            "requests[1].origin",
        ),
        (
            "/v1/eta/batch",
            format!(r#"{{"requests": [{good}], "factors": true, "factors": false}}"#),
            "factors",
        ),
        ("/v1/eta", two_origins.to_owned(), "origin"),
        (
            "/v1/eta",
            good.replacen("\"lat\":50.63", "\"lat\":50.63,\"lat\":43.3", 1),
            "origin.lat",
        ),
        (
            "/v1/eta",
            good.replacen(
                "\"vehicle_class\":\"van\"",
                "\"vehicle_class\":\"van\",\"vehicle\\u005fclass\":\"articulated\"",
                1,
            ),
            "vehicle_class",
        ),
        (
            "/v1/shipments",
            r#"{"reference": "R-1", "vehicle_id": "V-1", "vehicle_id": "V-2", "vehicle_class": "van",
                "stops": [{"id": "a", "lat": 48.85, "lon": 2.35}], "planned_departure": "2026-11-28T09:00:00Z"}"#
                .to_owned(),
            "vehicle_id",
        ),
    ];
    for (path, body, field) in cases {
        let (status, error) = app.post_text(path, "application/json", body.clone()).await;
        assert_eq!(
            (status, error["code"].as_str(), error["field"].as_str()),
            (400, Some("invalid_value"), Some(field)),
            "{path} {body}: {error}"
        );
        assert!(
            error["message"].as_str().unwrap().contains("duplicate"),
            "{error}"
        );
    }
}

fn shipment_of(n_stops: usize) -> Value {
    let stops: Vec<Value> = (0..n_stops)
        .map(|stop_idx| json!({"id": format!("s{stop_idx}"), "lat": 45.0 + stop_idx as f64 * 0.01, "lon": 4.0}))
        .collect();
    json!({"reference": format!("R-{n_stops}"), "vehicle_id": "V-1", "vehicle_class": "rigid",
           "stops": stops, "planned_departure": crate::helpers::TEST_NOW})
}

#[tokio::test]
async fn a_shipment_takes_as_many_stops_as_the_limit_and_no_more() {
    let app = crate::helpers::spawn_app().await;
    let (status, created) = app.post_json("/v1/shipments", &shipment_of(100)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["stops"].as_array().map(Vec::len), Some(100));
    let (status, error) = app.post_json("/v1/shipments", &shipment_of(101)).await;
    assert_eq!(
        (status, error["code"].as_str(), error["field"].as_str()),
        (400, Some("out_of_range"), Some("stops")),
        "{error}"
    );
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("1 to 100 stops"),
        "{error}"
    );
}

/// A NUL cuts an identifier short (and PostgreSQL refuses it), a line break forges a line of
/// a log or an export, and U+202E shows another name than the one stored: refused, named.
#[tokio::test]
async fn identifiers_with_control_or_bidi_characters_are_refused_and_named() {
    let app = crate::helpers::spawn_app().await;
    let base = json!({"reference": "R-ok", "vehicle_id": "Müller-1", "vehicle_class": "van",
                      "stops": [{"id": "a", "lat": 48.85, "lon": 2.35}],
                      "planned_departure": crate::helpers::TEST_NOW});
    let too_long = "V".repeat(65);
    let cases = [
        ("/vehicle_id", "AB\u{0}-1", "vehicle_id"),
        ("/vehicle_id", "AB-1\r\nX-Forged: 1", "vehicle_id"),
        ("/vehicle_id", "AB-1\n", "vehicle_id"),
        ("/vehicle_id", "AB-\u{202E}1-DC", "vehicle_id"),
        ("/vehicle_id", too_long.as_str(), "vehicle_id"),
        ("/reference", "ORD-\u{2066}1", "reference"),
        ("/reference", "ORD\t1", "reference"),
        ("/stops/0/id", "dock\u{7}4", "stops[0].id"),
        ("/stops/0/id", "dock-\u{200F}4", "stops[0].id"),
    ];
    for (pointer, value, field) in cases {
        let mut request = base.clone();
        *request.pointer_mut(pointer).unwrap() = json!(value);
        let (status, error) = app.post_json("/v1/shipments", &request).await;
        assert_eq!(
            (status, error["code"].as_str(), error["field"].as_str()),
            (400, Some("out_of_range"), Some(field)),
            "{value:?}: {error}"
        );
    }
    let (status, created) = app.post_json("/v1/shipments", &base).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["vehicle_id"], "Müller-1");

    let ping = |vehicle_id: &str| {
        json!({"vehicle_id": vehicle_id, "timestamp": "2026-11-28T08:58:00Z", "lat": 45.76, "lon": 4.84})
            .to_string()
            + "\n"
    };
    let body: String = ["V-1", "V\u{0}1", "V-1\r\n", "V-\u{202E}1", "V-\u{2069}1"]
        .into_iter()
        .map(ping)
        .collect();
    let (status, outcome) = app
        .post_text("/v1/positions", "application/x-ndjson", body)
        .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["accepted"], 1, "{outcome}");
    let rejected = outcome["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 4, "{outcome}");
    for (rejection, index) in rejected.iter().zip(1..) {
        assert_eq!(rejection["index"], index, "{outcome}");
        assert_eq!(rejection["field"], "vehicle_id", "{outcome}");
    }
}

/// A count of stops no truck makes, years 0001 and 9999, and trip ids of 128 KiB (a record
/// of a megabyte is refused as it is read) or with a bidirectional override: each named by
/// its row and column, and nothing kept.
#[tokio::test]
async fn an_upload_with_implausible_stops_dates_or_trip_ids_is_refused_whole() {
    let app = crate::helpers::spawn_app().await;
    let row = |trip_id: &str, departure: &str, arrival: &str, stops: &str| {
        format!("{trip_id},rigid,48.85,2.35,45.76,4.84,{departure},{arrival},470,{stops},0,6\n")
    };
    let (departure, arrival) = ("2025-03-04T05:40:00+01:00", "2025-03-04T13:10:00+01:00");
    let body = [
        TRIPS_HEADER.to_owned(),
        row("GOOD-1", departure, arrival, "0"),
        row(
            "STOPS-1",
            departure,
            arrival,
            &format!("1{}", "0".repeat(40)),
        ),
        row("YEAR-1", "0001-03-04T05:40:00+01:00", arrival, "0"),
        row("YEAR-9", departure, "9999-03-04T13:10:00+01:00", "0"),
        row(&"T".repeat(1 << 17), departure, arrival, "0"),
        row("BIDI-\u{202E}1", departure, arrival, "0"),
    ]
    .concat();
    let partner = &app.keys["partner"];
    let response = app
        .client
        .post(format!("{}/v1/history", app.address))
        .bearer_auth(partner)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let refused: Value = response.json().await.unwrap();
    assert_eq!(refused["code"], "invalid_history", "{refused}");
    assert_eq!(refused["total"], 5, "{refused}");
    let mut named: Vec<(u64, &str)> = refused["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|problem| {
            (
                problem["row"].as_u64().unwrap(),
                problem["column"].as_str().unwrap(),
            )
        })
        .collect();
    named.sort_unstable();
    assert_eq!(
        named,
        [
            (2, "stops"),
            (3, "departure_time"),
            (4, "arrival_time"),
            (5, "trip_id"),
            (6, "trip_id"),
        ],
        "{refused}"
    );
    // The long id is named by its row, not echoed.
    assert!(refused.to_string().len() < 10_000);
    let listed: Value = crate::helpers::json_of(
        app.client
            .get(format!("{}/v1/history", app.address))
            .bearer_auth(partner),
    )
    .await;
    assert_eq!(listed, json!([]), "nothing kept");
}

/// A webhook is a request the service makes where a caller says: never to the service's own
/// machine, its private networks or a cloud's metadata endpoint, however the address is
/// spelt. The harness allows private networks for its receivers; this test does not.
#[tokio::test]
async fn webhooks_to_private_networks_are_refused_however_they_are_spelt() {
    let app = spawn_app_with(|settings| {
        settings.webhooks.allow_private_networks = false;
    })
    .await;
    let refused = [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[::1]:8201/",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://localhost:8201/",
        "http://0.0.0.0:8201/",
        "http://2130706433/",
        "http://0x7f.0.0.1/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:127.0.0.1]:8201/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://metadata/",
        "http://instance-data/latest/meta-data/",
        "ftp://files.example.com/",
        "file:///etc/passwd",
    ];
    for url in refused {
        let (status, body) = app
            .post_json("/v1/webhooks", &json!({"url": url, "events": ["arrived"]}))
            .await;
        assert!(
            (400..500).contains(&status),
            "{url} answered {status}: {body}"
        );
        assert_eq!(body["field"], "url", "{url}: {body}");
    }
    let listed =
        crate::helpers::json_of(app.client.get(format!("{}/v1/webhooks", app.address))).await;
    assert_eq!(listed, json!([]), "nothing refused is kept");
    // A public address passes; no name lookup is needed for a literal.
    let (status, body) = app
        .post_json(
            "/v1/webhooks",
            &json!({"url": "https://8.8.8.8/etape", "events": ["arrived"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}
