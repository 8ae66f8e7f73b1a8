//! How good a model is on trips it has not seen: a split by time (train on the earlier trips,
//! test on the later), a split by partner (one left out entirely), pooled against
//! own-data-only per partner, and the baselines, in one report.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::baselines::{self, DistanceOverSpeed, Forest, Linear};
use super::dataset::{feature_matrix, numbers, texts};
use super::metrics::{figures, Figures};
use super::train::{Band, Model, ModelError, Progress, Rows, Target, TrainParams};
use crate::ml::features::FEATURES;

const N: usize = FEATURES.len();

/// The feed comparison's name for the model with every feed.
pub const WITH_FEEDS: &str = "with weather and congestion";

/// The share of trips, latest by departure, that the time split tests on.
pub const TEST_SHARE: f64 = 0.2;

/// A training frame (see [`super::dataset::training_frame`]) as plain columns.
pub struct Examples {
    pub matrix: Vec<f64>,
    pub minutes: Vec<f64>,
    /// When the trip left, in milliseconds: mid-trip samples share their trip's.
    pub trip_start: Vec<i64>,
    pub partner: Vec<String>,
    pub vehicle: Vec<String>,
    pub elapsed: Vec<f64>,
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
        }
    }

    /// The same rows with these features missing, as when their feed is down.
    fn without(&self, hidden: &[usize]) -> Examples {
        let mut blind = self.select(&(0..self.len()).collect::<Vec<_>>());
        for row in blind.matrix.chunks_mut(N) {
            for &slot in hidden {
                row[slot] = f64::NAN;
            }
        }
        blind
    }

    fn rows(&self) -> Rows<'_> {
        Rows {
            matrix: &self.matrix,
            minutes: &self.minutes,
            order: &self.trip_start,
        }
    }

    /// The horizon of each row: at departure, about 4 h before arrival, about 1 h before.
    fn horizon(&self, row: usize) -> Option<&'static str> {
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

    fn distance_band(&self, row: usize) -> &'static str {
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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub params: TrainParams,
    pub train_rows: usize,
    pub test_rows: usize,
    /// The model with the configured target, on the later trips.
    pub model: Figures,
    pub by_horizon: BTreeMap<String, Figures>,
    pub by_vehicle: BTreeMap<String, Figures>,
    /// By crow-flies distance left to go.
    pub by_distance: BTreeMap<String, Figures>,
    pub by_partner: BTreeMap<String, Figures>,
    /// The median's MAE with each target, on the same split.
    pub target_mae: BTreeMap<String, f64>,
    pub baselines: BTreeMap<String, Figures>,
    pub calibration: super::train::Calibration,
    pub partner_left_out: Vec<LeftOut>,
    pub pooled_vs_own: Vec<PooledVsOwn>,
    /// The value of each feed: the model with weather and congestion, and models trained and
    /// tested without them (as when a feed is down), on the same split.
    #[serde(default)]
    pub feeds: BTreeMap<String, Figures>,
    /// Total gain of the median's splits per feature, largest first.
    pub feature_importance: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeftOut {
    pub partner: String,
    pub model: Figures,
    pub rules: Figures,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PooledVsOwn {
    pub partner: String,
    /// Trips (departure rows) the partner contributed to training.
    pub own_training_trips: usize,
    pub test_rows: usize,
    pub pooled_mae: f64,
    pub own_mae: f64,
    /// How much lower the pooled MAE is, in percent of the own-only MAE.
    pub gain_percent: f64,
    /// The pooled model, the own-only model and the rules on the partner's test rows: overall,
    /// by vehicle class and by horizon.
    pub overall: Comparison,
    pub by_vehicle: BTreeMap<String, Comparison>,
    pub by_horizon: BTreeMap<String, Comparison>,
}

/// Three estimators on the same rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub pooled: Figures,
    pub own: Figures,
    pub rules: Figures,
}

