//! Arrivals feed back. Every delivered stop scores the estimates given for it; per
//! organisation and horizon, the latest scored estimates say how far the model's answers run
//! early or late and how often its band held, and the next answers are corrected by that
//! without retraining: the time still to go scaled by the ratio of the time the trips took to
//! the time predicted, and the band widened or narrowed until, on those estimates, it held as
//! often as it promises (a rolling split-conformal step). Both are bounded, and a group with
//! too few scored estimates is left as the model answers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{RwLock, RwLockReadGuard};

use chrono::{DateTime, TimeDelta, Utc};

use super::risk::ArrivalBand;

/// Horizon buckets: how long before the arrival an estimate was given.
pub const HORIZONS: [&str; 4] = ["0-1h", "1-4h", "4-12h", "12h+"];

pub fn horizon_bucket(before_arrival: TimeDelta) -> &'static str {
    let hours = before_arrival.num_minutes() as f64 / 60.0;
    if hours < 1.0 {
        HORIZONS[0]
    } else if hours < 4.0 {
        HORIZONS[1]
    } else if hours < 12.0 {
        HORIZONS[2]
    } else {
        HORIZONS[3]
    }
}

/// The time to go is never scaled by more than this factor either way: a drift larger than
/// that is a model to retrain, not to patch.
pub const MAX_FACTOR: f64 = 1.5;
/// Bounds of the band's scale.
pub const WIDEN: (f64, f64) = (0.5, 3.0);

/// How the corrections learn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CorrectionParams {
    /// The latest scored estimates kept per organisation and horizon.
    pub window: usize,
    /// Fewer scored estimates than this leave a group uncorrected.
    pub min_estimates: usize,
    /// The share of arrivals the band promises to hold (P10 to P90: 0.8).
    pub coverage: f64,
}

impl Default for CorrectionParams {
    fn default() -> Self {
        Self {
            window: 400,
            min_estimates: 50,
            coverage: 0.8,
        }
    }
}

/// One estimate the model gave, before any correction, and the arrival it was for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// The moment the estimate counts from: the question's departure.
    pub from: DateTime<Utc>,
    pub band: ArrivalBand,
    pub arrived: DateTime<Utc>,
}

/// What is applied to an answer: the time to go times `factor`, the band's half-widths
/// (after scaling) times `widen`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Correction {
    pub factor: f64,
    pub widen: f64,
    /// Scored estimates it was learnt from; zero for none.
    pub estimates: usize,
}

impl Correction {
    pub const NONE: Correction = Correction {
        factor: 1.0,
        widen: 1.0,
        estimates: 0,
    };

    pub fn apply(&self, from: DateTime<Utc>, band: ArrivalBand) -> ArrivalBand {
        if *self == Self::NONE {
            return band;
        }
        let scaled = |at: DateTime<Utc>| from + seconds(seconds_between(from, at) * self.factor);
        let (p10, p50, p90) = (scaled(band.p10), scaled(band.p50), scaled(band.p90));
        let widened = |edge: DateTime<Utc>| p50 + seconds(seconds_between(p50, edge) * self.widen);
        ArrivalBand {
            p10: widened(p10),
            p50,
            p90: widened(p90),
        }
    }

    /// Fits a correction to scored estimates (all of one group).
    pub fn fit(scored: &[Scored], params: CorrectionParams) -> Correction {
        let usable: Vec<&Scored> = scored
            .iter()
            .filter(|scored| seconds_between(scored.from, scored.band.p50) >= 60.0)
            .filter(|scored| scored.arrived > scored.from)
            .collect();
        if usable.len() < params.min_estimates.max(1) {
            return Self::NONE;
        }
        // What happened over what was predicted, over every scored estimate at once: the
        // correction that leaves no bias in minutes across them, long trips weighing as long
        // as they are. One estimate counts for at most three times its prediction, so that a
        // truck parked for a weekend does not drag the rest.
        let (happened, predicted) =
            usable
                .iter()
                .fold((0.0, 0.0), |(happened, predicted), scored| {
                    let expected = seconds_between(scored.from, scored.band.p50);
                    let took = seconds_between(scored.from, scored.arrived)
                        .clamp(expected / 3.0, expected * 3.0);
                    (happened + took, predicted + expected)
                });
        let factor = (happened / predicted).clamp(1.0 / MAX_FACTOR, MAX_FACTOR);
        let scaled = Correction {
            factor,
            widen: 1.0,
            estimates: usable.len(),
        };
        // The scale each arrival needed to fall within its band: 1 on the edge.
        let mut needed: Vec<f64> = usable
            .iter()
            .map(|scored| {
                let band = scaled.apply(scored.from, scored.band);
                let (edge, arrived) = match scored.arrived < band.p50 {
                    true => (band.p10, scored.arrived),
                    false => (band.p90, scored.arrived),
                };
                let half = seconds_between(band.p50, edge).abs().max(60.0);
                seconds_between(band.p50, arrived).abs() / half
            })
            .collect();
        // The conformal quantile: the ceil((n + 1) * coverage)-th smallest of n scores.
        let n = needed.len() as f64;
        let level = ((n + 1.0) * params.coverage).ceil() / n;
        let widen = quantile(&mut needed, level.min(1.0)).clamp(WIDEN.0, WIDEN.1);
        Correction { widen, ..scaled }
    }
}

fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1e3
}

fn seconds(value: f64) -> TimeDelta {
    TimeDelta::milliseconds((value * 1e3).round() as i64)
}

/// The `level` quantile of `values` (reordered), by the nearest rank.
fn quantile(values: &mut [f64], level: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() as f64 * level).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// One group's latest scored estimates and the correction they make.
#[derive(Debug, Default)]
struct Group {
    recent: VecDeque<Scored>,
    correction: Option<Correction>,
}

/// A correction as shown to its organisation: for one horizon.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupCorrection {
    pub horizon: &'static str,
    pub correction: Correction,
    /// On the scored estimates, before and after the correction: mean signed error in
    /// minutes (positive: arrivals later than predicted) and the band's coverage.
    pub bias_minutes: (f64, f64),
    pub coverage: (f64, f64),
}

/// Every organisation's corrections, learnt as arrivals are scored.
#[derive(Debug)]
pub struct Corrections {
    params: CorrectionParams,
    groups: RwLock<Groups>,
}

/// Each organisation's groups, by organisation and horizon.
type Groups = BTreeMap<(String, &'static str), Group>;

impl Corrections {
    pub fn new(params: CorrectionParams) -> Self {
        Self {
            params,
            groups: RwLock::new(BTreeMap::new()),
        }
    }

    /// Adds scored estimates of `organisation`'s; each group they touch is fitted again.
    pub fn record(&self, organisation: &str, scored: impl IntoIterator<Item = Scored>) {
        let mut groups = self
            .groups
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut touched = Vec::new();
        for scored in scored {
            let horizon = horizon_bucket(scored.band.p50 - scored.from);
            let group = groups
                .entry((organisation.to_owned(), horizon))
                .or_default();
            group.recent.push_back(scored);
            while group.recent.len() > self.params.window {
                group.recent.pop_front();
            }
            touched.push(horizon);
        }
        touched.sort_unstable();
        touched.dedup();
        for horizon in touched {
            let group = groups
                .get_mut(&(organisation.to_owned(), horizon))
                .expect("just filled");
            let recent: Vec<Scored> = group.recent.iter().copied().collect();
            group.correction = Some(Correction::fit(&recent, self.params));
        }
    }

    /// The correction for an answer of `organisation`'s from `from` with this band.
    pub fn correction(
        &self,
        organisation: &str,
        from: DateTime<Utc>,
        band: ArrivalBand,
    ) -> Correction {
        let horizon = horizon_bucket(band.p50 - from);
        let groups = self.read_groups();
        groups
            .get(&(organisation.to_owned(), horizon))
            .and_then(|group| group.correction)
            .unwrap_or(Correction::NONE)
    }

    /// What `organisation`'s corrections are and what they do on its own scored estimates.
    pub fn of(&self, organisation: &str) -> Vec<GroupCorrection> {
        let groups = self.read_groups();
        HORIZONS
            .iter()
            .filter_map(|horizon| {
                let group = groups.get(&(organisation.to_owned(), *horizon))?;
                let correction = group.correction?;
                let recent: Vec<Scored> = group.recent.iter().copied().collect();
                Some(GroupCorrection {
                    horizon,
                    correction,
                    bias_minutes: (
                        bias_minutes(&recent, Correction::NONE),
                        bias_minutes(&recent, correction),
                    ),
                    coverage: (
                        coverage(&recent, Correction::NONE),
                        coverage(&recent, correction),
                    ),
                })
            })
            .collect()
    }

    /// Every group with a correction, for the metrics.
    pub fn all(&self) -> Vec<(String, &'static str, Correction)> {
        let groups = self.read_groups();
        groups
            .iter()
            .filter_map(|((organisation, horizon), group)| {
                Some((organisation.clone(), *horizon, group.correction?))
            })
            .collect()
    }

    /// Readers carry on past a writer that panicked: the groups stay readable, at worst one
    /// of them not yet refitted.
    fn read_groups(&self) -> RwLockReadGuard<'_, Groups> {
        self.groups
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Mean of arrival minus corrected median, in minutes.
pub fn bias_minutes(scored: &[Scored], correction: Correction) -> f64 {
    let total: f64 = scored
        .iter()
        .map(|scored| {
            let band = correction.apply(scored.from, scored.band);
            seconds_between(band.p50, scored.arrived) / 60.0
        })
        .sum();
    total / scored.len().max(1) as f64
}

/// The share of arrivals within their corrected band.
pub fn coverage(scored: &[Scored], correction: Correction) -> f64 {
    let held = scored
        .iter()
        .filter(|scored| {
            let band = correction.apply(scored.from, scored.band);
            band.p10 <= scored.arrived && scored.arrived <= band.p90
        })
        .count();
    held as f64 / scored.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minutes: f64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 2, 6, 0, 0).unwrap() + seconds(minutes * 60.0)
    }

    /// A model that predicts 300 minutes with a band of 270 to 330, for trips that take
    /// `truth(i)` minutes.
    fn scored(n: usize, truth: impl Fn(usize) -> f64) -> Vec<Scored> {
        (0..n)
            .map(|i| Scored {
                from: at(0.0),
                band: ArrivalBand {
                    p10: at(270.0),
                    p50: at(300.0),
                    p90: at(330.0),
                },
                arrived: at(truth(i)),
            })
            .collect()
    }

    /// Trips 10% slower than predicted, spread evenly over a 60-minute-wide band.
    fn slower(i: usize) -> f64 {
        330.0 + (i % 100) as f64 * 0.9 - 45.0
    }

    #[test]
    fn a_drift_to_slower_trips_is_learnt_and_the_band_holds_again() {
        let history = scored(400, slower);
        assert!(coverage(&history, Correction::NONE) < 0.7);
        let correction = Correction::fit(&history, CorrectionParams::default());
        assert!((correction.factor - 1.1).abs() < 0.02, "{correction:?}");
        let held = coverage(&history, correction);
        assert!((0.79..=0.83).contains(&held), "{held} with {correction:?}");
        assert!(bias_minutes(&history, correction).abs() < 3.0);
    }

    #[test]
    fn too_few_arrivals_or_an_absurd_drift_are_left_or_bounded() {
        let params = CorrectionParams::default();
        assert_eq!(
            Correction::fit(&scored(49, slower), params),
            Correction::NONE
        );
        let absurd = Correction::fit(&scored(100, |_| 3000.0), params);
        assert_eq!((absurd.factor, absurd.widen), (MAX_FACTOR, WIDEN.1));
    }

    #[test]
    fn each_organisation_and_horizon_learns_alone() {
        let corrections = Corrections::new(CorrectionParams::default());
        corrections.record("slow", scored(100, slower));
        let band = ArrivalBand {
            p10: at(270.0),
            p50: at(300.0),
            p90: at(330.0),
        };
        let slow = corrections.correction("slow", at(0.0), band);
        assert!(slow.factor > 1.05, "{slow:?}");
        assert!(slow.apply(at(0.0), band).p50 > band.p50);
        assert_eq!(
            corrections.correction("other", at(0.0), band),
            Correction::NONE
        );
        // Twenty minutes out is another horizon, with no scored estimate yet.
        let soon = ArrivalBand {
            p10: at(15.0),
            p50: at(20.0),
            p90: at(25.0),
        };
        assert_eq!(
            corrections.correction("slow", at(0.0), soon),
            Correction::NONE
        );
        let shown = corrections.of("slow");
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].horizon, "4-12h");
        assert!(shown[0].bias_minutes.0 > 20.0 && shown[0].bias_minutes.1.abs() < 5.0);
    }
}
