use std::path::Path;

use polars::prelude::*;
use proptest::prelude::*;

use super::files::{load_history, parse_table, write_table, FileFormat};
use super::{validate, Table, ValidationOptions, ValidationReport};

const TRIPS: &str = "\
trip_id,vehicle_class,origin_lat,origin_lon,destination_lat,destination_lon,departure_time,arrival_time,distance_km,stops,dwell_minutes,load_tonnes
LIL-MRS-0412,articulated,50.6292,3.0573,43.3026,5.3691,2025-03-04T05:40:00+01:00,2025-03-05T07:55:00+01:00,1003.5,0,0,21.4
RUN-LYS-0077,rigid,48.7550,2.3520,45.7250,5.0800,2025-03-04T13:05:00+01:00,2025-03-04T20:47:00+01:00,472.0,1,35,6.2
";

const PINGS: &str = "\
trip_id,timestamp,lat,lon,speed_kmh
LIL-MRS-0412,2025-03-04T05:41:00+01:00,50.6290,3.0580,12.0
RUN-LYS-0077,2025-03-04T13:06:00+01:00,48.7561,2.3544,
";

fn frame(text: &str) -> DataFrame {
    parse_table(text.as_bytes().to_vec()).unwrap()
}

fn check(trips: &str, pings: Option<&str>) -> Result<super::TripHistory, ValidationReport> {
    validate(
        &frame(trips),
        pings.map(frame).as_ref(),
        &ValidationOptions::default(),
    )
}

#[test]
fn the_example_history_passes_with_typed_columns() {
    let history = load_history(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/data/example")),
        &ValidationOptions::default(),
    )
    .unwrap();
    assert_eq!(history.trips.height(), 2);
    let departure = history.trips.column("departure_time").unwrap();
    assert_eq!(
        departure.dtype(),
        &DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
    );
    let offsets = history
        .trips
        .column("departure_time_offset_minutes")
        .unwrap();
    assert_eq!(offsets.i32().unwrap().get(0), Some(60));
    assert_eq!(
        history.trips.column("stops").unwrap().dtype(),
        &DataType::UInt32
    );
    let pings = history.pings.unwrap();
    assert_eq!(pings.height(), 5);
    assert_eq!(pings.column("speed_kmh").unwrap().null_count(), 1);
}

