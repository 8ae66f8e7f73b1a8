//! Webhooks that outlive their process, and shipments that two writers never overwrite.
//!
//! The first test drives the real binary (on SQLite, or on PostgreSQL with
//! `ETAPE_TEST_STORE=postgres`): stop events fire while the receiver is down, the server is
//! killed (SIGKILL, then in a second round stopped by SIGTERM), started again on the same data
//! directory, the receiver comes back, and every event arrives under the one delivery id its
//! attempts had before the stop. On PostgreSQL the same again across a leader takeover: the
//! events fire on the replica that leads, it is killed, another takes the lease over and
//! delivers them. Every delivery verifies under the secret the webhook was created with,
//! sealed in the database meanwhile under a key the restart reads again. A webhook whose
//! secret the process's key does not open holds back its own deliveries only, and sends them
//! once a process has its key; `etape rekey` seals every secret under a new key, and the
//! deliveries after it still verify. The last test races a manual event against the
//! recomputation of the same shipment by another tracker (another replica) on one store,
//! SQLite or PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::{DateTime, TimeDelta, Utc};
use etape::adapters::store::postgres::PostgresStore;
use etape::adapters::store::segments::PingLog;
use etape::adapters::store::sqlite::SqliteStore;
use etape::adapters::webhooks::{Webhook, WebhookStore};
use etape::config::TrackingSettings;
use etape::domain::clock::Clock;
use etape::domain::correction::Corrections;
use etape::domain::eta::RulesEta;
use etape::domain::forecast::Forecaster;
use etape::telemetry::Metrics;
use etape::tracking::pings::{parse, PingFormat};
use etape::tracking::shipment::{EventKind, Shipment};
use etape::tracking::store::{SharedPings, ShipmentStore};
use etape::tracking::tracker::{StopRef, Tracker, TrackerParts};
use serde_json::{json, Value};

use crate::helpers::{json_of, RunningBinary};
use crate::replicas::leads;

fn stamp(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A port of 127.0.0.1 that nothing listens on, for a receiver that is down until it starts.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// One delivery as the receiver got it: its `webhook-id`, its body, and what its signature
/// is checked with.
#[derive(Clone, Debug)]
struct Got {
    id: String,
    body: Value,
    timestamp: i64,
    signature: String,
    raw: Vec<u8>,
}

impl Got {
    /// The event and the stop it is about (`delivered` is about none).
    fn what(&self) -> (String, Option<u64>) {
        (
            self.body["event"].as_str().unwrap_or("").to_owned(),
            self.body["data"]["stop_index"].as_u64(),
        )
    }
}

/// A receiver answering 200 on `port`, from now on.
fn receiver_on(port: u16) -> (Arc<Mutex<Vec<Got>>>, actix_web::dev::ServerHandle) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = got.clone();
    let server = HttpServer::new(move || {
        let kept = kept.clone();
        App::new().default_service(web::to(move |request: HttpRequest, body: web::Bytes| {
            let kept = kept.clone();
            async move {
                let header = |name: &str| crate::helpers::header_text(&request, name);
                kept.lock().unwrap().push(Got {
                    id: header("webhook-id"),
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    timestamp: header("webhook-timestamp").parse().unwrap_or(0),
                    signature: header("webhook-signature"),
                    raw: body.to_vec(),
                });
                HttpResponse::Ok().finish()
            }
        }))
    })
    .workers(1)
    .bind(("127.0.0.1", port))
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    (got, handle)
}

/// How the first server is stopped.
#[derive(Clone, Copy, Debug)]
enum Stop {
    Kill,
    Terminate,
}

#[tokio::test]
async fn events_fired_while_the_receiver_is_down_arrive_after_a_restart_each_under_one_id() {
    for stop in [Stop::Kill, Stop::Terminate] {
        events_survive(stop).await;
    }
}

/// What the services are started with: no model, and retries for longer than the tests keep
/// the receiver down, quickly.
const RETRYING: [(&str, &str); 4] = [
    ("ETAPE__MODEL__DIR", "target/tmp/no-model-here"),
    ("ETAPE__WEBHOOKS__MAX_ATTEMPTS", "100000"),
    ("ETAPE__WEBHOOKS__BACKOFF_INITIAL_MS", "50"),
    ("ETAPE__WEBHOOKS__BACKOFF_MAX_MS", "300"),
];

