//! How good a model is on trips it has not seen: a split by time (train on the earlier trips,
//! test on the later), a split by partner (one left out entirely), pooled against
//! own-data-only per partner, and the baselines, in one report.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::baselines::{self, AverageSpeed, ForestParams, LinearParams, RequestLightGbm, Rules};
use super::fit::{Boosted, Boosting, Estimates, Fit, Predict, Trial};
use super::metrics::{figures, Figures};
use super::train::{Model, ModelError, Progress, Target, TimeOfYear, TrainParams, ValidParams};
use crate::ml::features::FEATURES;

pub use super::examples::Examples;

const N: usize = FEATURES.len();

/// The feed comparison's name for the model with every feed.
pub const WITH_FEEDS: &str = "with weather and congestion";

/// The report's name for the baseline a data scientist would write first (see
/// [`RequestLightGbm`]): the figure the model must beat.
pub const REQUEST_LIGHTGBM: &str = "lightgbm_request_columns";

/// The share of trips, latest by departure, that the time split tests on.
pub const TEST_SHARE: f64 = 0.2;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub params: TrainParams,
    /// The features the time split's model chose not to learn from (see
    /// [`super::train::TimeOfYear`]).
    #[serde(default)]
    pub ignored: Vec<String>,
    pub train_rows: usize,
    pub test_rows: usize,
    /// The model with the configured target, on the later trips.
    pub model: Figures,
    pub by_horizon: BTreeMap<String, Figures>,
    pub by_vehicle: BTreeMap<String, Figures>,
    /// By crow-flies distance left to go.
    pub by_distance: BTreeMap<String, Figures>,
    pub by_partner: BTreeMap<String, Figures>,
    /// The later trips asked by their own partner and again as an unseen caller would ask
    /// them (partner code blanked); the unseen caller's figures also by horizon, vehicle class
    /// and distance.
    #[serde(default)]
    pub by_caller: BTreeMap<String, Figures>,
    #[serde(default)]
    pub unseen_by_group: BTreeMap<String, Figures>,
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
    /// One change at a time against the model as configured, on the same split: what each
    /// suspected cause of a loss is worth.
    #[serde(default)]
    pub candidates: BTreeMap<String, Figures>,
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
        pooled: &Estimates,
        own: &Estimates,
        rules: &Estimates,
    ) -> Option<Self> {
        let truth: Vec<f64> = rows.iter().map(|row| truth[*row]).collect();
        Some(Self {
            pooled: pooled.select(rows).figures(&truth)?,
            own: own.select(rows).figures(&truth)?,
            rules: rules.select(rows).figures(&truth)?,
        })
    }
}

/// What to run beside the time split (each costs training runs).
#[derive(Debug, Clone, Copy)]
pub struct EvaluateOptions {
    /// Every baseline: distance over speed, smartcore's linear regression and random forest,
    /// LightGBM on the request's columns (the rules always run).
    pub baselines: bool,
    /// LightGBM on the request's columns even when not every baseline runs: the anchor every
    /// evaluation a person reads must show.
    pub anchor: bool,
    pub partner_left_out: bool,
    pub pooled_vs_own: bool,
    /// Models without the weather, without congestion, without either.
    pub feeds: bool,
    /// Models each with one change: refit on the calibration slice, recency weights, no
    /// partner weighting or dropout, no rules prior, no time of year, exact coordinates.
    pub candidates: bool,
}

