//! One request for the fleet and a link for the consignee: the shipments list with each one's
//! estimate, the organisation's event stream, and share links to the public tracking page.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};

use crate::helpers::{client_with_key, json_of, spawn_app, TestApp, TEST_NOW};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(TEST_NOW)
        .unwrap()
        .with_timezone(&Utc)
}

/// A client that sends no key: what a consignee's browser is.
fn anonymous() -> reqwest::Client {
    etape::adapters::webhooks::install_tls_provider();
    reqwest::Client::new()
}

/// A shipment of `vehicle` from Paris to Lyon with a window; its id.
async fn shipment(app: &TestApp, reference: &str, vehicle: &str, stop: &str) -> String {
    let (status, shipment) = app
        .post_json(
            "/v1/shipments",
            &json!({"reference": reference, "vehicle_id": vehicle, "vehicle_class": "rigid",
                    "origin": {"lat": 48.85, "lon": 2.35},
                    "stops": [{"id": stop, "lat": 45.76, "lon": 4.84,
                               "window": {"start": "2026-11-28T13:00:00Z", "end": "2026-11-28T18:00:00Z"}}],
                    "planned_departure": TEST_NOW}),
        )
        .await;
    assert_eq!(status, 201, "{shipment}");
    shipment["id"].as_str().unwrap().to_owned()
}

/// Pings of `vehicle` leaving Paris south-east over the ten minutes before now.
async fn post_pings(app: &TestApp, vehicle: &str) {
    let body: String = (0..5)
        .map(|step| {
            json!({"vehicle_id": vehicle, "speed_kmh": 80.0,
                   "lat": 48.80 - 0.02 * f64::from(step), "lon": 2.40 + 0.02 * f64::from(step),
                   "timestamp": (now() - TimeDelta::minutes(10 - 2 * i64::from(step))).to_rfc3339()})
            .to_string()
                + "\n"
        })
        .collect();
    let (status, answer) = app
        .post_text("/v1/positions", "application/x-ndjson", body)
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 5, "{answer}");
}

