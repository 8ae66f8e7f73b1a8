//! The strict check of a history: every row, every column, every rule, or nothing is kept.

use std::collections::HashMap;

use chrono::{DateTime, Offset, TimeDelta, TimeZone as _, Utc};
use polars::prelude::*;

use super::{
    ColumnKind, ColumnSpec, Problem, Table, TripHistory, ValidationReport, PING_COLUMNS,
    TRIP_COLUMNS,
};
use crate::domain::geo::GeoPoint;
use crate::domain::ids::check_identifier;
use crate::domain::vehicle::VehicleClass;

/// Longest trip id: as long as a shipment's reference, and a bound on what an upload makes
/// the service hash, store and echo back in its problems.
pub const MAX_TRIP_ID_CHARS: usize = 128;

/// The plausibility bounds a history is held to.
#[derive(Debug, Clone)]
pub struct ValidationOptions {
    /// How many problems are reported in full; all are counted.
    pub max_problems: usize,
    /// Fastest plausible average over a whole trip, as the crow flies: road distance is longer
    /// and trucks are limited to 90 km/h, so 110 km/h is already generous for a van.
    pub max_crow_speed_kmh: f64,
    /// The longest plausible trip is `slow_allowance` (a ban weekend that runs into a holiday
    /// lasts 48 hours, a rest comes on top) plus the crow-flies distance at
    /// `min_crow_speed_kmh`: 300 km may take 5.5 days, not a week.
    pub slow_allowance: TimeDelta,
    pub min_crow_speed_kmh: f64,
    pub max_duration: TimeDelta,
    /// How far outside its trip's departure and arrival a ping may be.
    pub ping_tolerance: TimeDelta,
    pub max_ping_speed_kmh: f64,
    /// Largest load of any vehicle class (44 t is the French limit for a whole articulated
    /// vehicle; the payload is lower still).
    pub max_load_tonnes: f64,
    /// Most stops on one trip, as many as a shipment may have; more is a unit or a column
    /// mix-up, and the count must fit the table's 32-bit column.
    pub max_stops: u32,
    /// The span every timestamp must fall in: fleet GPS records begin in the 1990s, and a
    /// year such as 0001 or 9999 is a placeholder, not a trip, that would skew the calendar
    /// features.
    pub earliest: DateTime<Utc>,
    /// The end of that span.
    pub latest: DateTime<Utc>,
}

impl Default for ValidationOptions {
    fn default() -> Self {
        Self {
            max_problems: 100,
            max_crow_speed_kmh: 110.0,
            slow_allowance: TimeDelta::hours(72),
            min_crow_speed_kmh: 5.0,
            max_duration: TimeDelta::days(14),
            ping_tolerance: TimeDelta::zero(),
            max_ping_speed_kmh: 160.0,
            max_load_tonnes: 44.0,
            max_stops: 100,
            earliest: Utc.with_ymd_and_hms(1990, 1, 1, 0, 0, 0).unwrap(),
            latest: Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap(),
        }
    }
}

/// Checks raw tables (as read from CSV, all text, or from Parquet, typed) and returns the
/// typed history, or the report of everything wrong with it.
pub fn validate(
    trips: &DataFrame,
    pings: Option<&DataFrame>,
    options: &ValidationOptions,
) -> Result<TripHistory, ValidationReport> {
    let mut report = Reporter::new(options.max_problems);
    report.report.trip_rows = trips.height();
    report.report.ping_rows = pings.map_or(0, DataFrame::height);

    let trip_columns = extract(trips, &TRIP_COLUMNS, Table::Trips, options, &mut report);
    check_trips(&trip_columns, options, &mut report);
    let ping_columns = pings.map(|pings| {
        let columns = extract(pings, &PING_COLUMNS, Table::Pings, options, &mut report);
        check_pings(&columns, &trip_columns, options, &mut report);
        columns
    });
    if !report.report.is_clean() {
        let mut report = report.report;
        report.bad_trip_rows.sort_unstable();
        report.bad_trip_rows.dedup();
        return Err(report);
    }
    let build = |columns: &Columns, specs: &[ColumnSpec]| {
        typed_frame(columns, specs).map_err(|error| ValidationReport {
            total: 1,
            problems: vec![Problem {
                table: Table::Trips,
                row: None,
                column: String::new(),
                reason: format!("internal error building the typed table: {error}"),
            }],
            ..ValidationReport::default()
        })
    };
    Ok(TripHistory {
        trips: build(&trip_columns, &TRIP_COLUMNS)?,
        pings: ping_columns
            .map(|columns| build(&columns, &PING_COLUMNS))
            .transpose()?,
    })
}