/// What the evaluation is doing, for a progress display.
#[derive(Debug, Clone)]
pub enum Step {
    Training { what: String, progress: Progress },
    Baseline(&'static str),
}

pub fn evaluate(
    examples: &Examples,
    params: &ValidParams,
    options: EvaluateOptions,
    mut step: impl FnMut(Step),
) -> Result<Report, ModelError> {
    let step: &mut dyn FnMut(Step) = &mut step;
    let split = Split::by_time(examples, params)?;
    let (target_mae, model, estimates) = split.targets(step)?;
    let test = &split.test;
    let overall = estimates
        .figures(&test.minutes)
        .ok_or_else(|| ModelError::Data("no test rows".into()))?;
    let unseen = as_unseen_caller(&model, test, params.get().threads)?;
    let group_of = |estimates: &Estimates, key: &dyn Fn(usize) -> Option<String>| {
        groups(test.len(), key)
            .into_iter()
            .filter_map(|(name, rows)| {
                let truth: Vec<f64> = rows.iter().map(|row| test.minutes[*row]).collect();
                estimates.select(&rows).figures(&truth).map(|f| (name, f))
            })
            .collect::<BTreeMap<_, _>>()
    };
    let group = |key: &dyn Fn(usize) -> Option<String>| group_of(&estimates, key);
    let mut unseen_by_group = group_of(&unseen, &|row| {
        test.horizon(row).map(|h| format!("horizon: {h}"))
    });
    unseen_by_group.extend(group_of(&unseen, &|row| {
        Some(format!("vehicle: {}", test.vehicle[row]))
    }));
    unseen_by_group.extend(group_of(&unseen, &|row| {
        Some(format!("distance: {}", test.distance_band(row)))
    }));
    let mut by_caller = BTreeMap::new();
    by_caller.insert("known partner".to_owned(), overall);
    by_caller.extend(
        unseen
            .figures(&test.minutes)
            .map(|f| ("unseen caller".to_owned(), f)),
    );
    Ok(Report {
        params: params.get().clone(),
        ignored: model
            .ignored
            .iter()
            .map(|name| (*name).to_owned())
            .collect(),
        train_rows: split.train.len(),
        test_rows: test.len(),
        model: overall,
        by_horizon: group(&|row| test.horizon(row).map(str::to_owned)),
        by_vehicle: group(&|row| Some(test.vehicle[row].clone())),
        by_distance: group(&|row| Some(test.distance_band(row).to_owned())),
        by_partner: group(&|row| Some(test.partner[row].clone())),
        by_caller,
        unseen_by_group,
        target_mae,
        baselines: split.baselines(options, step)?,
        calibration: model.calibration.clone(),
        partner_left_out: match options.partner_left_out {
            true => split.partner_left_out(step)?,
            false => Vec::new(),
        },
        pooled_vs_own: match options.pooled_vs_own {
            true => split.pooled_vs_own(&estimates, step)?,
            false => Vec::new(),
        },
        feeds: match options.feeds {
            true => split.feeds(overall, step)?,
            false => BTreeMap::new(),
        },
        candidates: match options.candidates {
            true => split.candidates(overall, step)?,
            false => BTreeMap::new(),
        },
        feature_importance: importance(&model)?,
    })
}

/// The baselines of the report: its key, the name shown while it trains, the estimator. The
/// rules always run: they cost nothing and every other figure reads against them.
fn baselines_of(
    params: &TrainParams,
    all: bool,
    anchor: bool,
) -> Vec<(&'static str, &'static str, Box<dyn Trial>)> {
    let seed = params.seed;
    let mut list: Vec<(&'static str, &'static str, Box<dyn Trial>)> =
        vec![("rules", "rules", Box::new(Rules))];
    if all {
        list.push((
            "distance_over_speed",
            "distance over speed",
            Box::new(AverageSpeed),
        ));
        list.push((
            "smartcore_linear",
            "smartcore linear regression",
            Box::new(LinearParams),
        ));
        list.push((
            "smartcore_random_forest",
            "smartcore random forest",
            Box::new(ForestParams { seed }),
        ));
    }
    if all || anchor {
        list.push((
            REQUEST_LIGHTGBM,
            "LightGBM on the request's columns",
            Box::new(RequestLightGbm {
                rounds: params.rounds,
                seed,
                threads: params.threads,
            }),
        ));
    }
    list
}

/// The time split most experiments share: the earlier trips to train on, the later to test.
struct Split<'a> {
    examples: &'a Examples,
    params: &'a ValidParams,
    train: Examples,
    test: Examples,
    /// Every partner of the examples, as the pooled model codes them.
    partners: Vec<String>,
}

impl<'a> Split<'a> {
    fn by_time(examples: &'a Examples, params: &'a ValidParams) -> Result<Self, ModelError> {
        let (train, test) = time_split(examples);
        let (train, test) = (examples.select(&train), examples.select(&test));
        if train.is_empty() || test.is_empty() {
            return Err(ModelError::Data("too few trips to split by time".into()));
        }
        Ok(Self {
            examples,
            params,
            train,
            test,
            partners: examples.partners(),
        })
    }

