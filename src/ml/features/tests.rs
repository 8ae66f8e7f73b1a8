use chrono::DateTime;

use crate::domain::eta::{EstimateEta, Stop};
use crate::domain::geo::GeoPoint;
use crate::domain::rules::DriverState;
use crate::domain::vehicle::VehicleClass;
use polars::prelude::*;
use proptest::prelude::*;

use super::*;
use crate::ml::history::files::load_history;
use crate::ml::history::ValidationOptions;

fn example_trips() -> DataFrame {
    let history = load_history(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/data/example")),
        &ValidationOptions::default(),
    )
    .unwrap();
    let mut trips = history.trips;
    let partners = Column::new("partner".into(), vec!["north-freight"; trips.height()]);
    trips.with_column(partners).unwrap();
    trips
}

fn value(frame: &DataFrame, name: &str, row: usize) -> f64 {
    frame
        .column(name)
        .unwrap()
        .cast(&DataType::Float64)
        .unwrap()
        .f64()
        .unwrap()
        .get(row)
        .unwrap_or(f64::NAN)
}

#[test]
fn a_serving_request_gets_the_features_of_the_same_trip_in_a_history() {
    let trips = example_trips();
    let rules = RulesEta::default();
    let partners = vec!["north-freight".to_owned()];
    let training = features(&trips, &partners, &rules).unwrap();
    // The second example trip, asked as a request: Rungis to Lyon Saint-Exupery with one stop.
    let query = EtaQuery {
        origin: GeoPoint::new(48.7550, 2.3520).unwrap(),
        destination: GeoPoint::new(45.7250, 5.0800).unwrap(),
        departure: DateTime::parse_from_rfc3339("2025-03-04T13:05:00+01:00").unwrap(),
        vehicle: VehicleClass::Rigid,
        stops: vec![Stop {
            location: GeoPoint::new(47.3, 3.9).unwrap(),
            dwell: TimeDelta::minutes(35),
            window: None,
        }],
        driver: DriverState::default(),
        context: Default::default(),
    };
    let mut request = query_frame(&query, "north-freight", 0.0).unwrap();
    request
        .with_column(Column::new("load_tonnes".into(), [Some(6.2)]))
        .unwrap();
    let serving = features(&request, &partners, &rules).unwrap();
    for name in FEATURES {
        let (served, trained) = (value(&serving, name, 0), value(&training, name, 1));
        assert!(
            served == trained || (served.is_nan() && trained.is_nan()),
            "{name}: {served} vs {trained}"
        );
    }
}

