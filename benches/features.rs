//! Feature building: one serving request, and batches of history rows.
//!
//! `cargo bench --bench features`

use std::hint::black_box;
use std::path::Path;

use chrono::DateTime;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use etape::domain::eta::{EtaQuery, RulesEta};
use etape::domain::geo::GeoPoint;
use etape::domain::rules::DriverState;
use etape::domain::vehicle::VehicleClass;
use etape::ml::features::{features, query_frame};
use etape::ml::history::files::load_history;
use etape::ml::history::ValidationOptions;
use polars::prelude::*;

fn one_request(c: &mut Criterion) {
    let rules = RulesEta::default();
    let partners = vec!["carrier-01".to_owned()];
    let query = EtaQuery {
        origin: GeoPoint::new(50.63, 3.06).unwrap(),
        destination: GeoPoint::new(43.30, 5.37).unwrap(),
        departure: DateTime::parse_from_rfc3339("2026-12-01T06:00:00+01:00").unwrap(),
        vehicle: VehicleClass::Articulated,
        stops: Vec::new(),
        driver: DriverState::default(),
        context: Default::default(),
    };
    c.bench_function("features/one_request", |b| {
        b.iter(|| {
            let frame = query_frame(black_box(&query), "carrier-01", 0.0).unwrap();
            features(&frame, &partners, &rules).unwrap()
        })
    });
}

fn batches(c: &mut Criterion) {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample/carrier-01");
    let mut trips = load_history(&sample, &ValidationOptions::default())
        .unwrap()
        .trips;
    trips
        .with_column(Column::new(
            "partner".into(),
            vec!["carrier-01"; trips.height()],
        ))
        .unwrap();
    let rules = RulesEta::default();
    let partners = vec!["carrier-01".to_owned()];
    let mut group = c.benchmark_group("features/batch");
    group.sample_size(10);
    for n_rows in [1_000, 10_000] {
        let batch = trips.head(Some(n_rows));
        group.throughput(Throughput::Elements(n_rows as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n_rows), &batch, |b, batch| {
            b.iter(|| features(black_box(batch), &partners, &rules).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, one_request, batches);
criterion_main!(benches);
