//! GPS ingestion and live estimates.
//!
//! - `parse/*`: 100,000 pings of 1,000 vehicles parsed and checked, from NDJSON and from CSV.
//! - `append/*`: the same, de-duplicated and appended to the per-vehicle polars frames.
//! - `ingest/ndjson_persisted`: the whole path of `POST /v1/positions` behind the socket:
//!   parse, check, de-duplicate, write the Parquet segment and sync it, append.
//! - `live/recompute_one_shipment`: what one ping costs a tracked shipment once debounced:
//!   stop detection, driver state from the pings, the bundled model, risk, history.
//!
//! `cargo bench --bench ingest`

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use etape::adapters::store::segments::PingLog;
use etape::adapters::store::sqlite::SqliteStore;
use etape::config::TrackingSettings;
use etape::domain::clock::Clock;
use etape::domain::eta::{EstimateEta, RulesEta};
use etape::ml::model::serve::ModelEta;
use etape::telemetry::Metrics;
use etape::tracking::book::PingBook;
use etape::tracking::pings::{parse, PingFormat, PingLimits};
use etape::tracking::shipment::{Shipment, ShipmentStop, Status};
use etape::tracking::tracker::{Tracker, TrackerParts};

const PINGS: usize = 100_000;
const VEHICLES: usize = 1_000;

fn limits(now: DateTime<Utc>) -> PingLimits {
    PingLimits {
        now,
        future_tolerance_ms: 300_000,
        max_age_ms: 72 * 3_600_000,
        max_speed_kmh: 200.0,
        max_pings: PINGS,
    }
}

/// Pings of `VEHICLES` vehicles named with `tag`, a minute apart, in the last two hours.
fn pings(now: DateTime<Utc>, tag: usize) -> Vec<(String, String, f64, f64, f64)> {
    let per_vehicle = PINGS / VEHICLES;
    (0..PINGS)
        .map(|index| {
            let (vehicle, step) = (index % VEHICLES, index / VEHICLES);
            let at = now - TimeDelta::minutes((per_vehicle - step) as i64);
            (
                format!("FR-{tag}-{vehicle:04}"),
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                45.0 + vehicle as f64 * 0.001 + step as f64 * 0.01,
                4.0 + step as f64 * 0.01,
                72.5,
            )
        })
        .collect()
}

fn ndjson(pings: &[(String, String, f64, f64, f64)]) -> Vec<u8> {
    let mut body = String::with_capacity(pings.len() * 100);
    for (vehicle, at, lat, lon, speed) in pings {
        let _ = writeln!(
            body,
            r#"{{"vehicle_id":"{vehicle}","timestamp":"{at}","lat":{lat},"lon":{lon},"speed_kmh":{speed}}}"#
        );
    }
    body.into_bytes()
}

fn csv(pings: &[(String, String, f64, f64, f64)]) -> Vec<u8> {
    let mut body = String::from("vehicle_id,timestamp,lat,lon,speed_kmh\n");
    for (vehicle, at, lat, lon, speed) in pings {
        let _ = writeln!(body, "{vehicle},{at},{lat},{lon},{speed}");
    }
    body.into_bytes()
}