struct Reporter {
    report: ValidationReport,
    max_problems: usize,
}

impl Reporter {
    fn new(max_problems: usize) -> Self {
        Self {
            report: ValidationReport::default(),
            max_problems,
        }
    }

    fn add(&mut self, table: Table, row: Option<usize>, column: &str, reason: impl Into<String>) {
        self.report.total += 1;
        if let (Table::Trips, Some(index)) = (table, row) {
            let record = index + 1;
            if self.report.bad_trip_rows.last() != Some(&record) {
                self.report.bad_trip_rows.push(record);
            }
        }
        if self.report.problems.len() < self.max_problems {
            self.report.problems.push(Problem {
                table,
                row: row.map(|index| index + 1),
                column: column.to_owned(),
                reason: reason.into(),
            });
        }
    }
}

/// One column's values after type checks; `None` where the value is missing or was refused.
enum Values {
    Text(Vec<Option<String>>),
    Number(Vec<Option<f64>>),
    /// UTC milliseconds and the local offset in minutes.
    Time(Vec<Option<(i64, i32)>>),
}

struct Columns {
    height: usize,
    values: HashMap<&'static str, Values>,
}

impl Columns {
    fn text(&self, name: &str, row: usize) -> Option<&str> {
        match self.values.get(name) {
            Some(Values::Text(values)) => values[row].as_deref(),
            _ => None,
        }
    }

    fn number(&self, name: &str, row: usize) -> Option<f64> {
        match self.values.get(name) {
            Some(Values::Number(values)) => values[row],
            _ => None,
        }
    }

    fn time(&self, name: &str, row: usize) -> Option<i64> {
        match self.values.get(name) {
            Some(Values::Time(values)) => values[row].map(|(millis, _)| millis),
            _ => None,
        }
    }
}

fn extract(
    frame: &DataFrame,
    specs: &[ColumnSpec],
    table: Table,
    options: &ValidationOptions,
    report: &mut Reporter,
) -> Columns {
    let height = frame.height();
    let mut values = HashMap::new();
    for spec in specs {
        let Ok(column) = frame.column(spec.name) else {
            if spec.required {
                report.add(table, None, spec.name, "required column is missing");
            }
            continue;
        };
        let series = column.as_materialized_series();
        let extracted = match spec.kind {
            ColumnKind::Text | ColumnKind::VehicleClass => {
                Values::Text(text(series, spec, table, report))
            }
            ColumnKind::Timestamp => {
                let mut values = timestamps(series, spec, table, report);
                refuse_outside_span(&mut values, spec, table, options, report);
                Values::Time(values)
            }
            ColumnKind::Count => {
                let mut values = numbers(series, spec, table, report);
                refuse_too_many(&mut values, spec, table, options, report);
                Values::Number(values)
            }
            ColumnKind::Latitude | ColumnKind::Longitude | ColumnKind::Quantity => {
                Values::Number(numbers(series, spec, table, report))
            }
        };
        values.insert(spec.name, extracted);
    }
    Columns { height, values }
}

/// Timestamps outside [`ValidationOptions::earliest`] and [`ValidationOptions::latest`] are
/// refused, and read as missing so that the trip's other checks skip them.
fn refuse_outside_span(
    values: &mut [Option<(i64, i32)>],
    spec: &ColumnSpec,
    table: Table,
    options: &ValidationOptions,
    report: &mut Reporter,
) {
    let (earliest, latest) = (
        options.earliest.timestamp_millis(),
        options.latest.timestamp_millis(),
    );
    for (row, value) in values.iter_mut().enumerate() {
        if value.is_some_and(|(millis, _)| !(earliest..=latest).contains(&millis)) {
            report.add(
                table,
                Some(row),
                spec.name,
                format!(
                    "timestamp outside {} to {}",
                    options.earliest.format("%Y-%m-%d"),
                    options.latest.format("%Y-%m-%d")
                ),
            );
            *value = None;
        }
    }
}