#[test]
fn calendar_vehicle_and_partner_columns() {
    let rules = RulesEta::default();
    let at = |text: &str| {
        let query = EtaQuery {
            origin: GeoPoint::new(50.63, 3.06).unwrap(),
            destination: GeoPoint::new(43.30, 5.37).unwrap(),
            departure: DateTime::parse_from_rfc3339(text).unwrap(),
            vehicle: VehicleClass::Van,
            stops: Vec::new(),
            driver: DriverState::default(),
            context: Default::default(),
        };
        query_frame(&query, "someone-new", 0.0).unwrap()
    };
    let frame = at("2025-12-25T08:30:00+01:00");
    let row = features(&frame, &["known".to_owned()], &rules).unwrap();
    assert_eq!(value(&row, "is_holiday", 0), 1.0);
    assert_eq!(value(&row, "is_holiday_eve", 0), 0.0);
    assert_eq!(value(&row, "local_hour", 0), 8.0);
    assert_eq!(value(&row, "month", 0), 12.0);
    assert_eq!(value(&row, "weekday", 0), 4.0, "Thursday, ISO numbering");
    assert_eq!(value(&row, "vehicle_code", 0), 0.0);
    assert_eq!(value(&row, "partner_code", 0), f64::from(UNSEEN_PARTNER));
    assert_eq!(value(&row, "origin_cell_lat", 0), 50.5);
    let eve = features(
        &at("2025-12-24T23:30:00+01:00"),
        &["someone-new".to_owned()],
        &rules,
    )
    .unwrap();
    assert_eq!(value(&eve, "is_holiday_eve", 0), 1.0);
    assert_eq!(value(&eve, "partner_code", 0), 1.0);
    // The prior is the rules estimate itself: no breaks for a van, driving within the total.
    assert_eq!(value(&row, "rules_break_minutes", 0), 0.0);
    assert!(value(&row, "rules_driving_minutes", 0) <= value(&row, "rules_minutes", 0));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The polars expressions against the domain's plain functions, on whole frames.
    #[test]
    fn distance_and_bearing_match_the_domain(
        points in prop::collection::vec((-80.0f64..80.0, -179.0f64..179.0, -80.0f64..80.0, -179.0f64..179.0), 1..40)
    ) {
        let frame = DataFrame::new(points.len(), vec![
            Column::new("a".into(), points.iter().map(|p| p.0).collect::<Vec<_>>()),
            Column::new("b".into(), points.iter().map(|p| p.1).collect::<Vec<_>>()),
            Column::new("c".into(), points.iter().map(|p| p.2).collect::<Vec<_>>()),
            Column::new("d".into(), points.iter().map(|p| p.3).collect::<Vec<_>>()),
        ]).unwrap();
        let out = frame.lazy().select([
            crow_km("a", "b", "c", "d").alias("km"),
            bearing_radians("a", "b", "c", "d").alias("bearing"),
        ]).collect().unwrap();
        for (row, &(lat1, lon1, lat2, lon2)) in points.iter().enumerate() {
            let (from, to) = (GeoPoint::new(lat1, lon1).unwrap(), GeoPoint::new(lat2, lon2).unwrap());
            prop_assert!((value(&out, "km", row) - from.distance_km(to)).abs() < 1e-6);
            let expected = from.bearing_deg(to).to_radians();
            let got = value(&out, "bearing", row).rem_euclid(2.0 * PI);
            let gap = (got - expected).abs();
            prop_assert!(gap < 1e-9 || (gap - 2.0 * PI).abs() < 1e-9, "{} vs {}", got, expected);
        }
    }
}

