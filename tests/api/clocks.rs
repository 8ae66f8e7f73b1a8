//! The driver's clock from one shipment to the next and from the cab's tachograph, and what
//! moved an estimate, through the real server.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, TEST_NOW};
use crate::tracking::{
    at, eta_as_of, get_json, ndjson, point, post_pings, receiver, stamp, LILLE, LYON,
};

const DIJON: (f64, f64) = (47.32, 5.04);
const PARIS: (f64, f64) = (48.85, 2.35);

/// Registers an articulated truck's shipment from `from` to one stop, `end`, at `to`; its id.
async fn register(
    app: &TestApp,
    reference: &str,
    vehicle: &str,
    (from, to): ((f64, f64), (f64, f64)),
    departure: DateTime<Utc>,
) -> String {
    let (status, shipment) = app
        .post_json(
            "/v1/shipments",
            &json!({
                "reference": reference, "vehicle_id": vehicle, "vehicle_class": "articulated",
                "origin": {"lat": from.0, "lon": from.1},
                "stops": [{"id": "end", "lat": to.0, "lon": to.1}],
                "planned_departure": stamp(departure),
            }),
        )
        .await;
    assert_eq!(status, 201, "{shipment}");
    shipment["id"].as_str().unwrap().to_owned()
}

/// Three hours from Lyon towards Dijon at 50 km/h from `start`, a ping every five minutes,
/// never near Dijon, then the delivery reported by hand at the last ping: 180 minutes of
/// driving without a break.
async fn drive_three_hours_and_deliver(
    app: &TestApp,
    id: &str,
    vehicle: &str,
    start: DateTime<Utc>,
) {
    let (lyon, dijon) = (point(LYON), point(DIJON));
    let total_km = lyon.distance_km(dijon);
    let pings: Vec<_> = (0..=36)
        .map(|step| {
            let minutes = step * 5;
            let fraction = minutes as f64 * 50.0 / 60.0 / total_km;
            (
                start + TimeDelta::minutes(minutes),
                lyon.towards(dijon, fraction),
                50.0,
            )
        })
        .collect();
    let (status, outcome) = post_pings(app, "application/x-ndjson", ndjson(vehicle, &pings)).await;
    assert_eq!(
        (status, outcome["accepted"].as_u64()),
        (200, Some(37)),
        "{outcome}"
    );
    let end = pings.last().unwrap().0;
    let (status, delivered) = app
        .post_json(
            &format!("/v1/shipments/{id}/events"),
            &json!({"stop_id": "end", "kind": "arrived", "at": stamp(end)}),
        )
        .await;
    assert_eq!(
        (status, delivered["status"].as_str()),
        (200, Some("delivered")),
        "{delivered}"
    );
}

/// The minutes a timeline segment lasts.
fn minutes_of(segment: &Value) -> i64 {
    let bound = |name: &str| at(segment[name].as_str().unwrap());
    (bound("end") - bound("start")).num_minutes()
}

/// The shipment's estimate once its driver's state comes from `source`.
async fn eta_from(app: &TestApp, id: &str, source: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let (status, eta) = get_json(app, &format!("/v1/shipments/{id}/eta")).await;
        assert_eq!(status, 200, "{eta}");
        if eta["driver_source"] == source {
            return eta;
        }
        last = eta;
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the driver's state never came from {source}: {last}");
}

#[tokio::test]
async fn a_truck_s_second_shipment_of_the_day_starts_with_the_first_one_s_driving() {
    let app = spawn_app().await;
    let now = at(TEST_NOW);
    let start = now - TimeDelta::minutes(190);
    let to_paris = (DIJON, PARIS);
    // The next shipment of the truck registered before the first ends, one registered after,
    // and another truck's for comparison.
    let before = register(
        &app,
        "CLK-NEXT-1",
        "FR-CLK-1",
        to_paris,
        now + TimeDelta::minutes(10),
    )
    .await;
    let first = register(&app, "CLK-FIRST", "FR-CLK-1", (LYON, DIJON), start).await;
    drive_three_hours_and_deliver(&app, &first, "FR-CLK-1", start).await;
    let after = register(
        &app,
        "CLK-NEXT-2",
        "FR-CLK-1",
        to_paris,
        now + TimeDelta::minutes(15),
    )
    .await;
    let other = register(
        &app,
        "CLK-OTHER",
        "FR-CLK-2",
        to_paris,
        now + TimeDelta::minutes(15),
    )
    .await;

    for id in [&before, &after] {
        let eta = eta_from(&app, id, "carried").await;
        assert_eq!(eta["driver_carried_from"], first.as_str(), "{eta}");
        assert_eq!(eta["driven_today_minutes"].as_f64(), Some(180.0), "{eta}");
        assert_eq!(
            eta["driven_since_break_minutes"].as_f64(),
            Some(180.0),
            "{eta}"
        );
        // The break falls due after the hour and a half left of the first trip's stint.
        let timeline = &eta["timeline"];
        assert_eq!(timeline[0]["kind"], "drive", "{timeline}");
        assert_eq!(minutes_of(&timeline[0]), 90, "{timeline}");
        assert_eq!(timeline[1]["kind"], "break", "{timeline}");
    }
    let (_, rested) = get_json(&app, &format!("/v1/shipments/{other}/eta")).await;
    assert_eq!(rested["driver_source"], "declared", "{rested}");
    assert_eq!(rested["driven_today_minutes"].as_f64(), Some(0.0));
    assert!(minutes_of(&rested["timeline"][0]) > 200, "{rested}");
}

