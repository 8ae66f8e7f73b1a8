//! Phones as trackers through the real server: device tokens, and the OsmAnd protocol as
//! OsmAnd (query string), a form post and Traccar Client 9 (JSON) send it.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::helpers::{client_with_key, spawn_app, spawn_app_with, TestApp};

const VEHICLE: &str = "PHONE-FR-482-KT";
const LYON: (f64, f64) = (45.76, 4.84);
const MARSEILLE: (f64, f64) = (43.30, 5.37);

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// What a phone app has: no key, no `Authorization` header.
fn phone() -> reqwest::Client {
    etape::adapters::webhooks::install_tls_provider();
    reqwest::Client::new()
}

/// A shipment of the phone's vehicle, from Lyon to Marseille; its id.
async fn shipment(app: &TestApp) -> String {
    let (status, shipment) = app
        .post_json(
            "/v1/shipments",
            &json!({"reference": "PHONE-LYS-MRS", "vehicle_id": VEHICLE,
                    "vehicle_class": "articulated", "origin": {"lat": LYON.0, "lon": LYON.1},
                    "stops": [{"id": "marseille", "lat": MARSEILLE.0, "lon": MARSEILLE.1}],
                    "planned_departure": "2026-11-28T08:00:00Z"}),
        )
        .await;
    assert_eq!(status, 201, "{shipment}");
    shipment["id"].as_str().unwrap().to_owned()
}

/// A device token for the vehicle, made with the demo carrier's key; the answer.
async fn device(app: &TestApp) -> Value {
    let (status, device) = app
        .post_json(
            "/v1/devices",
            &json!({"vehicle_id": VEHICLE, "name": "Marc's phone"}),
        )
        .await;
    assert_eq!(status, 201, "{device}");
    device
}

fn token(device: &Value) -> String {
    device["token"].as_str().unwrap().to_owned()
}

/// Sends one request of a phone: its status and its body as text.
async fn send(request: reqwest::RequestBuilder) -> (u16, String) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn get_json(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app.get(path).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The shipment's estimate once it has caught up with a ping taken at `as_of`.
async fn eta_as_of(app: &TestApp, id: &str, as_of: DateTime<Utc>) -> Value {
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

fn assert_truck_at(eta: &Value, (lat, lon): (f64, f64)) {
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

/// Traccar Client 9's body, as its location template and the background location SDK write
/// it (traccar-client `lib/preferences.dart`; traccar.org/osmand): speed in m/s, -1 unknown.
fn traccar_client_body(fix_time: &str, (lat, lon): (f64, f64), speed: f64, heading: f64) -> String {
    format!(
        r#"{{"location":{{"timestamp":"{fix_time}","coords":{{"latitude":{lat},"longitude":{lon},"accuracy":4.8,"speed":{speed},"heading":{heading},"altitude":162.3}},"is_moving":true,"odometer":48311.2,"event":"","battery":{{"level":0.76,"is_charging":false}},"activity":{{"type":"in_vehicle"}},"extras":{{}},"_":"&id=48241179&lat={lat}&lon={lon}&timestamp={fix_time}&"}},"device_id":"48241179"}}"#
    )
}

#[tokio::test]
async fn a_phone_moves_the_truck_by_osmand_query_form_and_traccar_client_json() {
    let app = spawn_app().await;
    let id = shipment(&app).await;
    let device = device(&app).await;
    let token = token(&device);
    assert_eq!(token.len(), 43, "{device}");
    assert_eq!(device["vehicle_id"], VEHICLE);
    assert!(
        device["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/v1/osmand/{token}")),
        "{device}"
    );
    // The list never shows the token again.
    let (status, listed) = get_json(&app, "/v1/devices").await;
    assert_eq!(status, 200);
    assert_eq!(listed[0]["id"], device["id"]);
    assert!(!listed.to_string().contains(&token), "{listed}");
    let endpoint = format!("{}/v1/osmand/{token}", app.address);

    // OsmAnd: a GET with the fix in the query string, time in Unix seconds, speed in knots
    // (48.5961 knots is 90 km/h). Its own `id` names no vehicle of ours and is ignored.
    let vienne = (45.5253, 4.8744);
    let first = at("2026-11-28T08:40:00Z");
    let query = format!(
        "?id=48241179&lat={}&lon={}&timestamp={}&hdop=0.9&altitude=162&speed=48.5961&bearing=181&accuracy=5&batt=76",
        vienne.0,
        vienne.1,
        first.timestamp()
    );
    let (status, body) = send(phone().get(format!("{endpoint}{query}"))).await;
    assert_eq!((status, body.as_str()), (200, ""));
    assert_truck_at(&eta_as_of(&app, &id, first).await, vienne);

    // The same parameters posted as a form, the time in ISO 8601.
    let albon = (45.2846, 4.8161);
    let second = at("2026-11-28T08:50:00Z");
    let form = format!(
        "id=48241179&lat={}&lon={}&timestamp=2026-11-28T09%3A50%3A00%2B01%3A00&speed=48.5961&bearing=188",
        albon.0, albon.1
    );
    let (status, body) = send(
        phone()
            .post(endpoint.as_str())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, ""));
    assert_truck_at(&eta_as_of(&app, &id, second).await, albon);

    // Traccar Client 9: its JSON, speed in metres per second (25 m/s is 90 km/h).
    let valence = (44.9334, 4.8924);
    let third = at("2026-11-28T08:58:00Z");
    let (status, body) = send(
        phone()
            .post(endpoint.as_str())
            .header("content-type", "application/json")
            .body(traccar_client_body(
                "2026-11-28T08:58:00.000Z",
                valence,
                25.0,
                -1.0,
            )),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, ""));
    assert_truck_at(&eta_as_of(&app, &id, third).await, valence);

    // The app sends a ping again when it missed the answer: kept once, still a 200.
    let (status, _) = send(phone().get(format!("{endpoint}{query}"))).await;
    assert_eq!(status, 200);
    let (_, shipment) = get_json(&app, &format!("/v1/shipments/{id}")).await;
    assert_eq!(shipment["status"], "in_transit");
    let (_, stored) = get_json(&app, &format!("/v1/vehicles/{VEHICLE}/positions")).await;
    let stored = stored.as_array().unwrap();
    assert_eq!(stored.len(), 3, "{stored:?}");
    for (ping, expected) in stored.iter().zip([first, second, third]) {
        assert_eq!(ping["timestamp"].as_str().map(at), Some(expected));
        let speed = ping["speed_kmh"].as_f64().unwrap();
        assert!((speed - 90.0).abs() < 0.01, "{speed} km/h at {expected}");
    }
}