    /// The model's boosters with the configured target, coding these partners.
    fn boosting(&self, partners: Vec<String>) -> Boosting {
        Boosting {
            params: self.params.clone(),
            partners,
        }
    }

    /// The model with each target: every target's median MAE on the later trips, and the model
    /// with the configured target with its estimates of them.
    fn targets(
        &self,
        step: &mut dyn FnMut(Step),
    ) -> Result<(BTreeMap<String, f64>, Model, Estimates), ModelError> {
        let mut target_mae = BTreeMap::new();
        let mut chosen = None;
        for target in [Target::Total, Target::Residual] {
            let boosting = Boosting {
                params: self.params.with_target(target),
                partners: self.partners.clone(),
            };
            let boosted =
                fit_boosted(format!("pooled ({target:?})"), &boosting, &self.train, step)?;
            let estimates = boosted.predict(&self.test)?;
            let mae =
                figures(&estimates.medians, &self.test.minutes, None).map_or(f64::NAN, |f| f.mae);
            target_mae.insert(format!("{target:?}").to_lowercase(), mae);
            if target == self.params.get().target {
                chosen = Some((boosted.model, estimates));
            }
        }
        let (model, estimates) = chosen.expect("the configured target was trained");
        Ok((target_mae, model, estimates))
    }

    fn baselines(
        &self,
        options: EvaluateOptions,
        step: &mut dyn FnMut(Step),
    ) -> Result<BTreeMap<String, Figures>, ModelError> {
        let mut found = BTreeMap::new();
        let chosen = baselines_of(self.params.get(), options.baselines, options.anchor);
        for (key, name, estimator) in chosen {
            step(Step::Baseline(name));
            let estimates = estimator.run(&self.train, &self.test, &mut |_| {})?;
            if let Some(f) = estimates.figures(&self.test.minutes) {
                found.insert(key.to_owned(), f);
            }
        }
        Ok(found)
    }

    /// Each partner's trips, estimated by a model trained on the other partners' alone.
    fn partner_left_out(&self, step: &mut dyn FnMut(Step)) -> Result<Vec<LeftOut>, ModelError> {
        let mut left_out = Vec::new();
        if self.partners.len() < 2 {
            return Ok(left_out);
        }
        let examples = self.examples;
        for partner in &self.partners {
            let (others, own): (Vec<usize>, Vec<usize>) =
                (0..examples.len()).partition(|row| &examples.partner[*row] != partner);
            let (others, own) = (examples.select(&others), examples.select(&own));
            let boosting = self.boosting(
                self.partners
                    .iter()
                    .filter(|p| *p != partner)
                    .cloned()
                    .collect(),
            );
            let estimates = fit_boosted(format!("without {partner}"), &boosting, &others, step)?
                .predict(&own)?;
            let rules = Rules.predict(&own)?;
            if let (Some(model), Some(rules)) =
                (estimates.figures(&own.minutes), rules.figures(&own.minutes))
            {
                left_out.push(LeftOut {
                    partner: partner.clone(),
                    model,
                    rules,
                });
            }
        }
        Ok(left_out)
    }

    fn pooled_vs_own(
        &self,
        pooled: &Estimates,
        step: &mut dyn FnMut(Step),
    ) -> Result<Vec<PooledVsOwn>, ModelError> {
        let mut compared = Vec::new();
        for partner in &self.partners {
            compared.extend(self.pooled_vs_own_of(partner, pooled, step)?);
        }
        Ok(compared)
    }

