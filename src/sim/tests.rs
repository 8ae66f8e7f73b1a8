use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use super::trips::{Period, TripSimulator};
use super::*;
use crate::domain::calendar::BanCalendar;
use crate::domain::geo::Territory;
use crate::domain::rules::{plan_trip, Activity, DriverState, RulesPolicy, TripPlan};
use crate::domain::vehicle::{Carriage, VehicleClass};
use crate::ml::history::files::load_history;
use crate::ml::history::ValidationOptions;

fn config(trips: usize, ping_share: f64, format: FileFormat) -> SimulationConfig {
    SimulationConfig {
        carriers: 4,
        trips,
        seed: 11,
        ping_share,
        period: Period {
            start: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
            days: 120,
        },
        format,
        laws: Laws::default(),
    }
}

fn all_trips(config: &SimulationConfig) -> Vec<TripRecord> {
    fleet(config)
        .iter()
        .enumerate()
        .flat_map(|(carrier_idx, carrier)| {
            simulate_carrier(config, carrier_idx, carrier, &|_| {}).trips
        })
        .collect()
}

#[test]
fn carriers_range_from_tens_of_thousands_of_trips_to_a_few_hundred() {
    let config = SimulationConfig {
        carriers: 12,
        trips: 100_000,
        ..config(0, 0.0, FileFormat::Parquet)
    };
    let sizes: Vec<usize> = fleet(&config)
        .iter()
        .map(|carrier| carrier.n_trips)
        .collect();
    assert!(sizes[0] > 25_000, "{sizes:?}");
    assert!(
        sizes.iter().filter(|size| **size < 3_000).count() >= 5,
        "{sizes:?}"
    );
}

#[test]
fn the_same_seed_writes_the_same_bytes_and_the_reader_accepts_them() {
    for format in [FileFormat::Parquet, FileFormat::CsvGz] {
        let config = config(600, 0.3, format);
        let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let summary = write_world(&config, first.path(), &|_| {}).unwrap();
        write_world(&config, second.path(), &|_| {}).unwrap();
        assert!(summary.pings > 0);
        for (name, trips, _) in &summary.carriers {
            let directory = first.path().join(name);
            let history = load_history(&directory, &ValidationOptions::default())
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(history.trips.height(), *trips);
            for table in ["trips", "pings"] {
                let file = format!("{table}.{}", format.extension());
                let a = std::fs::read(directory.join(&file)).unwrap();
                let b = std::fs::read(second.path().join(name).join(&file)).unwrap();
                assert!(a == b, "{name}/{file} differs between runs");
            }
        }
        for table in ["weather", "traffic"] {
            let file = format!("{table}.{}", format.extension());
            assert_eq!(
                std::fs::read(first.path().join(&file)).unwrap(),
                std::fs::read(second.path().join(&file)).unwrap()
            );
        }
    }
}

/// The shortest lawful duration of a drive of `km` at the 90 km/h limit, with nothing else.
fn lawful_minimum(km: f64, departure: DateTime<Utc>) -> TimeDelta {
    let driving = TimeDelta::seconds((km / 90.0 * 3600.0) as i64);
    let plan = TripPlan {
        departure,
        vehicle: VehicleClass::Articulated,
        driver: DriverState::default(),
        activities: vec![Activity::Drive {
            duration: driving,
            territory: Territory::Elsewhere,
            region: None,
        }],
        carriage: Carriage::default(),
    };
    plan_trip(&plan, &BanCalendar::default(), RulesPolicy::default()).duration()
}

#[test]
fn no_long_articulated_trip_beats_the_driving_rules() {
    let trips = all_trips(&config(4_000, 0.0, FileFormat::Parquet));
    let long: Vec<_> = trips
        .iter()
        .filter(|trip| trip.vehicle == VehicleClass::Articulated && trip.distance_km >= 900.0)
        .collect();
    assert!(long.len() > 20, "{} long trips", long.len());
    for trip in long {
        let minimum = lawful_minimum(trip.distance_km * 0.98, trip.departure);
        assert!(
            trip.arrival - trip.departure >= minimum,
            "{} km in {} but the rules need {minimum}",
            trip.distance_km,
            trip.arrival - trip.departure
        );
        // At least two 45-minute breaks come on top of the driving.
        assert!(
            minimum
                >= TimeDelta::seconds((trip.distance_km * 0.98 / 90.0 * 3600.0) as i64)
                    + TimeDelta::minutes(90)
        );
    }
}

#[test]
fn a_trip_into_the_weekend_ban_takes_longer_than_the_same_trip_on_a_tuesday() {
    let conditions = Conditions::new(3);
    let bans = BanCalendar::default();
    let period = Period {
        start: NaiveDate::from_ymd_opt(2025, 3, 1).unwrap(),
        days: 30,
    };
    let simulator = TripSimulator::new(&conditions, &bans, period);
    let carriers = fleet(&config(1_000, 0.0, FileFormat::Parquet));
    let lane = (18, 1); // Delta 3 Dourges to Marseille-Fos
    let duration = |departure: &str| {
        let departure = DateTime::parse_from_rfc3339(departure)
            .unwrap()
            .with_timezone(&Utc);
        let mut rng = trip_rng(3, 0, 0);
        let (trip, _, _) = simulator.trip(
            &carriers[0],
            "T".into(),
            VehicleClass::Articulated,
            lane,
            departure,
            &mut rng,
        );
        trip.arrival - trip.departure
    };
    let tuesday = duration("2025-03-04T17:00:00+01:00");
    let saturday = duration("2025-03-08T17:00:00+01:00");
    assert!(
        saturday > tuesday + TimeDelta::hours(12),
        "saturday {saturday}, tuesday {tuesday}"
    );
}

#[test]
fn across_the_data_lanes_that_cross_a_ban_are_slower_than_on_tuesdays() {
    let trips = all_trips(&config(6_000, 0.0, FileFormat::Parquet));
    let bans = BanCalendar::default();
    let mut by_lane: HashMap<(usize, usize), (Vec<f64>, Vec<f64>)> = HashMap::new();
    for trip in trips
        .iter()
        .filter(|trip| trip.vehicle != VehicleClass::Van)
    {
        let hours = (trip.arrival - trip.departure).num_minutes() as f64 / 60.0;
        let crosses_ban = bans
            .bans_between(
                trip.departure.date_naive() - TimeDelta::days(1),
                trip.arrival.date_naive(),
            )
            .iter()
            .any(|ban| ban.start < trip.arrival && trip.departure < ban.end);
        let entry = by_lane
            .entry((trip.origin_place, trip.destination_place))
            .or_default();
        if crosses_ban {
            entry.0.push(hours);
        } else if trip.departure.format("%a").to_string() == "Tue" {
            entry.1.push(hours);
        }
    }
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64;
    let compared: Vec<(f64, f64)> = by_lane
        .values()
        .filter(|(banned, tuesday)| !banned.is_empty() && !tuesday.is_empty())
        .map(|(banned, tuesday)| (mean(banned), mean(tuesday)))
        .collect();
    assert!(compared.len() >= 10, "{} lanes compared", compared.len());
    let slower = compared
        .iter()
        .filter(|(banned, tuesday)| banned > tuesday)
        .count();
    assert!(
        slower as f64 >= 0.8 * compared.len() as f64,
        "{slower} of {} lanes slower",
        compared.len()
    );
}
