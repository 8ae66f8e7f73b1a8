//! ETAs from the bundled model, features included: one request as the API answers it, and
//! batches of 1,000 and 10,000 trips of the sample world. The median's SHAP values walked in
//! Rust beside LightGBM's own, and the three quantiles by the trees walked in Rust beside
//! LightGBM's fast single-row path and its general prediction call, on the sample's rows.
//!
//! `cargo bench --bench predict`

use std::hint::black_box;
use std::path::Path;

use chrono::{DateTime, TimeDelta};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use etape::domain::eta::{EstimateEta, EtaQuery, RulesEta};
use etape::domain::geo::GeoPoint;
use etape::domain::rules::DriverState;
use etape::domain::vehicle::VehicleClass;
use etape::ml::features::{feature_row, Prior, FEATURES};
use etape::ml::history::files::load_history;
use etape::ml::history::ValidationOptions;
use etape::ml::model::dataset::{numbers, texts};
use etape::ml::model::gbm::Gbm;
use etape::ml::model::serve::{ModelEta, ServedModel};

/// Lille to Marseille, an articulated truck leaving at 06:00.
fn lille_to_marseille() -> EtaQuery {
    EtaQuery {
        origin: GeoPoint::new(50.63, 3.06).unwrap(),
        destination: GeoPoint::new(43.30, 5.37).unwrap(),
        departure: DateTime::parse_from_rfc3339("2026-12-01T06:00:00+01:00").unwrap(),
        vehicle: VehicleClass::Articulated,
        stops: Vec::new(),
        driver: DriverState::default(),
        context: Default::default(),
    }
}

fn bundled() -> ServedModel {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/models/bundled");
    let (_, served) = etape::training::registry::load(&dir).expect("the bundled model loads");
    served
}

fn estimator(batch_threads: usize) -> ModelEta {
    let served = bundled();
    ModelEta::new(RulesEta::default(), Some(served), batch_threads)
}

fn one_request(c: &mut Criterion) {
    let eta = estimator(1);
    let query = lille_to_marseille();
    // Features and the three boosters, as a batch of one without factors.
    let one = [query.clone()];
    c.bench_function("predict/one_request", |b| {
        b.iter(|| eta.estimate_batch(black_box(&one), false))
    });
    // The API's single answer: the same plus the median's SHAP values for the factors.
    c.bench_function("predict/one_request_with_factors", |b| {
        b.iter(|| eta.estimate(black_box(&query)))
    });
    let regional = EtaQuery {
        destination: GeoPoint::new(49.89, 2.30).unwrap(), // Amiens
        vehicle: VehicleClass::Van,
        ..query
    };
    let one_regional = [regional];
    c.bench_function("predict/one_regional_request", |b| {
        b.iter(|| eta.estimate_batch(black_box(&one_regional), false))
    });
}

/// The sample's trips as requests, as a TMS would send tomorrow's plan.
fn sample_queries(n_rows: usize) -> Vec<EtaQuery> {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample/carrier-01");
    let trips = load_history(&sample, &ValidationOptions::default())
        .unwrap()
        .trips
        .head(Some(n_rows));
    let column = |name: &str| numbers(&trips, name).unwrap();
    let (o_lat, o_lon, d_lat, d_lon) = (
        column("origin_lat"),
        column("origin_lon"),
        column("destination_lat"),
        column("destination_lon"),
    );
    let classes = texts(&trips, "vehicle_class").unwrap();
    let start = DateTime::parse_from_rfc3339("2026-12-01T05:00:00+01:00").unwrap();
    (0..trips.height())
        .map(|row| EtaQuery {
            origin: GeoPoint::new(o_lat[row], o_lon[row]).unwrap(),
            destination: GeoPoint::new(d_lat[row], d_lon[row]).unwrap(),
            departure: start + TimeDelta::minutes((row % 720) as i64),
            vehicle: classes[row].parse().unwrap(),
            stops: Vec::new(),
            driver: DriverState::default(),
            context: Default::default(),
        })
        .collect()
}

/// The boosters alone, side by side in one run: the SHAP values walked in Rust and
/// LightGBM's, the predictions by the trees walked in Rust (what serving uses) and by two
/// LightGBM calls. Each
/// iteration takes the next of the sample's trips: one row asked again and again has the
/// branch predictor learn its paths through every tree, and flatters every way (LightGBM's
/// fast path took 26 µs for the three boosters on one row repeated, while under load the
/// server spent some 200 µs a request in it).
fn boosters(c: &mut Criterion) {
    let served = bundled();
    let model = &served.model;
    let rules = RulesEta::default();
    let rows: Vec<[f64; FEATURES.len()]> = sample_queries(512)
        .iter()
        .map(|query| {
            let (estimate, strict) = (rules.estimate(query), rules.strict().estimate(query));
            let prior = Prior {
                estimate: &estimate,
                strict: &strict,
            };
            let mut row = feature_row(query, 0, 0.0, prior);
            model.complete(&mut row);
            row
        })
        .collect();
    let mut turn = rows.iter().cycle();
    let mut next = move || turn.next().unwrap();
    let median = &model.boosters[0];
    assert!(
        model.boosters.iter().all(Gbm::walks_in_rust),
        "the forest reads the bundled boosters"
    );
    let mut group = c.benchmark_group("predict/boosters");
    type Predict = fn(&Gbm, &[f64]) -> f64;
    let ways: [(&str, Predict); 3] = [
        ("three_quantiles_forest", |booster, row| {
            booster.predict_one(row).unwrap()
        }),
        (
            "three_quantiles_lightgbm_single_row_fast",
            |booster, row| booster.predict_one_lightgbm(row).unwrap(),
        ),
        ("three_quantiles_lightgbm_predict_call", |booster, row| {
            booster.predict_lightgbm(row).unwrap()[0]
        }),
    ];
    for (name, predict) in ways {
        group.bench_function(name, |b| {
            b.iter(|| {
                let row = next();
                model
                    .boosters
                    .iter()
                    .map(|booster| predict(booster, black_box(row)))
                    .sum::<f64>()
            })
        });
    }
    group.bench_function("median_shap_rust", |b| {
        b.iter(|| median.contributions(black_box(next())).unwrap())
    });
    group.bench_function("median_shap_lightgbm", |b| {
        b.iter(|| median.contributions_lightgbm(black_box(next())).unwrap())
    });
    group.finish();
}

fn batches(c: &mut Criterion) {
    let eta = estimator(0);
    let mut group = c.benchmark_group("predict/batch");
    group.sample_size(10);
    for n_rows in [1_000, 10_000] {
        let queries = sample_queries(n_rows);
        group.throughput(Throughput::Elements(queries.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(n_rows),
            &queries,
            |b, queries| b.iter(|| eta.estimate_batch(black_box(queries), false)),
        );
    }
    group.finish();
}

criterion_group!(benches, one_request, boosters, batches);
criterion_main!(benches);