#[tokio::test]
async fn a_revoked_token_is_refused_and_another_organisation_cannot_revoke_the_device() {
    let app = spawn_app().await;
    let device = device(&app).await;
    let endpoint = format!("{}/v1/osmand/{}", app.address, token(&device));
    let device_path = format!("/v1/devices/{}", device["id"].as_str().unwrap());
    let ping = |minute: u32| {
        format!("{endpoint}?lat=45.5253&lon=4.8744&timestamp=2026-11-28T08:{minute:02}:00Z")
    };

    // Another organisation's admin, holding every role it may hold.
    let operator = client_with_key(&app.keys["operator"]);
    let (status, _) = send(
        operator
            .post(format!("{}/v1/organisations", app.address))
            .json(&json!({"id": "other", "name": "Other carrier"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, issued) = send(
        operator
            .post(format!("{}/v1/organisations/other/keys", app.address))
            .json(&json!({"name": "other admin", "roles": ["admin", "carrier"]})),
    )
    .await;
    assert_eq!(status, 201, "{issued}");
    let issued: Value = serde_json::from_str(&issued).unwrap();
    let other = client_with_key(issued["key"].as_str().unwrap());
    let (status, body) = send(other.delete(format!("{}{device_path}", app.address))).await;
    assert_eq!(status, 404, "{body}");
    let (status, listed) = send(other.get(format!("{}/v1/devices", app.address))).await;
    assert_eq!((status, listed.as_str()), (200, "[]"));
    // Nor does a dispatcher of the device's own organisation make or revoke devices.
    let dispatcher = client_with_key(&app.keys["dispatcher"]);
    let (status, _) = send(dispatcher.delete(format!("{}{device_path}", app.address))).await;
    assert_eq!(status, 403);
    let (status, _) = send(phone().get(ping(40))).await;
    assert_eq!(status, 200, "the device still reports");

    // The organisation's admin revokes it: the phone is refused from then on.
    let admin = client_with_key(&app.keys["admin"]);
    let (status, _) = send(admin.delete(format!("{}{device_path}", app.address))).await;
    assert_eq!(status, 204);
    let (status, body) = send(phone().get(ping(41))).await;
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, error["code"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
    assert!(
        error["message"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    let (status, _) = send(phone().post(endpoint.as_str()).body("lat=45.5&lon=4.8")).await;
    assert_eq!(status, 401);
    let (_, listed) = get_json(&app, "/v1/devices").await;
    assert!(listed[0]["revoked_at"].is_string(), "{listed}");
    // A token never issued, and an organisation's key in its place, open nothing either.
    for token in ["A".repeat(43), app.keys["carrier"].clone()] {
        let url = format!("{}/v1/osmand/{token}?lat=45.5&lon=4.8", app.address);
        let (status, body) = send(phone().get(url)).await;
        assert_eq!(status, 401, "{body}");
    }
    let (_, stored) = get_json(&app, &format!("/v1/vehicles/{VEHICLE}/positions")).await;
    assert_eq!(stored.as_array().map(Vec::len), Some(1), "{stored}");
}

#[tokio::test]
async fn a_bad_field_is_a_400_naming_it() {
    let app = spawn_app().await;
    let endpoint = format!("{}/v1/osmand/{}", app.address, token(&device(&app).await));
    let fine = "lon=4.8744&timestamp=2026-11-28T08:40:00Z";
    for (query, field) in [
        (format!("lat=91&{fine}"), "lat"),
        (format!("lat=north&{fine}"), "lat"),
        (fine.to_owned(), "lat"),
        (
            "lat=45.5&lon=200&timestamp=2026-11-28T08:40:00Z".to_owned(),
            "lon",
        ),
        (
            "lat=45.5&lon=4.8&timestamp=2026-11-28T08:40:00".to_owned(),
            "timestamp",
        ),
        (
            "lat=45.5&lon=4.8&timestamp=2026-11-29T08:40:00Z".to_owned(),
            "timestamp",
        ),
        (format!("lat=45.5&{fine}&speed=-3"), "speed"),
        (format!("lat=45.5&{fine}&bearing=400"), "bearing"),
        (format!("lat=45.5&{fine}&batt=full"), "batt"),
    ] {
        let (status, body) = send(phone().get(format!("{endpoint}?{query}"))).await;
        let error: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert_eq!(
            (status, error["field"].as_str()),
            (400, Some(field)),
            "{query}: {body}"
        );
    }
    let (status, body) = send(
        phone()
            .post(endpoint.as_str())
            .header("content-type", "application/json")
            .body(traccar_client_body(
                "2026-11-28T08:40:00.000Z",
                (91.0, 4.8744),
                25.0,
                90.0,
            )),
    )
    .await;
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, error["field"].as_str()),
        (400, Some("location.coords.latitude")),
        "{body}"
    );
    // A ping older than the pings' age limit is dropped with a 200: an app holding a backlog
    // from days offline sends the rest.
    let (status, body) = send(phone().get(format!(
        "{endpoint}?lat=45.5&lon=4.8&timestamp=2026-11-20T08:40:00Z"
    )))
    .await;
    assert_eq!((status, body.as_str()), (200, ""));
    let (_, stored) = get_json(&app, &format!("/v1/vehicles/{VEHICLE}/positions")).await;
    assert_eq!(stored, json!([]));
}

#[tokio::test]
async fn a_device_over_its_rate_is_told_when_to_come_back() {
    let app = spawn_app_with(|settings| {
        settings.api.rate_limit_per_second = 1;
        settings.api.rate_limit_burst = 2;
    })
    .await;
    let endpoint = format!("{}/v1/osmand/{}", app.address, token(&device(&app).await));
    let mut answers = Vec::new();
    for minute in 40..43 {
        let url = format!("{endpoint}?lat=45.5&lon=4.8&timestamp=2026-11-28T08:{minute}:00Z");
        let response = phone().get(url).send().await.unwrap();
        answers.push((
            response.status().as_u16(),
            response.headers().contains_key("retry-after"),
        ));
    }
    assert_eq!(answers, [(200, false), (200, false), (429, true)]);
}