/// Replaces the `field`-th value of data row `row` (from 1) of a CSV text.
fn with_value(text: &str, row: usize, field: usize, value: &str) -> String {
    text.lines()
        .enumerate()
        .map(|(line_idx, line)| {
            if line_idx != row {
                return line.to_owned();
            }
            let mut fields: Vec<&str> = line.split(',').collect();
            fields[field] = value;
            fields.join(",")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn each_defect_is_reported_with_its_row_column_and_reason_and_nothing_is_kept() {
    let no_class: String = TRIPS
        .lines()
        .map(|line| {
            line.split(',')
                .enumerate()
                .filter(|(i, _)| *i != 1)
                .map(|(_, f)| f)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let duplicate = with_value(TRIPS, 2, 0, "LIL-MRS-0412");
    // (trips, pings, then the expected table, row, column and words of the reason)
    type Case<'a> = (
        String,
        Option<String>,
        Table,
        Option<usize>,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            no_class,
            None,
            Table::Trips,
            None,
            "vehicle_class",
            "missing",
        ),
        (
            with_value(TRIPS, 2, 1, "truck"),
            None,
            Table::Trips,
            Some(2),
            "vehicle_class",
            "unknown vehicle class",
        ),
        (
            with_value(TRIPS, 1, 2, "north"),
            None,
            Table::Trips,
            Some(1),
            "origin_lat",
            "not a number",
        ),
        (
            with_value(TRIPS, 2, 5, "190"),
            None,
            Table::Trips,
            Some(2),
            "destination_lon",
            "longitude",
        ),
        (
            with_value(TRIPS, 1, 0, ""),
            None,
            Table::Trips,
            Some(1),
            "trip_id",
            "missing",
        ),
        (
            with_value(TRIPS, 2, 6, "2025-03-04T13:05:00"),
            None,
            Table::Trips,
            Some(2),
            "departure_time",
            "no offset",
        ),
        (
            with_value(TRIPS, 1, 7, "yesterday"),
            None,
            Table::Trips,
            Some(1),
            "arrival_time",
            "RFC 3339",
        ),
        (
            with_value(TRIPS, 2, 7, "2025-03-04T12:00:00+01:00"),
            None,
            Table::Trips,
            Some(2),
            "arrival_time",
            "after departure_time",
        ),
        (
            with_value(TRIPS, 1, 7, "2025-03-04T09:40:00+01:00"),
            None,
            Table::Trips,
            Some(1),
            "arrival_time",
            "implausible speed",
        ),
        (
            with_value(TRIPS, 1, 7, "2025-03-20T09:40:00+01:00"),
            None,
            Table::Trips,
            Some(1),
            "arrival_time",
            "more than 14 days",
        ),
        (
            with_value(TRIPS, 1, 8, "300"),
            None,
            Table::Trips,
            Some(1),
            "distance_km",
            "shorter",
        ),
        (
            with_value(TRIPS, 2, 9, "1.5"),
            None,
            Table::Trips,
            Some(2),
            "stops",
            "whole number",
        ),
        (
            with_value(TRIPS, 2, 11, "-2"),
            None,
            Table::Trips,
            Some(2),
            "load_tonnes",
            "negative",
        ),
        (
            with_value(TRIPS, 2, 10, "600"),
            None,
            Table::Trips,
            Some(2),
            "dwell_minutes",
            "whole trip",
        ),
        (
            duplicate,
            None,
            Table::Trips,
            Some(2),
            "trip_id",
            "duplicate trip_id, first at row 1",
        ),
        (
            TRIPS.into(),
            Some(with_value(PINGS, 2, 0, "NOPE-1")),
            Table::Pings,
            Some(2),
            "trip_id",
            "no trip",
        ),
        (
            TRIPS.into(),
            Some(with_value(PINGS, 1, 1, "2025-03-04T05:39:00+01:00")),
            Table::Pings,
            Some(1),
            "timestamp",
            "outside",
        ),
        (
            TRIPS.into(),
            Some(with_value(PINGS, 2, 3, "x")),
            Table::Pings,
            Some(2),
            "lon",
            "not a number",
        ),
        (
            TRIPS.into(),
            Some(with_value(PINGS, 1, 4, "250")),
            Table::Pings,
            Some(1),
            "speed_kmh",
            "160",
        ),
        (
            TRIPS.into(),
            Some(format!(
                "{PINGS}LIL-MRS-0412,2025-03-04T05:41:00+01:00,50.6,3.05,10\n"
            )),
            Table::Pings,
            Some(3),
            "timestamp",
            "duplicate ping",
        ),
        (
            with_value(TRIPS, 2, 9, &format!("1{}", "0".repeat(40))),
            None,
            Table::Trips,
            Some(2),
            "stops",
            "more than 100 stops",
        ),
        (
            with_value(TRIPS, 1, 6, "0001-03-04T05:40:00+01:00"),
            None,
            Table::Trips,
            Some(1),
            "departure_time",
            "outside 1990-01-01 to 2100-01-01",
        ),
        (
            with_value(TRIPS, 1, 7, "9999-03-05T07:55:00+01:00"),
            None,
            Table::Trips,
            Some(1),
            "arrival_time",
            "outside 1990-01-01 to 2100-01-01",
        ),
        (
            with_value(TRIPS, 1, 0, &"X".repeat(1 << 17)),
            None,
            Table::Trips,
            Some(1),
            "trip_id",
            "1 to 128 characters",
        ),
        (
            with_value(TRIPS, 2, 0, "RUN-LYS-\u{202E}7700"),
            None,
            Table::Trips,
            Some(2),
            "trip_id",
            "bidirectional control U+202E",
        ),
        (
            with_value(TRIPS, 2, 0, "RUN\u{1}LYS-0077"),
            None,
            Table::Trips,
            Some(2),
            "trip_id",
            "control character U+0001",
        ),
        (
            TRIPS.into(),
            Some(with_value(PINGS, 1, 1, "9999-03-04T05:41:00+01:00")),
            Table::Pings,
            Some(1),
            "timestamp",
            "outside 1990-01-01 to 2100-01-01",
        ),
    ];
    for (trips, pings, table, row, column, reason) in cases {
        let report = check(&trips, pings.as_deref())
            .expect_err(&format!("{column}: {reason} should be refused"));
        assert_eq!(report.total, 1, "{report}");
        let problem = &report.problems[0];
        assert_eq!(
            (problem.table, problem.row, problem.column.as_str()),
            (table, row, column),
            "{report}"
        );
        assert!(problem.reason.contains(reason), "{report}");
        assert!(report.to_string().contains("nothing was kept"));
    }
}

#[test]
fn the_bounds_themselves_pass() {
    let trips = with_value(TRIPS, 2, 9, "100");
    let trips = with_value(&trips, 1, 0, &"T".repeat(128));
    let trips = with_value(&trips, 2, 0, "Müller-0077");
    let trips = with_value(&trips, 1, 6, "1990-01-01T00:00:00Z");
    let trips = with_value(&trips, 1, 7, "1990-01-01T20:00:00Z");
    let history = check(&trips, None).unwrap();
    assert_eq!(history.trips.height(), 2);
}

#[test]
fn problems_beyond_the_limit_are_counted_not_listed() {
    let mut trips = TRIPS.lines().next().unwrap().to_owned();
    for row in 0..250 {
        trips.push_str(&format!(
            "\nT{row},truck,50,3,43,5,2025-03-04T05:40:00+01:00,2025-03-05T07:55:00+01:00,,,,"
        ));
    }
    let report = check(&trips, None).unwrap_err();
    assert_eq!(report.total, 250);
    assert_eq!(report.problems.len(), 100);
    assert!(report.to_string().contains("and 150 more"));
}

#[test]
fn parquet_needs_time_zone_aware_timestamps() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("trips.parquet");
    let history = check(TRIPS, None).unwrap();
    let mut typed = history.trips.clone();
    write_table(&mut typed, &path, FileFormat::Parquet).unwrap();
    let reread = load_history(&path, &ValidationOptions::default()).unwrap();
    // A UTC timestamp keeps the instant but not the offset the carrier wrote.
    let offsets = [
        "departure_time_offset_minutes",
        "arrival_time_offset_minutes",
    ];
    assert!(reread
        .trips
        .drop_many(offsets)
        .equals_missing(&history.trips.drop_many(offsets)));

    let mut naive = history.trips.clone();
    let column = naive
        .column("departure_time")
        .unwrap()
        .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
        .unwrap();
    naive.with_column(column).unwrap();
    write_table(&mut naive, &path, FileFormat::Parquet).unwrap();
    let error = load_history(&path, &ValidationOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("departure_time") && error.contains("no time zone"),
        "{error}"
    );
}

#[test]
fn unreadable_files_are_errors_not_panics() {
    for bytes in [
        &b"\x1f\x8b\x08garbage"[..],
        b"PAR1 not really parquet",
        b"\xff\xfe\x00binary",
        b"",
    ] {
        let outcome = parse_table(bytes.to_vec());
        if let Ok(frame) = outcome {
            assert!(validate(&frame, None, &ValidationOptions::default()).is_err());
        }
    }
}

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("articulated".to_owned()),
        Just("2025-03-04T05:40:00+01:00".to_owned()),
        Just("2025-03-04T05:40:00".to_owned()),
        Just("NaN".to_owned()),
        Just("inf".to_owned()),
        Just("\"quoted, comma\"".to_owned()),
        Just("\"".to_owned()),
        (-200.0f64..200.0).prop_map(|value| value.to_string()),
        "[a-zA-Z0-9 :+.-]{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any table, however broken, is either accepted or refused with a report; never a panic.
    #[test]
    fn the_reader_never_panics_on_csv_like_input(
        header in prop::collection::vec(prop_oneof![
            Just("trip_id"), Just("vehicle_class"), Just("origin_lat"), Just("origin_lon"),
            Just("destination_lat"), Just("destination_lon"), Just("departure_time"),
            Just("arrival_time"), Just("distance_km"), Just("stops"), Just("x"),
        ], 1..12),
        rows in prop::collection::vec(prop::collection::vec(field(), 0..14), 0..20),
    ) {
        let mut text = header.join(",");
        for row in rows {
            text.push('\n');
            text.push_str(&row.join(","));
        }
        if let Ok(frame) = parse_table(text.into_bytes()) {
            let _ = validate(&frame, Some(&frame), &ValidationOptions::default());
        }
    }

    #[test]
    fn the_reader_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(frame) = parse_table(bytes) {
            let _ = validate(&frame, None, &ValidationOptions::default());
        }
    }
}