#[tokio::test]
async fn a_truck_that_stood_overnight_starts_its_next_shipment_with_a_rested_driver() {
    let app = spawn_app().await;
    let now = at(TEST_NOW);
    let yesterday = now - TimeDelta::hours(27);
    let first = register(&app, "CLK-DAY-1", "FR-CLK-3", (LYON, DIJON), yesterday).await;
    drive_three_hours_and_deliver(&app, &first, "FR-CLK-3", yesterday).await;
    let next = register(
        &app,
        "CLK-DAY-2",
        "FR-CLK-3",
        (DIJON, PARIS),
        now + TimeDelta::minutes(10),
    )
    .await;
    let eta = eta_from(&app, &next, "carried").await;
    assert_eq!(eta["driver_carried_from"], first.as_str(), "{eta}");
    assert_eq!(
        (
            eta["driven_today_minutes"].as_f64(),
            eta["driven_since_break_minutes"].as_f64()
        ),
        (Some(0.0), Some(0.0)),
        "the 24 hours standing were a daily rest: {eta}"
    );
}

#[tokio::test]
async fn a_ping_with_the_tachograph_s_remaining_driving_time_changes_the_plan_and_says_so() {
    let app = spawn_app().await;
    let now = at(TEST_NOW);
    let departure = now + TimeDelta::minutes(10);
    let to_paris = (DIJON, PARIS);
    let read = register(&app, "TACHO-1", "FR-TACHO-1", to_paris, departure).await;
    let unread = register(&app, "TACHO-2", "FR-TACHO-2", to_paris, departure).await;
    let forwarded = register(&app, "TACHO-3", "352093089600001", to_paris, departure).await;
    let pinged = now - TimeDelta::minutes(1);
    let ping = |vehicle: &str| {
        json!({"vehicle_id": vehicle, "timestamp": stamp(pinged), "lat": DIJON.0,
               "lon": DIJON.1, "speed_kmh": 0})
    };
    let mut cab = ping("FR-TACHO-1");
    cab["driver_id"] = json!("FRD0000012345678");
    cab["driver_state"] = json!("driving");
    cab["remaining_driving_minutes"] = json!(30);
    let body = json!([cab, ping("FR-TACHO-2")]).to_string();
    let (status, outcome) = post_pings(&app, "application/json", body).await;
    assert_eq!(
        (status, outcome["accepted"].as_u64()),
        (200, Some(2)),
        "{outcome}"
    );

    // Thirty minutes left before the break: it comes after thirty minutes.
    let eta = eta_as_of(&app, &read, pinged).await;
    assert_eq!(eta["driver_source"], "tachograph", "{eta}");
    assert_eq!(eta["driver_id"], "FRD0000012345678");
    assert_eq!(eta["driven_since_break_minutes"].as_f64(), Some(240.0));
    let timeline = &eta["timeline"];
    assert_eq!(timeline[0]["kind"], "drive", "{timeline}");
    assert_eq!(minutes_of(&timeline[0]), 30, "{timeline}");
    assert_eq!(timeline[1]["kind"], "break", "{timeline}");
    let plain = eta_as_of(&app, &unread, pinged).await;
    assert_eq!(plain["driver_source"], "declared", "{plain}");
    assert!(minutes_of(&plain["timeline"][0]) > 200, "{plain}");

    // Traccar forwards the same as its position's attributes.
    let forward = json!({
        "position": {"fixTime": stamp(pinged), "latitude": DIJON.0, "longitude": DIJON.1,
                     "speed": 0.0, "course": 0.0, "valid": true,
                     "attributes": {"ignition": true, "driverUniqueId": "FRD0000087654321",
                                    "driverState": "driving", "remainingDrivingMinutes": 60}},
        "device": {"id": 7, "uniqueId": "352093089600001"}
    });
    let (status, outcome) = post_pings(&app, "application/json", forward.to_string()).await;
    assert_eq!(
        (status, outcome["accepted"].as_u64()),
        (200, Some(1)),
        "{outcome}"
    );
    let eta = eta_as_of(&app, &forwarded, pinged).await;
    assert_eq!(
        (eta["driver_source"].as_str(), eta["driver_id"].as_str()),
        (Some("tachograph"), Some("FRD0000087654321")),
        "{eta}"
    );
    assert_eq!(minutes_of(&eta["timeline"][0]), 60, "{eta}");

    // A value the cab cannot have refuses its ping, named by its field.
    let rows = [
        (20, "sleeping", ""),
        (40, "rest", "300"),
        (50, "available", "12"),
    ];
    let csv: String = std::iter::once(
        "vehicle_id,timestamp,lat,lon,driver_state,remaining_driving_minutes\n".to_owned(),
    )
    .chain(rows.iter().map(|(seconds, state, remaining)| {
        let when = pinged + TimeDelta::seconds(*seconds);
        format!(
            "FR-TACHO-9,{},47.32,5.04,{state},{remaining}\n",
            stamp(when)
        )
    }))
    .collect();
    let (status, outcome) = post_pings(&app, "text/csv", csv).await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["accepted"], 1, "{outcome}");
    let named: Vec<(u64, &str)> = outcome["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rejection| {
            (
                rejection["index"].as_u64().unwrap(),
                rejection["field"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        named,
        [(0, "driver_state"), (1, "remaining_driving_minutes")],
        "{outcome}"
    );
}

#[tokio::test]
async fn delay_reasons_arrive_on_eta_changed_webhooks_and_in_the_history() {
    let app = spawn_app().await;
    let (hook_url, received, hook_server) = receiver(200).await;
    let (status, webhook) = app
        .post_json(
            "/v1/webhooks",
            &json!({"url": hook_url, "events": ["eta_changed"], "min_change_minutes": 0}),
        )
        .await;
    assert_eq!(status, 201, "{webhook}");
    let now = at(TEST_NOW);
    // Planned for an hour ago: until a ping the truck is taken to leave now.
    let id = register(
        &app,
        "WHY-1",
        "FR-WHY-1",
        (LILLE, PARIS),
        now - TimeDelta::hours(1),
    )
    .await;
    let lille = point(LILLE);
    let (seen, still) = (now - TimeDelta::minutes(10), now + TimeDelta::minutes(4));
    for (when, speed) in [(seen, 80.0), (still, 0.0)] {
        let body = ndjson("FR-WHY-1", &[(when, lille, speed)]);
        let (status, outcome) = post_pings(&app, "application/x-ndjson", body).await;
        assert_eq!(status, 200, "{outcome}");
        eta_as_of(&app, &id, when).await;
    }
    // Fourteen minutes standing at Lille since the last ping: the position moved the arrival,
    // four minutes later than the first estimate, which set off at nine.
    let expected = json!([{"kind": "position", "minutes": 14.0}]);
    let (_, eta) = get_json(&app, &format!("/v1/shipments/{id}/eta")).await;
    assert_eq!(eta["delay_reasons"], expected, "{eta}");
    assert_eq!(eta["stops"][0]["slip_minutes"].as_f64(), Some(4.0), "{eta}");

    let mut payload = Value::Null;
    for _ in 0..200 {
        let moved = received
            .all()
            .into_iter()
            .filter(|delivery| delivery.event() == "eta_changed")
            .map(|delivery| serde_json::from_slice::<Value>(&delivery.body).unwrap())
            .find(|payload| payload["data"]["as_of"].as_str().map(at) == Some(still));
        if let Some(moved) = moved {
            payload = moved;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(payload["data"]["delay_reasons"], expected, "{payload}");
    assert_eq!(
        payload["data"]["stops"][0]["slip_minutes"].as_f64(),
        Some(4.0),
        "{payload}"
    );

    let (_, history) = get_json(&app, &format!("/v1/shipments/{id}/eta/history")).await;
    let snapshots = history["snapshots"].as_array().unwrap();
    assert!(
        snapshots[0].get("delay_reasons").is_none(),
        "the first estimate follows none: {history}"
    );
    assert_eq!(
        snapshots[1]["delay_reasons"],
        json!([{"kind": "position", "minutes": -10.0}]),
        "{history}"
    );
    assert_eq!(snapshots.last().unwrap()["delay_reasons"], expected);
    hook_server.stop(true).await;
}