/// The live estimate once it starts from the pings (estimates are debounced) and the shipment
/// is under way.
async fn estimate_with_position(app: &TestApp, id: &str) -> Value {
    for _ in 0..200 {
        let eta: Value = app
            .get(&format!("/v1/shipments/{id}/eta"))
            .await
            .json()
            .await
            .unwrap();
        let (_, shipment) = get(app, &format!("/v1/shipments/{id}")).await;
        if !eta["position"].is_null() && shipment["status"] == "in_transit" {
            return eta;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the estimate never took the pings");
}

/// Makes a link with `key`; its status and answer.
async fn share(app: &TestApp, key: &str, id: &str, body: &Value) -> (u16, Value) {
    let response = client_with_key(key)
        .post(format!("{}/v1/shipments/{id}/share", app.address))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn revoke(app: &TestApp, key: &str, id: &str, share_id: &str) -> u16 {
    client_with_key(key)
        .delete(format!(
            "{}/v1/shipments/{id}/share/{share_id}",
            app.address
        ))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The token at the end of a link's URL.
fn token_of(link: &Value) -> String {
    let url = link["url"].as_str().unwrap();
    url.rsplit_once("/track/").unwrap().1.to_owned()
}

/// The public page of `token` (`suffix` after it): status, headers' referrer policy, body.
async fn visit(app: &TestApp, token: &str, suffix: &str) -> (u16, String, String) {
    let response = anonymous()
        .get(format!("{}/track/{token}{suffix}", app.address))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let referrer = response
        .headers()
        .get("referrer-policy")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, referrer, response.text().await.unwrap())
}

/// A dispatcher key of a second organisation, `other`.
async fn other_dispatcher(app: &TestApp) -> String {
    let operator = client_with_key(&app.keys["operator"]);
    let created = operator
        .post(format!("{}/v1/organisations", app.address))
        .body(json!({"id": "other", "name": "Other"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let issued = json_of(
        operator
            .post(format!("{}/v1/organisations/other/keys", app.address))
            .body(json!({"name": "desk", "roles": ["dispatcher"]}).to_string()),
    )
    .await;
    issued["key"].as_str().unwrap().to_owned()
}

/// A Server-Sent Events stream read chunk by chunk (reqwest's `bytes_stream` needs a feature
/// the lock file does not carry; `chunk` reads the same bytes).
struct Events {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl Events {
    async fn open(app: &TestApp, key: &str) -> Self {
        let response = client_with_key(key)
            .get(format!("{}/v1/events", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Self {
            response,
            buffer: Vec::new(),
        }
    }

    /// The next frame, raw, within `wait`.
    async fn frame(&mut self, wait: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.windows(2).position(|pair| pair == b"\n\n") {
                let frame = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
                self.buffer.drain(..end + 2);
                return Some(frame);
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .ok()??;
            self.buffer.extend_from_slice(&chunk);
        }
    }

    /// The data of the next `name` event about `shipment_id`, within `wait`.
    async fn next(&mut self, name: &str, shipment_id: &str, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.frame(left).await?;
            let mut event = "";
            let mut data = None;
            for line in frame.lines() {
                if let Some(value) = line.strip_prefix("event: ") {
                    event = value;
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str::<Value>(value).expect("JSON data"));
                }
            }
            if let Some(data) = data {
                if event == name && data["shipment_id"] == shipment_id {
                    return Some(data);
                }
            }
        }
    }
}

#[tokio::test]
async fn the_list_carries_each_shipments_estimate_a_page_at_a_time() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(shipment(&app, &format!("R-{n}"), &format!("V-{n}"), "lyon").await);
    }
    post_pings(&app, "V-0").await;
    let live = estimate_with_position(&app, &ids[0]).await;

    let (status, page) = get(&app, "/v1/shipments?include=estimate&limit=2").await;
    assert_eq!(status, 200, "{page}");
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, rest) = get(
        &app,
        &format!("/v1/shipments?include=estimate&limit=2&cursor={cursor}"),
    )
    .await;
    let items: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["items"].as_array().unwrap())
        .collect();
    assert_eq!(items.len(), 3);
    for item in &items {
        assert_eq!(item["estimate"]["shipment_id"], item["id"], "{item}");
        assert_eq!(item["estimate"]["stops"][0]["id"], "lyon", "{item}");
    }
    // The same body as the shipment's own `/eta`.
    let first = items
        .iter()
        .find(|item| item["id"] == ids[0].as_str())
        .unwrap();
    assert_eq!(first["estimate"], live);

    let (_, plain) = get(&app, "/v1/shipments?limit=2").await;
    assert!(plain["items"][0].get("estimate").is_none(), "{plain}");
    let (status, error) = get(&app, "/v1/shipments?include=everything").await;
    assert_eq!(
        (status, error["field"].as_str()),
        (400, Some("include")),
        "{error}"
    );

    // A finished shipment is listed with its last estimate.
    let (status, _) = app
        .post_json(&format!("/v1/shipments/{}/cancel", ids[1]), &json!({}))
        .await;
    assert_eq!(status, 200);
    let (_, cancelled) = get(&app, "/v1/shipments?status=cancelled&include=estimate").await;
    assert_eq!(cancelled["items"][0]["id"], ids[1].as_str(), "{cancelled}");
    assert_eq!(
        cancelled["items"][0]["estimate"]["shipment_id"],
        ids[1].as_str(),
        "{cancelled}"
    );
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app.get(path).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_event_stream_pushes_an_estimate_after_positions_are_posted() {
    let app = spawn_app().await;
    let id = shipment(&app, "SSE-1", "FR-SSE", "lyon").await;
    let unauthenticated = anonymous()
        .get(format!("{}/v1/events", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);

    let mut ours = Events::open(&app, &app.keys["dispatcher"]).await;
    let other = other_dispatcher(&app).await;
    let mut theirs = Events::open(&app, &other).await;
    // The first thing a stream sends is a keep-alive comment: the client knows it is in.
    let first = ours.frame(Duration::from_secs(5)).await.unwrap();
    assert!(first.starts_with(':'), "{first}");

    post_pings(&app, "FR-SSE").await;
    // On a shared store the leader may publish the registration's estimate (no position yet)
    // after the stream opened: the pings' estimate is the first that knows where the truck is.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let estimate = ours
            .next("estimate", &id, left)
            .await
            .expect("an estimate event with a position after the pings");
        assert_eq!(estimate["estimate"]["shipment_id"], id.as_str());
        if !estimate["estimate"]["position"].is_null() {
            break;
        }
    }
    let status = ours
        .next("status", &id, Duration::from_secs(5))
        .await
        .expect("a status event: the truck set off");
    assert_eq!(status["status"], "in_transit");

    // Another organisation's stream hears nothing of it.
    assert!(
        theirs
            .next("estimate", &id, Duration::from_millis(500))
            .await
            .is_none(),
        "another organisation's stream carried our estimate"
    );

    let (status, _) = app
        .post_json(&format!("/v1/shipments/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 200);
    let cancelled = ours
        .next("status", &id, Duration::from_secs(5))
        .await
        .expect("a status event for the cancel");
    assert_eq!(cancelled["status"], "cancelled");
}

#[tokio::test]
async fn a_share_link_shows_the_eta_and_the_position_only_when_asked() {
    let app = spawn_app().await;
    let id = shipment(&app, "SECRET-REF", "FR-SECRET", "lyon-dock-4").await;
    post_pings(&app, "FR-SECRET").await;
    let live = estimate_with_position(&app, &id).await;
    let dispatcher = app.keys["dispatcher"].clone();

    let (status, link) = share(&app, &dispatcher, &id, &json!({})).await;
    assert_eq!(status, 201, "{link}");
    assert!(link["url"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}/track/", app.address)));
    let expected_expiry =
        (now() + TimeDelta::hours(72)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(link["expires_at"], expected_expiry.as_str(), "{link}");
    let token = token_of(&link);
    assert_eq!(token.len(), 64);

    let (status, referrer, page) = visit(&app, &token, "").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(referrer, "no-referrer");
    assert!(
        page.contains("<html lang=\"fr\"") && page.contains("Arrivée prévue"),
        "{page}"
    );
    assert!(page.contains("lyon-dock-4"), "{page}");
    assert!(!page.contains("class=\"position\""), "{page}");
    let (_, _, english) = visit(&app, &token, "?lang=en").await;
    assert!(english.contains("Expected arrival"), "{english}");

    let (status, _, text) = visit(&app, &token, "/eta.json").await;
    assert_eq!(status, 200, "{text}");
    let tracking: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(tracking["status"], "in_transit", "{tracking}");
    assert_eq!(
        tracking["stops"][0]["eta"], live["stops"][0]["eta"],
        "{tracking}"
    );
    assert_eq!(tracking["stops"][0]["eta_p10"], live["stops"][0]["eta_p10"]);
    assert_eq!(
        tracking["stops"][0]["window"]["end"],
        "2026-11-28T18:00:00Z"
    );
    assert!(tracking.get("position").is_none(), "{tracking}");
    for secret in ["SECRET-REF", "FR-SECRET", "demo", id.as_str()] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
        assert!(!page.contains(secret), "{secret} leaked into the page");
    }

    let (status, located) = share(
        &app,
        &app.keys["carrier"],
        &id,
        &json!({"position": true, "language": "en", "expires_in_hours": 720}),
    )
    .await;
    assert_eq!(status, 201, "{located}");
    let token = token_of(&located);
    let (_, _, page) = visit(&app, &token, "").await;
    assert!(
        page.contains("<html lang=\"en\"") && page.contains("class=\"position\""),
        "{page}"
    );
    let (_, _, text) = visit(&app, &token, "/eta.json").await;
    let tracking: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        tracking["position"]["lat"], live["position"]["lat"],
        "{tracking}"
    );

    // Each field checked, by name.
    for (body, field) in [
        (json!({"expires_in_hours": 0}), "expires_in_hours"),
        (json!({"expires_in_hours": 721}), "expires_in_hours"),
        (json!({"expires_in_hours": "soon"}), "expires_in_hours"),
        (json!({"language": "de"}), "language"),
        (json!({"position": "yes"}), "position"),
        (json!({"public": true}), "public"),
    ] {
        let (status, error) = share(&app, &dispatcher, &id, &body).await;
        assert_eq!(
            (status, error["field"].as_str()),
            (400, Some(field)),
            "{body}: {error}"
        );
    }
    let (status, _) = share(&app, &app.keys["partner"], &id, &json!({})).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_link_answers_410_once_revoked_or_expired() {
    let app = spawn_app().await;
    let id = shipment(&app, "GONE-1", "FR-GONE", "lyon").await;
    let dispatcher = app.keys["dispatcher"].clone();
    let (_, short) = share(&app, &dispatcher, &id, &json!({"expires_in_hours": 1})).await;
    let (_, revoked) = share(&app, &dispatcher, &id, &json!({})).await;
    let (short_token, revoked_token) = (token_of(&short), token_of(&revoked));
    assert_eq!(visit(&app, &revoked_token, "").await.0, 200);

    let revoked_id = revoked["id"].as_str().unwrap();
    assert_eq!(revoke(&app, &dispatcher, &id, revoked_id).await, 204);
    assert_eq!(
        revoke(&app, &dispatcher, &id, revoked_id).await,
        204,
        "again"
    );
    let (status, _, page) = visit(&app, &revoked_token, "").await;
    assert_eq!(status, 410, "{page}");
    assert!(page.contains("révoqué"), "{page}");
    let (status, _, text) = visit(&app, &revoked_token, "/eta.json").await;
    let error: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (status, error["code"].as_str()),
        (410, Some("gone")),
        "{text}"
    );
    assert_eq!(
        visit(&app, &short_token, "").await.0,
        200,
        "not expired yet"
    );

    // Two hours on, the one-hour link has expired; the revoked one stays revoked.
    let app = app.restart_at(now() + TimeDelta::hours(2)).await;
    let (status, _, page) = visit(&app, &short_token, "").await;
    assert_eq!(status, 410, "{page}");
    assert!(page.contains("expiré"), "{page}");
    let (status, _, english) = visit(&app, &short_token, "?lang=en").await;
    assert!(status == 410 && english.contains("expired"), "{english}");
    assert_eq!(visit(&app, &short_token, "/eta.json").await.0, 410);
    assert_eq!(visit(&app, &revoked_token, "").await.0, 410);
}

#[tokio::test]
async fn a_token_opens_its_own_shipment_and_nothing_else() {
    let app = spawn_app().await;
    let ours = shipment(&app, "A-1", "FR-A", "dock-a").await;
    let another = shipment(&app, "B-1", "FR-B", "dock-b").await;
    let dispatcher = app.keys["dispatcher"].clone();
    let (_, link) = share(&app, &dispatcher, &ours, &json!({})).await;
    let token = token_of(&link);

    let aimed_elsewhere = format!("/eta.json?shipment={another}");
    for suffix in ["/eta.json", aimed_elsewhere.as_str()] {
        let (status, _, text) = visit(&app, &token, suffix).await;
        assert_eq!(status, 200, "{text}");
        assert!(
            text.contains("dock-a") && !text.contains("dock-b"),
            "{text}"
        );
    }
    // Another shipment's id, an altered token or a truncated one open nothing.
    let mut altered = token.clone().into_bytes();
    altered[0] = if altered[0] == b'a' { b'b' } else { b'a' };
    let altered = String::from_utf8(altered).unwrap();
    for wrong in [
        another.as_str(),
        altered.as_str(),
        &token[..63],
        "not-a-token",
    ] {
        let (status, _, page) = visit(&app, wrong, "").await;
        assert_eq!(status, 404, "{wrong}: {page}");
        assert!(!page.contains("dock-"), "{page}");
        assert_eq!(visit(&app, wrong, "/eta.json").await.0, 404, "{wrong}");
    }
    // A link is revoked under its own shipment only.
    let share_id = link["id"].as_str().unwrap();
    assert_eq!(revoke(&app, &dispatcher, &another, share_id).await, 404);
    assert_eq!(visit(&app, &token, "").await.0, 200);
}

#[tokio::test]
async fn another_organisations_dispatcher_cannot_share_or_revoke() {
    let app = spawn_app().await;
    let id = shipment(&app, "OWN-1", "FR-OWN", "lyon").await;
    let (_, link) = share(&app, &app.keys["dispatcher"], &id, &json!({})).await;
    let other = other_dispatcher(&app).await;

    let (status, answer) = share(&app, &other, &id, &json!({})).await;
    assert_eq!(status, 404, "{answer}");
    let share_id = link["id"].as_str().unwrap();
    assert_eq!(revoke(&app, &other, &id, share_id).await, 404);
    assert_eq!(visit(&app, &token_of(&link), "").await.0, 200, "still open");
}