    /// The pooled model against one trained on the partner's own earlier trips alone, on its
    /// later trips; `None` for a partner with too few trips on either side.
    fn pooled_vs_own_of(
        &self,
        partner: &str,
        pooled: &Estimates,
        step: &mut dyn FnMut(Step),
    ) -> Result<Option<PooledVsOwn>, ModelError> {
        let of_partner = |set: &Examples| -> Vec<usize> {
            (0..set.len())
                .filter(|row| set.partner[*row] == partner)
                .collect()
        };
        let (own_train, own_test) = (of_partner(&self.train), of_partner(&self.test));
        if own_train.len() < 100 || own_test.is_empty() {
            return Ok(None);
        }
        let (own_set, test_set) = (self.train.select(&own_train), self.test.select(&own_test));
        let boosting = self.boosting(vec![partner.to_owned()]);
        let own = fit_boosted(format!("{partner} alone"), &boosting, &own_set, step)?
            .predict(&test_set)?;
        let pooled = pooled.select(&own_test);
        let rules = Rules.predict(&test_set)?;
        let compare =
            |rows: &[usize]| Comparison::on(rows, &test_set.minutes, &pooled, &own, &rules);
        let everyone: Vec<usize> = (0..test_set.len()).collect();
        let Some(overall) = compare(&everyone) else {
            return Ok(None);
        };
        let by = |key: &dyn Fn(usize) -> Option<String>| {
            groups(test_set.len(), key)
                .into_iter()
                .filter_map(|(name, rows)| compare(&rows).map(|c| (name, c)))
                .collect::<BTreeMap<_, _>>()
        };
        let (pooled_mae, own_mae) = (overall.pooled.mae, overall.own.mae);
        Ok(Some(PooledVsOwn {
            partner: partner.to_owned(),
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
        }))
    }

    /// The model trained and tested without the weather, without congestion, and without
    /// either, as when a feed is down, beside `with_feeds`.
    fn feeds(
        &self,
        with_feeds: Figures,
        step: &mut dyn FnMut(Step),
    ) -> Result<BTreeMap<String, Figures>, ModelError> {
        let mut feeds = BTreeMap::from([(WITH_FEEDS.to_owned(), with_feeds)]);
        let weather = slots(&[
            "temperature_2m",
            "precipitation",
            "snowfall",
            "wind_speed_10m",
            "visibility",
        ]);
        let congestion = slots(&["origin_congestion", "destination_congestion"]);
        let both: Vec<usize> = weather.iter().chain(&congestion).copied().collect();
        for (name, hidden) in [
            ("without weather", &weather),
            ("without congestion", &congestion),
            ("without either", &both),
        ] {
            let (blind_train, blind_test) = (self.train.without(hidden), self.test.without(hidden));
            let boosting = self.boosting(self.partners.clone());
            let estimates = fit_boosted(name.to_owned(), &boosting, &blind_train, step)?
                .predict(&blind_test)?;
            if let Some(f) = estimates.figures(&blind_test.minutes) {
                feeds.insert(name.to_owned(), f);
            }
        }
        Ok(feeds)
    }
}

/// The model's estimates of `set` as a caller it has never seen would get them: every
/// partner code blanked, the pool's profile in place of the partner's.
fn as_unseen_caller(
    model: &Model,
    set: &Examples,
    threads: usize,
) -> Result<Estimates, ModelError> {
    let mut blind = set.matrix.clone();
    for row in blind.chunks_mut(N) {
        row[crate::ml::features::PARTNER_FEATURE] = f64::from(crate::ml::features::UNSEEN_PARTNER);
    }
    Ok(Estimates::bands(model.predict_raw(&blind, threads)?))
}

/// How a candidate changes the rows the model sees.
enum Change {
    AsThey,
    Hidden(Vec<usize>),
    ExactCoordinates,
}

impl Change {
    fn apply(&self, set: &Examples) -> Examples {
        match self {
            Change::AsThey => set.select(&(0..set.len()).collect::<Vec<_>>()),
            Change::Hidden(slots) => set.without(slots),
            Change::ExactCoordinates => set.with_exact_coordinates(),
        }
    }
}

impl Split<'_> {
    /// The model as configured beside models that each change one thing, on the same split.
    fn candidates(
        &self,
        configured: Figures,
        step: &mut dyn FnMut(Step),
    ) -> Result<BTreeMap<String, Figures>, ModelError> {
        let mut found = BTreeMap::from([("as configured".to_owned(), configured)]);
        for (name, params, change) in one_change_each(self.params.get()) {
            let boosting = Boosting {
                params: params.check()?,
                partners: self.partners.clone(),
            };
            let (train, test) = (change.apply(&self.train), change.apply(&self.test));
            let estimates =
                fit_boosted(name.to_owned(), &boosting, &train, step)?.predict(&test)?;
            if let Some(f) = estimates.figures(&test.minutes) {
                found.insert(name.to_owned(), f);
            }
        }
        Ok(found)
    }
}

