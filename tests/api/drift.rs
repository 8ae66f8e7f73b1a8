//! Arrivals feed back: on a world whose trips run 10% slower than the months the bundled model
//! learnt from, the corrections learnt from the first arrivals bring the next answers' bias
//! and band back, through the same forecaster the API and the tracker answer with.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use etape::domain::correction::{CorrectionParams, Corrections, Scored};
use etape::domain::eta::{EtaQuery, RulesEta, TripContext};
use etape::domain::forecast::Forecaster;
use etape::domain::risk::{ArrivalBand, RiskThresholds};
use etape::domain::rules::DriverState;
use etape::ml::history::files::FileFormat;
use etape::ml::model::serve::ModelEta;
use etape::sim::trips::{Period, TripRecord};
use etape::sim::SimulationConfig;

use crate::helpers::BUNDLED_MODEL;

/// Later months' trips of a carrier the model never saw, each 10% slower than simulated.
fn slower_world() -> Vec<(TripRecord, DateTime<Utc>)> {
    let config = SimulationConfig {
        carriers: 1,
        trips: 2_400,
        seed: 2_027,
        ping_share: 0.0,
        period: Period {
            start: NaiveDate::from_ymd_opt(2026, 9, 1).unwrap(),
            days: 90,
        },
        format: FileFormat::Parquet,
        laws: Default::default(),
    };
    let carriers = etape::sim::fleet(&config);
    let history = etape::sim::simulate_carrier(&config, 0, &carriers[0], &|_| {});
    let mut trips: Vec<(TripRecord, DateTime<Utc>)> = history
        .trips
        .into_iter()
        .filter(|trip| trip.stops == 0)
        .map(|trip| {
            let took = (trip.arrival - trip.departure).num_milliseconds() as f64 * 1.1;
            let arrived = trip.departure + TimeDelta::milliseconds(took as i64);
            (trip, arrived)
        })
        .collect();
    trips.sort_by_key(|(trip, _)| trip.departure);
    trips
}

fn query(trip: &TripRecord) -> EtaQuery {
    EtaQuery {
        origin: trip.origin,
        destination: trip.destination,
        departure: trip.departure.fixed_offset(),
        vehicle: trip.vehicle,
        stops: Vec::new(),
        driver: DriverState::default(),
        context: TripContext::default(),
    }
}

fn minutes(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 60_000.0
}

/// Mean signed error as a share of the mean trip, and the band's coverage.
fn judged(answers: &[(ArrivalBand, DateTime<Utc>, DateTime<Utc>)]) -> (f64, f64) {
    let error: f64 = answers
        .iter()
        .map(|(band, _, arrived)| minutes(band.p50, *arrived))
        .sum();
    let duration: f64 = answers
        .iter()
        .map(|(_, from, arrived)| minutes(*from, *arrived))
        .sum();
    let held = answers
        .iter()
        .filter(|(band, _, arrived)| band.p10 <= *arrived && *arrived <= band.p90)
        .count();
    (error / duration, held as f64 / answers.len() as f64)
}

#[test]
fn a_world_ten_percent_slower_than_the_model_learnt_is_corrected_by_its_arrivals() {
    let (_, served) = etape::training::registry::load(Path::new(BUNDLED_MODEL)).unwrap();
    let estimator = Arc::new(ModelEta::new(RulesEta::default(), Some(served), 1));
    let corrections = Arc::new(Corrections::new(CorrectionParams::default()));
    let forecaster = Forecaster::new(estimator, None)
        .with_corrections(corrections.clone(), RiskThresholds::default());
    let trips = slower_world();
    let learning = trips.len() * 3 / 5;
    let (mut raw, mut corrected) = (Vec::new(), Vec::new());
    for (at, (trip, arrived)) in trips.iter().enumerate() {
        let answer = forecaster.answer("new-sme", query(trip), TimeDelta::zero(), false);
        let from = answer.from();
        if at >= learning {
            raw.push((answer.model_band, from, *arrived));
            corrected.push((answer.estimate.band, from, *arrived));
        }
        corrections.record(
            "new-sme",
            [Scored {
                from,
                band: answer.model_band,
                arrived: *arrived,
            }],
        );
    }
    let (raw_bias, raw_coverage) = judged(&raw);
    let (bias, coverage) = judged(&corrected);
    let figures = format!(
        "{} later trips: bias {:.1}% of the trip, coverage {:.3}; as the model answers, bias \
         {:.1}% and coverage {:.3}",
        corrected.len(),
        bias * 100.0,
        coverage,
        raw_bias * 100.0,
        raw_coverage
    );
    // `cargo test --test api drift -- --nocapture` prints the figures.
    println!("{figures}");
    assert!(corrected.len() >= 500, "{figures}");
    assert!(
        raw_bias > 0.05,
        "the drift shows before correction: {figures}"
    );
    assert!(bias.abs() < 0.03, "{figures}");
    assert!((0.77..=0.83).contains(&coverage), "{figures}");
    // The organisation sees what was learnt.
    let shown = corrections.of("new-sme");
    assert!(!shown.is_empty());
    assert!(
        shown.iter().all(|group| group.correction.factor > 1.0),
        "{shown:?}"
    );
}
