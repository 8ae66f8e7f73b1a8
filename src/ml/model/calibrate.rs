//! Widening the boosters' P10 and P90 so that the band covers what it says, for every caller.
//!
//! One widening for all rows (split conformal) makes the band right on average and wrong in
//! its parts: short trips get minutes they do not need, long ones too few, and a caller the
//! model has never seen (no partner profile of its own) is covered less than a known partner.
//! So the calibration is Mondrian: the held-out rows are split into cells by who asks (a known
//! partner, or an unseen caller: the same rows asked again with the partner code blanked), how
//! far along the trip is (at departure, en route with more or less than two hours to go) and
//! the distance left, and each cell gets its own widening. The scores are scaled by the band's
//! own width, so that within a cell a wide band widens more than a narrow one. A cell with too
//! few held-out rows takes its caller's widening.

use serde::{Deserialize, Serialize};

use super::train::Band;
use crate::ml::features::{FEATURES, PARTNER_FEATURE, UNSEEN_PARTNER};

/// How far to widen the boosters' P10 and P90, found on held-out trips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Minutes for every row: the widening of models calibrated before the cells.
    pub low_minutes: f64,
    pub high_minutes: f64,
    pub rows: usize,
    /// Per cell, in units of the band's width; empty in a model calibrated with minutes alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cells: Vec<Cell>,
}

/// One cell's widening: P10 is lowered by `low` times the band's width, P90 raised by `high`
/// times it (either may be negative: a band too wide narrows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub name: String,
    pub low: f64,
    pub high: f64,
    /// Held-out rows the cell's widening was found on; 0 when it is its caller's.
    pub rows: usize,
}

/// Fewest held-out rows a cell needs for a widening of its own: below, the 90th percentile of
/// its scores would move with every row.
pub const MIN_CELL_ROWS: usize = 100;

/// A band narrower than this (minutes) is scaled as if it had this width, so that a
/// degenerate band (P10 = P90) still widens.
const MIN_WIDTH: f64 = 15.0;

const CALLERS: [&str; 2] = ["known partner", "unseen caller"];
const HORIZONS: [&str; 3] = [
    "at departure",
    "en route, over 2 h left",
    "en route, 2 h or less",
];
const DISTANCES: [&str; 4] = [
    "under 100 km",
    "100 to 300 km",
    "300 to 600 km",
    "600 km and more",
];
const N_CELLS: usize = CALLERS.len() * HORIZONS.len() * DISTANCES.len();

/// The cell of a completed feature row and its raw band.
fn cell_of(row: &[f64], raw: &Band) -> usize {
    debug_assert_eq!(FEATURES[0], "crow_km");
    debug_assert_eq!(FEATURES[ELAPSED], "elapsed_minutes");
    let caller = usize::from(row[PARTNER_FEATURE] == f64::from(UNSEEN_PARTNER));
    let horizon = if row[ELAPSED] == 0.0 {
        0
    } else if raw.p50 > 120.0 {
        1
    } else {
        2
    };
    let distance = match row[0] {
        km if km < 100.0 => 0,
        km if km < 300.0 => 1,
        km if km < 600.0 => 2,
        _ => 3,
    };
    (caller * HORIZONS.len() + horizon) * DISTANCES.len() + distance
}

const ELAPSED: usize = 23;

fn cell_name(cell: usize) -> String {
    let (caller, rest) = (
        cell / (HORIZONS.len() * DISTANCES.len()),
        cell % (HORIZONS.len() * DISTANCES.len()),
    );
    format!(
        "{}, {}, {}",
        CALLERS[caller],
        HORIZONS[rest / DISTANCES.len()],
        DISTANCES[rest % DISTANCES.len()]
    )
}

fn width(raw: &Band) -> f64 {
    (raw.p90 - raw.p10).max(MIN_WIDTH)
}

/// The calibration of boosters whose raw bands on held-out rows are `raw`, for rows `matrix`
/// (completed, partner codes as trained) and true minutes `minutes`. `unseen` are the bands of
/// the same rows with the partner code blanked and the pool's profile, as an unseen caller is
/// answered.
pub fn calibrate(
    matrix: &[f64],
    raw: &[Band],
    unseen: &[Band],
    minutes: &[f64],
    coverage: f64,
) -> Calibration {
    let n = FEATURES.len();
    let tail = 1.0 - (1.0 - coverage) / 2.0;
    let mut below: Vec<f64> = raw.iter().zip(minutes).map(|(b, y)| b.p10 - y).collect();
    let mut above: Vec<f64> = raw.iter().zip(minutes).map(|(b, y)| y - b.p90).collect();
    let (low_minutes, high_minutes) = (
        conformal_quantile(&mut below, tail),
        conformal_quantile(&mut above, tail),
    );
    let mut scores: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); N_CELLS];
    let mut by_caller: [(Vec<f64>, Vec<f64>); 2] = Default::default();
    let mut blanked = vec![0.0; n];
    for ((row, y), (known, asked_unseen)) in
        matrix.chunks(n).zip(minutes).zip(raw.iter().zip(unseen))
    {
        blanked.copy_from_slice(row);
        blanked[PARTNER_FEATURE] = f64::from(UNSEEN_PARTNER);
        for (features, band) in [(row, known), (blanked.as_slice(), asked_unseen)] {
            let cell = cell_of(features, band);
            let (low, high) = ((band.p10 - y) / width(band), (y - band.p90) / width(band));
            scores[cell].0.push(low);
            scores[cell].1.push(high);
            let caller = &mut by_caller[cell / (HORIZONS.len() * DISTANCES.len())];
            caller.0.push(low);
            caller.1.push(high);
        }
    }
    let callers: Vec<(f64, f64)> = by_caller
        .iter_mut()
        .map(|(low, high)| match low.is_empty() {
            true => (0.0, 0.0),
            false => (
                conformal_quantile(low, tail),
                conformal_quantile(high, tail),
            ),
        })
        .collect();
    let cells = scores
        .iter_mut()
        .enumerate()
        .map(|(cell, (low, high))| {
            let caller = callers[cell / (HORIZONS.len() * DISTANCES.len())];
            let (low, high, rows) = match low.len() >= MIN_CELL_ROWS {
                true => (
                    conformal_quantile(low, tail),
                    conformal_quantile(high, tail),
                    low.len(),
                ),
                false => (caller.0, caller.1, 0),
            };
            Cell {
                name: cell_name(cell),
                low,
                high,
                rows,
            }
        })
        .collect();
    Calibration {
        low_minutes,
        high_minutes,
        rows: minutes.len(),
        cells,
    }
}