/// The suspected causes of a loss, each as the one change it makes to the configured model.
fn one_change_each(base: &TrainParams) -> Vec<(&'static str, TrainParams, Change)> {
    let rules = slots(&crate::ml::features::RULES_PRIOR_COLUMNS);
    vec![
        (
            "refit on the calibration slice too",
            TrainParams {
                refit_on_calibration: true,
                ..base.clone()
            },
            Change::AsThey,
        ),
        (
            "time of year always learnt",
            TrainParams {
                time_of_year: TimeOfYear::Learn,
                ..base.clone()
            },
            Change::AsThey,
        ),
        (
            "recency weights, half-life 90 days",
            TrainParams {
                recency_half_life_days: 90.0,
                ..base.clone()
            },
            Change::AsThey,
        ),
        (
            "no partner weighting",
            TrainParams {
                partner_weight_power: 0.0,
                partner_weight_cap: 1.0,
                ..base.clone()
            },
            Change::AsThey,
        ),
        (
            "no partner dropout",
            TrainParams {
                partner_dropout: 0.0,
                ..base.clone()
            },
            Change::AsThey,
        ),
        (
            "without the rules prior",
            TrainParams {
                target: Target::Total,
                ..base.clone()
            },
            Change::Hidden(rules),
        ),
        (
            "time of year never learnt",
            TrainParams {
                time_of_year: TimeOfYear::Ignore,
                ..base.clone()
            },
            Change::AsThey,
        ),
        (
            "exact coordinates in place of the cells",
            base.clone(),
            Change::ExactCoordinates,
        ),
    ]
}

/// Trains the boosters, telling `step` which model it is.
fn fit_boosted(
    what: String,
    boosting: &Boosting,
    train: &Examples,
    step: &mut dyn FnMut(Step),
) -> Result<Boosted, ModelError> {
    boosting.fit(train, &mut |progress| {
        step(Step::Training {
            what: what.clone(),
            progress,
        })
    })
}

/// The places of these features in a row.
fn slots(names: &[&str]) -> Vec<usize> {
    names
        .iter()
        .filter_map(|name| FEATURES.iter().position(|feature| feature == name))
        .collect()
}

/// Total gain of the median's splits per feature, largest first.
fn importance(model: &Model) -> Result<Vec<(String, f64)>, ModelError> {
    let gains = model.boosters[0].gain_importance()?;
    let mut importance: Vec<(String, f64)> = FEATURES
        .iter()
        .map(|name| (*name).to_owned())
        .zip(gains)
        .collect();
    importance.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(importance)
}

/// The median's MAE of `model` on the chosen rows, each row's partner coded as that model
/// knows it (models trained on different pools number partners differently).
pub fn mae_on(model: &Model, examples: &Examples, rows: &[usize]) -> Result<f64, ModelError> {
    let set = examples.select(rows);
    let mut matrix = set.matrix.clone();
    for (row, partner) in matrix.chunks_mut(N).zip(&set.partner) {
        row[crate::ml::features::PARTNER_FEATURE] = f64::from(model.partner_code(partner));
    }
    let estimates = Estimates::bands(model.predict_raw(&matrix, 1)?);
    figures(&estimates.medians, &set.minutes, None)
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

/// The columns of every table of figures.
const FIGURES_HEADER: &str = "| | rows | bias | MAE | RMSE | median AE | P95 AE | MAPE | ±15 min | ±30 min | ±60 min | P10-P90 coverage | mean width |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";

/// One row of a table of figures.
fn figures_row(out: &mut String, name: &str, f: &Figures) {
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
}

/// A table of figures, a row a name.
fn figures_table<'a>(out: &mut String, rows: impl IntoIterator<Item = (&'a String, &'a Figures)>) {
    out.push_str(FIGURES_HEADER);
    for (name, f) in rows {
        figures_row(out, name, f);
    }
    out.push('\n');
}