/// Counts (`stops`, the one count column) above [`ValidationOptions::max_stops`] are
/// refused, and read as missing.
fn refuse_too_many(
    values: &mut [Option<f64>],
    spec: &ColumnSpec,
    table: Table,
    options: &ValidationOptions,
    report: &mut Reporter,
) {
    for (row, value) in values.iter_mut().enumerate() {
        if value.is_some_and(|count| count > f64::from(options.max_stops)) {
            report.add(
                table,
                Some(row),
                spec.name,
                format!("more than {} stops", options.max_stops),
            );
            *value = None;
        }
    }
}

fn missing(spec: &ColumnSpec, row: usize, table: Table, report: &mut Reporter) {
    if spec.required {
        report.add(table, Some(row), spec.name, "value is missing");
    }
}

/// Refuses a whole column with one problem rather than one per row; its values all read as
/// missing so that the row checks after it skip them instead of reporting them again.
fn refuse_column<T: Clone>(
    series: &Series,
    spec: &ColumnSpec,
    table: Table,
    report: &mut Reporter,
    reason: impl Into<String>,
) -> Vec<Option<T>> {
    report.add(table, None, spec.name, reason);
    vec![None; series.len()]
}

fn text(
    series: &Series,
    spec: &ColumnSpec,
    table: Table,
    report: &mut Reporter,
) -> Vec<Option<String>> {
    let Ok(strings) = series.cast(&DataType::String) else {
        let reason = format!("expected text, found {}", series.dtype());
        return refuse_column(series, spec, table, report, reason);
    };
    let strings = strings.str().expect("cast to String gives a string column");
    strings
        .iter()
        .enumerate()
        .map(|(row, value)| {
            let value = value.map(str::trim).filter(|value| !value.is_empty());
            match value {
                None => {
                    missing(spec, row, table, report);
                    None
                }
                Some(value) if spec.kind == ColumnKind::VehicleClass => {
                    match value.parse::<VehicleClass>() {
                        Ok(_) => Some(value.to_owned()),
                        Err(error) => {
                            report.add(table, Some(row), spec.name, error.to_string());
                            None
                        }
                    }
                }
                Some(value) => match check_identifier(value, MAX_TRIP_ID_CHARS) {
                    Ok(()) => Some(value.to_owned()),
                    Err(error) => {
                        report.add(table, Some(row), spec.name, error.to_string());
                        None
                    }
                },
            }
        })
        .collect()
}

fn numbers(
    series: &Series,
    spec: &ColumnSpec,
    table: Table,
    report: &mut Reporter,
) -> Vec<Option<f64>> {
    let is_text = series.dtype() == &DataType::String;
    let is_number = series.dtype().is_primitive_numeric();
    if !is_text && !is_number {
        let reason = format!("expected a number, found {}", series.dtype());
        return refuse_column(series, spec, table, report, reason);
    }
    let trimmed = if is_text {
        let strings = series.str().expect("checked to be text");
        strings
            .apply_values(|value| value.trim().to_owned().into())
            .into_series()
    } else {
        series.clone()
    };
    let cast = trimmed
        .cast(&DataType::Float64)
        .unwrap_or_else(|_| Series::full_null(spec.name.into(), series.len(), &DataType::Float64));
    let cast = cast.f64().expect("cast to Float64 gives a float column");
    let originals = trimmed.is_null();
    let empty = |row: usize| {
        is_text
            && trimmed
                .str()
                .ok()
                .and_then(|strings| strings.get(row))
                .is_some_and(str::is_empty)
    };
    cast.iter()
        .zip(originals.iter())
        .enumerate()
        .map(|(row, (value, was_null))| {
            if was_null == Some(true) || empty(row) {
                missing(spec, row, table, report);
                return None;
            }
            let Some(value) = value else {
                report.add(table, Some(row), spec.name, "not a number");
                return None;
            };
            match check_range(spec.kind, value) {
                Ok(()) => Some(value),
                Err(reason) => {
                    report.add(table, Some(row), spec.name, reason);
                    None
                }
            }
        })
        .collect()
}

fn check_range(kind: ColumnKind, value: f64) -> Result<(), String> {
    if !value.is_finite() {
        return Err("not a finite number".into());
    }
    match kind {
        ColumnKind::Latitude => GeoPoint::new(value, 0.0)
            .map(|_| ())
            .map_err(|error| error.to_string()),
        ColumnKind::Longitude => GeoPoint::new(0.0, value)
            .map(|_| ())
            .map_err(|error| error.to_string()),
        ColumnKind::Quantity if value < 0.0 => Err("must not be negative".into()),
        ColumnKind::Count if value < 0.0 || value.fract() != 0.0 => {
            Err("must be a whole number, zero or more".into())
        }
        _ => Ok(()),
    }
}

