//! A leader stalled past its lease (SIGSTOP) while another replica takes over, then resumed
//! (SIGCONT): none of its late writes lands, nor any webhook it would send.
//!
//! The stalled replica serves the rules and the other the bundled model, so that every
//! estimate in the store says which replica wrote it (`fallback`); the receiver asks the
//! kernel which process holds each connection that reaches it. Pings stream through the
//! other replica all along, so that the stalled one, resumed, finds vehicles to recompute
//! before it learns that it no longer leads.
//!
//! Runs when `ETAPE_TEST_POSTGRES_URL` names a server, on Linux (`/proc`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use etape::adapters::store::postgres::PostgresStore;
use etape::tracking::store::ShipmentStore;
use serde_json::{json, Value};

use crate::helpers::{shared_database, RunningBinary, BUNDLED_MODEL};
use crate::replicas::{leads, posted};

const TRUCKS: usize = 12;

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Got {
    id: String,
    event: String,
    shipment: String,
    at: Instant,
    answered: u16,
    /// Sent by the replica that is stalled later on.
    by_stalled: bool,
}

/// A receiver on a port of its own, answering `status`, telling the requests of one process
/// from the others'.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
    status: Arc<AtomicU16>,
    handle: actix_web::dev::ServerHandle,
}

fn spawn_receiver(stalled: u32) -> Receiver {
    let got = Arc::new(Mutex::new(Vec::new()));
    let status = Arc::new(AtomicU16::new(200));
    let port = Arc::new(AtomicU16::new(0));
    let (kept, answering, listening) = (got.clone(), status.clone(), port.clone());
    let server = HttpServer::new(move || {
        let (kept, answering, listening) = (kept.clone(), answering.clone(), listening.clone());
        App::new().default_service(web::to(move |request: HttpRequest, body: web::Bytes| {
            let header = |name: &str| crate::helpers::header_text(&request, name);
            let answered = answering.load(Ordering::SeqCst);
            // While the connection is open: its client end is still in the kernel's table.
            let by_stalled = request.peer_addr().is_some_and(|peer| {
                held_by(stalled, peer.port(), listening.load(Ordering::SeqCst))
            });
            let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            kept.lock().unwrap().push(Got {
                id: header("webhook-id"),
                event: header("x-etape-event"),
                shipment: payload["shipment"]["id"].as_str().unwrap_or("").to_owned(),
                at: Instant::now(),
                answered,
                by_stalled,
            });
            async move {
                HttpResponse::build(actix_web::http::StatusCode::from_u16(answered).unwrap())
                    .finish()
            }
        }))
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let bound = server.addrs()[0].port();
    port.store(bound, Ordering::SeqCst);
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    Receiver {
        url: format!("http://127.0.0.1:{bound}/hook"),
        got,
        status,
        handle,
    }
}

/// Whether process `pid` holds the client end of the connection from 127.0.0.1:`client_port`
/// to `server_port`: the kernel's table of TCP sockets names its inode, and the process's
/// descriptors say whether the socket is one of them.
fn held_by(pid: u32, client_port: u16, server_port: u16) -> bool {
    fn port_of(address: &str) -> Option<u16> {
        u16::from_str_radix(address.rsplit(':').next()?, 16).ok()
    }
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let inode = table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (local, remote, inode) = (fields.get(1)?, fields.get(2)?, fields.get(9)?);
        let ends = (port_of(local)?, port_of(remote)?);
        (ends == (client_port, server_port) && *inode != "0").then(|| (*inode).to_owned())
    });
    let Some(inode) = inode else {
        return false;
    };
    let socket = format!("socket:[{inode}]");
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .any(|link| link.to_str() == Some(socket.as_str()))
}

