use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::helpers::{artifact_path, lille_to_marseille, spawn_app, TEST_NOW};

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status().as_u16(), 200);
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["model"]["name"], "rules");
}

/// Parses the text exposition into `series -> value`, failing on any malformed line.
fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    let mut series = BTreeMap::new();
    let mut typed = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a name and a kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            typed.insert(name.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = key.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|base| typed.contains(*base))
            })
            .unwrap_or(name);
        assert!(typed.contains(family), "series before its TYPE: {line}");
        assert!(
            key.matches('"').count() % 2 == 0,
            "unbalanced quotes: {line}"
        );
        series.insert(key.to_owned(), value);
    }
    series
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_with_bounded_labels() {
    let app = spawn_app().await;
    let request = lille_to_marseille("2026-12-01T06:00:00+01:00", "rigid");
    for _ in 0..3 {
        assert_eq!(app.post_json("/v1/eta", &request).await.0, 200);
    }
    assert_eq!(
        app.get("/v1/does/not/exist/12345").await.status().as_u16(),
        404
    );
    let batch = serde_json::json!({"requests": [request, request]});
    assert_eq!(app.post_json("/v1/eta/batch", &batch).await.0, 200);
    let response = app.get("/metrics").await;
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();
    std::fs::write(artifact_path("metrics.txt"), &text).unwrap();
    let series = parse_exposition(&text);
    let value = |key: &str| {
        series
            .get(key)
            .copied()
            .unwrap_or_else(|| panic!("{key} missing in\n{text}"))
    };
    assert_eq!(
        value(r#"etape_http_requests_total{method="POST",route="/v1/eta",status="200"}"#),
        3.0
    );
    assert_eq!(
        value(r#"etape_http_requests_total{method="GET",route="unmatched",status="404"}"#),
        1.0
    );
    assert_eq!(
        value(r#"etape_http_request_duration_seconds_count{method="POST",route="/v1/eta"}"#),
        3.0
    );
    assert_eq!(
        value(
            r#"etape_http_request_duration_seconds_bucket{method="POST",route="/v1/eta",le="+Inf"}"#
        ),
        3.0
    );
    assert_eq!(value(r#"etape_predictions_total{model="rules"}"#), 5.0);
    assert_eq!(value("etape_eta_batch_size_count"), 1.0);
    assert_eq!(value("etape_eta_batch_size_sum"), 2.0);
    if cfg!(target_os = "linux") {
        assert!(value("process_resident_memory_bytes") > 0.0, "{text}");
        assert!(value("process_open_fds") > 0.0, "{text}");
    }
    assert_eq!(
        value(&format!(
            r#"etape_build_info{{version="{}"}}"#,
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    assert!(!text.contains("12345"), "a raw path leaked into a label");
}

/// Every route the server must have, with its method.
const ROUTES: [(&str, &str); 49] = [
    ("post", "/v1/eta"),
    ("get", "/v1/operations"),
    ("post", "/v1/eta/batch"),
    ("post", "/v1/shipments"),
    ("get", "/v1/shipments"),
    ("get", "/v1/shipments/{id}"),
    ("post", "/v1/shipments/{id}/cancel"),
    ("post", "/v1/shipments/{id}/events"),
    ("get", "/v1/shipments/{id}/eta"),
    ("get", "/v1/shipments/{id}/eta/history"),
    ("post", "/v1/shipments/{id}/share"),
    ("delete", "/v1/shipments/{id}/share/{share_id}"),
    ("get", "/v1/events"),
    ("get", "/track/{token}"),
    ("get", "/track/{token}/eta.json"),
    ("post", "/v1/positions"),
    ("get", "/v1/vehicles/{vehicle_id}/positions"),
    ("post", "/v1/devices"),
    ("get", "/v1/devices"),
    ("delete", "/v1/devices/{id}"),
    ("get", "/v1/osmand/{token}"),
    ("post", "/v1/osmand/{token}"),
    ("post", "/v1/webhooks"),
    ("get", "/v1/webhooks"),
    ("get", "/v1/webhooks/{id}"),
    ("delete", "/v1/webhooks/{id}"),
    ("post", "/v1/webhooks/{id}/rotate-secret"),
    ("get", "/v1/webhooks/{id}/deliveries"),
    ("post", "/v1/webhooks/{id}/deliveries/{delivery}/replay"),
    ("post", "/v1/organisations"),
    ("get", "/v1/organisations"),
    ("post", "/v1/organisations/{id}/keys"),
    ("get", "/v1/organisations/{id}/keys"),
    ("delete", "/v1/keys/{id}"),
    ("get", "/v1/models"),
    ("post", "/v1/models/{version}/activate"),
    ("post", "/v1/models/train"),
    ("get", "/v1/models/jobs/{id}"),
    ("post", "/v1/history"),
    ("get", "/v1/history"),
    ("get", "/v1/history/{id}/export"),
    ("delete", "/v1/history/{id}"),
    ("get", "/v1/partners/me"),
    ("put", "/v1/partners/me/consent"),
    ("get", "/v1/partners/me/report"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_routes_the_server_answers() {
    let app = spawn_app().await;
    let text = app.get("/openapi.json").await.text().await.unwrap();
    std::fs::write(artifact_path("openapi.json"), &text).unwrap();
    let document: Value = serde_json::from_str(&text).unwrap();
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        document["openapi"]
    );
    let mut documented = BTreeSet::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let expected: BTreeSet<_> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, expected);
    // And each documented operation is really served: anything but 404 and 405. Paths with
    // an id get one that exists.
    let (_, shipment) = app
        .post_json(
            "/v1/shipments",
            &serde_json::json!({"reference": "R", "vehicle_id": "V", "vehicle_class": "van",
                "stops": [{"id": "a", "lat": 48.85, "lon": 2.35}], "planned_departure": TEST_NOW}),
        )
        .await;
    let (_, webhook) = app
        .post_json(
            "/v1/webhooks",
            &serde_json::json!({"url": "http://127.0.0.1:9/", "events": ["arrived"]}),
        )
        .await;
    // A link to open and revoke.
    let (status, link) = app
        .post_json(
            &format!("/v1/shipments/{}/share", shipment["id"].as_str().unwrap()),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 201, "{link}");
    let token = link["url"]
        .as_str()
        .unwrap()
        .rsplit_once("/track/")
        .unwrap()
        .1
        .to_owned();
    // A phone's device to revoke.
    let (status, device) = app
        .post_json("/v1/devices", &serde_json::json!({"vehicle_id": "V"}))
        .await;
    assert_eq!(status, 201, "{device}");
    // A delivery to replay, of a shipment of its own: an arrival at its one stop delivers it.
    let (_, arriving) = app
        .post_json(
            "/v1/shipments",
            &serde_json::json!({"reference": "R-hook", "vehicle_id": "V-hook", "vehicle_class": "van",
                "stops": [{"id": "a", "lat": 48.85, "lon": 2.35}], "planned_departure": TEST_NOW}),
        )
        .await;
    let (status, _) = app
        .post_json(
            &format!("/v1/shipments/{}/events", arriving["id"].as_str().unwrap()),
            &serde_json::json!({"stop_index": 0, "kind": "arrived"}),
        )
        .await;
    assert_eq!(status, 200);
    let deliveries = format!(
        "/v1/webhooks/{}/deliveries",
        webhook["id"].as_str().unwrap()
    );
    let mut delivery = Value::Null;
    for _ in 0..200 {
        delivery = app.get(&deliveries).await.json::<Value>().await.unwrap()[0]["id"].clone();
        if delivery.is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let delivery = delivery.as_str().expect("a delivery logged").to_owned();
    // Deleting goes last, so that the deliveries' path still finds the webhook.
    let mut operations: Vec<&(String, String)> = documented.iter().collect();
    operations.sort_by_key(|(method, _)| method == "delete");
    for (method, path) in operations {
        let id = if path.starts_with("/v1/webhooks") {
            webhook["id"].as_str().unwrap()
        } else if path.starts_with("/v1/devices") {
            device["id"].as_str().unwrap()
        } else if path.starts_with("/v1/organisations")
            || path.starts_with("/v1/keys")
            || path.starts_with("/v1/history")
            || path.starts_with("/v1/models")
        {
            // Admin and partner routes: the carrier key gets 403 whatever the id.
            "demo"
        } else {
            shipment["id"].as_str().unwrap()
        };
        let url = format!(
            "{}{}",
            app.address,
            path.replace("{id}", id)
                .replace("{vehicle_id}", "V")
                .replace("{delivery}", &delivery)
                .replace("{share_id}", link["id"].as_str().unwrap())
                .replace("{token}", &token)
        );
        let request = match method.as_str() {
            "get" => app.client.get(url),
            "post" => app.client.post(url).body("{}"),
            "delete" => app.client.delete(url),
            "put" => app.client.put(url).body("{}"),
            other => panic!("undocumented method {other}"),
        };
        let status = request.send().await.unwrap().status().as_u16();
        assert!(
            status != 404 && status != 405,
            "{method} {path} answered {status}"
        );
    }
    for (method, path) in &documented {
        let operation = &document["paths"][path][method];
        assert!(
            !operation["responses"].as_object().unwrap().is_empty(),
            "{method} {path}"
        );
        if operation.get("requestBody").is_some() {
            assert!(
                operation["responses"]["400"]["content"]["application/json"].is_object(),
                "{method} {path}"
            );
        }
    }
}

#[tokio::test]
async fn shutdown_stops_the_server_gracefully() {
    let app = spawn_app().await;
    let address = app.address.clone();
    assert_eq!(app.get("/healthz").await.status().as_u16(), 200);
    tokio::time::timeout(std::time::Duration::from_secs(10), app.stop())
        .await
        .expect("the server stops within its grace period")
        .expect("the server stops cleanly");
    assert!(reqwest::get(format!("{address}/healthz")).await.is_err());
}

fn etape(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_etape"))
        .args(args)
        .env_remove("ETAPE_CONFIG")
        .output()
        .expect("the binary runs")
}

#[tokio::test]
async fn the_healthcheck_command_follows_the_server() {
    let app = spawn_app().await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let output = tokio::task::spawn_blocking({
        let address = address.clone();
        move || etape(&["healthcheck", "--address", &address])
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    app.stop().await.unwrap();
    let output =
        tokio::task::spawn_blocking(move || etape(&["healthcheck", "--address", &address]))
            .await
            .unwrap();
    assert!(!output.status.success());
}

#[test]
fn a_bad_configuration_file_is_a_clear_error_and_a_non_zero_exit() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("etape.toml");
    std::fs::write(&path, "[rules]\ncircuity = 0.8\n").unwrap();
    let output = etape(&["--config", path.to_str().unwrap(), "config"]);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("rules.circuity"), "{message}");
    let output = etape(&["serve", "--bind", "not-an-address"]);
    assert!(!output.status.success());
}

/// Arrivals unlike what the model said teach the organisation's correction: it shows in
/// `GET /v1/operations`, moves the next answer at that horizon, and is learnt again after a
/// restart from the deliveries the store keeps.
#[tokio::test]
async fn what_arrivals_teach_corrects_the_next_answers_shows_in_operations_and_survives_a_restart()
{
    let data = tempfile::tempdir().unwrap();
    let few = [("ETAPE__TRACKING__CORRECTION_MIN_ESTIMATES", "3")];
    let server = crate::helpers::RunningBinary::start(data.path(), &["--no-demo".as_ref()], &few);
    let keys = crate::helpers::demo_keys(data.path());
    let carrier = crate::helpers::client_with_key(&keys["carrier"]);
    let stamp = |at: chrono::DateTime<chrono::Utc>| at.to_rfc3339();
    let question = |base: &str| {
        let now = chrono::Utc::now();
        carrier
            .post(format!("{base}/v1/eta"))
            .body(lille_to_marseille(&stamp(now), "articulated").to_string())
    };
    let minutes_to_go = |eta: &Value| eta["duration_minutes"].as_f64().unwrap();
    let before = crate::helpers::json_of(question(&server.base)).await;
    assert!(minutes_to_go(&before) > 12.0 * 60.0, "{before}");

    // Three trucks reach Marseille as soon as they are registered: far earlier than said.
    for n in 0..3 {
        let registered = crate::helpers::json_of(
            carrier.post(format!("{}/v1/shipments", server.base)).body(
                json!({"reference": format!("DRIFT-{n}"), "vehicle_id": format!("V-{n}"),
                       "vehicle_class": "articulated",
                       "origin": {"lat": 50.6292, "lon": 3.0573},
                       "stops": [{"id": "marseille", "lat": 43.2965, "lon": 5.3698}],
                       "planned_departure": stamp(chrono::Utc::now())})
                .to_string(),
            ),
        )
        .await;
        let id = registered["id"].as_str().unwrap().to_owned();
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        let delivered = crate::helpers::json_of(
            carrier
                .post(format!("{}/v1/shipments/{id}/events", server.base))
                .body(
                    json!({"stop_id": "marseille", "kind": "arrived",
                           "at": stamp(chrono::Utc::now())})
                    .to_string(),
                ),
        )
        .await;
        assert_eq!(delivered["status"], "delivered", "{delivered}");
    }
    let operations = |base: String| {
        let carrier = carrier.clone();
        async move { crate::helpers::json_of(carrier.get(format!("{base}/v1/operations"))).await }
    };
    let learnt = operations(server.base.clone()).await;
    let corrections = learnt["corrections"].as_array().unwrap().clone();
    assert_eq!(corrections.len(), 1, "{learnt}");
    assert_eq!(corrections[0]["horizon"], "12h+");
    assert_eq!(corrections[0]["estimates"], 3);
    assert_eq!(
        corrections[0]["factor"].as_f64(),
        Some(0.6667),
        "bounded: {learnt}"
    );
    let after = crate::helpers::json_of(question(&server.base)).await;
    assert!(
        minutes_to_go(&after) < minutes_to_go(&before) * 0.75,
        "{before} then {after}"
    );
    drop(server);

    let restarted =
        crate::helpers::RunningBinary::start(data.path(), &["--no-demo".as_ref()], &few);
    let relearnt = operations(restarted.base.clone()).await;
    assert_eq!(
        relearnt["corrections"],
        Value::Array(corrections),
        "{relearnt}"
    );
    let metrics = reqwest::get(format!("{}/metrics", restarted.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let factor = metrics
        .lines()
        .find(|line| {
            line.starts_with("etape_eta_correction_ratio{")
                && line.contains(r#"organisation="demo""#)
                && line.contains(r#"part="factor""#)
        })
        .unwrap_or_else(|| panic!("no correction gauge in {metrics}"));
    assert!(factor.ends_with(" 0.6666666666666666"), "{factor}");
}
