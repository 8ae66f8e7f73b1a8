//! Evidence under faults and abuse: SIGKILL at random moments during ingestion and uploads,
//! per-key rate limits, request deadlines, CORS, and secrets kept out of the logs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::helpers::{demo_keys, lille_to_marseille, spawn_app_with, RunningBinary};

const PINGS_PER_BATCH: i64 = 50;
const TRIPS_PER_UPLOAD: usize = 200;
const VEHICLE: &str = "CRASH-1";
const TRIPS_HEADER: &str = "trip_id,vehicle_class,origin_lat,origin_lon,destination_lat,destination_lon,departure_time,arrival_time,distance_km,stops,dwell_minutes,load_tonnes\n";

fn stamp(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Pings are 100 ms apart: thousands of batches stay within the last hours, none in the future.
const PING_SPACING_MS: i64 = 100;

/// A batch's pings, from its own offset, so that a batch is told by its timestamps.
fn batch_body(start: DateTime<Utc>, batch: i64) -> String {
    (0..PINGS_PER_BATCH)
        .map(|n| {
            let ping = batch * PINGS_PER_BATCH + n;
            format!(
                "{{\"vehicle_id\":\"{VEHICLE}\",\"timestamp\":\"{}\",\"lat\":45.0,\"lon\":{:.5},\"speed_kmh\":60}}\n",
                (start + TimeDelta::milliseconds(ping * PING_SPACING_MS))
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                4.0 + ping as f64 * 0.00001,
            )
        })
        .collect()
}

/// A trips table of its own ids.
fn upload_body(upload: usize) -> String {
    let mut body = String::from(TRIPS_HEADER);
    for n in 0..TRIPS_PER_UPLOAD {
        body.push_str(&format!(
            "U{upload:03}-{n:04},rigid,48.85,2.35,45.76,4.84,2025-03-04T05:40:00+01:00,2025-03-04T13:{:02}:00+01:00,470,0,0,{}\n",
            n % 60,
            upload % 20
        ));
    }
    body
}

/// What was acknowledged before a kill: ping batches by number, uploads by id with their rows.
#[derive(Clone, Default)]
struct Acknowledged {
    batches: BTreeSet<i64>,
    uploads: HashMap<String, u64>,
}

/// Checks that the restarted service has every acknowledged batch and upload, whole, and no
/// partial one.
async fn check_nothing_lost(
    server: &RunningBinary,
    partner: &str,
    start: DateTime<Utc>,
    acknowledged: &Acknowledged,
    round: usize,
) {
    let mut per_batch: BTreeMap<i64, i64> = BTreeMap::new();
    let mut since = Some(stamp(start - TimeDelta::minutes(1)));
    while let Some(from) = since.take() {
        let response = server
            .client
            .get(format!("{}/v1/vehicles/{VEHICLE}/positions", server.base))
            .query(&[("since", from.as_str()), ("limit", "5000")])
            .send()
            .await
            .unwrap();
        since = response
            .headers()
            .get("x-next-since")
            .map(|next| next.to_str().unwrap().to_owned());
        let pings: Value = response.json().await.unwrap();
        for ping in pings.as_array().expect("a list of pings") {
            let at = DateTime::parse_from_rfc3339(ping["timestamp"].as_str().unwrap())
                .unwrap()
                .with_timezone(&Utc);
            *per_batch
                .entry((at - start).num_milliseconds() / PING_SPACING_MS / PINGS_PER_BATCH)
                .or_default() += 1;
        }
    }
    for batch in &acknowledged.batches {
        assert_eq!(
            per_batch.get(batch),
            Some(&PINGS_PER_BATCH),
            "round {round}: acknowledged batch {batch} is not whole"
        );
    }
    for (batch, count) in &per_batch {
        assert_eq!(
            *count, PINGS_PER_BATCH,
            "round {round}: batch {batch} is partly there"
        );
    }
    let uploads: Value = crate::helpers::json_of(
        server
            .client
            .get(format!("{}/v1/history", server.base))
            .bearer_auth(partner),
    )
    .await;
    let listed: HashMap<String, u64> = uploads
        .as_array()
        .expect("a list of uploads")
        .iter()
        .map(|upload| {
            (
                upload["id"].as_str().unwrap().to_owned(),
                upload["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    for (id, rows) in &acknowledged.uploads {
        assert_eq!(
            listed.get(id),
            Some(rows),
            "round {round}: acknowledged upload {id} lost"
        );
    }
    for (id, rows) in &listed {
        // An upload committed just before the kill, whose answer never left, may be there:
        // whole.
        assert_eq!(
            *rows, TRIPS_PER_UPLOAD as u64,
            "round {round}: upload {id} is partial"
        );
    }
}

/// Twenty times: pings and uploads flow in, the server is killed with SIGKILL at a random
/// moment, restarted, and must hold every ping batch and upload it acknowledged, whole, and no
/// partial one. `ETAPE_CRASH_SEED` replays a run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let seed = std::env::var("ETAPE_CRASH_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!("ETAPE_CRASH_SEED={seed}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let data = tempfile::tempdir().unwrap();
    let args = ["--no-demo".as_ref()];
    let env = [("ETAPE__MODEL__DIR", "target/tmp/no-model-here")];
    let start = (Utc::now() - TimeDelta::hours(6))
        .duration_trunc(TimeDelta::seconds(1))
        .unwrap();
    let acknowledged = Arc::new(Mutex::new(Acknowledged::default()));
    let (mut next_batch, mut next_upload) = (0i64, 0usize);
    let mut partner = String::new();
    for round in 0..20 {
        let mut server = RunningBinary::start(data.path(), &args, &env);
        if round == 0 {
            partner = demo_keys(data.path())["partner"].clone();
        }
        let so_far = acknowledged.lock().unwrap().clone();
        check_nothing_lost(&server, &partner, start, &so_far, round).await;
        let pinger = {
            let (client, base, acknowledged) = (
                server.client.clone(),
                server.base.clone(),
                acknowledged.clone(),
            );
            let first = next_batch;
            tokio::spawn(async move {
                for batch in first.. {
                    let response = client
                        .post(format!("{base}/v1/positions"))
                        .header("content-type", "application/x-ndjson")
                        .body(batch_body(start, batch))
                        .send()
                        .await;
                    match response {
                        Ok(response) if response.status() == 200 => {
                            let Ok(outcome) = response.json::<Value>().await else {
                                return batch + 1;
                            };
                            assert_eq!(outcome["accepted"], PINGS_PER_BATCH, "{outcome}");
                            acknowledged.lock().unwrap().batches.insert(batch);
                        }
                        _ => return batch + 1,
                    }
                }
                unreachable!()
            })
        };
        let uploader = {
            let (client, base, acknowledged, partner) = (
                server.client.clone(),
                server.base.clone(),
                acknowledged.clone(),
                partner.clone(),
            );
            let first = next_upload;
            tokio::spawn(async move {
                for upload in first.. {
                    let response = client
                        .post(format!("{base}/v1/history"))
                        .bearer_auth(&partner)
                        .header("content-type", "text/csv")
                        .body(upload_body(upload))
                        .send()
                        .await;
                    let Ok(response) = response else {
                        return upload + 1;
                    };
                    let status = response.status();
                    if status != 201 {
                        let body = response.text().await.unwrap_or_default();
                        // Only a kill may stop an upload: any answer but 201 is a failure.
                        assert!(body.is_empty(), "upload {upload}: {status} {body}");
                        return upload + 1;
                    }
                    let Ok(answer) = response.json::<Value>().await else {
                        return upload + 1;
                    };
                    acknowledged.lock().unwrap().uploads.insert(
                        answer["upload"]["id"].as_str().unwrap().to_owned(),
                        answer["upload"]["rows"].as_u64().unwrap(),
                    );
                }
                unreachable!()
            })
        };
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..700))).await;
        server.child.kill().unwrap();
        let _ = server.child.wait();
        next_batch = pinger.await.unwrap();
        next_upload = uploader.await.unwrap();
    }
    let server = RunningBinary::start(data.path(), &args, &env);
    let acknowledged = acknowledged.lock().unwrap().clone();
    check_nothing_lost(&server, &partner, start, &acknowledged, 20).await;
    println!(
        "{} ping batches and {} uploads acknowledged across 20 kills",
        acknowledged.batches.len(),
        acknowledged.uploads.len()
    );
    // The run did ingest and upload between the kills.
    assert!(
        acknowledged.batches.len() >= 20,
        "{}",
        acknowledged.batches.len()
    );
    assert!(!acknowledged.uploads.is_empty());
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after_and_others_carry_on() {
    let app = spawn_app_with(|settings| {
        settings.api.rate_limit_per_second = 1;
        settings.api.rate_limit_burst = 3;
    })
    .await;
    let request = lille_to_marseille("2026-12-01T06:00:00+01:00", "articulated");
    for _ in 0..3 {
        let (status, body) = app.post_json("/v1/eta", &request).await;
        assert_eq!(status, 200, "{body}");
    }
    let response = app.post("/v1/eta", request.to_string()).await;
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited", "{body}");
    // Another key of the same organisation has its own budget.
    let dispatcher = crate::helpers::client_with_key(&app.keys["dispatcher"]);
    let answer = dispatcher
        .post(format!("{}/v1/eta", app.address))
        .body(request.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    // Unauthenticated calls are refused before they count against anyone.
    let anonymous = reqwest::Client::new()
        .post(format!("{}/v1/eta", app.address))
        .body(request.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

/// A request that outlives its limit is answered 503 with `Retry-After`, here an ETA waiting
/// on a routing engine that never answers.
#[tokio::test]
async fn a_request_past_its_deadline_gets_503() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hanging = format!("http://{}", listener.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            keep.lock().unwrap().push(stream);
        }
    });
    let app = spawn_app_with(|settings| {
        settings.api.request_timeout_secs = 1;
        settings.feeds.routing_url = hanging.clone();
        settings.feeds.timeout_ms = 10_000;
        settings.feeds.wait_ms = 5_000;
    })
    .await;
    let started = std::time::Instant::now();
    let response = app
        .post(
            "/v1/eta",
            lille_to_marseille("2026-12-01T06:00:00+01:00", "articulated").to_string(),
        )
        .await;
    assert_eq!(response.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "timeout", "{body}");
}

#[tokio::test]
async fn only_the_services_own_origin_and_listed_ones_may_call_from_a_browser() {
    let app = spawn_app_with(|settings| {
        settings.api.cors_origins = vec!["https://tms.example.com".into()];
    })
    .await;
    let own = app.address.clone();
    let preflight = |origin: &str| {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, format!("{}/v1/eta", app.address))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    for allowed in [own.as_str(), "https://tms.example.com"] {
        let response = preflight(allowed).await.unwrap();
        assert!(response.status().is_success(), "{allowed}: {response:?}");
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            allowed,
            "{allowed}"
        );
    }
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(refused.status().is_client_error(), "{refused:?}");
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    // A simple request from elsewhere is answered, but without the header that would let the
    // page read it.
    let answer = app
        .client
        .get(format!("{}/v1/shipments", app.address))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(answer
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    let dashboard = app
        .client
        .get(format!("{}/v1/shipments", app.address))
        .header("origin", own.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(dashboard.status(), 200);
    assert_eq!(
        dashboard.headers()["access-control-allow-origin"],
        own.as_str()
    );
}

/// Keys, the pepper and the traffic feed's key never reach a log line, at debug level, through
/// key creation, good, bad and tampered keys, and failing feeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs() {
    let data = tempfile::tempdir().unwrap();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let traffic_key = "tomtom-key-7f3a9c1e55d0";
    let server = RunningBinary::start(
        data.path(),
        &["--no-demo".as_ref()],
        &[
            ("RUST_LOG", "debug"),
            ("ETAPE__MODEL__DIR", "data/models/bundled"),
            ("ETAPE__FEEDS__TRAFFIC_URL", closed.as_str()),
            ("ETAPE__FEEDS__TRAFFIC_KEY", traffic_key),
            ("ETAPE__FEEDS__WEATHER_URL", closed.as_str()),
            ("ETAPE__FEEDS__WAIT_MS", "50"),
        ],
    );
    let keys = demo_keys(data.path());
    let admin = crate::helpers::client_with_key(&keys["admin"]);
    let created: Value = crate::helpers::json_of(
        admin
            .post(format!("{}/v1/organisations/demo/keys", server.base))
            .json(&json!({"name": "TMS", "roles": ["carrier"]})),
    )
    .await;
    let new_key = created["key"].as_str().unwrap().to_owned();
    let request = lille_to_marseille(&stamp(Utc::now() + TimeDelta::hours(2)), "articulated");
    let tampered = format!("{}x", &new_key[..new_key.len() - 1]);
    for key in [new_key.as_str(), tampered.as_str(), "etp_nothing_atall"] {
        let _ = crate::helpers::client_with_key(key)
            .post(format!("{}/v1/eta", server.base))
            .body(request.to_string())
            .send()
            .await
            .unwrap();
    }
    let pepper = std::fs::read(data.path().join("pepper.key")).unwrap();
    let mut secrets: Vec<String> = keys
        .values()
        .chain(std::iter::once(&new_key))
        .flat_map(|key| {
            // The whole key and its secret part alone.
            let secret = key.rsplit('_').next().unwrap().to_owned();
            [key.clone(), secret]
        })
        .collect();
    secrets.push(traffic_key.to_owned());
    secrets.push(hex::encode(&pepper));
    if let Ok(text) = std::str::from_utf8(&pepper) {
        secrets.push(text.trim().to_owned());
    }
    // Give the feeds' background fetches time to fail and log.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = server.logs();
    assert!(logs.len() > 10, "{} log lines", logs.len());
    assert!(
        logs.iter().any(|line| line.contains("traffic")),
        "the traffic feed's failure is logged"
    );
    for line in &logs {
        for secret in &secrets {
            assert!(
                !line.contains(secret.as_str()),
                "a secret in the logs: {line}"
            );
        }
    }
}