fn any_query() -> impl Strategy<Value = (EtaQuery, f64, u32)> {
    let point = (42.0f64..51.0, -4.5f64..8.0);
    (
        point.clone(),
        point.clone(),
        // Two years of departures, so holidays, their eves and the clock changes come up.
        0i64..(2 * 365 * 24 * 60),
        0usize..3,
        prop::collection::vec((point, 0i64..240), 0..4),
        (0i64..=600, 0i64..=270),
        (0.0f64..900.0, 0u32..4),
    )
        .prop_map(
            |(origin, destination, minute, vehicle, stops, driver, (elapsed, partner))| {
                let departure = DateTime::parse_from_rfc3339("2025-01-01T00:00:00+01:00").unwrap()
                    + TimeDelta::minutes(minute);
                let vehicle = [
                    VehicleClass::Van,
                    VehicleClass::Rigid,
                    VehicleClass::Articulated,
                ][vehicle];
                let (today, since_break) = (driver.0, driver.1.min(driver.0));
                let query = EtaQuery {
                    origin: GeoPoint::new(origin.0, origin.1).unwrap(),
                    destination: GeoPoint::new(destination.0, destination.1).unwrap(),
                    departure,
                    vehicle,
                    stops: stops
                        .into_iter()
                        .map(|((lat, lon), dwell)| Stop {
                            location: GeoPoint::new(lat, lon).unwrap(),
                            dwell: TimeDelta::minutes(dwell),
                            window: None,
                        })
                        .collect(),
                    driver: DriverState::new(
                        TimeDelta::minutes(today),
                        TimeDelta::minutes(since_break),
                    )
                    .unwrap(),
                    context: Default::default(),
                };
                (query, elapsed, partner)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The serving fast path computes what the polars path computes, feature by feature.
    #[test]
    fn the_fast_path_equals_the_frame_path((query, elapsed, partner_code) in any_query()) {
        let rules = RulesEta::default();
        let partners: Vec<String> = (1..=3).map(|i| format!("p{i}")).collect();
        let partner = if partner_code == 0 { "someone-new".to_owned() } else { partners[partner_code as usize - 1].clone() };
        let frame = features(&query_frame(&query, &partner, elapsed).unwrap(), &partners, &rules).unwrap();
        let canonical = CanonicalTrip::of(&query).query();
        let (estimate, strict) = (rules.estimate(&canonical), rules.strict().estimate(&canonical));
        let row = feature_row(&query, partner_code, elapsed, Prior { estimate: &estimate, strict: &strict });
        for (slot, name) in FEATURES.iter().enumerate() {
            let column = frame.column(name).unwrap().cast(&DataType::Float64).unwrap();
            let expected = column.f64().unwrap().get(0).unwrap_or(f64::NAN);
            let got = row[slot];
            prop_assert!(
                (expected.is_nan() && got.is_nan()) || (expected - got).abs() <= 1e-9 * expected.abs().max(1.0),
                "{}: frame {} fast {}", name, expected, got
            );
        }
    }
}

/// The driver's state inferred from pings against the simulation's own timeline: driving
/// since the last stop of 45 minutes or more, and since the last stop of 8 h 30 or more.
#[test]
fn driving_state_from_pings_follows_the_true_timeline() {
    let dir = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/sample/carrier-08"
    ));
    let history = load_history(dir, &ValidationOptions::default()).unwrap();
    let state = live::driving_state(history.pings.as_ref().unwrap()).unwrap();
    let segments = crate::ml::history::files::read_table(&dir.join("segments.parquet")).unwrap();
    let millis = |frame: &DataFrame, name: &str| -> Vec<i64> {
        frame
            .column(name)
            .unwrap()
            .as_materialized_series()
            .to_physical_repr()
            .i64()
            .unwrap()
            .iter()
            .map(Option::unwrap)
            .collect()
    };
    let texts = |frame: &DataFrame, name: &str| -> Vec<String> {
        frame
            .column(name)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|v| v.unwrap().to_owned())
            .collect()
    };
    let (seg_trip, seg_kind) = (texts(&segments, "trip_id"), texts(&segments, "kind"));
    let (seg_start, seg_end) = (millis(&segments, "start"), millis(&segments, "end"));
    let (ping_trip, ping_at) = (texts(&state, "trip_id"), millis(&state, "timestamp"));
    let today = state
        .column("driven_today_minutes")
        .unwrap()
        .f64()
        .unwrap()
        .clone();
    let since_break = state
        .column("driven_since_break_minutes")
        .unwrap()
        .f64()
        .unwrap()
        .clone();
    let (mut today_error, mut break_error) = (0.0, 0.0);
    for ping in 0..state.height() {
        // The truth by a plain walk over the trip's segments up to the ping: a stop (any
        // run of segments other than driving) resets what it is long enough to reset.
        let (mut true_today, mut true_since_break, mut stopped) = (0.0f64, 0.0f64, 0.0f64);
        let reset = |stopped: f64, today: &mut f64, since_break: &mut f64| {
            if stopped >= 45.0 {
                *since_break = 0.0;
            }
            if stopped >= 8.5 * 60.0 {
                *today = 0.0;
            }
        };
        for seg in (0..segments.height()).filter(|s| seg_trip[*s] == ping_trip[ping]) {
            if seg_start[seg] >= ping_at[ping] {
                continue;
            }
            let minutes = (seg_end[seg].min(ping_at[ping]) - seg_start[seg]) as f64 / 60_000.0;
            if seg_kind[seg] == "drive" {
                reset(stopped, &mut true_today, &mut true_since_break);
                stopped = 0.0;
                true_today += minutes;
                true_since_break += minutes;
            } else {
                stopped += minutes;
            }
        }
        // After the last segment the truck waits at the destination until it is unloaded.
        let last_end = (0..segments.height())
            .filter(|s| seg_trip[*s] == ping_trip[ping])
            .map(|s| seg_end[s])
            .max()
            .unwrap();
        if ping_at[ping] > last_end {
            stopped += (ping_at[ping] - last_end) as f64 / 60_000.0;
        }
        reset(stopped, &mut true_today, &mut true_since_break);
        today_error += (today.get(ping).unwrap() - true_today).abs();
        break_error += (since_break.get(ping).unwrap() - true_since_break).abs();
    }
    let n = state.height() as f64;
    assert!(n > 5_000.0, "{n} pings");
    let (today_mae, break_mae) = (today_error / n, break_error / n);
    assert!(
        today_mae < 10.0,
        "driving today off by {today_mae:.1} min on average"
    );
    assert!(
        break_mae < 10.0,
        "driving since the break off by {break_mae:.1} min on average"
    );
}
