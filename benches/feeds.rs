//! What the feeds add to one ETA (the API's default answer, without factors): with weather and
//! congestion cached (looked up for the query), and with every feed down and its circuit open,
//! against no feeds at all.
//!
//! `cargo bench --bench feeds`

use std::hint::black_box;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use chrono::{DurationRound, TimeDelta, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use etape::adapters::feeds::Feeds;
use etape::config::FeedSettings;
use etape::domain::eta::{EstimateEta, EtaQuery, RulesEta};
use etape::domain::geo::GeoPoint;
use etape::domain::rules::DriverState;
use etape::domain::vehicle::VehicleClass;
use etape::ml::model::serve::ModelEta;
use etape::telemetry::Metrics;

/// Answers every request at once: Open-Meteo's hourly JSON, or TomTom's flow.
fn local_feed() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let start = (Utc::now() - TimeDelta::days(1))
        .duration_trunc(TimeDelta::days(1))
        .unwrap();
    let times: Vec<String> = (0..192)
        .map(|hour| {
            (start + TimeDelta::hours(hour))
                .format("%Y-%m-%dT%H:%M")
                .to_string()
        })
        .collect();
    let weather = serde_json::json!({"hourly": {"time": times, "temperature_2m": vec![2.0; 192],
        "precipitation": vec![1.0; 192], "snowfall": vec![0.5; 192],
        "wind_speed_10m": vec![20.0; 192], "visibility": vec![5_000.0; 192]}})
    .to_string();
    let traffic = r#"{"flowSegmentData":{"currentSpeed":50,"freeFlowSpeed":90,"currentTravelTime":72,"freeFlowTravelTime":40,"confidence":0.9,"roadClosure":false}}"#.to_owned();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buffer = [0u8; 4096];
            let read = stream.read(&mut buffer).unwrap_or(0);
            let body = if String::from_utf8_lossy(&buffer[..read]).contains("/v1/forecast") {
                &weather
            } else {
                &traffic
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    base
}

fn query() -> EtaQuery {
    EtaQuery {
        origin: GeoPoint::new(50.63, 3.06).unwrap(),
        destination: GeoPoint::new(43.30, 5.37).unwrap(),
        departure: (Utc::now() + TimeDelta::minutes(5)).fixed_offset(),
        vehicle: VehicleClass::Articulated,
        stops: Vec::new(),
        driver: DriverState::default(),
        context: Default::default(),
    }
}

fn one_eta(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/models/bundled");
    let (_, served) = etape::training::registry::load(&dir).unwrap();
    let estimator = ModelEta::new(RulesEta::default(), Some(served), 1);
    let metrics = Metrics::new();
    let base = local_feed();
    let cached = runtime.block_on(async {
        Feeds::new(
            &FeedSettings {
                weather_url: base.clone(),
                traffic_url: base,
                ..FeedSettings::default()
            },
            &metrics,
        )
    });
    // Nothing listens on port 9: every call is refused, and each circuit opens.
    let down = runtime.block_on(async {
        Feeds::new(
            &FeedSettings {
                weather_url: "http://127.0.0.1:9".into(),
                traffic_url: "http://127.0.0.1:9".into(),
                routing_url: "http://127.0.0.1:9".into(),
                backoff_initial_ms: 1,
                backoff_max_ms: 2,
                ..FeedSettings::default()
            },
            &metrics,
        )
    });
    let asked = [query()];
    for feeds in [&cached, &down] {
        for _ in 0..4 {
            runtime.block_on(feeds.prefetch(&asked, Utc::now(), Duration::from_secs(2)));
        }
    }
    let answer = |feeds: &std::sync::Arc<Feeds>| {
        runtime.block_on(async {
            feeds
                .prefetch(black_box(&asked), Utc::now(), feeds.wait())
                .await;
            let mut queries = asked.clone();
            let degraded = feeds.apply(&mut queries, Utc::now());
            (
                estimator.estimate_live(&queries[0], TimeDelta::zero(), false),
                degraded,
            )
        })
    };
    let (_, flags) = answer(&cached);
    assert!(flags[0].is_empty(), "{flags:?}");
    let (_, flags) = answer(&down);
    assert_eq!(flags[0].len(), 3, "{flags:?}");

    c.bench_function("feeds/no_feeds", |b| {
        b.iter(|| estimator.estimate_live(black_box(&asked[0]), TimeDelta::zero(), false))
    });
    c.bench_function("feeds/weather_and_congestion_cached", |b| {
        b.iter(|| answer(&cached))
    });
    c.bench_function("feeds/every_feed_down_circuits_open", |b| {
        b.iter(|| answer(&down))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = one_eta
}
criterion_main!(benches);