fn signal(replica: &RunningBinary, name: &str) {
    let sent = std::process::Command::new("kill")
        .args([format!("-{name}"), replica.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{name}");
}

fn stamp(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn vehicle(truck: usize) -> String {
    format!("FENCE-{truck:02}")
}

/// Posts one ping per truck at a time through `replica`, a second apart, each truck heading
/// south far from its stops at 80 km/h, until `streaming` ends; returns how many batches were
/// acknowledged and how many not.
async fn stream_pings(
    base: String,
    client: reqwest::Client,
    streaming: Arc<AtomicBool>,
) -> (usize, usize) {
    let first = (Utc::now() - TimeDelta::hours(1))
        .duration_trunc(TimeDelta::seconds(1))
        .unwrap();
    let (mut acknowledged, mut refused) = (0, 0);
    let mut second = 0;
    while streaming.load(Ordering::SeqCst) {
        let body: String = (0..TRUCKS)
            .map(|truck| {
                json!({"vehicle_id": vehicle(truck),
                       "timestamp": stamp(first + TimeDelta::seconds(second)),
                       "lat": 47.4 - 0.0002 * second as f64, "lon": 4.5 + 0.02 * truck as f64,
                       "speed_kmh": 80})
                .to_string()
                    + "\n"
            })
            .collect();
        second += 1;
        if posted(&client, &base, body).await {
            acknowledged += 1;
        } else {
            refused += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (acknowledged, refused)
}

/// The delivery ids the receiver answered 200 since `since`, by shipment and event, of
/// requests not from the stalled replica.
fn delivered_since(got: &[Got], since: Instant) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut delivered: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for got in got {
        if got.answered == 200 && got.at >= since && !got.by_stalled {
            delivered
                .entry((got.shipment.clone(), got.event.clone()))
                .or_default()
                .insert(got.id.clone());
        }
    }
    delivered
}

/// Waits until `done` holds, for `seconds` at most.
async fn until(seconds: u64, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {seconds} s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many estimates the rules made (the stalled replica's) in the shipments' histories, and
/// how many current estimates are theirs.
fn made_by_the_rules(store: &PostgresStore, shipments: &[String]) -> (usize, usize) {
    let mut kept = 0;
    let mut current = 0;
    for id in shipments {
        kept += store
            .snapshots(id)
            .unwrap()
            .iter()
            .filter(|snapshot| snapshot.fallback)
            .count();
        current += usize::from(store.current(id).unwrap().is_some_and(|now| now.fallback));
    }
    (kept, current)
}

/// The ids of the deliveries a webhook's log holds, by outcome of their latest attempt.
async fn logged(replica: &RunningBinary, webhook_id: &str) -> BTreeMap<String, String> {
    let log = replica
        .get_json(&format!("/v1/webhooks/{webhook_id}/deliveries"))
        .await;
    let mut latest = BTreeMap::new();
    for entry in log.as_array().into_iter().flatten().rev() {
        latest.insert(
            entry["id"].as_str().unwrap_or("").to_owned(),
            entry["outcome"].as_str().unwrap_or("").to_owned(),
        );
    }
    latest
}

#[tokio::test]
async fn a_leader_stalled_past_its_lease_lands_no_late_write_and_sends_no_late_webhook() {
    let Some(database) = shared_database("fencing") else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let env = |model: &'static str| {
        [
            ("ETAPE__STORAGE__URL", database.clone()),
            ("ETAPE__MODEL__DIR", model.to_owned()),
            ("ETAPE__TRACKING__DEBOUNCE_MS", "50".to_owned()),
            ("ETAPE__WEBHOOKS__MAX_ATTEMPTS", "100000".to_owned()),
            ("ETAPE__WEBHOOKS__BACKOFF_INITIAL_MS", "20".to_owned()),
            ("ETAPE__WEBHOOKS__BACKOFF_MAX_MS", "100".to_owned()),
        ]
    };
    let start = |model: &'static str| {
        let env = env(model);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        RunningBinary::start(shared.path(), &["--no-demo".as_ref()], &env)
    };
    let stalled = start("target/tmp/no-model-here");
    until(10, "the first replica leads", || leads(&stalled)).await;
    let receiver = spawn_receiver(stalled.child.id());

    // Through the replica that leads: a webhook for stop events, and the trucks' shipments,
    // far from their stops.
    let response = stalled
        .client
        .post(format!("{}/v1/webhooks", stalled.base))
        .json(&json!({"url": &receiver.url, "events": ["arrived", "departed"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let webhook: Value = response.json().await.unwrap();
    let webhook_id = webhook["id"].as_str().unwrap().to_owned();
    let mut shipments = Vec::new();
    for truck in 0..TRUCKS {
        let response = stalled
            .client
            .post(format!("{}/v1/shipments", stalled.base))
            .json(
                &json!({"reference": vehicle(truck), "vehicle_id": vehicle(truck),
                          "vehicle_class": "articulated",
                          "origin": {"lat": 47.5, "lon": 4.5},
                          "stops": [{"id": "lyon", "lat": 45.76, "lon": 4.84},
                                    {"id": "marseille", "lat": 43.30, "lon": 5.37}],
                          "planned_departure": stamp(Utc::now() - TimeDelta::hours(2))}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let shipment: Value = response.json().await.unwrap();
        shipments.push(shipment["id"].as_str().unwrap().to_owned());
    }
    let other = start(BUNDLED_MODEL);
    let streaming = Arc::new(AtomicBool::new(true));
    let stream = tokio::spawn(stream_pings(
        other.base.clone(),
        other.client.clone(),
        streaming.clone(),
    ));

    // The leader delivers, and the receiver knows its connections.
    let event = |replica: &RunningBinary, shipment: &str, kind: &str| {
        replica
            .client
            .post(format!("{}/v1/shipments/{shipment}/events", replica.base))
            .json(&json!({"stop_index": 0, "kind": kind}))
            .send()
    };
    assert_eq!(
        event(&stalled, &shipments[0], "arrived")
            .await
            .unwrap()
            .status(),
        200
    );
    until(10, "the leader's delivery", || {
        receiver
            .got
            .lock()
            .unwrap()
            .iter()
            .any(|got| got.by_stalled)
    })
    .await;
    let store = PostgresStore::connect(&database).unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(
        made_by_the_rules(&store, &shipments).0 >= TRUCKS,
        "the leader recomputes the trucks"
    );

    // Stalled past its lease while the receiver is down; events fire through the other.
    receiver.status.store(503, Ordering::SeqCst);
    signal(&stalled, "STOP");
    let stopped = Instant::now();
    let mut expected: BTreeSet<(String, String)> = BTreeSet::new();
    for shipment in &shipments[1..4] {
        for kind in ["arrived", "departed"] {
            assert_eq!(event(&other, shipment, kind).await.unwrap().status(), 200);
            expected.insert((shipment.clone(), kind.to_owned()));
        }
    }
    until(30, "the other replica takes the lease over", || {
        leads(&other)
    })
    .await;
    let mut tried = BTreeMap::new();
    for _ in 0..200 {
        tried = logged(&other, &webhook_id).await;
        if tried
            .values()
            .filter(|outcome| *outcome == "retrying")
            .count()
            >= expected.len()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        tried
            .values()
            .filter(|outcome| *outcome == "retrying")
            .count()
            >= expected.len(),
        "the new leader retries the events: {tried:?}"
    );
    let before = made_by_the_rules(&store, &shipments);

    // Resumed, it finds vehicles marked and deliveries due before it learns it lost the lease.
    signal(&stalled, "CONT");
    // Said once it learns of the other's lease, or of a session the server ended meanwhile.
    let no_longer = |replica: &RunningBinary| {
        replica.logs().iter().any(|line| {
            line.contains("This replica no longer leads.") || line.contains("Lease not renewed.")
        })
    };
    until(15, "the stalled replica stops leading", || {
        no_longer(&stalled)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    receiver.status.store(200, Ordering::SeqCst);
    until(30, "every event delivered", || {
        let delivered = delivered_since(&receiver.got.lock().unwrap(), stopped);
        expected.iter().all(|event| delivered.contains_key(event))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    streaming.store(false, Ordering::SeqCst);
    let (acknowledged, refused) = stream.await.unwrap();
    assert!(
        acknowledged > 100 && refused == 0,
        "{acknowledged} batches, {refused} refused"
    );
    // The new leader's last estimates in place.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let got = receiver.got.lock().unwrap().clone();
    let late: Vec<&Got> = got
        .iter()
        .filter(|got| got.by_stalled && got.at >= stopped)
        .collect();
    assert!(late.is_empty(), "the stalled replica sent {late:?}");
    let delivered = delivered_since(&got, stopped);
    assert_eq!(
        delivered.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "every event arrives: {got:?}"
    );
    for (event, ids) in &delivered {
        assert_eq!(ids.len(), 1, "{event:?} under one id: {ids:?}");
        assert!(
            ids.iter().all(|id| tried.contains_key(id)),
            "{event:?}: {ids:?} tried by the new leader: {tried:?}"
        );
    }
    let after = made_by_the_rules(&store, &shipments);
    assert_eq!(
        after.0, before.0,
        "no estimate of the stalled replica's kept since"
    );
    assert_eq!(after.1, 0, "every current estimate is the new leader's");
    receiver.handle.stop(true).await;
}
