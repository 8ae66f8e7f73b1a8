//! Trip histories: the one format in which carriers hand over their past trips, and the strict
//! check that every row must pass before it is kept.
//!
//! Two tables. `trips`: one row per trip. `pings`: optional GPS positions along the trips. The
//! columns, their types and units are in [`TRIP_COLUMNS`] and [`PING_COLUMNS`] and documented
//! in `docs/history.md`.
//!
//! Architecture invariant: [`validate`] is pure column work on polars frames; only [`files`]
//! reads and writes files.

pub mod files;
pub mod validate;

use std::fmt;

use polars::prelude::DataFrame;

pub use validate::{validate, ValidationOptions};

/// A column of a history table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnSpec {
    pub name: &'static str,
    pub kind: ColumnKind,
    pub required: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Text,
    VehicleClass,
    Latitude,
    Longitude,
    /// RFC 3339 with an offset in CSV; a time-zone-aware timestamp in Parquet.
    Timestamp,
    /// A non-negative number.
    Quantity,
    /// A non-negative whole number.
    Count,
}

const fn column(name: &'static str, kind: ColumnKind, required: bool) -> ColumnSpec {
    ColumnSpec {
        name,
        kind,
        required,
    }
}

pub const TRIP_COLUMNS: [ColumnSpec; 12] = [
    column("trip_id", ColumnKind::Text, true),
    column("vehicle_class", ColumnKind::VehicleClass, true),
    column("origin_lat", ColumnKind::Latitude, true),
    column("origin_lon", ColumnKind::Longitude, true),
    column("destination_lat", ColumnKind::Latitude, true),
    column("destination_lon", ColumnKind::Longitude, true),
    column("departure_time", ColumnKind::Timestamp, true),
    column("arrival_time", ColumnKind::Timestamp, true),
    column("distance_km", ColumnKind::Quantity, false),
    column("stops", ColumnKind::Count, false),
    column("dwell_minutes", ColumnKind::Quantity, false),
    column("load_tonnes", ColumnKind::Quantity, false),
];

pub const PING_COLUMNS: [ColumnSpec; 5] = [
    column("trip_id", ColumnKind::Text, true),
    column("timestamp", ColumnKind::Timestamp, true),
    column("lat", ColumnKind::Latitude, true),
    column("lon", ColumnKind::Longitude, true),
    column("speed_kmh", ColumnKind::Quantity, false),
];

/// A checked history. Timestamps are UTC milliseconds (`Datetime(ms, UTC)`), each with an
/// `<name>_offset_minutes` column that keeps the local offset the carrier recorded.
#[derive(Debug, Clone)]
pub struct TripHistory {
    pub trips: DataFrame,
    pub pings: Option<DataFrame>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Trips,
    Pings,
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Trips => "trips",
            Self::Pings => "pings",
        })
    }
}

/// One thing wrong with a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub table: Table,
    /// The record, counted from 1 without the header; `None` for the table as a whole.
    pub row: Option<usize>,
    pub column: String,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.row {
            Some(row) => write!(
                f,
                "{} row {row}, column {}: {}",
                self.table, self.column, self.reason
            ),
            None => write!(f, "{}, column {}: {}", self.table, self.column, self.reason),
        }
    }
}

/// Every problem found: the first ones in full, and how many there were in all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationReport {
    pub problems: Vec<Problem>,
    pub total: usize,
    /// Rows of each table, as read.
    pub trip_rows: usize,
    pub ping_rows: usize,
    /// Every trip record with a problem (from 1, as in [`Problem::row`]), all of them, so that
    /// the good rows can be kept when the caller asks for it.
    pub bad_trip_rows: Vec<usize>,
}

impl ValidationReport {
    pub fn is_clean(&self) -> bool {
        self.total == 0
    }
}

impl fmt::Display for ValidationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} problem(s) in {} trip row(s) and {} ping row(s); nothing was kept",
            self.total, self.trip_rows, self.ping_rows
        )?;
        for problem in &self.problems {
            writeln!(f, "  {problem}")?;
        }
        if self.total > self.problems.len() {
            writeln!(f, "  ... and {} more", self.total - self.problems.len())?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{0}")]
    Invalid(ValidationReport),
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("cannot write {path}: {reason}")]
    Unwritable { path: String, reason: String },
}

#[cfg(test)]
mod tests;