fn timestamps(
    series: &Series,
    spec: &ColumnSpec,
    table: Table,
    report: &mut Reporter,
) -> Vec<Option<(i64, i32)>> {
    match series.dtype() {
        DataType::String => {
            let strings = series.str().expect("checked to be text");
            strings
                .iter()
                .enumerate()
                .map(|(row, value)| rfc3339(value, row, spec, table, report))
                .collect()
        }
        DataType::Datetime(unit, Some(zone)) => {
            let Ok(zone) = zone.to_chrono() else {
                let reason = format!("unknown time zone {zone}");
                return refuse_column(series, spec, table, report, reason);
            };
            let per_millisecond = match unit {
                TimeUnit::Nanoseconds => 1_000_000,
                TimeUnit::Microseconds => 1_000,
                TimeUnit::Milliseconds => 1,
            };
            zoned_instants(series, per_millisecond, &zone, spec, table, report)
        }
        DataType::Datetime(_, None) => refuse_column(
            series,
            spec,
            table,
            report,
            "timestamps have no time zone; store them time-zone-aware",
        ),
        other => {
            let reason = format!("expected a timestamp, found {other}");
            refuse_column(series, spec, table, report, reason)
        }
    }
}

/// One CSV timestamp: the offset is required, since local hours cannot be derived without
/// it, and a missing offset gets its own reason because its fix differs from a garbled value.
fn rfc3339(
    value: Option<&str>,
    row: usize,
    spec: &ColumnSpec,
    table: Table,
    report: &mut Reporter,
) -> Option<(i64, i32)> {
    let Some(text) = value.map(str::trim).filter(|value| !value.is_empty()) else {
        missing(spec, row, table, report);
        return None;
    };
    match DateTime::parse_from_rfc3339(text) {
        Ok(parsed) => Some((
            parsed.timestamp_millis(),
            parsed.offset().local_minus_utc() / 60,
        )),
        Err(_) => {
            let reason = if text.contains('T') && !has_offset(text) {
                "timestamp has no offset (expected RFC 3339 such as 2025-03-01T06:00:00+01:00)"
            } else {
                "not an RFC 3339 timestamp (expected such as 2025-03-01T06:00:00+01:00)"
            };
            report.add(table, Some(row), spec.name, reason);
            None
        }
    }
}

/// A time-zone-aware column: the zone's offset at each instant stands in for the offset a
/// CSV timestamp carries, so both formats give the same local hours.
fn zoned_instants(
    series: &Series,
    per_millisecond: i64,
    zone: &chrono_tz::Tz,
    spec: &ColumnSpec,
    table: Table,
    report: &mut Reporter,
) -> Vec<Option<(i64, i32)>> {
    let physical = series.to_physical_repr();
    let values = physical.i64().expect("datetimes are 64-bit integers");
    values
        .iter()
        .enumerate()
        .map(|(row, value)| {
            let Some(value) = value else {
                missing(spec, row, table, report);
                return None;
            };
            let millis = value.div_euclid(per_millisecond);
            let offset = zone
                .timestamp_millis_opt(millis)
                .single()
                .map(|local| local.offset().fix().local_minus_utc() / 60);
            if offset.is_none() {
                report.add(table, Some(row), spec.name, "timestamp out of range");
            }
            offset.map(|offset| (millis, offset))
        })
        .collect()
}

fn has_offset(text: &str) -> bool {
    let time = text.split_once('T').map_or("", |(_, time)| time);
    time.ends_with('Z') || time.ends_with('z') || time.contains('+') || time.contains('-')
}

fn check_trips(columns: &Columns, options: &ValidationOptions, report: &mut Reporter) {
    let mut first_row_of: HashMap<&str, usize> = HashMap::new();
    for row in 0..columns.height {
        check_unique_trip_id(columns, row, &mut first_row_of, report);
        check_load(columns, row, options, report);
        let Some(hours) = trip_hours(columns, row, options, report) else {
            continue;
        };
        check_dwell(columns, row, hours, report);
        check_crow_flight(columns, row, hours, options, report);
    }
}

