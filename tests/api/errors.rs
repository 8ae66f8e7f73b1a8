use serde_json::{json, Value};

use crate::helpers::{lille_to_marseille, spawn_app, spawn_app_with};

fn valid() -> Value {
    lille_to_marseille("2026-12-01T06:00:00+01:00", "articulated")
}

fn with(path: &[&str], value: Value) -> Value {
    let mut request = valid();
    let mut slot = &mut request;
    for key in &path[..path.len() - 1] {
        slot = &mut slot[*key];
    }
    slot[path[path.len() - 1]] = value;
    request
}

fn without(key: &str) -> Value {
    let mut request = valid();
    request.as_object_mut().unwrap().remove(key);
    request
}

fn with_stop(stop: Value) -> Value {
    let mut request = valid();
    request["stops"] = json!([{"lat": 45.76, "lon": 4.84}, stop]);
    request
}

/// Checks the status and the whole error body: exactly `code`, `message` and `field`.
async fn check(body: String, status: u16, code: &str, field: Option<&str>) {
    let app = spawn_app().await;
    let response = app.post("/v1/eta", body.clone()).await;
    assert_eq!(response.status().as_u16(), status, "{body}");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["code"], code, "{body} -> {error}");
    assert_eq!(error["field"].as_str(), field, "{body} -> {error}");
    assert!(!error["message"].as_str().unwrap().is_empty());
    assert_eq!(error.as_object().unwrap().len(), 3, "{error}");
}

#[tokio::test]
async fn every_kind_of_bad_input_gets_a_4xx_naming_the_field() {
    let cases: Vec<(String, u16, &str, Option<&str>)> = vec![
        ("{".into(), 400, "malformed_json", None),
        ("".into(), 400, "malformed_json", None),
        ("[1, 2]".into(), 400, "invalid_value", None),
        (format!("{} {{}}", valid()), 400, "malformed_json", None),
        (without("origin").to_string(), 400, "missing_field", Some("origin")),
        (without("departure_time").to_string(), 400, "missing_field", Some("departure_time")),
        (with(&["origin"], json!({"lat": 50.0})).to_string(), 400, "missing_field", Some("origin.lon")),
        (with(&["origin", "lat"], json!(91.0)).to_string(), 400, "out_of_range", Some("origin.lat")),
        (with(&["destination", "lon"], json!(-180.5)).to_string(), 400, "out_of_range", Some("destination.lon")),
        (with(&["origin", "lat"], json!("50.6")).to_string(), 400, "invalid_value", Some("origin.lat")),
        (with(&["vehicle_class"], json!("truck")).to_string(), 400, "invalid_value", Some("vehicle_class")),
        (with(&["vehicle_class"], json!(null)).to_string(), 400, "invalid_value", Some("vehicle_class")),
        (
            with(&["departure_time"], json!("2026-12-01T06:00:00")).to_string(),
            400,
            "timestamp_without_offset",
            Some("departure_time"),
        ),
        (with(&["departure_time"], json!("tomorrow")).to_string(), 400, "invalid_timestamp", Some("departure_time")),
        (
            with(&["departure_time"], json!("2028-12-01T06:00:00+01:00")).to_string(),
            400,
            "out_of_range",
            Some("departure_time"),
        ),
        (
            with(&["departure_time"], json!("2024-12-01T06:00:00+01:00")).to_string(),
            400,
            "out_of_range",
            Some("departure_time"),
        ),
        (with(&["speed"], json!(90)).to_string(), 400, "unknown_field", Some("speed")),
        (
            with_stop(json!({"lat": 45.0, "lon": 4.0, "dwell_minutes": -5})).to_string(),
            400,
            "out_of_range",
            Some("stops[1].dwell_minutes"),
        ),
        (
            with_stop(json!({"lat": 45.0, "lon": 4.0, "window": {"start": "2026-12-01T08:00:00Z", "end": "2026-12-01T09:00"}}))
                .to_string(),
            400,
            "timestamp_without_offset",
            Some("stops[1].window.end"),
        ),
        (
            with_stop(json!({"lat": 45.0, "lon": 4.0, "window": {"start": "2026-12-01T10:00:00Z", "end": "2026-12-01T09:00:00Z"}}))
                .to_string(),
            400,
            "out_of_range",
            Some("stops[1].window.end"),
        ),
        (with_stop(json!({"lat": 45.0})).to_string(), 400, "missing_field", Some("stops[1].lon")),
        (
            with(&["driver"], json!({"driven_today_minutes": 700})).to_string(),
            400,
            "out_of_range",
            Some("driver.driven_today_minutes"),
        ),
        (
            with(&["driver"], json!({"driven_today_minutes": 60, "driven_since_break_minutes": 90})).to_string(),
            400,
            "out_of_range",
            Some("driver.driven_since_break_minutes"),
        ),
    ];
    for (body, status, code, field) in cases {
        check(body, status, code, field).await;
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413() {
    let app = spawn_app_with(|settings| settings.api.max_body_bytes = 1024).await;
    let mut request = valid();
    request["stops"] = json!(vec![json!({"lat": 45.0, "lon": 4.0}); 100]);
    let response = app.post("/v1/eta", request.to_string()).await;
    assert_eq!(response.status().as_u16(), 413);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["code"], "payload_too_large");
}

#[tokio::test]
async fn a_batch_over_the_request_limit_is_refused_whole() {
    let app = spawn_app_with(|settings| settings.api.max_batch_requests = 3).await;
    let batch = json!({"requests": vec![valid(); 4]});
    let (status, error) = app.post_json("/v1/eta/batch", &batch).await;
    assert_eq!(status, 422);
    assert_eq!(error["code"], "batch_too_large");
    let (status, error) = app
        .post_json("/v1/eta/batch", &json!({"requests": "all"}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(error["field"], "requests");
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_answer_json() {
    let app = spawn_app().await;
    let response = app.get("/v1/nowhere").await;
    assert_eq!(response.status().as_u16(), 404);
    assert_eq!(response.json::<Value>().await.unwrap()["code"], "not_found");
    let response = app.get("/v1/eta").await;
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "method_not_allowed"
    );
}
