//! Live tracking through the real server: shipments, pings, live ETAs and webhooks.

use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use etape::domain::geo::GeoPoint;
use serde_json::{json, Value};

use crate::helpers::{artifact_path, spawn_app, spawn_app_with, RunningBinary, TestApp, TEST_NOW};

pub(crate) fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// RFC 3339 in UTC with `Z`: a `+` would need escaping in a query string.
pub(crate) fn stamp(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One delivery as received: its headers, by their lower-case names, and its raw body.
#[derive(Clone, Debug)]
pub(crate) struct Delivery {
    pub(crate) headers: std::collections::BTreeMap<String, String>,
    pub(crate) body: Vec<u8>,
}

impl Delivery {
    /// The header's value, or nothing.
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    /// The event the body names.
    pub(crate) fn event(&self) -> String {
        let payload: Value = serde_json::from_slice(&self.body).unwrap_or(Value::Null);
        payload["event"].as_str().unwrap_or("").to_owned()
    }
}

/// What a webhook receiver on 127.0.0.1 got.
#[derive(Clone, Default)]
pub(crate) struct Received(Arc<Mutex<Vec<Delivery>>>);

impl Received {
    pub(crate) fn all(&self) -> Vec<Delivery> {
        self.0.lock().unwrap().clone()
    }
}

/// A webhook receiver answering `status` to everything.
pub(crate) async fn receiver(status: u16) -> (String, Received, actix_web::dev::ServerHandle) {
    let received = Received::default();
    let kept = received.clone();
    let server = HttpServer::new(move || {
        let kept = kept.clone();
        App::new().default_service(web::to(move |request: HttpRequest, body: web::Bytes| {
            let kept = kept.clone();
            async move {
                let headers = request
                    .headers()
                    .iter()
                    .filter_map(|(name, value)| {
                        Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
                    })
                    .collect();
                kept.0.lock().unwrap().push(Delivery {
                    headers,
                    body: body.to_vec(),
                });
                HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish()
            }
        }))
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    (format!("http://127.0.0.1:{port}/hook"), received, handle)
}

pub(crate) async fn get_json(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app.get(path).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn post_pings(app: &TestApp, content_type: &str, body: String) -> (u16, Value) {
    app.post_text("/v1/positions", content_type, body).await
}

pub(crate) fn ndjson(vehicle: &str, pings: &[(DateTime<Utc>, GeoPoint, f64)]) -> String {
    pings
        .iter()
        .map(|(when, point, speed)| {
            json!({
                "vehicle_id": vehicle,
                "timestamp": stamp(*when),
                "lat": point.lat(),
                "lon": point.lon(),
                "speed_kmh": speed,
            })
            .to_string()
                + "\n"
        })
        .collect()
}

/// Waits until the live estimate starts from `as_of` (estimates are debounced).
pub(crate) async fn eta_as_of(app: &TestApp, id: &str, as_of: DateTime<Utc>) -> Value {
    for _ in 0..200 {
        let (status, eta) = get_json(app, &format!("/v1/shipments/{id}/eta")).await;
        assert_eq!(status, 200, "{eta}");
        if eta["as_of"].as_str().map(at) == Some(as_of) {
            return eta;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the estimate never caught up with {as_of}");
}

pub(crate) const LILLE: (f64, f64) = (50.63, 3.06);
pub(crate) const LYON: (f64, f64) = (45.76, 4.84);
const MARSEILLE: (f64, f64) = (43.30, 5.37);

pub(crate) fn point((lat, lon): (f64, f64)) -> GeoPoint {
    GeoPoint::new(lat, lon).unwrap()
}

#[tokio::test]
async fn a_lille_to_marseille_shipment_follows_its_pings_and_signs_its_webhooks() {
    let app = spawn_app().await;
    let (hook_url, received, hook_server) = receiver(200).await;
    let (status, webhook) = app
        .post_json(
            "/v1/webhooks",
            &json!({"url": hook_url, "events": ["eta_changed", "late_risk_changed", "arrived", "departed", "delivered"], "min_change_minutes": 0}),
        )
        .await;
    assert_eq!(status, 201, "{webhook}");
    let secret = webhook["secret"].as_str().unwrap().to_owned();
    let (_, listed) = get_json(&app, "/v1/webhooks").await;
    assert!(
        listed[0].get("secret").is_none(),
        "the secret is shown once"
    );

    // Windows from the plain estimate of the same trip: Lyon with two hours to spare.
    let departure = at("2026-11-27T06:00:00Z");
    let (_, plain) = app
        .post_json(
            "/v1/eta",
            &json!({
                "origin": {"lat": LILLE.0, "lon": LILLE.1},
                "destination": {"lat": MARSEILLE.0, "lon": MARSEILLE.1},
                "stops": [{"lat": LYON.0, "lon": LYON.1, "dwell_minutes": 30}],
                "departure_time": stamp(departure),
                "vehicle_class": "articulated",
            }),
        )
        .await;
    let lyon_eta = at(plain["stops"][0]["eta"].as_str().unwrap());
    let marseille_eta = at(plain["eta"].as_str().unwrap());
    let window = |eta: DateTime<Utc>, spare: i64| json!({"start": stamp(eta - TimeDelta::hours(3)), "end": stamp(eta + TimeDelta::minutes(spare))});
    let (status, shipment) = app
        .post_json(
            "/v1/shipments",
            &json!({
                "reference": "ORD-LIL-MRS-1",
                "vehicle_id": "FR-123-AB",
                "vehicle_class": "articulated",
                "origin": {"lat": LILLE.0, "lon": LILLE.1},
                "stops": [
                    {"id": "lyon", "lat": LYON.0, "lon": LYON.1, "planned_dwell_minutes": 30, "window": window(lyon_eta, 120)},
                    {"id": "marseille", "lat": MARSEILLE.0, "lon": MARSEILLE.1, "window": window(marseille_eta, 600)},
                ],
                "planned_departure": stamp(departure),
            }),
        )
        .await;
    assert_eq!(status, 201, "{shipment}");
    assert_eq!(shipment["status"], "planned");
    let id = shipment["id"].as_str().unwrap().to_owned();
    let (status, again) = app
        .post_json(
            "/v1/shipments",
            &json!({"reference": "ORD-LIL-MRS-1", "vehicle_id": "X", "vehicle_class": "van",
                    "stops": [{"id": "a", "lat": 45.0, "lon": 4.0}], "planned_departure": stamp(departure)}),
        )
        .await;
    assert_eq!((status, again["code"].as_str()), (409, Some("conflict")));

    // Before the first ping the truck is taken to leave now, its planned departure being past.
    let planned = eta_as_of(&app, &id, at(TEST_NOW)).await;
    assert_eq!(planned["stops"][0]["state"], "pending", "{planned}");

    // Three hours on the road at a normal pace, every five minutes; the second half is
    // posted before the first.
    let (lille, lyon) = (point(LILLE), point(LYON));
    let pace_km_per_min = 60.0 / 60.0;
    let total_km = lille.distance_km(lyon);
    let driving: Vec<(DateTime<Utc>, GeoPoint, f64)> = (0..=36)
        .map(|step| {
            let minutes = step * 5;
            let fraction = (minutes as f64 * pace_km_per_min / total_km).min(1.0);
            (
                departure + TimeDelta::minutes(minutes),
                lille.towards(lyon, fraction),
                82.0,
            )
        })
        .collect();
    let (later, earlier) = (&driving[18..], &driving[..18]);
    let (status, outcome) =
        post_pings(&app, "application/x-ndjson", ndjson("FR-123-AB", later)).await;
    assert_eq!(
        (status, outcome["accepted"].as_u64()),
        (200, Some(19)),
        "{outcome}"
    );
    let (status, outcome) =
        post_pings(&app, "application/x-ndjson", ndjson("FR-123-AB", earlier)).await;
    assert_eq!(
        (status, outcome["accepted"].as_u64()),
        (200, Some(18)),
        "{outcome}"
    );
    let last_driving = driving.last().unwrap().0;
    // The earlier pings came last: wait until the estimate has seen them too, and until the
    // shipment set off is saved (that save follows the estimate's, so that whoever sees the
    // truck under way also sees where it is).
    let mut moving = eta_as_of(&app, &id, last_driving).await;
    let mut shipment = get_json(&app, &format!("/v1/shipments/{id}")).await.1;
    for _ in 0..200 {
        if moving["driven_today_minutes"].as_f64().unwrap() > 150.0
            && shipment["status"] == "in_transit"
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        moving = eta_as_of(&app, &id, last_driving).await;
        shipment = get_json(&app, &format!("/v1/shipments/{id}")).await.1;
    }
    assert_eq!(shipment["status"], "in_transit");
    assert_eq!(moving["stops"][0]["state"], "pending");
    assert!(
        moving["driven_today_minutes"].as_f64().unwrap() > 150.0,
        "{moving}"
    );

    // Then the truck stands still, broken down: the Lyon window slips away.
    let stuck_at = driving.last().unwrap().1;
    let mut severities = vec![moving["stops"][0]["severity"].as_str().unwrap().to_owned()];
    let mut etas = vec![at(moving["stops"][0]["eta"].as_str().unwrap())];
    for half_hour in 1..=12 {
        let pings: Vec<_> = (1..=3)
            .map(|step| {
                let minutes = (half_hour - 1) * 30 + step * 10;
                (last_driving + TimeDelta::minutes(minutes), stuck_at, 0.0)
            })
            .collect();
        let (status, _) =
            post_pings(&app, "application/x-ndjson", ndjson("FR-123-AB", &pings)).await;
        assert_eq!(status, 200);
        let eta = eta_as_of(&app, &id, pings.last().unwrap().0).await;
        severities.push(eta["stops"][0]["severity"].as_str().unwrap().to_owned());
        etas.push(at(eta["stops"][0]["eta"].as_str().unwrap()));
    }
    severities.dedup();
    assert_eq!(severities, ["on_time", "at_risk", "late"], "{etas:?}");
    assert!(
        etas.last().unwrap() > &(etas[0] + TimeDelta::hours(4)),
        "{etas:?}"
    );

    // The history shows each change, in order, the first one the plan.
    let (_, history) = get_json(&app, &format!("/v1/shipments/{id}/eta/history")).await;
    let snapshots = history["snapshots"].as_array().unwrap();
    assert!(snapshots.len() >= 10, "{}", snapshots.len());
    assert_eq!(snapshots[0]["as_of"].as_str().map(at), Some(at(TEST_NOW)));
    let as_of: Vec<DateTime<Utc>> = snapshots[1..]
        .iter()
        .map(|snapshot| at(snapshot["as_of"].as_str().unwrap()))
        .collect();
    assert!(as_of.windows(2).all(|pair| pair[0] <= pair[1]), "{as_of:?}");
    assert_eq!(
        as_of.last(),
        Some(&last_driving.max(*as_of.last().unwrap()))
    );

    // The driver reports the delivery by hand; Lyon is completed with it.
    let delivered_at = last_driving + TimeDelta::hours(14);
    let (status, done) = app
        .post_json(
            &format!("/v1/shipments/{id}/events"),
            &json!({"stop_id": "marseille", "kind": "arrived", "at": stamp(delivered_at)}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["status"], "delivered");
    assert_eq!(done["stops"][0]["departed"]["source"], "manual");
    let accuracy = done["accuracy"].as_array().unwrap();
    assert!(!accuracy.is_empty(), "{done}");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("etape_live_eta_abs_error_seconds_count{horizon="));
    // The exposition with the live metrics in it, for promtool's lint in scripts/test.
    std::fs::write(artifact_path("metrics-live.txt"), &metrics).unwrap();

    // The official Standard Webhooks library verifies every delivery; each kind of event came.
    let mut events = Vec::new();
    for _ in 0..200 {
        events = received.all();
        if events
            .iter()
            .any(|delivery| delivery.event() == "delivered")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let verdicts = crate::webhooks::official_verdicts(&secret, &events);
    assert_eq!(verdicts.len(), events.len());
    assert!(
        verdicts.iter().all(|verdict| verdict == "verified"),
        "{verdicts:?}"
    );
    for delivery in &events {
        let event = delivery.event();
        // The headers of earlier versions still come, for one version.
        assert!(
            etape::adapters::webhooks::verify_legacy(
                &secret,
                &delivery.body,
                delivery.header("x-etape-signature")
            ),
            "{event}"
        );
        assert_eq!(delivery.header("x-etape-event"), event);
        assert_eq!(
            delivery.header("x-etape-delivery"),
            delivery.header("webhook-id")
        );
        let payload: Value = serde_json::from_slice(&delivery.body).unwrap();
        assert_eq!(payload["shipment"]["reference"], "ORD-LIL-MRS-1");
    }
    let ids: std::collections::BTreeSet<&str> = events
        .iter()
        .map(|delivery| delivery.header("webhook-id"))
        .collect();
    assert_eq!(ids.len(), events.len(), "one webhook-id per delivery");
    let kinds: std::collections::BTreeSet<String> = events.iter().map(Delivery::event).collect();
    for kind in [
        "eta_changed",
        "late_risk_changed",
        "arrived",
        "departed",
        "delivered",
    ] {
        assert!(kinds.contains(kind), "no {kind} in {kinds:?}");
    }
    let risky: Vec<Value> = events
        .iter()
        .filter(|delivery| delivery.event() == "late_risk_changed")
        .map(|delivery| serde_json::from_slice(&delivery.body).unwrap())
        .collect();
    assert!(risky
        .iter()
        .any(|payload| payload["data"]["changed"][0]["to"] == "late"));
    hook_server.stop(true).await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_failing_receiver_is_retried_logged_and_disabled() {
    let app = spawn_app_with(|settings| {
        settings.webhooks.max_attempts = 3;
        settings.webhooks.disable_after_failures = 1;
    })
    .await;
    let (hook_url, received, hook_server) = receiver(503).await;
    let (_, webhook) = app
        .post_json(
            "/v1/webhooks",
            &json!({"url": hook_url, "events": ["arrived"]}),
        )
        .await;
    let webhook_id = webhook["id"].as_str().unwrap().to_owned();
    let (_, shipment) = app
        .post_json(
            "/v1/shipments",
            &json!({"reference": "R-1", "vehicle_id": "V-1", "vehicle_class": "van",
                    "stops": [{"id": "a", "lat": 48.85, "lon": 2.35}, {"id": "b", "lat": 45.76, "lon": 4.84}],
                    "planned_departure": TEST_NOW}),
        )
        .await;
    let id = shipment["id"].as_str().unwrap();
    let (status, _) = app
        .post_json(
            &format!("/v1/shipments/{id}/events"),
            &json!({"stop_index": 0, "kind": "arrived"}),
        )
        .await;
    assert_eq!(status, 200);
    let mut deliveries = Value::Null;
    for _ in 0..200 {
        (_, deliveries) = get_json(&app, &format!("/v1/webhooks/{webhook_id}/deliveries")).await;
        if deliveries.as_array().is_some_and(|log| log.len() == 3) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let outcomes: Vec<&str> = deliveries
        .as_array()
        .unwrap()
        .iter()
        .map(|delivery| delivery["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["failed", "retrying", "retrying"], "{deliveries}");
    assert_eq!(deliveries[0]["status_code"], 503);
    assert_eq!(received.all().len(), 3);
    let mut listed = Value::Null;
    for _ in 0..100 {
        (_, listed) = get_json(&app, "/v1/webhooks").await;
        if listed[0]["enabled"] == false {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(listed[0]["enabled"], false, "{listed}");
    assert_eq!(
        listed[0]["disabled_reason"],
        "failed deliveries in a row, every attempt spent: 1"
    );
    let (status, _) = app
        .client
        .delete(format!("{}/v1/webhooks/{webhook_id}", app.address))
        .send()
        .await
        .map(|response| (response.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 204);
    hook_server.stop(true).await;
}

#[tokio::test]
async fn the_same_batch_twice_is_stored_once_and_a_bad_ping_is_named() {
    let app = spawn_app_with(|settings| settings.tracking.max_pings_per_request = 50).await;
    let now = at(TEST_NOW);
    let pings: Vec<_> = (0..20)
        .map(|minute| {
            (
                now - TimeDelta::minutes(60 - minute),
                GeoPoint::new(48.0 + minute as f64 * 0.01, 2.0).unwrap(),
                70.0,
            )
        })
        .collect();
    let body = ndjson("V-7", &pings);
    let (status, first) = post_pings(&app, "application/x-ndjson", body.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(
        (first["accepted"].as_u64(), first["duplicates"].as_u64()),
        (Some(20), Some(0))
    );
    let (_, second) = post_pings(&app, "application/x-ndjson", body).await;
    assert_eq!(
        (second["accepted"].as_u64(), second["duplicates"].as_u64()),
        (Some(0), Some(20))
    );
    // The same pings as CSV are the same pings.
    let csv: String = std::iter::once("vehicle_id,timestamp,lat,lon,speed_kmh\n".to_owned())
        .chain(pings.iter().map(|(when, point, speed)| {
            format!(
                "V-7,{},{},{},{speed}\n",
                stamp(*when),
                point.lat(),
                point.lon()
            )
        }))
        .collect();
    let (_, third) = post_pings(&app, "text/csv", csv).await;
    assert_eq!(third["duplicates"].as_u64(), Some(20), "{third}");
    let (_, stored) = get_json(&app, "/v1/vehicles/V-7/positions").await;
    assert_eq!(stored.as_array().unwrap().len(), 20);

    let batch = json!([
        {"vehicle_id": "V-8", "timestamp": stamp(now - TimeDelta::minutes(3)), "lat": 48.1, "lon": 2.1},
        {"vehicle_id": "V-8", "timestamp": stamp(now - TimeDelta::minutes(2)), "lat": 148.1, "lon": 2.1},
        {"vehicle_id": "V-8", "timestamp": stamp(now - TimeDelta::minutes(1)), "lat": 48.2, "lon": 2.1, "speed_kmh": 60},
    ]);
    let (status, mixed) = post_pings(&app, "application/json", batch.to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(mixed["accepted"], 2);
    assert_eq!(
        mixed["rejected"],
        json!([{"index": 1, "field": "lat", "reason": "lat must be between -90 and 90"}])
    );

    let (status, error) = post_pings(&app, "application/xml", "<ping/>".into()).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let many: String = (0..51)
        .map(|n| {
            format!("{{\"vehicle_id\":\"V\",\"timestamp\":\"{TEST_NOW}\",\"lat\":1,\"lon\":{n}}}\n")
        })
        .collect();
    let (status, error) = post_pings(&app, "application/x-ndjson", many).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (422, Some("batch_too_large"))
    );
    let (status, error) = post_pings(&app, "application/json", "[{\"vehicle_id\":".into()).await;
    assert_eq!((status, error["code"].as_str()), (400, Some("bad_payload")));
}

#[tokio::test]
async fn shipments_are_listed_by_status_a_page_at_a_time_and_checked_field_by_field() {
    let app = spawn_app().await;
    for n in 0..5 {
        let (status, _) = app
            .post_json(
                "/v1/shipments",
                &json!({"reference": format!("R-{n}"), "vehicle_id": format!("V-{n}"), "vehicle_class": "rigid",
                        "stops": [{"id": "a", "lat": 48.85, "lon": 2.35, "window": {"start": "2026-11-28T12:00:00Z", "end": "2026-11-28T14:00:00Z"}}],
                        "planned_departure": "2026-11-28T10:00:00+01:00"}),
            )
            .await;
        assert_eq!(status, 201);
    }
    let (_, page) = get_json(&app, "/v1/shipments?limit=2").await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, rest) = get_json(&app, &format!("/v1/shipments?limit=10&cursor={cursor}")).await;
    assert_eq!(
        page["items"].as_array().unwrap().len() + rest["items"].as_array().unwrap().len(),
        5
    );
    assert!(rest["next_cursor"].is_null());
    let first = page["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, cancelled) = app
        .post_json(&format!("/v1/shipments/{first}/cancel"), &json!({}))
        .await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("cancelled"))
    );
    let (_, only) = get_json(&app, "/v1/shipments?status=cancelled").await;
    assert_eq!(only["items"].as_array().unwrap().len(), 1);
    let (_, planned) = get_json(&app, "/v1/shipments?status=planned").await;
    assert_eq!(planned["items"].as_array().unwrap().len(), 4);
    let (status, error) = get_json(&app, "/v1/shipments?status=lost").await;
    assert_eq!((status, error["field"].as_str()), (400, Some("status")));
    let (status, _) = get_json(&app, "/v1/shipments/shp_nothing").await;
    assert_eq!(status, 404);
    let (status, error) = app
        .post_json(
            &format!("/v1/shipments/{first}/events"),
            &json!({"stop_index": 0, "kind": "arrived"}),
        )
        .await;
    assert_eq!((status, error["code"].as_str()), (409, Some("conflict")));

    let base = json!({"reference": "R-x", "vehicle_id": "V", "vehicle_class": "van",
                      "stops": [{"id": "a", "lat": 48.85, "lon": 2.35, "window": null}, {"id": "b", "lat": 45.0, "lon": 4.0}],
                      "planned_departure": TEST_NOW});
    let cases = [
        ("/stops/1/lat", json!(91.0), "stops[1].lat"),
        ("/stops/1/id", json!("a"), "stops[1].id"),
        ("/stops", json!([]), "stops"),
        ("/reference", json!(""), "reference"),
        (
            "/planned_departure",
            json!("2026-11-28T09:00:00"),
            "planned_departure",
        ),
        (
            "/stops/0/window",
            json!({"start": "2026-11-28T12:00:00Z", "end": "2026-11-28T10:00:00Z"}),
            "stops[0].window.end",
        ),
        ("/vehicle_class", json!("bicycle"), "vehicle_class"),
    ];
    for (pointer, value, field) in cases {
        let mut request = base.clone();
        *request.pointer_mut(pointer).unwrap() = value;
        let (status, error) = app.post_json("/v1/shipments", &request).await;
        assert_eq!(
            (status, error["field"].as_str()),
            (400, Some(field)),
            "{pointer}: {error}"
        );
    }
}

#[tokio::test]
async fn a_traccar_server_can_forward_its_positions() {
    let app = spawn_app().await;
    let forward = json!({
        "position": {"id": 1, "deviceId": 4, "protocol": "teltonika", "serverTime": TEST_NOW,
                     "deviceTime": "2026-11-28T08:59:00.000+00:00", "fixTime": "2026-11-28T08:59:00.000+00:00",
                     "outdated": false, "valid": true, "latitude": 45.76, "longitude": 4.84, "altitude": 170.0,
                     "speed": 43.2, "course": 180.0, "address": null, "accuracy": 0.0, "network": null,
                     "attributes": {"ignition": true}},
        "device": {"id": 4, "name": "Actros 12", "uniqueId": "352094087654321", "status": "online",
                   "lastUpdate": TEST_NOW, "positionId": 1, "disabled": false}
    });
    let (status, outcome) = post_pings(&app, "application/json", forward.to_string()).await;
    assert_eq!(
        (status, outcome["accepted"].as_u64()),
        (200, Some(1)),
        "{outcome}"
    );
    let (_, stored) = get_json(&app, "/v1/vehicles/352094087654321/positions").await;
    let speed = stored[0]["speed_kmh"].as_f64().unwrap();
    assert!((speed - 80.0).abs() < 0.1, "{speed} km/h from 43.2 knots");
}

/// One position as Traccar 6's `PositionForwarderJson` posts it (`forward.type` json): Jackson's
/// serialisation of `PositionData`, compact, fields in declaration order, dates in
/// `StdDateFormat`, doubles as Java prints them (`181.0`, `4.831123456E7`), and the nulls it
/// writes for what it lacks.
/// The attributes are a Teltonika FMC130's after Traccar's own handlers (`distance`,
/// `totalDistance` in metres, `hours` in milliseconds).
fn traccar_6_forward(
    position_id: u64,
    fix_time: &str,
    server_time: &str,
    (lat, lon): (f64, f64),
    knots: f64,
    course: f64,
    total_distance: &str,
) -> String {
    format!(
        r#"{{"position":{{"id":{position_id},"attributes":{{"priority":0,"sat":13,"event":0,"ignition":true,"motion":true,"rssi":4,"io200":0,"io69":1,"pdop":0.9,"hdop":0.6,"power":27.912,"battery":4.101,"io68":0,"odometer":48311234,"distance":412.37,"totalDistance":{total_distance},"hours":45678900000}},"deviceId":12,"protocol":"teltonika","serverTime":"{server_time}","deviceTime":"{fix_time}","fixTime":"{fix_time}","outdated":false,"valid":true,"latitude":{lat:?},"longitude":{lon:?},"altitude":162.0,"speed":{knots:?},"course":{course:?},"address":null,"accuracy":0.0,"network":null,"geofenceIds":null}},"device":{{"id":12,"attributes":{{}},"groupId":3,"calendarId":0,"name":"Actros FR-482-KT","uniqueId":"352093089612345","status":"online","lastUpdate":"{server_time}","positionId":{previous},"phone":"+33612345678","model":"FMC130","contact":null,"category":"truck","disabled":false,"expirationTime":null}}}}"#,
        previous = position_id - 1,
    )
}

#[tokio::test]
async fn a_traccar_6_json_forward_is_kept_and_moves_the_truck_of_its_shipment() {
    let app = spawn_app().await;
    let (status, shipment) = app
        .post_json(
            "/v1/shipments",
            &json!({"reference": "TRC-LYS-MRS", "vehicle_id": "352093089612345",
                    "vehicle_class": "articulated", "origin": {"lat": LYON.0, "lon": LYON.1},
                    "stops": [{"id": "marseille", "lat": MARSEILLE.0, "lon": MARSEILLE.1}],
                    "planned_departure": "2026-11-28T08:00:00Z"}),
        )
        .await;
    assert_eq!(status, 201, "{shipment}");
    let id = shipment["id"].as_str().unwrap().to_owned();

    // South on the A7, near Vienne then near Saint-Rambert-d'Albon, at 90 km/h (48.5961 knots).
    let fixes = [
        (
            81236,
            "2026-11-28T08:40:00.000+00:00",
            "2026-11-28T08:40:01.532+00:00",
            (45.5253, 4.8744),
            181.0,
            "4.831123456E7",
        ),
        (
            81237,
            "2026-11-28T08:58:00.000+00:00",
            "2026-11-28T08:58:00.918+00:00",
            (45.2846, 4.8161),
            188.0,
            "4.833823456E7",
        ),
    ];
    for (position_id, fix_time, server_time, (lat, lon), course, total_distance) in fixes {
        let body = traccar_6_forward(
            position_id,
            fix_time,
            server_time,
            (lat, lon),
            48.5961,
            course,
            total_distance,
        );
        // The headers Traccar sends: its JSON media type and the one `forward.header` line.
        let response = app
            .client
            .post(format!("{}/v1/positions", app.address))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", app.keys["carrier"]))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let outcome: Value = response.json().await.unwrap();
        assert_eq!(
            (
                status,
                outcome["accepted"].as_u64(),
                outcome["rejected_count"].as_u64()
            ),
            (200, Some(1), Some(0)),
            "{outcome}"
        );
        let eta = eta_as_of(&app, &id, at(fix_time)).await;
        let truck = &eta["position"];
        let (truck_lat, truck_lon) = (
            truck["lat"].as_f64().unwrap(),
            truck["lon"].as_f64().unwrap(),
        );
        assert!(
            (truck_lat - lat).abs() < 1e-9 && (truck_lon - lon).abs() < 1e-9,
            "{eta}"
        );
        assert!(eta["stops"][0]["eta"].is_string(), "{eta}");
    }
    let (_, shipment) = get_json(&app, &format!("/v1/shipments/{id}")).await;
    assert_eq!(shipment["status"], "in_transit");
    let (_, stored) = get_json(&app, "/v1/vehicles/352093089612345/positions").await;
    let stored = stored.as_array().unwrap();
    assert_eq!(stored.len(), 2, "{stored:?}");
    for (ping, fix) in stored.iter().zip(fixes) {
        assert_eq!(ping["timestamp"].as_str().map(at), Some(at(fix.1)));
        let speed = ping["speed_kmh"].as_f64().unwrap();
        assert!(
            (speed - 90.0).abs() < 0.01,
            "{speed} km/h from 48.5961 knots"
        );
    }
}

/// Pings every acknowledged batch posted while the server is killed with SIGKILL are there
/// after a restart.
#[tokio::test]
async fn kill_9_during_ingestion_loses_no_acknowledged_ping() {
    let data = tempfile::tempdir().unwrap();
    let args = ["--no-demo".as_ref()];
    let server = RunningBinary::start(
        data.path(),
        &args,
        &[("ETAPE__MODEL__DIR", "target/tmp/no-model-here")],
    );
    let client = server.client.clone();
    let base = server.base.clone();
    let start = (Utc::now() - TimeDelta::hours(20))
        .duration_trunc(TimeDelta::seconds(1))
        .unwrap();
    let acknowledged = Arc::new(Mutex::new(Vec::<i64>::new()));
    let sender = {
        let (client, base, acknowledged) = (client.clone(), base.clone(), acknowledged.clone());
        tokio::spawn(async move {
            for batch in 0..100_000i64 {
                let pings: Vec<_> = (0..100)
                    .map(|n| {
                        let second = batch * 100 + n;
                        (
                            start + TimeDelta::seconds(second),
                            GeoPoint::new(45.0, 4.0).unwrap(),
                            0.0,
                        )
                    })
                    .collect();
                let response = client
                    .post(format!("{base}/v1/positions"))
                    .header("content-type", "application/x-ndjson")
                    .body(ndjson("K-9", &pings))
                    .send()
                    .await;
                match response {
                    Ok(response) if response.status() == 200 => {
                        let outcome: Value = response.json().await.unwrap();
                        assert_eq!(outcome["accepted"], 100);
                        acknowledged.lock().unwrap().push(batch);
                    }
                    _ => return,
                }
            }
        })
    };
    // Let a good number of batches land, then kill without warning, mid-request.
    while acknowledged.lock().unwrap().len() < 30 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut server = server;
    server.child.kill().unwrap();
    let _ = server.child.wait();
    sender.await.unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();

    let restarted = RunningBinary::start(
        data.path(),
        &args,
        &[("ETAPE__MODEL__DIR", "target/tmp/no-model-here")],
    );
    let stored: Value = restarted
        .get_json(&format!(
            "/v1/vehicles/K-9/positions?since={}",
            stamp(start - TimeDelta::minutes(1))
        ))
        .await;
    let stored: std::collections::HashSet<DateTime<Utc>> = stored
        .as_array()
        .unwrap()
        .iter()
        .map(|ping| at(ping["timestamp"].as_str().unwrap()))
        .collect();
    for batch in &acknowledged {
        for n in 0..100 {
            let when = start + TimeDelta::seconds(batch * 100 + n);
            assert!(
                stored.contains(&when),
                "acknowledged ping {when} of batch {batch} lost"
            );
        }
    }
    // Nothing half-written either: whole batches only.
    assert_eq!(stored.len() % 100, 0, "{} pings", stored.len());
    assert!(stored.len() >= acknowledged.len() * 100);
}

#[tokio::test]
async fn the_demo_fleet_is_on_the_road_seconds_after_start() {
    let data = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let server = RunningBinary::start(data.path(), &[], &[("ETAPE__DEMO__TRUCKS", "4")]);
    let mut moving = 0;
    while started.elapsed() < std::time::Duration::from_secs(20) {
        let page: Value = server.get_json("/v1/shipments?status=in_transit").await;
        moving = page["items"].as_array().unwrap().len();
        if moving == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        moving,
        4,
        "demo trucks in transit after {:?}",
        started.elapsed()
    );
    let page: Value = server.get_json("/v1/shipments").await;
    let id = page["items"][0]["id"].as_str().unwrap();
    let eta: Value = server.get_json(&format!("/v1/shipments/{id}/eta")).await;
    assert!(eta["position"]["lat"].is_number(), "{eta}");
    assert_eq!(eta["model"], "lightgbm", "the bundled model answers");

    // A restart retires the previous run's trucks instead of leaving them on the road.
    drop(server);
    let server = RunningBinary::start(data.path(), &[], &[("ETAPE__DEMO__TRUCKS", "4")]);
    let mut cancelled = 0;
    for _ in 0..100 {
        let page: Value = server.get_json("/v1/shipments?status=cancelled").await;
        cancelled = page["items"].as_array().unwrap().len();
        if cancelled == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(cancelled, 4);
    // And its new trucks take the road (their references are new).
    let mut moving = 0;
    for _ in 0..100 {
        let page: Value = server.get_json("/v1/shipments?status=in_transit").await;
        moving = page["items"].as_array().unwrap().len();
        if moving == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(moving, 4, "the restarted demo's trucks in transit");
}