impl Comparison {
    /// The figures of each estimator on `rows` of a test set, `None` for no rows.
    fn on(
        rows: &[usize],
        truth: &[f64],
        pooled: &[Band],
        own: &[Band],
        rules: &[f64],
    ) -> Option<Self> {
        let truth: Vec<f64> = rows.iter().map(|row| truth[*row]).collect();
        let bands = |all: &[Band]| rows.iter().map(|row| all[*row]).collect::<Vec<Band>>();
        let (pooled, own) = (bands(pooled), bands(own));
        let rules: Vec<f64> = rows.iter().map(|row| rules[*row]).collect();
        Some(Self {
            pooled: figures(&medians(&pooled), &truth, Some(&pooled))?,
            own: figures(&medians(&own), &truth, Some(&own))?,
            rules: figures(&rules, &truth, None)?,
        })
    }
}

/// What to run beside the time split (each costs training runs).
#[derive(Debug, Clone, Copy)]
pub struct EvaluateOptions {
    pub baselines: bool,
    pub partner_left_out: bool,
    pub pooled_vs_own: bool,
    /// Models without the weather, without congestion, without either.
    pub feeds: bool,
}

/// What the evaluation is doing, for a progress display.
#[derive(Debug, Clone)]
pub enum Step {
    Training { what: String, progress: Progress },
    Baseline(&'static str),
}

pub fn evaluate(
    examples: &Examples,
    params: &TrainParams,
    options: EvaluateOptions,
    mut step: impl FnMut(Step),
) -> Result<Report, ModelError> {
    let valid = params.clone().check()?;
    let (train_idx, test_idx) = time_split(examples);
    let (train, test) = (examples.select(&train_idx), examples.select(&test_idx));
    if train.is_empty() || test.is_empty() {
        return Err(ModelError::Data("too few trips to split by time".into()));
    }
    let vocabulary = examples.partners();

    let mut target_mae = BTreeMap::new();
    let mut chosen = None;
    for target in [Target::Total, Target::Residual] {
        let model = fit_model(
            format!("pooled ({target:?})"),
            &train,
            target,
            vocabulary.clone(),
            params,
            &mut step,
        )?;
        let bands = model.predict_raw(&test.matrix, valid.get().threads)?;
        let mae = figures(&medians(&bands), &test.minutes, None).map_or(f64::NAN, |f| f.mae);
        target_mae.insert(format!("{target:?}").to_lowercase(), mae);
        if target == params.target {
            chosen = Some((model, bands));
        }
    }
    let (model, bands) = chosen.expect("the configured target was trained");
    let overall = figures(&medians(&bands), &test.minutes, Some(&bands))
        .ok_or_else(|| ModelError::Data("no test rows".into()))?;
    let group = |key: &dyn Fn(usize) -> Option<String>| {
        groups(test.len(), key)
            .into_iter()
            .filter_map(|(name, rows)| {
                let truth: Vec<f64> = rows.iter().map(|row| test.minutes[*row]).collect();
                let chosen: Vec<Band> = rows.iter().map(|row| bands[*row]).collect();
                figures(&medians(&chosen), &truth, Some(&chosen)).map(|f| (name, f))
            })
            .collect::<BTreeMap<_, _>>()
    };
    let by_horizon = group(&|row| test.horizon(row).map(str::to_owned));
    let by_vehicle = group(&|row| Some(test.vehicle[row].clone()));
    let by_distance = group(&|row| Some(test.distance_band(row).to_owned()));
    let by_partner = group(&|row| Some(test.partner[row].clone()));

    let mut baseline_figures = BTreeMap::new();
    let rules_predicted = baselines::rules(&test.matrix);
    if let Some(f) = figures(&rules_predicted, &test.minutes, None) {
        baseline_figures.insert("rules".to_owned(), f);
    }
    if options.baselines {
        step(Step::Baseline("distance over speed"));
        let speed = DistanceOverSpeed::fit(&train.matrix, &train.minutes);
        if let Some(f) = figures(&speed.predict(&test.matrix), &test.minutes, None) {
            baseline_figures.insert("distance_over_speed".to_owned(), f);
        }
        step(Step::Baseline("smartcore linear regression"));
        let linear = Linear::fit(&train.matrix, &train.minutes)?;
        if let Some(f) = figures(&linear.predict(&test.matrix)?, &test.minutes, None) {
            baseline_figures.insert("smartcore_linear".to_owned(), f);
        }
        step(Step::Baseline("smartcore random forest"));
        let forest = Forest::fit(&train.matrix, &train.minutes, params.seed)?;
        if let Some(f) = figures(&forest.predict(&test.matrix)?, &test.minutes, None) {
            baseline_figures.insert("smartcore_random_forest".to_owned(), f);
        }
    }

    let mut partner_left_out = Vec::new();
    if options.partner_left_out && vocabulary.len() > 1 {
        for partner in &vocabulary {
            let (others, own): (Vec<usize>, Vec<usize>) =
                (0..examples.len()).partition(|row| &examples.partner[*row] != partner);
            let (others, own) = (examples.select(&others), examples.select(&own));
            let others_vocabulary: Vec<String> = vocabulary
                .iter()
                .filter(|p| *p != partner)
                .cloned()
                .collect();
            let left_out = fit_model(
                format!("without {partner}"),
                &others,
                params.target,
                others_vocabulary,
                params,
                &mut step,
            )?;
            let bands = left_out.predict_raw(&own.matrix, valid.get().threads)?;
            if let (Some(model), Some(rules)) = (
                figures(&medians(&bands), &own.minutes, Some(&bands)),
                figures(&baselines::rules(&own.matrix), &own.minutes, None),
            ) {
                partner_left_out.push(LeftOut {
                    partner: partner.clone(),
                    model,
                    rules,
                });
            }
        }
    }

    let mut pooled_vs_own = Vec::new();
    if options.pooled_vs_own {
        for partner in &vocabulary {
            let own_train: Vec<usize> = (0..train.len())
                .filter(|row| &train.partner[*row] == partner)
                .collect();
            let own_test: Vec<usize> = (0..test.len())
                .filter(|row| &test.partner[*row] == partner)
                .collect();
            if own_train.len() < 100 || own_test.is_empty() {
                continue;
            }
            let own_set = train.select(&own_train);
            let own_model = fit_model(
                format!("{partner} alone"),
                &own_set,
                params.target,
                vec![partner.clone()],
                params,
                &mut step,
            )?;
            let test_set = test.select(&own_test);
            let own_bands = own_model.predict_raw(&test_set.matrix, valid.get().threads)?;
            let pooled_bands: Vec<Band> = own_test.iter().map(|row| bands[*row]).collect();
            let rules = baselines::rules(&test_set.matrix);
            let compare = |rows: &[usize]| {
                Comparison::on(rows, &test_set.minutes, &pooled_bands, &own_bands, &rules)
            };
            let everyone: Vec<usize> = (0..test_set.len()).collect();
            let Some(overall) = compare(&everyone) else {
                continue;
            };
            let by = |key: &dyn Fn(usize) -> Option<String>| {
                groups(test_set.len(), key)
                    .into_iter()
                    .filter_map(|(name, rows)| compare(&rows).map(|c| (name, c)))
                    .collect::<BTreeMap<_, _>>()
            };
            let (pooled_mae, own_mae) = (overall.pooled.mae, overall.own.mae);
            pooled_vs_own.push(PooledVsOwn {
                partner: partner.clone(),
                own_training_trips: (0..own_set.len())
                    .filter(|row| own_set.elapsed[*row] == 0.0)
                    .count(),
                test_rows: own_test.len(),
                pooled_mae,
                own_mae,
                gain_percent: 100.0 * (own_mae - pooled_mae) / own_mae,
                by_vehicle: by(&|row| Some(test_set.vehicle[row].clone())),
                by_horizon: by(&|row| test_set.horizon(row).map(str::to_owned)),
                overall,
            });
        }
    }

    let mut feeds = BTreeMap::new();
    if options.feeds {
        feeds.insert(WITH_FEEDS.to_owned(), overall);
        let weather: Vec<usize> = [
            "temperature_2m",
            "precipitation",
            "snowfall",
            "wind_speed_10m",
            "visibility",
        ]
        .iter()
        .filter_map(|name| FEATURES.iter().position(|feature| feature == name))
        .collect();
        let congestion: Vec<usize> = ["origin_congestion", "destination_congestion"]
            .iter()
            .filter_map(|name| FEATURES.iter().position(|feature| feature == name))
            .collect();
        let both: Vec<usize> = weather.iter().chain(&congestion).copied().collect();
        for (name, hidden) in [
            ("without weather", &weather),
            ("without congestion", &congestion),
            ("without either", &both),
        ] {
            let (blind_train, blind_test) = (train.without(hidden), test.without(hidden));
            let blind = fit_model(
                name.to_owned(),
                &blind_train,
                params.target,
                vocabulary.clone(),
                params,
                &mut step,
            )?;
            let bands = blind.predict_raw(&blind_test.matrix, valid.get().threads)?;
            if let Some(f) = figures(&medians(&bands), &blind_test.minutes, Some(&bands)) {
                feeds.insert(name.to_owned(), f);
            }
        }
    }

    let gains = model.boosters[0].gain_importance()?;
    let mut feature_importance: Vec<(String, f64)> = FEATURES
        .iter()
        .map(|name| (*name).to_owned())
        .zip(gains)
        .collect();
    feature_importance.sort_by(|a, b| b.1.total_cmp(&a.1));

    Ok(Report {
        params: params.clone(),
        train_rows: train.len(),
        test_rows: test.len(),
        model: overall,
        by_horizon,
        by_vehicle,
        by_distance,
        by_partner,
        target_mae,
        baselines: baseline_figures,
        calibration: model.calibration,
        partner_left_out,
        pooled_vs_own,
        feeds,
        feature_importance,
    })
}

fn fit_model(
    what: String,
    set: &Examples,
    target: Target,
    vocabulary: Vec<String>,
    params: &TrainParams,
    step: &mut dyn FnMut(Step),
) -> Result<Model, ModelError> {
    let params = TrainParams {
        target,
        ..params.clone()
    }
    .check()?;
    Model::fit(&set.rows(), vocabulary, &params, |progress| {
        step(Step::Training {
            what: what.clone(),
            progress,
        })
    })
}

/// The median's MAE of `model` on the chosen rows, each row's partner coded as that model
/// knows it (models trained on different pools number partners differently).
pub fn mae_on(model: &Model, examples: &Examples, rows: &[usize]) -> Result<f64, ModelError> {
    let set = examples.select(rows);
    let mut matrix = set.matrix.clone();
    for (row, partner) in matrix.chunks_mut(N).zip(&set.partner) {
        row[crate::ml::features::PARTNER_FEATURE] = f64::from(model.partner_code(partner));
    }
    let bands = model.predict_raw(&matrix, 1)?;
    figures(&medians(&bands), &set.minutes, None)
        .map(|f| f.mae)
        .ok_or_else(|| ModelError::Data("no rows to judge the model on".into()))
}

/// The rules' MAE on the chosen rows.
pub fn rules_mae_on(examples: &Examples, rows: &[usize]) -> Option<f64> {
    let set = examples.select(rows);
    figures(&baselines::rules(&set.matrix), &set.minutes, None).map(|f| f.mae)
}

/// Row indices by the name `key` gives them; rows it names nothing are left out.
fn groups(rows: usize, key: &dyn Fn(usize) -> Option<String>) -> BTreeMap<String, Vec<usize>> {
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for row in 0..rows {
        if let Some(name) = key(row) {
            groups.entry(name).or_default().push(row);
        }
    }
    groups
}

fn medians(bands: &[Band]) -> Vec<f64> {
    bands.iter().map(|band| band.p50).collect()
}

/// Rows of trips that left before the cut, and the rest; the cut leaves [`TEST_SHARE`] of the
/// trips after it.
pub fn time_split(examples: &Examples) -> (Vec<usize>, Vec<usize>) {
    let mut starts: Vec<i64> = (0..examples.len())
        .filter(|row| examples.elapsed[*row] == 0.0)
        .map(|row| examples.trip_start[row])
        .collect();
    starts.sort_unstable();
    let Some(&cut) = starts.get(((1.0 - TEST_SHARE) * starts.len() as f64) as usize) else {
        return ((0..examples.len()).collect(), Vec::new());
    };
    (0..examples.len()).partition(|row| examples.trip_start[*row] < cut)
}

impl Report {
    /// The report for people: the headline table, then the details.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let row = |out: &mut String, name: &str, f: &Figures| {
            let optional = |value: Option<f64>, scale: f64, unit: &str| {
                value.map_or("-".to_owned(), |v| format!("{:.1}{unit}", v * scale))
            };
            let _ = writeln!(
                out,
                "| {name} | {} | {:+.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1}% | {:.0}% | {:.0}% | {:.0}% | {} | {} |",
                f.rows,
                f.bias,
                f.mae,
                f.rmse,
                f.median_ae,
                f.p95_ae,
                f.mape,
                100.0 * f.within_15,
                100.0 * f.within_30,
                100.0 * f.within_60,
                optional(f.coverage, 100.0, "%"),
                optional(f.mean_width, 1.0, ""),
            );
        };
        let header = "| | rows | bias | MAE | RMSE | median AE | P95 AE | MAPE | ±15 min | ±30 min | ±60 min | P10-P90 coverage | mean width |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
        let _ = writeln!(
            out,
            "# Model evaluation\n\nTime split: trained on {} rows of the earlier trips, tested on {} rows of the latest {:.0}%. Errors in minutes.\n",
            self.train_rows,
            self.test_rows,
            100.0 * TEST_SHARE
        );
        out.push_str("## Model and baselines\n\n");
        out.push_str(header);
        row(&mut out, "model", &self.model);
        for (name, f) in &self.baselines {
            row(&mut out, name, f);
        }
        let _ = writeln!(
            out,
            "\nTarget: {:?}. Median MAE by target: {}.\n",
            self.params.target,
            self.target_mae
                .iter()
                .map(|(name, mae)| format!("{name} {mae:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(
            out,
            "Calibration on {} held-out rows: P10 lowered by {:.1} min, P90 raised by {:.1} min.\n",
            self.calibration.rows, self.calibration.low_minutes, self.calibration.high_minutes
        );
        for (title, groups) in [
            ("By horizon", &self.by_horizon),
            ("By vehicle class", &self.by_vehicle),
            ("By distance left", &self.by_distance),
            ("By partner", &self.by_partner),
        ] {
            let _ = writeln!(out, "## {title}\n");
            out.push_str(header);
            for (name, f) in groups {
                row(&mut out, name, f);
            }
            out.push('\n');
        }
        if !self.partner_left_out.is_empty() {
            out.push_str("## Partner left out of training\n\n| partner | rows | model MAE | rules MAE | coverage |\n|---|---|---|---|---|\n");
            for left in &self.partner_left_out {
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.1} | {:.1} | {:.1}% |",
                    left.partner,
                    left.model.rows,
                    left.model.mae,
                    left.rules.mae,
                    100.0 * left.model.coverage.unwrap_or(f64::NAN)
                );
            }
            out.push('\n');
        }
        if !self.pooled_vs_own.is_empty() {
            out.push_str("## Pooled against own data only\n\nOn each partner's later trips: MAE in minutes, share within ±30 min, P10-P90 coverage.\n\n| partner | own training trips | test rows | pooled MAE | own-only MAE | rules MAE | pooled ±30 | own-only ±30 | rules ±30 | pooled coverage | own-only coverage | gain |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
            let percent =
                |share: Option<f64>| share.map_or("-".to_owned(), |s| format!("{:.0}%", 100.0 * s));
            for entry in &self.pooled_vs_own {
                let c = &entry.overall;
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {:.1}% |",
                    entry.partner,
                    entry.own_training_trips,
                    entry.test_rows,
                    c.pooled.mae,
                    c.own.mae,
                    c.rules.mae,
                    percent(Some(c.pooled.within_30)),
                    percent(Some(c.own.within_30)),
                    percent(Some(c.rules.within_30)),
                    percent(c.pooled.coverage),
                    percent(c.own.coverage),
                    entry.gain_percent
                );
            }
            out.push('\n');
        }
        if !self.feeds.is_empty() {
            out.push_str("## Value of the feeds\n\nThe model trained and tested with the weather and congestion joined, and without them (as when a feed is down), on the same split.\n\n");
            out.push_str(header);
            for (name, f) in &self.feeds {
                row(&mut out, name, f);
            }
            out.push('\n');
        }
        out.push_str(
            "## Feature importance (gain of the median)\n\n| feature | share |\n|---|---|\n",
        );
        let total: f64 = self.feature_importance.iter().map(|(_, gain)| gain).sum();
        for (name, gain) in &self.feature_importance {
            let _ = writeln!(out, "| {name} | {:.1}% |", 100.0 * gain / total.max(1e-12));
        }
        out
    }
}