fn parsing(c: &mut Criterion) {
    let now = Utc::now();
    let rows = pings(now, 0);
    let (json_lines, table) = (ndjson(&rows), csv(&rows));
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(PINGS as u64));
    group.sample_size(20);
    group.bench_function("ndjson_100k", |b| {
        b.iter(|| parse(black_box(&json_lines), PingFormat::Ndjson, &limits(now)).unwrap())
    });
    group.bench_function("csv_100k", |b| {
        b.iter(|| parse(black_box(&table), PingFormat::Csv, &limits(now)).unwrap())
    });
    group.finish();

    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Elements(PINGS as u64));
    group.sample_size(20);
    for (name, body, format) in [
        ("ndjson_100k", &json_lines, PingFormat::Ndjson),
        ("csv_100k", &table, PingFormat::Csv),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || PingBook::new(48),
                |mut book| {
                    let batch = parse(body, format, &limits(now)).unwrap();
                    let admitted = book.reserve("org", &batch);
                    book.append("org", &batch.vehicles, &admitted.pings);
                    book
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn tracker(dir: &Path, estimator: Arc<dyn EstimateEta>) -> Tracker {
    Tracker::start(TrackerParts {
        store: Arc::new(SqliteStore::open(&dir.join("etape.sqlite")).unwrap()),
        log: std::sync::Arc::new(PingLog::open(&dir.join("pings")).unwrap()),
        forecaster: etape::domain::forecast::Forecaster::new(estimator, None),
        settings: TrackingSettings::default(),
        thresholds: Default::default(),
        metrics: Metrics::new(),
        clock: Clock::System,
        notices: None,
        shared: None,
        corrections: Arc::new(etape::domain::correction::Corrections::new(
            Default::default(),
        )),
        live: None,
    })
    .unwrap()
}

fn persisted(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let tracker = tracker(dir.path(), Arc::new(RulesEta::default()));
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(PINGS as u64));
    group.sample_size(10);
    let mut tag = 0;
    group.bench_function("ndjson_100k_persisted", |b| {
        b.iter_batched(
            || {
                tag += 1;
                ndjson(&pings(Utc::now(), tag))
            },
            |body| {
                let batch = parse(&body, PingFormat::Ndjson, &tracker.ping_limits()).unwrap();
                let outcome = tracker.ingest("org", batch).unwrap();
                assert_eq!(outcome.accepted, PINGS);
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn live(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/models/bundled");
    let (_, served) = etape::training::registry::load(&model_dir).expect("the bundled model loads");
    let estimator = Arc::new(ModelEta::new(RulesEta::default(), Some(served), 1));
    let tracker = tracker(dir.path(), estimator);
    let now = Utc::now();
    let departure = now - TimeDelta::hours(3);
    let stop = |id: &str, lat: f64, lon: f64| ShipmentStop {
        id: id.into(),
        lat,
        lon,
        window: Some((now + TimeDelta::hours(1), now + TimeDelta::hours(3))),
        planned_dwell_minutes: 30.0,
        arrived: None,
        departed: None,
    };
    let shipment = Shipment {
        id: "shp_bench".into(),
        organisation: "org".into(),
        reference: "BENCH".into(),
        vehicle_id: "FR-LIVE".into(),
        vehicle: "articulated".into(),
        origin: Some((50.63, 3.06)),
        stops: vec![stop("lyon", 45.76, 4.84), stop("marseille", 43.30, 5.37)],
        planned_departure: departure,
        driven_today_minutes: 0.0,
        driven_since_break_minutes: 0.0,
        status: Status::Planned,
        created_at: departure,
        updated_at: departure,
        delivered_at: None,
        cancelled_at: None,
        accuracy: Vec::new(),
        version: 0,
        gross_weight_tonnes: None,
        operation: None,
        driver_declared: false,
        carried: None,
        ended_clock: None,
        cab: None,
    };
    tracker.register(shipment).unwrap();
    // Three hours of pings, a minute apart, heading south.
    let history: String = (0..180)
        .map(|minute| {
            let at = departure + TimeDelta::minutes(minute);
            format!(
                "{{\"vehicle_id\":\"FR-LIVE\",\"timestamp\":\"{}\",\"lat\":{},\"lon\":3.2,\"speed_kmh\":80}}\n",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                50.6 - minute as f64 * 0.011
            )
        })
        .collect();
    let batch = parse(
        history.as_bytes(),
        PingFormat::Ndjson,
        &tracker.ping_limits(),
    )
    .unwrap();
    tracker.ingest("org", batch).unwrap();
    c.bench_function("live/recompute_one_shipment", |b| {
        b.iter(|| tracker.refresh("org", black_box("shp_bench")).unwrap())
    });
}

criterion_group!(benches, parsing, persisted, live);
criterion_main!(benches);
