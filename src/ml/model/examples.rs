//! The training rows as plain columns, which the model, the baselines and the evaluation's
//! splits all read.

use polars::prelude::*;

use super::dataset::{feature_matrix, numbers, texts};
use super::train::Rows;
use crate::ml::features::FEATURES;

const N: usize = FEATURES.len();

/// What a caller's request itself says, as a data scientist's first model would take it: the
/// exact coordinates (the truck's position for a mid-trip row), when, which vehicle, how far.
pub const REQUEST_COLUMNS: [&str; 9] = [
    "origin_lat",
    "origin_lon",
    "destination_lat",
    "destination_lon",
    "local_hour",
    "weekday",
    "month",
    "vehicle_code",
    "crow_km",
];
const R: usize = REQUEST_COLUMNS.len();

/// A training frame (see [`super::dataset::training_frame`]) as plain columns.
pub struct Examples {
    pub matrix: Vec<f64>,
    pub minutes: Vec<f64>,
    /// When the trip left, in milliseconds: mid-trip samples share their trip's.
    pub trip_start: Vec<i64>,
    pub partner: Vec<String>,
    pub vehicle: Vec<String>,
    pub elapsed: Vec<f64>,
    /// Row-major [`REQUEST_COLUMNS`], for the baseline that knows nothing else.
    pub request: Vec<f64>,
}

impl Examples {
    pub fn from_frame(frame: &DataFrame) -> PolarsResult<Self> {
        let elapsed = numbers(frame, "elapsed_minutes")?;
        let asked: Vec<i64> = frame
            .column("departure_time")?
            .as_materialized_series()
            .to_physical_repr()
            .i64()?
            .iter()
            .map(|value| value.unwrap_or_default())
            .collect();
        let trip_start = asked
            .iter()
            .zip(&elapsed)
            .map(|(at, minutes)| at - (minutes * 60_000.0).round() as i64)
            .collect();
        Ok(Self {
            matrix: feature_matrix(frame)?,
            minutes: numbers(frame, "minutes")?,
            trip_start,
            partner: texts(frame, "partner")?,
            vehicle: texts(frame, "vehicle_class")?,
            elapsed,
            request: request_matrix(frame)?,
        })
    }

    pub fn len(&self) -> usize {
        self.minutes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.minutes.is_empty()
    }

    /// The chosen rows, as their own set.
    pub fn select(&self, rows: &[usize]) -> Examples {
        Examples {
            matrix: rows
                .iter()
                .flat_map(|row| self.matrix[row * N..(row + 1) * N].iter().copied())
                .collect(),
            minutes: rows.iter().map(|row| self.minutes[*row]).collect(),
            trip_start: rows.iter().map(|row| self.trip_start[*row]).collect(),
            partner: rows.iter().map(|row| self.partner[*row].clone()).collect(),
            vehicle: rows.iter().map(|row| self.vehicle[*row].clone()).collect(),
            elapsed: rows.iter().map(|row| self.elapsed[*row]).collect(),
            request: rows
                .iter()
                .flat_map(|row| self.request[row * R..(row + 1) * R].iter().copied())
                .collect(),
        }
    }

    /// The same rows with these features missing, as when their feed is down.
    pub(super) fn without(&self, hidden: &[usize]) -> Examples {
        let mut blind = self.select(&(0..self.len()).collect::<Vec<_>>());
        for row in blind.matrix.chunks_mut(N) {
            for &slot in hidden {
                row[slot] = f64::NAN;
            }
        }
        blind
    }

    /// The same rows with the exact coordinates of the request in place of the 0.5-degree
    /// cells of origin and destination, to measure what the cells merge.
    pub(super) fn with_exact_coordinates(&self) -> Examples {
        debug_assert_eq!(
            FEATURES[3..7],
            [
                "origin_cell_lat",
                "origin_cell_lon",
                "destination_cell_lat",
                "destination_cell_lon"
            ]
        );
        debug_assert_eq!(
            REQUEST_COLUMNS[..4],
            [
                "origin_lat",
                "origin_lon",
                "destination_lat",
                "destination_lon"
            ]
        );
        let mut exact = self.select(&(0..self.len()).collect::<Vec<_>>());
        for (row, request) in exact.matrix.chunks_mut(N).zip(self.request.chunks(R)) {
            row[3..7].copy_from_slice(&request[..4]);
        }
        exact
    }

    pub fn rows(&self) -> Rows<'_> {
        Rows {
            matrix: &self.matrix,
            minutes: &self.minutes,
            order: &self.trip_start,
        }
    }

    /// The horizon of each row: at departure, about 4 h before arrival, about 1 h before.
    pub(super) fn horizon(&self, row: usize) -> Option<&'static str> {
        let left = self.minutes[row];
        if self.elapsed[row] == 0.0 {
            Some("at departure")
        } else if (180.0..300.0).contains(&left) {
            Some("4 h out")
        } else if (30.0..90.0).contains(&left) {
            Some("1 h out")
        } else {
            None
        }
    }

    pub(super) fn distance_band(&self, row: usize) -> &'static str {
        debug_assert_eq!(FEATURES[0], "crow_km");
        let km = self.matrix[row * N];
        match km {
            km if km < 100.0 => "a: under 100 km",
            km if km < 300.0 => "b: 100 to 300 km",
            km if km < 600.0 => "c: 300 to 600 km",
            _ => "d: 600 km and more",
        }
    }

    /// Distinct partners, in order of first appearance.
    pub fn partners(&self) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        for partner in &self.partner {
            if !seen.contains(partner) {
                seen.push(partner.clone());
            }
        }
        seen
    }
}

/// [`REQUEST_COLUMNS`] of a frame, row-major, missing values as NaN.
fn request_matrix(frame: &DataFrame) -> PolarsResult<Vec<f64>> {
    let columns = REQUEST_COLUMNS
        .iter()
        .map(|name| numbers(frame, name))
        .collect::<PolarsResult<Vec<_>>>()?;
    Ok((0..frame.height())
        .flat_map(|row| columns.iter().map(move |column| column[row]))
        .collect())
}