/// Pings are matched to trips by id, so a second row with the same id would be ambiguous;
/// it points back at the first so that the carrier can tell which to keep.
fn check_unique_trip_id<'a>(
    columns: &'a Columns,
    row: usize,
    first_row_of: &mut HashMap<&'a str, usize>,
    report: &mut Reporter,
) {
    let Some(trip_id) = columns.text("trip_id", row) else {
        return;
    };
    if let Some(first) = first_row_of.get(trip_id) {
        report.add(
            Table::Trips,
            Some(row),
            "trip_id",
            format!("duplicate trip_id, first at row {}", first + 1),
        );
    } else {
        first_row_of.insert(trip_id, row);
    }
}

/// No vehicle class carries more, so a larger figure cannot be a real load.
fn check_load(columns: &Columns, row: usize, options: &ValidationOptions, report: &mut Reporter) {
    if let Some(load) = columns.number("load_tonnes", row) {
        if load > options.max_load_tonnes {
            report.add(
                Table::Trips,
                Some(row),
                "load_tonnes",
                format!("more than {} t", options.max_load_tonnes),
            );
        }
    }
}

/// The trip's length in hours, or `None` when the times are missing or refused here: the
/// checks that divide by it mean nothing then, so the row's checks stop.
fn trip_hours(
    columns: &Columns,
    row: usize,
    options: &ValidationOptions,
    report: &mut Reporter,
) -> Option<f64> {
    let (Some(departure), Some(arrival)) = (
        columns.time("departure_time", row),
        columns.time("arrival_time", row),
    ) else {
        return None;
    };
    if arrival <= departure {
        report.add(
            Table::Trips,
            Some(row),
            "arrival_time",
            "arrival_time must be after departure_time",
        );
        return None;
    }
    let duration = TimeDelta::milliseconds(arrival - departure);
    if duration > options.max_duration {
        report.add(
            Table::Trips,
            Some(row),
            "arrival_time",
            format!(
                "trip lasts more than {} days",
                options.max_duration.num_days()
            ),
        );
        return None;
    }
    Some((arrival - departure) as f64 / 3_600_000.0)
}

/// Dwell is part of the trip, so it cannot fill all of it: some driving must remain.
fn check_dwell(columns: &Columns, row: usize, hours: f64, report: &mut Reporter) {
    if let Some(dwell) = columns.number("dwell_minutes", row) {
        if dwell / 60.0 >= hours {
            report.add(
                Table::Trips,
                Some(row),
                "dwell_minutes",
                "dwell is as long as the whole trip",
            );
        }
    }
}

/// The straight line between the ends bounds both the pace and the road distance; without
/// both ends there is nothing to hold the trip to.
fn check_crow_flight(
    columns: &Columns,
    row: usize,
    hours: f64,
    options: &ValidationOptions,
    report: &mut Reporter,
) {
    let origin = point(columns, "origin_lat", "origin_lon", row);
    let destination = point(columns, "destination_lat", "destination_lon", row);
    let (Some(origin), Some(destination)) = (origin, destination) else {
        return;
    };
    let crow_km = origin.distance_km(destination);
    check_pace(row, crow_km, hours, options, report);
    if let Some(distance) = columns.number("distance_km", row) {
        if distance < 0.9 * crow_km {
            report.add(
                Table::Trips,
                Some(row),
                "distance_km",
                format!("{distance:.0} km is shorter than the {crow_km:.0} km as the crow flies"),
            );
        }
    }
}

/// Judged on the crow-flies distance, the one the coordinates prove: the road distance is
/// optional and is itself checked against it.
fn check_pace(
    row: usize,
    crow_km: f64,
    hours: f64,
    options: &ValidationOptions,
    report: &mut Reporter,
) {
    let speed = crow_km / hours;
    if speed > options.max_crow_speed_kmh {
        report.add(
            Table::Trips,
            Some(row),
            "arrival_time",
            format!(
                "implausible speed: {speed:.0} km/h as the crow flies over {crow_km:.0} km (at most {})",
                options.max_crow_speed_kmh
            ),
        );
    } else if hours
        > options.slow_allowance.num_minutes() as f64 / 60.0 + crow_km / options.min_crow_speed_kmh
    {
        report.add(
            Table::Trips,
            Some(row),
            "arrival_time",
            format!(
                "implausibly slow: {hours:.0} h for {crow_km:.0} km as the crow flies (at most {} h plus 1 h per {} km)",
                options.slow_allowance.num_hours(),
                options.min_crow_speed_kmh
            ),
        );
    }
}

