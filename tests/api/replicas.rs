//! Several `etape serve` processes on one PostgreSQL database and one shared directory: a
//! ping posted to one is seen through the others, a webhook fires once, and killing the
//! replica that leads loses nothing acknowledged while the others carry on.
//!
//! Runs when `ETAPE_TEST_POSTGRES_URL` names a server (scripts/test starts one).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::{json, Value};

use crate::helpers::RunningBinary;
use crate::tracking::{receiver, Received};

fn stamp(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `count` pings a minute apart from `from`, at `(lat, lon)` plus `step` a minute.
fn pings(from: DateTime<Utc>, count: i64, (lat, lon): (f64, f64), step: f64) -> String {
    (0..count)
        .map(|minute| {
            json!({"vehicle_id": "RPL-1", "timestamp": stamp(from + TimeDelta::minutes(minute)),
                   "lat": lat + step * minute as f64, "lon": lon, "speed_kmh": 40})
            .to_string()
                + "\n"
        })
        .collect()
}

async fn serving(replica: &RunningBinary) -> String {
    let operations = replica.get_json("/v1/operations").await;
    operations["model_version"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

async fn post_pings(replica: &RunningBinary, body: String) -> Value {
    let response = replica
        .client
        .post(format!("{}/v1/positions", replica.base))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The deliveries of `event` once no more have come for a second.
async fn settled(received: &Received, event: &str, at_least: usize) -> usize {
    let count = || {
        received
            .all()
            .iter()
            .filter(|delivery| delivery.event() == event)
            .count()
    };
    for _ in 0..300 {
        if count() >= at_least {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    count()
}

/// Whether the replica has said it took the lease (at any time: it may have lost it since).
pub(crate) fn leads(replica: &RunningBinary) -> bool {
    replica
        .logs()
        .iter()
        .any(|line| line.contains("This replica leads."))
}

#[tokio::test]
async fn replicas_share_pings_fire_each_webhook_once_and_survive_the_leader_killed() {
    let Some(server) = crate::helpers::postgres_server() else {
        return;
    };
    let database = etape::adapters::store::postgres::PostgresStore::scratch_database(
        &server,
        &format!("replicas_{}", std::process::id()),
    )
    .unwrap();
    let shared = tempfile::tempdir().unwrap();
    let env = [
        ("ETAPE__STORAGE__URL", database.as_str()),
        ("ETAPE__TRACKING__DEBOUNCE_MS", "50"),
        ("ETAPE__WEBHOOKS__BACKOFF_INITIAL_MS", "20"),
        ("ETAPE__MODEL__DIR", "target/tmp/no-model-here"),
    ];
    let start = |_| RunningBinary::start(shared.path(), &["--no-demo".as_ref()], &env);
    // The first start creates the organisation and its keys; the others find them.
    let mut replicas: Vec<RunningBinary> = (0..3).map(start).collect();
    let (hook, received, _receiver) = receiver(200).await;
    let (a, b, c) = (&replicas[0], &replicas[1], &replicas[2]);

    let response = b
        .client
        .post(format!("{}/v1/webhooks", b.base))
        .json(&json!({"url": hook, "events": ["arrived", "departed"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let now = Utc::now();
    let lyon = (45.76, 4.84);
    let response = c
        .client
        .post(format!("{}/v1/shipments", c.base))
        .json(
            &json!({"reference": "RPL-1", "vehicle_id": "RPL-1", "vehicle_class": "articulated",
                      "origin": {"lat": 46.2, "lon": 4.84},
                      "stops": [{"id": "lyon", "lat": lyon.0, "lon": lyon.1},
                                {"id": "marseille", "lat": 43.30, "lon": 5.37}],
                      "planned_departure": stamp(now - TimeDelta::hours(2))}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let shipment: Value = response.json().await.unwrap();
    let id = shipment["id"].as_str().unwrap().to_owned();

    // Through A: the road to Lyon, then six minutes at the depot.
    let first = now - TimeDelta::minutes(40);
    let road = pings(first, 10, (45.9, lyon.1), -0.01);
    let depot = pings(first + TimeDelta::minutes(10), 6, lyon, 0.0);
    assert_eq!(post_pings(a, road).await["accepted"], 10);
    assert_eq!(post_pings(a, depot).await["accepted"], 6);
    // The same batch through B: nothing new.
    let again = post_pings(b, pings(first + TimeDelta::minutes(10), 6, lyon, 0.0)).await;
    assert_eq!(
        (again["accepted"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(6))
    );

    // Seen through C at once, and the estimate from the last ping through B.
    let positions = c
        .get_json("/v1/vehicles/RPL-1/positions?since=2000-01-01T00:00:00Z")
        .await;
    assert_eq!(positions.as_array().map(Vec::len), Some(16), "{positions}");
    let last = stamp(first + TimeDelta::minutes(15));
    let mut eta = Value::Null;
    for _ in 0..200 {
        eta = b.get_json(&format!("/v1/shipments/{id}/eta")).await;
        if eta["as_of"] == last.as_str() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(eta["as_of"], last.as_str(), "{eta}");
    assert_eq!(settled(&received, "arrived", 1).await, 1, "arrived once");

    // Kill the replica that leads while pings of another truck stream to all three; the
    // others carry on.
    let leader = replicas.iter().position(leads).expect("one replica leads");
    assert_eq!(replicas.iter().filter(|r| leads(r)).count(), 1);
    let streaming = Arc::new(AtomicBool::new(true));
    let stream = tokio::spawn(stream_pings(
        replicas
            .iter()
            .map(|r| (r.base.clone(), r.client.clone()))
            .collect(),
        streaming.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(700)).await;
    replicas[leader].child.kill().unwrap();
    replicas[leader].child.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    streaming.store(false, Ordering::SeqCst);
    let (sent, acknowledged) = stream.await.unwrap();
    eprintln!(
        "{} pings sent across the kill, {} acknowledged",
        sent.len(),
        acknowledged.len()
    );
    assert!(acknowledged.len() > 20);
    let survivor = &replicas[(leader + 1) % 3];
    let other = &replicas[(leader + 2) % 3];
    // Leaving Lyon, through a survivor, while the lease is still the dead one's.
    let leaving = pings(first + TimeDelta::minutes(16), 5, (45.70, lyon.1), -0.02);
    assert_eq!(post_pings(survivor, leaving).await["accepted"], 5);
    assert_eq!(settled(&received, "departed", 1).await, 1, "departed once");
    assert_eq!(
        settled(&received, "arrived", 1).await,
        1,
        "still arrived once"
    );
    assert!(
        leads(survivor) || leads(other),
        "a survivor took the lease over"
    );
    let positions = other
        .get_json("/v1/vehicles/RPL-1/positions?since=2000-01-01T00:00:00Z")
        .await;
    assert_eq!(
        positions.as_array().map(Vec::len),
        Some(21),
        "nothing acknowledged lost"
    );
    let shipment = other.get_json(&format!("/v1/shipments/{id}")).await;
    assert!(
        shipment["stops"][0]["departed"]["at"].is_string(),
        "{shipment}"
    );
    // Every streamed ping acknowledged is there, and nothing that was never sent.
    let stored: BTreeSet<DateTime<Utc>> = survivor
        .get_json("/v1/vehicles/RPL-2/positions?since=2000-01-01T00:00:00Z&limit=10000")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|ping| ping["timestamp"].as_str().unwrap().parse().unwrap())
        .collect();
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "acknowledged pings lost: {lost:?} (of {} sent from {:?} to {:?})",
        sent.len(),
        sent.first(),
        sent.last()
    );
    assert!(stored.is_subset(&sent), "a ping that was never sent");
}

/// Posts one ping of truck RPL-2 at a time to each replica in turn until `streaming` ends,
/// skipping a replica once it fails; returns the instants sent and those acknowledged.
async fn stream_pings(
    replicas: Vec<(String, reqwest::Client)>,
    streaming: Arc<AtomicBool>,
) -> (BTreeSet<DateTime<Utc>>, BTreeSet<DateTime<Utc>>) {
    let (mut sent, mut acknowledged) = (BTreeSet::new(), BTreeSet::new());
    let mut alive = vec![true; replicas.len()];
    let first = (Utc::now() - TimeDelta::hours(60))
        .duration_trunc(TimeDelta::minutes(1))
        .unwrap();
    // Ten seconds apart from 60 hours ago: a fast machine streams thousands in the test's
    // seconds, and a ping an hour or more ahead of the clock is refused (in a 200 answer).
    let mut step = 0;
    while streaming.load(Ordering::SeqCst) && alive.contains(&true) {
        let target = step % replicas.len();
        step += 1;
        if !alive[target] {
            continue;
        }
        let at = first + TimeDelta::seconds(10 * step as i64);
        assert!(at < Utc::now(), "the stream reached the present");
        let body = json!({"vehicle_id": "RPL-2", "timestamp": stamp(at), "lat": 47.0, "lon": 3.0})
            .to_string();
        let (base, client) = &replicas[target];
        sent.insert(at);
        if posted(client, base, body).await {
            acknowledged.insert(at);
        } else {
            alive[target] = false;
        }
    }
    (sent, acknowledged)
}

/// Posts NDJSON pings to the service at `base`; whether it acknowledged them.
pub(crate) async fn posted(client: &reqwest::Client, base: &str, body: String) -> bool {
    let answer = client
        .post(format!("{base}/v1/positions"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await;
    matches!(answer, Ok(response) if response.status() == 200)
}

#[tokio::test]
async fn a_model_activated_through_one_replica_is_served_by_the_other() {
    let Some(server) = crate::helpers::postgres_server() else {
        return;
    };
    let database = etape::adapters::store::postgres::PostgresStore::scratch_database(
        &server,
        &format!("replicas_models_{}", std::process::id()),
    )
    .unwrap();
    let shared = tempfile::tempdir().unwrap();
    // A second model in the shared directory: the bundled one under another version.
    let copy = shared.path().join("models").join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(crate::helpers::BUNDLED_MODEL).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, copy.join(path.file_name().unwrap())).unwrap();
    }
    let card_path = copy.join("model.json");
    let mut card: Value =
        serde_json::from_str(&std::fs::read_to_string(&card_path).unwrap()).unwrap();
    let bundled = card["version"].as_str().unwrap().to_owned();
    card["version"] = json!("copy-1");
    std::fs::write(&card_path, card.to_string()).unwrap();

    let env = [
        ("ETAPE__STORAGE__URL", database.as_str()),
        ("ETAPE__MODEL__DIR", crate::helpers::BUNDLED_MODEL),
    ];
    let start = |_| RunningBinary::start(shared.path(), &["--no-demo".as_ref()], &env);
    let replicas: Vec<RunningBinary> = (0..2).map(start).collect();

    assert_eq!(serving(&replicas[1]).await, bundled);

    let operator =
        crate::helpers::client_with_key(&crate::helpers::demo_keys(shared.path())["operator"]);
    let response = operator
        .post(format!("{}/v1/models/copy-1/activate", replicas[0].base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(serving(&replicas[0]).await, "copy-1");
    let mut followed = String::new();
    for _ in 0..100 {
        followed = serving(&replicas[1]).await;
        if followed == "copy-1" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        followed, "copy-1",
        "the other replica serves the activated model"
    );
}
