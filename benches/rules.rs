//! The rules-based ETA: one trip, and trips of growing length and stop count.
//!
//! `cargo bench --bench rules`

use std::hint::black_box;

use chrono::{DateTime, TimeDelta};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use etape::domain::eta::{EstimateEta, EtaQuery, RulesEta, Stop};
use etape::domain::geo::GeoPoint;
use etape::domain::rules::DriverState;
use etape::domain::vehicle::VehicleClass;

fn query(n_stops: usize) -> EtaQuery {
    let lille = GeoPoint::new(50.63, 3.06).unwrap();
    let marseille = GeoPoint::new(43.30, 5.37).unwrap();
    let stops = (1..=n_stops)
        .map(|stop_idx| Stop {
            location: lille.towards(marseille, stop_idx as f64 / (n_stops + 1) as f64),
            dwell: TimeDelta::minutes(40),
            window: None,
        })
        .collect();
    EtaQuery {
        origin: lille,
        destination: marseille,
        // A Saturday evening: the ban calendar is exercised too.
        departure: DateTime::parse_from_rfc3339("2026-12-05T20:00:00+01:00").unwrap(),
        vehicle: VehicleClass::Articulated,
        stops,
        driver: DriverState::default(),
        context: Default::default(),
    }
}

fn rules_eta(c: &mut Criterion) {
    let estimator = RulesEta::default();
    let mut group = c.benchmark_group("rules_eta");
    for n_stops in [0, 5, 20] {
        let query = query(n_stops);
        group.bench_with_input(
            BenchmarkId::new("lille_marseille_stops", n_stops),
            &query,
            |b, query| b.iter(|| estimator.estimate(black_box(query))),
        );
    }
    group.finish();
}

criterion_group!(benches, rules_eta);
criterion_main!(benches);