fn point(columns: &Columns, lat: &str, lon: &str, row: usize) -> Option<GeoPoint> {
    GeoPoint::new(columns.number(lat, row)?, columns.number(lon, row)?).ok()
}

fn check_pings(
    pings: &Columns,
    trips: &Columns,
    options: &ValidationOptions,
    report: &mut Reporter,
) {
    let table = Table::Pings;
    let spans = trip_spans(trips);
    let tolerance = options.ping_tolerance.num_milliseconds();
    let mut seen: HashMap<(&str, i64), usize> = HashMap::new();
    for row in 0..pings.height {
        if let Some(speed) = pings.number("speed_kmh", row) {
            if speed > options.max_ping_speed_kmh {
                report.add(
                    table,
                    Some(row),
                    "speed_kmh",
                    format!("more than {} km/h", options.max_ping_speed_kmh),
                );
            }
        }
        let Some(trip_id) = pings.text("trip_id", row) else {
            continue;
        };
        let Some(&(departure, arrival)) = spans.get(trip_id) else {
            report.add(
                table,
                Some(row),
                "trip_id",
                format!("no trip `{trip_id}` in the trips table"),
            );
            continue;
        };
        let Some(timestamp) = pings.time("timestamp", row) else {
            continue;
        };
        if let Some(first) = seen.insert((trip_id, timestamp), row) {
            report.add(
                table,
                Some(row),
                "timestamp",
                format!("duplicate ping, same trip and time as row {}", first + 1),
            );
        }
        if let (Some(departure), Some(arrival)) = (departure, arrival) {
            if timestamp < departure - tolerance || timestamp > arrival + tolerance {
                report.add(
                    table,
                    Some(row),
                    "timestamp",
                    "outside its trip's departure and arrival",
                );
            }
        }
    }
}

/// Each trip's departure and arrival by id, so that a ping can be held to its trip's span.
fn trip_spans(trips: &Columns) -> HashMap<&str, (Option<i64>, Option<i64>)> {
    (0..trips.height)
        .filter_map(|row| {
            let trip_id = trips.text("trip_id", row)?;
            Some((
                trip_id,
                (
                    trips.time("departure_time", row),
                    trips.time("arrival_time", row),
                ),
            ))
        })
        .collect()
}

/// Offsets are kept beside the UTC instant so that local hours can be derived exactly.
pub fn offset_column_name(name: &str) -> String {
    format!("{name}_offset_minutes")
}

fn typed_frame(columns: &Columns, specs: &[ColumnSpec]) -> PolarsResult<DataFrame> {
    let mut frame_columns = Vec::new();
    for spec in specs {
        let name = PlSmallStr::from_static(spec.name);
        let column = match columns.values.get(spec.name) {
            None => Column::full_null(name, columns.height, &dtype_of(spec.kind)),
            Some(Values::Text(values)) => Column::new(name, values),
            Some(Values::Number(values)) if spec.kind == ColumnKind::Count => {
                let counts: Vec<Option<u32>> =
                    values.iter().map(|value| value.map(|v| v as u32)).collect();
                Column::new(name, counts)
            }
            Some(Values::Number(values)) => Column::new(name, values),
            Some(Values::Time(values)) => {
                let millis: Vec<Option<i64>> =
                    values.iter().map(|value| value.map(|(ms, _)| ms)).collect();
                let offsets: Vec<Option<i32>> = values
                    .iter()
                    .map(|value| value.map(|(_, offset)| offset))
                    .collect();
                let instants = Int64Chunked::from_iter_options(name, millis.into_iter())
                    .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
                    .into_column();
                frame_columns.push(instants);
                Column::new(offset_column_name(spec.name).into(), offsets)
            }
        };
        frame_columns.push(column);
    }
    DataFrame::new(columns.height, frame_columns)
}

fn dtype_of(kind: ColumnKind) -> DataType {
    match kind {
        ColumnKind::Text | ColumnKind::VehicleClass => DataType::String,
        ColumnKind::Count => DataType::UInt32,
        ColumnKind::Latitude | ColumnKind::Longitude | ColumnKind::Quantity => DataType::Float64,
        ColumnKind::Timestamp => DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC)),
    }
}