/// What fired while the receiver was down: the webhook's deliveries log and the secret it was
/// created with, the events it must get, and the delivery ids tried before the stop with
/// their outcome.
struct Fired {
    log_path: String,
    secret: String,
    expected: BTreeSet<(String, Option<u64>)>,
    tried: BTreeMap<String, String>,
}

async fn events_survive(stop: Stop) {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let args = ["--no-demo".as_ref()];
    let mut first = RunningBinary::start(data.path(), &args, &RETRYING);
    let label = format!("{stop:?}");
    let fired = fire_while_the_receiver_is_down(&first, port, &label).await;
    // On the embedded store, the secret is nowhere in the database in clear, and the key it is
    // sealed under is read again by the next start.
    let embedded = crate::helpers::store_url(data.path()).is_none();
    let key_file = data.path().join(etape::adapters::store::sealed::KEY_FILE);
    let key = embedded.then(|| std::fs::read(&key_file).expect("the first start made the key"));
    if embedded {
        let mut bytes = std::fs::read(data.path().join("etape.sqlite")).unwrap();
        bytes.extend(std::fs::read(data.path().join("etape.sqlite-wal")).unwrap_or_default());
        let secret = fired.secret.as_bytes();
        assert!(
            !bytes.windows(secret.len()).any(|window| window == secret),
            "{label}: the webhook's secret is in the database in clear"
        );
    }
    match stop {
        Stop::Kill => first.child.kill().unwrap(),
        Stop::Terminate => {
            let terminated = std::process::Command::new("kill")
                .args(["-TERM", &first.child.id().to_string()])
                .status()
                .unwrap();
            assert!(terminated.success());
        }
    }
    first.child.wait().unwrap();
    drop(first);

    let (got, receiver) = receiver_on(port);
    let second = RunningBinary::start(data.path(), &args, &RETRYING);
    every_event_arrives(&got, &fired, &second, &label).await;
    if embedded {
        assert_eq!(
            std::fs::read(&key_file).ok(),
            key,
            "{label}: the key is kept"
        );
    }
    receiver.stop(true).await;
}

