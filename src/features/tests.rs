use chrono::DateTime;
use polars::prelude::*;
use proptest::prelude::*;

use super::*;
use crate::history::files::load_history;
use crate::history::ValidationOptions;

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
        .unwrap()
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
    };
    let mut request = query_frame(&query, "north-freight").unwrap();
    request
        .with_column(Column::new("load_tonnes".into(), [Some(6.2)]))
        .unwrap();
    let serving = features(&request, &partners, &rules).unwrap();
    for name in FEATURES {
        assert_eq!(
            value(&serving, name, 0),
            value(&training, name, 1),
            "{name}"
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
        };
        query_frame(&query, "someone-new").unwrap()
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
