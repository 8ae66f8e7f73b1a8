//! A restart listens at once and says when the live estimates are back (`/readyz`), rather
//! than recompute every active shipment before it binds the port.

use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use etape::config::StorageSettings;
use etape::tracking::shipment::Shipment;
use serde_json::{json, Value};

use crate::helpers::{store_url, RunningBinary};

const SHIPMENTS: usize = 1_000;
/// Pings per truck: half an hour at one a minute, the truck leaving Lyon for Marseille.
const PINGS_PER_TRUCK: i64 = 30;

/// The restarted service's restoration waits this long before it begins: with it, the test
/// sees the port answer while the estimates are missing, however fast the machine.
const RESTORE_DELAY_MS: &str = "2000";

#[tokio::test]
async fn a_restart_listens_before_its_estimates_are_back_and_readyz_says_so() {
    let data = tempfile::tempdir().unwrap();
    let no_model = ("ETAPE__MODEL__DIR", "target/tmp/no-model-here");
    let args = ["--no-demo".as_ref()];
    let now = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap();

    // The first start creates the store and the keys; the trucks' pings go in through the
    // API, in one batch, while no shipment follows them yet (so nothing is estimated).
    let first = RunningBinary::start(data.path(), &args, &[no_model]);
    let response = first
        .client
        .post(format!("{}/v1/positions", first.base))
        .header("content-type", "application/x-ndjson")
        .body(pings(now))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let outcome: Value = response.json().await.unwrap();
    assert_eq!(
        outcome["accepted"].as_u64(),
        Some(SHIPMENTS as u64 * PINGS_PER_TRUCK as u64),
        "{outcome}"
    );
    drop(first);

    // The shipments straight into the stopped service's store: a thousand registrations
    // through the API would each compute an estimate the restart computes again anyway.
    // On a thread of its own: PostgreSQL's blocking client runs a runtime of its own, which
    // does not start inside the test's.
    std::thread::scope(|scope| {
        scope
            .spawn(|| register_in_store(data.path(), now))
            .join()
            .expect("the shipments are registered")
    });

    // Whole seconds: the estimate's `computed_at` may be written to the second.
    let restarted_at = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap();
    let started = Instant::now();
    let restarted = RunningBinary::start_listening(
        "127.0.0.1:0",
        data.path(),
        &args,
        &[
            no_model,
            ("ETAPE__TRACKING__RESTORE_DELAY_MS", RESTORE_DELAY_MS),
        ],
    );
    let listening = started.elapsed();
    let health = restarted
        .client
        .get(format!("{}/healthz", restarted.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let readyz = restarted
        .client
        .get(format!("{}/readyz", restarted.base))
        .send()
        .await
        .unwrap();
    assert_eq!(readyz.status(), 503);
    let readiness: Value = readyz.json().await.unwrap();
    assert_eq!(readiness["ready"], false, "{readiness}");
    assert_eq!(readiness["status"], "restoring", "{readiness}");
    let waiting: Vec<&str> = readiness["waiting_for"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(waiting.contains(&"estimates"), "{readiness}");

    // A ping sent meanwhile is taken (once the window's pings are back) and counted new.
    let late_ping = json!({"vehicle_id": vehicle(0), "timestamp": stamp(now),
                           "lat": latitude(PINGS_PER_TRUCK + 1), "lon": 4.84, "speed_kmh": 80})
    .to_string();
    let response = restarted
        .client
        .post(format!("{}/v1/positions", restarted.base))
        .header("content-type", "application/x-ndjson")
        .body(late_ping)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["accepted"], 1);

    let deadline = Instant::now() + Duration::from_secs(600);
    while restarted.readyz_status() != Some(200) {
        assert!(
            Instant::now() < deadline,
            "not ready after 600 s: {:?}",
            restarted.logs().last()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready = started.elapsed();
    println!(
        "{SHIPMENTS} active shipments: listening after {listening:?}, ready after {ready:?} \
         (restoration delayed {RESTORE_DELAY_MS} ms)"
    );
    let readiness = restarted.get_json("/readyz").await;
    assert_eq!(readiness["status"], "ready", "{readiness}");
    assert_eq!(readiness["waiting_for"], json!([]), "{readiness}");

    // On the embedded store, ready means the restoration recomputed every one itself (with
    // replicas on PostgreSQL the lease holder does, later, and an estimate is computed on
    // demand meanwhile).
    if store_url(data.path()).is_none() {
        let metrics = restarted
            .client
            .get(format!("{}/metrics", restarted.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let recomputed: f64 = metrics
            .lines()
            .find_map(|line| line.strip_prefix("etape_live_recomputations_total "))
            .expect("the recomputations counter")
            .parse()
            .unwrap();
        assert!(recomputed >= SHIPMENTS as f64, "{recomputed} recomputed");
    }

    // The estimates are back: computed after the restart, from the restored pings (the trucks
    // are under way), with the plan ahead that only a current estimate carries.
    for index in (0..SHIPMENTS).step_by(SHIPMENTS / 10) {
        let id = shipment_id(index);
        let eta = restarted.get_json(&format!("/v1/shipments/{id}/eta")).await;
        let computed_at: DateTime<Utc> = eta["computed_at"].as_str().unwrap().parse().unwrap();
        assert!(computed_at >= restarted_at, "{id}: {eta}");
        assert!(
            !eta["timeline"].as_array().unwrap().is_empty(),
            "{id}: {eta}"
        );
        let shipment = restarted.get_json(&format!("/v1/shipments/{id}")).await;
        assert_eq!(shipment["status"], "in_transit", "{shipment}");
    }
}

fn shipment_id(index: usize) -> String {
    format!("shp_restart_{index:04}")
}

fn vehicle(index: usize) -> String {
    format!("RESTART-{index:04}")
}

/// Where the trucks are `minute` minutes after they set off south: 66 km/h.
fn latitude(minute: i64) -> f64 {
    45.76 - 0.01 * minute as f64
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Every truck's half hour on the A7 south of Lyon, ending a minute before `now`.
fn pings(now: DateTime<Utc>) -> String {
    let mut body = String::new();
    for index in 0..SHIPMENTS {
        for minute in 0..PINGS_PER_TRUCK {
            let at = now - TimeDelta::minutes(PINGS_PER_TRUCK + 1 - minute);
            let line = json!({"vehicle_id": vehicle(index), "timestamp": stamp(at),
                              "lat": latitude(minute), "lon": 4.84,
                              "speed_kmh": 80});
            body.push_str(&line.to_string());
            body.push('\n');
        }
    }
    body
}

/// The demo organisation's shipments Lyon to Marseille, planned to leave an hour ago.
fn register_in_store(data_dir: &std::path::Path, now: DateTime<Utc>) {
    let settings = StorageSettings {
        data_dir: data_dir.to_owned(),
        url: store_url(data_dir),
        ..StorageSettings::default()
    };
    let key_file = crate::helpers::shared_key_file(data_dir);
    let secrets =
        etape::adapters::store::sealed::secrets_key(key_file.as_deref(), &settings, data_dir)
            .expect("the service's key reads");
    let opened =
        etape::adapters::store::open(&settings, data_dir, secrets).expect("the store opens");
    for index in 0..SHIPMENTS {
        let shipment: Shipment = serde_json::from_value(json!({
            "id": shipment_id(index), "organisation": etape::partners::keys::DEMO_ORGANISATION,
            "reference": format!("RESTART-{index}"), "vehicle_id": vehicle(index),
            "vehicle": "articulated", "origin": [45.76, 4.84],
            "stops": [
                {"id": "valence", "lat": 44.93, "lon": 4.89, "window": null,
                 "planned_dwell_minutes": 30.0, "arrived": null, "departed": null},
                {"id": "marseille", "lat": 43.30, "lon": 5.37, "window": null,
                 "planned_dwell_minutes": 30.0, "arrived": null, "departed": null}],
            "planned_departure": now - TimeDelta::hours(1), "driven_today_minutes": 0.0,
            "driven_since_break_minutes": 0.0, "status": "planned",
            "created_at": now - TimeDelta::hours(2), "updated_at": now - TimeDelta::hours(2),
            "delivered_at": null, "cancelled_at": null, "accuracy": []
        }))
        .unwrap();
        opened
            .store
            .insert_shipment(&shipment)
            .expect("the shipment is kept");
    }
}