/// Through `service`: a webhook to the receiver on `port` (down), a shipment, and its stops'
/// arrivals and departures reported by hand; returns once every notice has been tried and
/// failed, each under an id of its own.
async fn fire_while_the_receiver_is_down(service: &RunningBinary, port: u16, label: &str) -> Fired {
    let webhook = json_of(
        service
            .client
            .post(format!("{}/v1/webhooks", service.base))
            .json(&json!({"url": format!("http://127.0.0.1:{port}/hook"),
                          "events": ["arrived", "departed", "delivered"]})),
    )
    .await;
    let webhook_id = webhook["id"].as_str().expect("a webhook").to_owned();
    let secret = webhook["secret"].as_str().expect("its secret").to_owned();
    let shipment = json_of(
        service
            .client
            .post(format!("{}/v1/shipments", service.base))
            .json(
                &json!({"reference": "OUTBOX-1", "vehicle_id": "OBX-1", "vehicle_class": "van",
                          "stops": [{"id": "a", "lat": 48.85, "lon": 2.35},
                                    {"id": "b", "lat": 47.32, "lon": 5.04},
                                    {"id": "c", "lat": 45.76, "lon": 4.84}],
                          "planned_departure": stamp(Utc::now())}),
            ),
    )
    .await;
    let shipment_id = shipment["id"].as_str().expect("a shipment").to_owned();
    let fired = [
        (0, "arrived"),
        (0, "departed"),
        (1, "arrived"),
        (1, "departed"),
        (2, "arrived"),
    ];
    for (index, kind) in fired {
        let answer = service
            .client
            .post(format!(
                "{}/v1/shipments/{shipment_id}/events",
                service.base
            ))
            .json(&json!({"stop_index": index, "kind": kind}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{label}");
    }
    let expected: BTreeSet<(String, Option<u64>)> = fired
        .iter()
        .map(|(index, kind)| ((*kind).to_owned(), Some(*index as u64)))
        .chain([("delivered".to_owned(), None)])
        .collect();

    // Every notice tried and failing, each under an id of its own, before the stop.
    let log_path = format!("/v1/webhooks/{webhook_id}/deliveries");
    let mut tried: BTreeMap<String, String> = BTreeMap::new();
    for _ in 0..300 {
        let log = service.get_json(&log_path).await;
        tried = log
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|entry| {
                        (
                            entry["id"].as_str().unwrap_or("").to_owned(),
                            entry["outcome"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if tried.len() >= expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(tried.len(), expected.len(), "{label}: {tried:?}");
    assert!(
        tried.values().all(|outcome| outcome == "retrying"),
        "{label}: {tried:?}"
    );
    Fired {
        log_path,
        secret,
        expected,
        tried,
    }
}

/// Once the receiver is back: every event `fired` arrives, each under the one id its attempts
/// had before the stop, with one body and signed with the webhook's secret, and `now`, the
/// service delivering since, logs each delivered.
async fn every_event_arrives(
    got: &Mutex<Vec<Got>>,
    fired: &Fired,
    now: &RunningBinary,
    label: &str,
) {
    let Fired {
        log_path,
        secret,
        expected,
        tried,
    } = fired;
    let arrived =
        |got: &[Got]| -> BTreeSet<(String, Option<u64>)> { got.iter().map(Got::what).collect() };
    for _ in 0..600 {
        if arrived(&got.lock().unwrap()[..]) == *expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Time for a copy sent twice to show.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let got = got.lock().unwrap().clone();
    assert_eq!(arrived(&got), *expected, "{label}: every event arrives");
    let mut by_id: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for delivery in &got {
        by_id
            .entry(delivery.id.as_str())
            .or_default()
            .insert(delivery.body.to_string());
    }
    assert_eq!(
        by_id.len(),
        expected.len(),
        "{label}: one id per event: {got:?}"
    );
    for (id, bodies) in &by_id {
        assert_eq!(bodies.len(), 1, "{label}: {id} sent with one body");
        assert!(
            tried.contains_key(*id),
            "{label}: {id} is the id its attempts had before the stop: {tried:?}"
        );
    }
    for delivery in &got {
        assert!(
            etape::adapters::webhooks::verify(
                secret,
                &delivery.id,
                delivery.timestamp,
                &delivery.raw,
                &delivery.signature
            ),
            "{label}: {} verifies under the webhook's secret",
            delivery.id
        );
    }
    let log = now.get_json(log_path).await;
    let delivered: BTreeSet<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["outcome"] == "delivered")
        .filter_map(|entry| entry["id"].as_str())
        .collect();
    assert_eq!(delivered.len(), expected.len(), "{label}: {log}");
}

/// The deliveries `got` that verify under `secret`.
fn signed_with(got: &Mutex<Vec<Got>>, secret: &str) -> Vec<Got> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|delivery| {
            etape::adapters::webhooks::verify(
                secret,
                &delivery.id,
                delivery.timestamp,
                &delivery.raw,
                &delivery.signature,
            )
        })
        .cloned()
        .collect()
}

/// A webhook to the receiver on `port` for arrivals; its secret.
async fn arrivals_hook(service: &RunningBinary, port: u16) -> String {
    let webhook = json_of(
        service
            .client
            .post(format!("{}/v1/webhooks", service.base))
            .json(&json!({"url": format!("http://127.0.0.1:{port}/hook"),
                          "events": ["arrived"]})),
    )
    .await;
    webhook["secret"].as_str().expect("a secret").to_owned()
}

/// A shipment through `service`, and its first stop's arrival reported by hand.
async fn an_arrival(service: &RunningBinary, reference: &str) {
    let shipment = json_of(
        service
            .client
            .post(format!("{}/v1/shipments", service.base))
            .json(
                &json!({"reference": reference, "vehicle_id": reference, "vehicle_class": "van",
                "stops": [{"id": "a", "lat": 48.85, "lon": 2.35},
                          {"id": "b", "lat": 45.76, "lon": 4.84}],
                "planned_departure": stamp(Utc::now())}),
            ),
    )
    .await;
    let shipment_id = shipment["id"].as_str().expect("a shipment");
    let answer = service
        .client
        .post(format!(
            "{}/v1/shipments/{shipment_id}/events",
            service.base
        ))
        .json(&json!({"stop_index": 0, "kind": "arrived"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
}

/// Returns once a delivery `got` verifies under `secret`, or after 30 s.
async fn signed_within(got: &Mutex<Vec<Got>>, secret: &str) {
    for _ in 0..300 {
        if !signed_with(got, secret).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_webhook_sealed_under_another_key_holds_back_its_own_deliveries_only() {
    use base64::Engine;

    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let (got, receiver) = receiver_on(port);
    let key_file = |name: &str| {
        let path = data.path().join(name);
        let key: [u8; 32] = rand::random();
        let text = base64::engine::general_purpose::STANDARD.encode(key) + "\n";
        etape::partners::keys::write_private(&path, text.as_bytes()).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let (first_key, second_key) = (key_file("first.key"), key_file("second.key"));
    let args = ["--no-demo".as_ref()];
    let start = |key: &str| {
        let mut env = RETRYING.to_vec();
        env.push(("ETAPE__WEBHOOKS__SECRETS_KEY_FILE", key));
        RunningBinary::start(data.path(), &args, &env)
    };

    // One webhook sealed under the first key, one under the second, as two replicas given
    // different keys would leave them.
    let first = start(&first_key);
    let held = arrivals_hook(&first, port).await;
    drop(first);
    let second = start(&second_key);
    let opened = arrivals_hook(&second, port).await;
    an_arrival(&second, "KEYS-1").await;
    signed_within(&got, &opened).await;
    assert_eq!(
        signed_with(&got, &opened).len(),
        1,
        "the webhook whose secret opens gets its arrival: {:?}",
        second.logs()
    );
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(
        signed_with(&got, &held).is_empty(),
        "nothing is signed for the other webhook"
    );
    drop(second);

    // Its delivery was kept, and goes once a process has its key.
    let third = start(&first_key);
    signed_within(&got, &held).await;
    let late = signed_with(&got, &held);
    assert_eq!(late.len(), 1, "{:?}", third.logs());
    assert_eq!(late[0].what(), ("arrived".to_owned(), Some(0)));
    receiver.stop(true).await;
}

#[tokio::test]
async fn rekey_seals_every_secret_under_a_new_key_and_deliveries_still_verify() {
    use base64::Engine;
    use etape::adapters::store::sealed::{KEY_FILE, PREVIOUS_KEY_FILE};

    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let (got, receiver) = receiver_on(port);
    let args = ["--no-demo".as_ref()];
    let first = RunningBinary::start(data.path(), &args, &RETRYING);
    let secret = arrivals_hook(&first, port).await;
    drop(first);

    let new_key = data.path().join("new.key");
    let key: [u8; 32] = rand::random();
    let text = base64::engine::general_purpose::STANDARD.encode(key) + "\n";
    etape::partners::keys::write_private(&new_key, text.as_bytes()).unwrap();
    // The command as an operator runs it, on the store and with the key the service had.
    let shared = crate::helpers::shared_key_file(data.path());
    let rekey = |key_file: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_etape"))
            .arg("rekey")
            .arg("--new-key-file")
            .arg(key_file)
            .arg("--data-dir")
            .arg(data.path())
            .envs(crate::helpers::store_url(data.path()).map(|url| ("ETAPE__STORAGE__URL", url)))
            .envs(
                shared
                    .as_ref()
                    .map(|path| ("ETAPE__WEBHOOKS__SECRETS_KEY_FILE", path)),
            )
            .output()
            .unwrap()
    };
    let (embedded, previous) = (
        data.path().join(KEY_FILE),
        data.path().join(PREVIOUS_KEY_FILE),
    );
    let old = std::fs::read(&embedded).ok();

    // A key file that is not a key: refused with its reason, nothing changed.
    let bad = data.path().join("bad.key");
    std::fs::write(&bad, "not a key").unwrap();
    let refused = rekey(&bad);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && said.contains("base64 of 32 bytes"),
        "{said}"
    );
    assert_eq!(std::fs::read(&embedded).ok(), old);

    for run in ["first", "again"] {
        let done = rekey(&new_key);
        let said = String::from_utf8_lossy(&done.stderr);
        assert!(done.status.success(), "{run}: {said}");
        assert!(said.contains("the secrets of 1 webhooks"), "{run}: {said}");
        if shared.is_none() {
            assert_eq!(std::fs::read(&embedded).unwrap(), text.as_bytes(), "{run}");
            assert_eq!(
                std::fs::read(&previous).ok(),
                old,
                "{run}: the old key kept"
            );
        }
    }

    let mut env = RETRYING.to_vec();
    let new_key_text = new_key.to_str().unwrap().to_owned();
    if shared.is_some() {
        env.push(("ETAPE__WEBHOOKS__SECRETS_KEY_FILE", &new_key_text));
    }
    let second = RunningBinary::start(data.path(), &args, &env);
    an_arrival(&second, "REKEY-1").await;
    signed_within(&got, &secret).await;
    assert_eq!(
        signed_with(&got, &secret).len(),
        1,
        "signed with the secret the webhook was created with: {:?}",
        second.logs()
    );
    receiver.stop(true).await;
}

#[tokio::test]
async fn events_fired_on_the_leader_arrive_after_it_is_killed_and_another_replica_takes_over() {
    let Some(database) = crate::helpers::shared_database("outbox_takeover") else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut env = RETRYING.to_vec();
    env.push(("ETAPE__STORAGE__URL", database.as_str()));
    let args = ["--no-demo".as_ref()];
    // The first replica alone until it leads: it is the one that delivers, and is killed.
    let mut leader = RunningBinary::start(shared.path(), &args, &env);
    for _ in 0..100 {
        if leads(&leader) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        leads(&leader),
        "the first replica leads: {:?}",
        leader.logs()
    );
    let other = RunningBinary::start(shared.path(), &args, &env);
    let label = "leader killed";
    let fired = fire_while_the_receiver_is_down(&leader, port, label).await;
    leader.child.kill().unwrap();
    leader.child.wait().unwrap();

    let (got, receiver) = receiver_on(port);
    every_event_arrives(&got, &fired, &other, label).await;
    assert!(leads(&other), "the other replica took the lease over");
    receiver.stop(true).await;
}

/// The trackers' pings and one store: two replicas in one process.
fn tracker(
    store: Arc<dyn ShipmentStore>,
    shared: Option<Arc<dyn SharedPings>>,
    dir: &Path,
    now: DateTime<Utc>,
) -> Tracker {
    Tracker::start(TrackerParts {
        store,
        log: Arc::new(PingLog::open(dir).unwrap()),
        forecaster: Forecaster::new(Arc::new(RulesEta::default()), None),
        settings: TrackingSettings::default(),
        thresholds: Default::default(),
        metrics: Metrics::new(),
        clock: Clock::Fixed(now),
        notices: None,
        shared,
        corrections: Arc::new(Corrections::new(Default::default())),
        live: None,
    })
    .unwrap()
}

fn race_shipment(round: usize, now: DateTime<Utc>) -> Shipment {
    serde_json::from_value(json!({
        "id": format!("shp_race_{round:04}"), "organisation": "org",
        "reference": format!("RACE-{round}"), "vehicle_id": format!("RACE-{round}"),
        "vehicle": "articulated", "origin": [46.5, 4.84],
        "stops": [
            {"id": "lyon", "lat": 45.76, "lon": 4.84, "window": null,
             "planned_dwell_minutes": 30.0, "arrived": null, "departed": null},
            {"id": "valence", "lat": 44.93, "lon": 4.89, "window": null,
             "planned_dwell_minutes": 30.0, "arrived": null, "departed": null},
            {"id": "marseille", "lat": 43.30, "lon": 5.37, "window": null,
             "planned_dwell_minutes": 30.0, "arrived": null, "departed": null}],
        "planned_departure": now - TimeDelta::hours(2), "driven_today_minutes": 0.0,
        "driven_since_break_minutes": 0.0, "status": "planned",
        "created_at": now - TimeDelta::hours(3), "updated_at": now - TimeDelta::hours(3),
        "delivered_at": null, "cancelled_at": null, "accuracy": []
    }))
    .unwrap()
}

/// Twenty minutes at Lyon, a ping a minute, ending ten minutes ago: an arrival by GPS.
fn at_lyon(vehicle_id: &str, now: DateTime<Utc>) -> String {
    (0..20)
        .map(|minute| {
            json!({"vehicle_id": vehicle_id,
                   "timestamp": stamp(now - TimeDelta::minutes(30 - minute)),
                   "lat": 45.76, "lon": 4.84, "speed_kmh": 0})
            .to_string()
                + "\n"
        })
        .collect()
}

/// Rounds of the race: `ETAPE_RACE_ROUNDS`, 200 by default (`benches/race.sh` runs 1,000 on
/// each store).
fn race_rounds() -> usize {
    std::env::var("ETAPE_RACE_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(200)
}

#[test]
fn a_manual_event_racing_a_recompute_is_never_lost() {
    let dir = tempfile::tempdir().unwrap();
    // Two replicas' trackers on one store: SQLite, or PostgreSQL with
    // `ETAPE_TEST_STORE=postgres`, whose pings they then share.
    match crate::helpers::store_url(dir.path()) {
        Some(url) => {
            let store = Arc::new(PostgresStore::connect(&url).unwrap());
            let shared: Arc<dyn SharedPings> = store.clone();
            race(store, Some(shared), dir.path());
        }
        None => race(
            Arc::new(SqliteStore::open(&dir.path().join("etape.sqlite")).unwrap()),
            None,
            dir.path(),
        ),
    }
}

fn race<S: ShipmentStore + WebhookStore>(
    store: Arc<S>,
    shared: Option<Arc<dyn SharedPings>>,
    dir: &Path,
) {
    let now: DateTime<Utc> = "2026-11-28T12:00:00Z".parse().unwrap();
    store
        .insert_webhook(&Webhook {
            id: "whk_race".into(),
            organisation: "org".into(),
            url: "http://127.0.0.1:9/hook".into(),
            events: vec!["arrived".into(), "departed".into()],
            min_change_minutes: 0.0,
            secret: "whsec_race".into(),
            previous_secret: None,
            enabled: true,
            consecutive_failures: 0,
            created_at: now,
            disabled_at: None,
            disabled_reason: None,
        })
        .unwrap();
    let leader = tracker(store.clone(), shared.clone(), &dir.join("leader"), now);
    let other = tracker(store.clone(), shared, &dir.join("other"), now);
    let rounds = race_rounds();
    for round in 0..rounds {
        let shipment = race_shipment(round, now);
        let id = shipment.id.clone();
        leader.register(shipment.clone()).unwrap();
        let batch = parse(
            at_lyon(&shipment.vehicle_id, now).as_bytes(),
            PingFormat::Ndjson,
            &leader.ping_limits(),
        )
        .unwrap();
        assert_eq!(leader.ingest("org", batch).unwrap().accepted, 20);
        // The recomputation sees the arrival at Lyon while the driver reports Valence.
        let start = Barrier::new(2);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                start.wait();
                leader.refresh("org", &id).unwrap();
            });
            scope.spawn(|| {
                start.wait();
                other
                    .record_event("org", &id, &StopRef::Index(1), EventKind::Arrived, now)
                    .unwrap();
            });
        });
        let kept = store.shipment("org", &id).unwrap().unwrap();
        assert_eq!(
            kept.stops[1].arrived.map(|event| event.at),
            Some(now),
            "round {round}: the manual event was lost: {kept:?}"
        );
        assert!(kept.stops[0].arrived.is_some() && kept.stops[0].departed.is_some());
    }

    // Every stop event announced is the one the record keeps, and none twice: a save that
    // overwrote another would leave a notice the record contradicts.
    let announced = store.claim_outbox(i64::MAX / 2, 0, 100_000, None).unwrap();
    let mut seen = BTreeSet::new();
    for delivery in &announced {
        let body: Value = serde_json::from_str(&delivery.body).unwrap();
        let (event, index) = (
            body["event"].as_str().unwrap().to_owned(),
            body["data"]["stop_index"].as_u64().unwrap() as usize,
        );
        assert!(
            seen.insert((delivery.shipment_id.clone(), event.clone(), index)),
            "{event} at stop {index} of {} announced twice",
            delivery.shipment_id
        );
        let kept = store
            .shipment("org", &delivery.shipment_id)
            .unwrap()
            .unwrap();
        let stop = &kept.stops[index];
        let recorded = match event.as_str() {
            "arrived" => stop.arrived,
            _ => stop.departed,
        }
        .expect("an announced event is recorded");
        assert_eq!(
            (
                serde_json::to_value(recorded.at).unwrap(),
                serde_json::to_value(recorded.source).unwrap()
            ),
            (body["data"]["at"].clone(), body["data"]["source"].clone()),
            "{event} at stop {index} of {}: announced, then overwritten",
            delivery.shipment_id
        );
    }
    // Lyon's arrival, its departure and Valence's arrival, for every round.
    assert_eq!(seen.len(), 3 * rounds);
}