impl Calibration {
    /// No widening: a model before it is calibrated.
    pub fn none() -> Self {
        Self {
            low_minutes: 0.0,
            high_minutes: 0.0,
            rows: 0,
            cells: Vec::new(),
        }
    }

    /// The calibrated band of a completed row from its raw one: P10 never above the median,
    /// P90 never below, nothing below zero.
    pub fn apply(&self, row: &[f64], raw: Band) -> Band {
        let median = raw.p50.max(0.0);
        let (p10, p90) = match self.cells.get(cell_of(row, &raw)) {
            Some(cell) if self.cells.len() == N_CELLS => {
                let width = width(&raw);
                (raw.p10 - cell.low * width, raw.p90 + cell.high * width)
            }
            _ => (raw.p10 - self.low_minutes, raw.p90 + self.high_minutes),
        };
        Band {
            p10: p10.min(median).max(0.0),
            p50: median,
            p90: p90.max(median),
        }
    }
}

/// The ceil((n + 1) * level)-th smallest score: split conformal's finite-sample quantile.
pub(super) fn conformal_quantile(scores: &mut [f64], level: f64) -> f64 {
    scores.sort_by(f64::total_cmp);
    let rank = ((scores.len() as f64 + 1.0) * level).ceil() as usize;
    scores[rank.clamp(1, scores.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conformal_quantile_covers_the_level_on_its_own_scores() {
        let mut scores: Vec<f64> = (0..1000).map(|i| ((i * 7919) % 1000) as f64).collect();
        let q = conformal_quantile(&mut scores.clone(), 0.9);
        let covered = scores.iter().filter(|s| **s <= q).count();
        assert!((900..=902).contains(&covered), "{covered}");
        assert_eq!(conformal_quantile(&mut scores, 1.0), 999.0);
    }

    fn row(km: f64, elapsed: f64, partner: u32) -> Vec<f64> {
        let mut row = vec![0.0; FEATURES.len()];
        row[0] = km;
        row[ELAPSED] = elapsed;
        row[PARTNER_FEATURE] = f64::from(partner);
        row
    }

    /// Two kinds of trip in one calibration set: short ones whose raw band is right and long
    /// ones whose raw band is far too narrow; an unseen caller's band is narrower still. One
    /// widening for all would over-cover the short and under-cover the long; each cell must
    /// come out at its nominal coverage.
    #[test]
    fn each_cell_is_covered_at_the_nominal_level_whatever_the_others_need() {
        let (mut matrix, mut raw, mut unseen, mut minutes) = (vec![], vec![], vec![], vec![]);
        for i in 0..4000 {
            let u = ((i * 7919) % 1000) as f64 / 1000.0;
            let long = i % 2 == 0;
            let (km, median, spread) = if long {
                (700.0, 600.0, 200.0)
            } else {
                (50.0, 60.0, 10.0)
            };
            // The truth spreads evenly over median ± spread.
            minutes.push(median + spread * (2.0 * u - 1.0));
            matrix.extend(row(km, 0.0, 1));
            let band = |half: f64| Band {
                p10: median - half,
                p50: median,
                p90: median + half,
            };
            raw.push(band(if long { spread * 0.2 } else { spread * 0.8 }));
            unseen.push(band(if long { spread * 0.1 } else { spread * 0.4 }));
        }
        let calibration = calibrate(&matrix, &raw, &unseen, &minutes, 0.8);
        assert_eq!(calibration.cells.len(), N_CELLS);
        let n = FEATURES.len();
        for (bands, partner) in [(&raw, 1), (&unseen, UNSEEN_PARTNER)] {
            for long in [false, true] {
                let (mut covered, mut total) = (0, 0);
                for (i, (features, y)) in matrix.chunks(n).zip(&minutes).enumerate() {
                    if (i % 2 == 0) != long {
                        continue;
                    }
                    let mut features = features.to_vec();
                    features[PARTNER_FEATURE] = f64::from(partner);
                    let band = calibration.apply(&features, bands[i]);
                    total += 1;
                    covered += usize::from(band.p10 <= *y && *y <= band.p90);
                }
                let share = covered as f64 / total as f64;
                assert!(
                    (0.79..=0.82).contains(&share),
                    "partner {partner}, long {long}: {share}"
                );
            }
        }
    }

    #[test]
    fn a_model_calibrated_in_minutes_alone_keeps_its_widening() {
        let calibration = Calibration {
            low_minutes: 5.0,
            high_minutes: 7.0,
            rows: 100,
            cells: Vec::new(),
        };
        let raw = Band {
            p10: 50.0,
            p50: 60.0,
            p90: 70.0,
        };
        let band = calibration.apply(&row(50.0, 0.0, 1), raw);
        assert_eq!((band.p10, band.p50, band.p90), (45.0, 60.0, 77.0));
    }
}