impl Report {
    /// The report for people: the headline table, then the details.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        self.headline(&mut out);
        for (title, groups) in [
            ("By horizon", &self.by_horizon),
            ("By vehicle class", &self.by_vehicle),
            ("By distance left", &self.by_distance),
            ("By partner", &self.by_partner),
            (
                "By caller: a known partner, or a caller the model has not seen",
                &self.by_caller,
            ),
            ("An unseen caller, by group", &self.unseen_by_group),
        ] {
            if groups.is_empty() {
                continue;
            }
            let _ = writeln!(out, "## {title}\n");
            figures_table(&mut out, groups);
        }
        self.left_out_table(&mut out);
        self.pooled_table(&mut out);
        if !self.candidates.is_empty() {
            out.push_str("## Candidates: one change at a time\n\nThe model as configured beside models that each change one thing, trained and tested on the same split: what each suspected cause of a loss is worth here.\n\n");
            figures_table(&mut out, &self.candidates);
        }
        if !self.feeds.is_empty() {
            out.push_str("## Value of the feeds\n\nThe model trained and tested with the weather and congestion joined, and without them (as when a feed is down), on the same split.\n\n");
            figures_table(&mut out, &self.feeds);
        }
        self.importance_table(&mut out);
        out
    }

    /// The split, the model beside its baselines, the targets and the calibration.
    fn headline(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# Model evaluation\n\nTime split: trained on {} rows of the earlier trips, tested on {} rows of the latest {:.0}%. Errors in minutes.\n",
            self.train_rows,
            self.test_rows,
            100.0 * TEST_SHARE
        );
        out.push_str("## Model and baselines\n\n");
        out.push_str(FIGURES_HEADER);
        figures_row(out, "model", &self.model);
        for (name, f) in &self.baselines {
            figures_row(out, name, f);
        }
        if let Some(plain) = self.baselines.get(REQUEST_LIGHTGBM) {
            let _ = writeln!(
                out,
                "\nAgainst LightGBM on the request's own columns, the baseline a data scientist \
                 would write first: the model's MAE is {:.2} times its MAE, its bias {:+.1} min \
                 against {:+.1}.",
                self.model.mae / plain.mae,
                self.model.bias,
                plain.bias
            );
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
            "Time of year ({:?}): {}.\n",
            self.params.time_of_year,
            match self.ignored.is_empty() {
                true => "learnt".to_owned(),
                false => format!("not learnt ({})", self.ignored.join(", ")),
            }
        );
        let _ = writeln!(
            out,
            "Calibration on {} held-out rows: P10 lowered by {:.1} min, P90 raised by {:.1} min.\n",
            self.calibration.rows, self.calibration.low_minutes, self.calibration.high_minutes
        );
        if !self.calibration.cells.is_empty() {
            out.push_str(
                "Per cell (Mondrian), in units of the band's width; the unseen caller's cells \
                 are the held-out rows asked again with the partner code blanked. A cell with \
                 0 rows takes its caller's widening.\n\n| cell | held-out rows | P10 lowered by | P90 raised by |\n|---|---|---|---|\n",
            );
            for cell in &self.calibration.cells {
                let _ = writeln!(
                    out,
                    "| {} | {} | {:+.3} | {:+.3} |",
                    cell.name, cell.rows, cell.low, cell.high
                );
            }
            out.push('\n');
        }
    }

    fn left_out_table(&self, out: &mut String) {
        if self.partner_left_out.is_empty() {
            return;
        }
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

    fn pooled_table(&self, out: &mut String) {
        if self.pooled_vs_own.is_empty() {
            return;
        }
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

    fn importance_table(&self, out: &mut String) {
        out.push_str(
            "## Feature importance (gain of the median)\n\n| feature | share |\n|---|---|\n",
        );
        let total: f64 = self.feature_importance.iter().map(|(_, gain)| gain).sum();
        for (name, gain) in &self.feature_importance {
            let _ = writeln!(out, "| {name} | {:.1}% |", 100.0 * gain / total.max(1e-12));
        }
    }
}
