//! Fitting the three boosters and calibrating their interval.

use serde::{Deserialize, Serialize};

use super::calibrate::calibrate;
pub use super::calibrate::Calibration;
use super::gbm::{self, Gbm, GbmError, TrainingSet};
use crate::ml::features::{
    CONDITION_COLUMNS, FEATURES, PARTNER_FEATURE, PROFILE_FEATURES, UNSEEN_PARTNER,
};

/// What the boosters learn. `Residual` is the trip's minutes minus the rules engine's estimate
/// (the `rules_minutes` feature): the model then learns only what the rules miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Total,
    Residual,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainParams {
    pub rounds: usize,
    pub learning_rate: f64,
    pub num_leaves: usize,
    /// Deepest a tree may grow; also bounds the cost of the per-row SHAP values behind an
    /// answer's factors, which grows with the square of the depth.
    pub max_depth: usize,
    pub min_data_in_leaf: usize,
    /// Histogram bins per feature. LightGBM's default is 255; finer bins pay off on minutes
    /// and kilometres.
    pub max_bin: usize,
    /// Smoothing of the partner categories' statistics (LightGBM's `cat_smooth`).
    pub cat_smooth: f64,
    /// Fewest rows a partner category needs on a split's side (`min_data_per_group`).
    pub min_data_per_group: usize,
    /// 0: every core.
    pub threads: usize,
    pub seed: u64,
    pub target: Target,
    /// The latest trips, by departure, held out to calibrate the interval.
    pub calibration_share: f64,
    /// The nominal coverage of [P10, P90].
    pub coverage: f64,
    /// Each row weighs its partner's row count to this power (0: every row the same; -0.5:
    /// a partner with a quarter of the rows weighs half as much in total, not a quarter).
    pub partner_weight_power: f64,
    /// The most of the pool's total weight one partner may carry (when there are enough
    /// partners for it: never below an equal share), so that a partner uploading many rows
    /// cannot make the pooled model its own.
    pub partner_weight_cap: f64,
    /// The share of training rows whose weather and congestion are blanked, so that the model
    /// also learns to answer without them (as it must when a feed is down).
    pub conditions_dropout: f64,
    /// The share of training rows asked as a caller the model has never seen would ask them
    /// (the partner code blanked, the pool's profile in place of the partner's), so that such a
    /// caller gets what the pool knows rather than whatever the trees make of a code no row had.
    pub partner_dropout: f64,
    /// After calibrating on the latest trips, learn again from every row, calibration slice
    /// included, and keep the widening found.
    pub refit_on_calibration: bool,
    /// Rows weigh half as much for each this many days they are older than the latest row
    /// (0: no weighting by age).
    pub recency_half_life_days: f64,
    /// Whether the boosters learn from the time of year (month, holidays): always, never, or
    /// as the latest trips say (see [`TimeOfYear::Select`]).
    pub time_of_year: TimeOfYear,
}

/// How the time-of-year features are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeOfYear {
    Learn,
    Ignore,
    /// Learn from them only if a median that knows them predicts the calibration slice (the
    /// latest trips) better than one that does not, both learnt from the earlier trips. A
    /// history shorter than a year asks about months it has never seen, and trees then answer
    /// with whatever month lies nearest; one of several years has seen each month before.
    #[default]
    Select,
}

/// The features that say when in the year a trip runs.
pub const TIME_OF_YEAR_FEATURES: [&str; 3] = ["month", "is_holiday", "is_holiday_eve"];

impl Default for TrainParams {
    fn default() -> Self {
        Self {
            rounds: 300,
            learning_rate: 0.05,
            num_leaves: 63,
            max_depth: 10,
            min_data_in_leaf: 20,
            max_bin: 1023,
            cat_smooth: 10.0,
            min_data_per_group: 50,
            threads: 0,
            seed: 7,
            target: Target::Total,
            calibration_share: 0.15,
            coverage: 0.8,
            partner_weight_power: -0.5,
            partner_weight_cap: 0.35,
            conditions_dropout: 0.25,
            partner_dropout: 0.15,
            refit_on_calibration: false,
            recency_half_life_days: 0.0,
            time_of_year: TimeOfYear::Select,
        }
    }
}

/// Parameters that passed [`TrainParams::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidParams(TrainParams);

impl ValidParams {
    pub fn get(&self) -> &TrainParams {
        &self.0
    }

    /// The same parameters learning another target: the checks do not depend on it.
    pub fn with_target(&self, target: Target) -> ValidParams {
        ValidParams(TrainParams {
            target,
            ..self.0.clone()
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("parameter {name}: {problem}")]
    Param {
        name: &'static str,
        problem: &'static str,
    },
    #[error("{0}")]
    Data(String),
    #[error(transparent)]
    Gbm(#[from] GbmError),
}

impl TrainParams {
    pub fn check(self) -> Result<ValidParams, ModelError> {
        let fail = |name, problem| Err(ModelError::Param { name, problem });
        if !(1..=20_000).contains(&self.rounds) {
            return fail("rounds", "must be between 1 and 20000");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return fail("learning_rate", "must be in (0, 1]");
        }
        if self.num_leaves < 2 {
            return fail("num_leaves", "must be at least 2");
        }
        if !(2..=64).contains(&self.max_depth) {
            return fail("max_depth", "must be between 2 and 64");
        }
        if self.min_data_in_leaf == 0 {
            return fail("min_data_in_leaf", "must be at least 1");
        }
        if !(2..=65_535).contains(&self.max_bin) {
            return fail("max_bin", "must be between 2 and 65535");
        }
        if !(self.calibration_share > 0.0 && self.calibration_share < 0.5) {
            return fail("calibration_share", "must be in (0, 0.5)");
        }
        if !(self.coverage > 0.0 && self.coverage < 1.0) {
            return fail("coverage", "must be in (0, 1)");
        }
        if !(-1.0..=0.0).contains(&self.partner_weight_power) {
            return fail("partner_weight_power", "must be in [-1, 0]");
        }
        if !(self.partner_weight_cap > 0.0 && self.partner_weight_cap <= 1.0) {
            return fail("partner_weight_cap", "must be in (0, 1]");
        }
        if !(0.0..1.0).contains(&self.conditions_dropout) {
            return fail("conditions_dropout", "must be in [0, 1)");
        }
        if !(0.0..0.5).contains(&self.partner_dropout) {
            return fail("partner_dropout", "must be in [0, 0.5)");
        }
        if !(self.recency_half_life_days >= 0.0 && self.recency_half_life_days.is_finite()) {
            return fail(
                "recency_half_life_days",
                "must be 0 (off) or a positive number of days",
            );
        }
        Ok(ValidParams(self))
    }
}

/// How a partner's trips compare with the rules engine, learnt from its training trips and
/// shrunk towards the pool's figures by [`PROFILE_PRIOR_TRIPS`] imaginary average trips: a
/// partner with few trips gets little more than the pool's profile. Profile 0 is the pool's
/// own, for a partner the model has not seen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PartnerProfile {
    /// On trips the rules plan without a daily rest: the geometric mean of true over rules
    /// minutes (how fast the partner's trucks drive and unload).
    pub day_pace: f64,
    /// On trips with a daily rest: the mean of true minus rules minutes (how the partner's
    /// drivers rest: reduced rests, extended days, long breaks).
    pub rest_extra_minutes: f64,
    /// Among trips whose strict plan (no extended days, no reduced rests) differs from the
    /// configured one by an hour or more, the share that came closer to the strict plan.
    pub strict_share: f64,
    pub trips: usize,
}

pub const PROFILE_PRIOR_TRIPS: f64 = 50.0;

/// A prediction in minutes from the moment asked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
}

/// Which of the three boosters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantile {
    P50,
    P10,
    P90,
}

impl Quantile {
    pub const ALL: [Quantile; 3] = [Quantile::P50, Quantile::P10, Quantile::P90];

    pub fn name(self) -> &'static str {
        match self {
            Quantile::P50 => "p50",
            Quantile::P10 => "p10",
            Quantile::P90 => "p90",
        }
    }

    fn objective(self) -> &'static str {
        match self {
            Quantile::P50 => "objective=regression_l1",
            Quantile::P10 => "objective=quantile alpha=0.1",
            Quantile::P90 => "objective=quantile alpha=0.9",
        }
    }
}

/// Training progress: the booster being fitted and its round.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub quantile: Quantile,
    pub round: usize,
    pub rounds: usize,
}

/// A trained model: its boosters, what they learnt and how their interval is widened.
pub struct Model {
    pub boosters: [Gbm; 3],
    /// The boosters in LightGBM's text format, as a model directory stores them.
    pub texts: [String; 3],
    pub target: Target,
    pub calibration: Calibration,
    /// Partners known to the model; the partner at index `i` has feature code `i + 1`.
    pub partners: Vec<String>,
    /// By feature code: the pool's profile first, then each partner's.
    pub profiles: Vec<PartnerProfile>,
    /// Features the boosters were kept from learning (blank in every training row, so no tree
    /// splits on them), as training chose them; empty for a model loaded from its texts.
    pub ignored: Vec<&'static str>,
}

/// Training rows: row-major [`FEATURES`], the true minutes, and an order (the trip's start)
/// by which the latest rows are held out for calibration.
pub struct Rows<'a> {
    pub matrix: &'a [f64],
    pub minutes: &'a [f64],
    pub order: &'a [i64],
}

const RULES_FEATURE: usize = 16;
const N: usize = FEATURES.len();

impl Model {
    pub fn fit(
        rows: &Rows<'_>,
        partners: Vec<String>,
        params: &ValidParams,
        mut progress: impl FnMut(Progress),
    ) -> Result<Model, ModelError> {
        debug_assert_eq!(FEATURES[RULES_FEATURE], "rules_minutes");
        let params = params.get();
        let Prepared {
            fit_rows,
            calibration_rows,
            profiles,
            ignored,
            hidden,
        } = prepare(rows, partners.len(), params, &mut progress)?;
        let (fit_rows, calibration_rows) = (fit_rows.as_slice(), calibration_rows.as_slice());
        let texts = learn(rows, fit_rows, &profiles, params, &hidden, &mut progress)?;
        let threads = params.threads;
        let uncalibrated = Model {
            boosters: load(&texts)?,
            texts,
            target: params.target,
            calibration: Calibration::none(),
            partners,
            profiles,
            ignored,
        };
        let (mut calibration_matrix, calibration_minutes) = gather(rows, calibration_rows, params);
        complete(&uncalibrated.profiles, &mut calibration_matrix);
        let raw = uncalibrated.predict(&calibration_matrix, threads)?;
        let mut as_unseen = calibration_matrix.clone();
        for row in as_unseen.chunks_mut(N) {
            row[PARTNER_FEATURE] = f64::from(UNSEEN_PARTNER);
        }
        complete(&uncalibrated.profiles, &mut as_unseen);
        let unseen = uncalibrated.predict(&as_unseen, threads)?;
        let calibration = calibrate(
            &calibration_matrix,
            &raw,
            &unseen,
            &calibration_minutes,
            params.coverage,
        );
        if params.refit_on_calibration {
            // The widening found on the held-out slice is kept for boosters that then learn
            // from it too: the latest trips say the most about the next ones.
            let every_row: Vec<usize> = fit_rows.iter().chain(calibration_rows).copied().collect();
            let texts = learn(
                rows,
                &every_row,
                &uncalibrated.profiles,
                params,
                &hidden,
                &mut progress,
            )?;
            return Ok(Model {
                boosters: load(&texts)?,
                texts,
                calibration,
                ..uncalibrated
            });
        }
        Ok(Model {
            calibration,
            ..uncalibrated
        })
    }

    /// Loads boosters saved by [`Model::fit`].
    pub fn from_texts(
        texts: [String; 3],
        target: Target,
        calibration: Calibration,
        partners: Vec<String>,
        profiles: Vec<PartnerProfile>,
    ) -> Result<Model, ModelError> {
        if profiles.len() != partners.len() + 1 {
            return Err(ModelError::Data(format!(
                "{} partner profiles for {} partners and the pool",
                profiles.len(),
                partners.len()
            )));
        }
        let boosters = load(&texts)?;
        for booster in &boosters {
            if booster.n_features() != N {
                return Err(ModelError::Data(format!(
                    "a booster takes {} features, this build computes {N}",
                    booster.n_features()
                )));
            }
        }
        Ok(Model {
            boosters,
            texts,
            target,
            calibration,
            partners,
            profiles,
            ignored: Vec::new(),
        })
    }

    /// Calibrated bands for a matrix as it comes from the features, partner profiles still
    /// to fill in (a copy is completed; serving completes its rows itself and calls
    /// [`Model::predict`]).
    pub fn predict_raw(&self, matrix: &[f64], threads: usize) -> Result<Vec<Band>, ModelError> {
        let mut completed = matrix.to_vec();
        self.complete(&mut completed);
        self.predict(&completed, threads)
    }

    /// Calibrated bands, in minutes from the moment asked, for row-major [`FEATURES`] already
    /// completed by [`Model::complete`].
    pub fn predict(&self, matrix: &[f64], threads: usize) -> Result<Vec<Band>, ModelError> {
        let [p50, p10, p90] = &self.boosters;
        let (p50, p10, p90) = if matrix.len() == N {
            (
                vec![p50.predict_one(matrix)?],
                vec![p10.predict_one(matrix)?],
                vec![p90.predict_one(matrix)?],
            )
        } else {
            (
                p50.predict(matrix, threads)?,
                p10.predict(matrix, threads)?,
                p90.predict(matrix, threads)?,
            )
        };
        Ok(matrix
            .chunks(N)
            .enumerate()
            .map(|(row_idx, row)| {
                let base = base(self.target, row);
                let raw = Band {
                    p10: base + p10[row_idx],
                    p50: base + p50[row_idx],
                    p90: base + p90[row_idx],
                };
                self.calibration.apply(row, raw)
            })
            .collect())
    }

    /// The median's per-feature contributions for one completed row, in minutes, strongest
    /// first.
    pub fn contributions(&self, row: &[f64]) -> Result<Vec<(usize, f64)>, ModelError> {
        let values = self.boosters[0].contributions(row)?;
        Ok(strongest(&values[..N], N))
    }

    /// Fills each row's partner profile from its partner code.
    pub fn complete(&self, matrix: &mut [f64]) {
        complete(&self.profiles, matrix);
    }

    /// The `top` strongest contributions of each row of a completed row-major matrix.
    pub fn batch_contributions(
        &self,
        matrix: &[f64],
        top: usize,
    ) -> Result<Vec<Vec<(usize, f64)>>, ModelError> {
        let values = self.boosters[0].contributions(matrix)?;
        Ok(values
            .chunks(N + 1)
            .map(|row| strongest(&row[..N], top))
            .collect())
    }

    /// The partner's feature code: its place in the vocabulary, or 0 when unseen.
    pub fn partner_code(&self, partner: &str) -> u32 {
        self.partners
            .iter()
            .position(|known| known == partner)
            .map_or(crate::ml::features::UNSEEN_PARTNER, |index| {
                index as u32 + 1
            })
    }
}

/// The three boosters learnt from the chosen rows (see [`Learnt`]).
/// What [`Model::fit`] decides before the boosters learn: the rows they learn from and the
/// calibration slice held out, the partners' profiles, the features kept from them.
struct Prepared {
    fit_rows: Vec<usize>,
    calibration_rows: Vec<usize>,
    profiles: Vec<PartnerProfile>,
    ignored: Vec<&'static str>,
    hidden: Vec<usize>,
}

fn prepare(
    rows: &Rows<'_>,
    n_partners: usize,
    params: &TrainParams,
    progress: &mut impl FnMut(Progress),
) -> Result<Prepared, ModelError> {
    let n_rows = rows.minutes.len();
    if rows.matrix.len() != n_rows * N || rows.order.len() != n_rows {
        return Err(ModelError::Data(
            "rows, minutes and order differ in length".into(),
        ));
    }
    let (fit_rows, calibration_rows) = holdout_split(rows.order, params.calibration_share);
    if n_rows < 50 || calibration_rows.len() < 20 {
        return Err(ModelError::Data(format!(
            "{n_rows} rows are too few to train and calibrate a model"
        )));
    }
    let profiles = partner_profiles(rows, &fit_rows, n_partners);
    let split = (fit_rows.as_slice(), calibration_rows.as_slice());
    let ignored = ignored_features(rows, split, &profiles, params, progress)?;
    let hidden = slots_of(&ignored);
    Ok(Prepared {
        fit_rows,
        calibration_rows,
        profiles,
        ignored,
        hidden,
    })
}

/// The three boosters' training set as [`Model::fit`] hands it to LightGBM, with LightGBM's
/// parameters for it: for another LightGBM (Python's, in `benches/train.sh`) to train the
/// same boosters on.
pub struct BoostersInput {
    /// Row-major, `FEATURES.len()` values a row.
    pub matrix: Vec<f64>,
    pub labels: Vec<f32>,
    pub weights: Vec<f32>,
    pub dataset_params: String,
    /// Each booster's name and parameters.
    pub boosters: Vec<(&'static str, String)>,
    pub rounds: usize,
}

/// What the three boosters of [`Model::fit`] would learn from, as it would decide it.
pub fn boosters_input(
    rows: &Rows<'_>,
    n_partners: usize,
    params: &ValidParams,
) -> Result<BoostersInput, ModelError> {
    let params = params.get();
    let prepared = prepare(rows, n_partners, params, &mut |_| {})?;
    let learnt = Learnt::of(
        rows,
        &prepared.fit_rows,
        &prepared.profiles,
        params,
        &prepared.hidden,
    );
    Ok(BoostersInput {
        matrix: learnt.matrix,
        labels: learnt.labels,
        weights: learnt.weights,
        dataset_params: dataset_params(params),
        boosters: Quantile::ALL
            .iter()
            .map(|quantile| (quantile.name(), booster_params(params, *quantile)))
            .collect(),
        rounds: params.rounds,
    })
}

fn learn(
    rows: &Rows<'_>,
    chosen: &[usize],
    profiles: &[PartnerProfile],
    params: &TrainParams,
    hidden: &[usize],
    progress: &mut impl FnMut(Progress),
) -> Result<[String; 3], ModelError> {
    let learnt = Learnt::of(rows, chosen, profiles, params, hidden);
    let mut texts = Vec::with_capacity(3);
    for quantile in Quantile::ALL {
        texts.push(train_booster(&learnt.set(), params, quantile, progress)?);
    }
    Ok(texts.try_into().expect("three boosters"))
}

/// The features the boosters are kept from learning, as `params.time_of_year` says.
fn ignored_features(
    rows: &Rows<'_>,
    split: (&[usize], &[usize]),
    profiles: &[PartnerProfile],
    params: &TrainParams,
    progress: &mut impl FnMut(Progress),
) -> Result<Vec<&'static str>, ModelError> {
    Ok(match params.time_of_year {
        TimeOfYear::Learn => Vec::new(),
        TimeOfYear::Ignore => TIME_OF_YEAR_FEATURES.to_vec(),
        TimeOfYear::Select => select_time_of_year(rows, split, profiles, params, progress)?,
    })
}

/// Whether the time of year is worth learning here: the medians learnt from the earlier
/// trips with and without it, on the latest; the features to ignore.
fn select_time_of_year(
    rows: &Rows<'_>,
    (earlier, latest): (&[usize], &[usize]),
    profiles: &[PartnerProfile],
    params: &TrainParams,
    progress: &mut impl FnMut(Progress),
) -> Result<Vec<&'static str>, ModelError> {
    let (mut matrix, minutes) = gather(rows, latest, params);
    complete(profiles, &mut matrix);
    let mut mae = |hidden: &[usize]| -> Result<f64, ModelError> {
        let learnt = Learnt::of(rows, earlier, profiles, params, hidden);
        let text = train_booster(&learnt.set(), params, Quantile::P50, progress)?;
        let predicted = Gbm::from_text(&text)?.predict(&matrix, params.threads)?;
        let total: f64 = predicted
            .iter()
            .zip(matrix.chunks(N))
            .zip(&minutes)
            .map(|((raw, row), truth)| (base(params.target, row) + raw - truth).abs())
            .sum();
        Ok(total / minutes.len().max(1) as f64)
    };
    let (knowing, blind) = (mae(&[])?, mae(&slots_of(&TIME_OF_YEAR_FEATURES))?);
    Ok(match knowing <= blind {
        true => Vec::new(),
        false => TIME_OF_YEAR_FEATURES.to_vec(),
    })
}

/// The places of these features in a row.
fn slots_of(names: &[&str]) -> Vec<usize> {
    names
        .iter()
        .map(|name| {
            FEATURES
                .iter()
                .position(|known| known == name)
                .expect("a known feature")
        })
        .collect()
}

/// What boosters learn from: the chosen rows with their profiles filled in and the `hidden`
/// features blanked, each row weighed by its partner and its age, a share asked as an unseen
/// caller.
struct Learnt {
    matrix: Vec<f64>,
    labels: Vec<f32>,
    weights: Vec<f32>,
}

impl Learnt {
    fn set(&self) -> TrainingSet<'_> {
        TrainingSet {
            features: &self.matrix,
            labels: &self.labels,
            weights: Some(&self.weights),
            feature_names: &FEATURES,
        }
    }

    fn of(
        rows: &Rows<'_>,
        chosen: &[usize],
        profiles: &[PartnerProfile],
        params: &TrainParams,
        hidden: &[usize],
    ) -> Learnt {
        let (mut matrix, minutes) = gather(rows, chosen, params);
        complete(profiles, &mut matrix);
        for row in matrix.chunks_mut(N) {
            for &slot in hidden {
                row[slot] = f64::NAN;
            }
        }
        let labels: Vec<f32> = minutes
            .iter()
            .zip(matrix.chunks(N))
            .map(|(minutes, row)| label(params.target, *minutes, row) as f32)
            .collect();
        // Weighed by the partner they came from, before some are asked as unseen callers.
        let mut weights = partner_weights(
            &matrix,
            params.partner_weight_power,
            params.partner_weight_cap,
        );
        if params.recency_half_life_days > 0.0 {
            let latest = chosen
                .iter()
                .map(|row| rows.order[*row])
                .max()
                .unwrap_or_default();
            for (weight, row) in weights.iter_mut().zip(chosen) {
                let age_days = (latest - rows.order[*row]) as f64 / 86_400_000.0;
                *weight *= 0.5f64.powf(age_days / params.recency_half_life_days) as f32;
            }
        }
        drop_partners(&mut matrix, profiles, params);
        Learnt {
            matrix,
            labels,
            weights,
        }
    }
}

/// One booster of the three, LightGBM's text of it.
fn train_booster(
    set: &TrainingSet<'_>,
    params: &TrainParams,
    quantile: Quantile,
    progress: &mut impl FnMut(Progress),
) -> Result<String, ModelError> {
    Ok(gbm::train(
        set,
        &dataset_params(params),
        &booster_params(params, quantile),
        params.rounds,
        |round| {
            progress(Progress {
                quantile,
                round,
                rounds: params.rounds,
            })
        },
    )?)
}

/// LightGBM's dataset parameters: how the features are binned.
fn dataset_params(params: &TrainParams) -> String {
    format!(
        "max_bin={} categorical_feature={PARTNER_FEATURE} num_threads={} verbosity=-1 seed={}",
        params.max_bin, params.threads, params.seed
    )
}

/// LightGBM's parameters for one of the three boosters.
fn booster_params(params: &TrainParams, quantile: Quantile) -> String {
    format!(
        "{} learning_rate={} num_leaves={} max_depth={} min_data_in_leaf={} num_threads={} \
         seed={} deterministic=true force_col_wise=true verbosity=-1 cat_smooth={} \
         min_data_per_group={}",
        quantile.objective(),
        params.learning_rate,
        params.num_leaves,
        params.max_depth,
        params.min_data_in_leaf,
        params.threads,
        params.seed,
        params.cat_smooth,
        params.min_data_per_group,
    )
}

fn partner_weights(matrix: &[f64], power: f64, cap: f64) -> Vec<f32> {
    let codes: Vec<usize> = matrix
        .chunks(N)
        .map(|row| row[PARTNER_FEATURE] as usize)
        .collect();
    let mut counts = vec![0usize; codes.iter().max().map_or(1, |max| max + 1)];
    for code in &codes {
        counts[*code] += 1;
    }
    // A code no row has (the unseen partner's, in training) weighs nothing rather than 0^-p.
    let per_row: Vec<f64> = counts
        .iter()
        .map(|count| match count {
            0 => 0.0,
            _ => (*count as f64).powf(power),
        })
        .collect();
    let totals: Vec<f64> = counts
        .iter()
        .zip(&per_row)
        .map(|(count, weight)| *count as f64 * weight)
        .collect();
    let scale = capped_shares(&totals, cap);
    let raw: Vec<f64> = codes
        .iter()
        .map(|code| per_row[*code] * scale[*code])
        .collect();
    // Scaled to a mean of one, so that min_data_in_leaf and the learning rate keep their sense.
    let mean = raw.iter().sum::<f64>() / raw.len().max(1) as f64;
    raw.iter().map(|weight| (weight / mean) as f32).collect()
}

/// A factor for each partner's total weight such that none carries more than `cap` of the
/// sum (or an equal share, when there are too few partners for the cap): the partners over it
/// are brought down to it and the others keep their proportions. Under the cap, every factor
/// is exactly one.
fn capped_shares(totals: &[f64], cap: f64) -> Vec<f64> {
    let present = totals.iter().filter(|total| **total > 0.0).count();
    let cap = cap.max(1.0 / present.max(1) as f64);
    let sum: f64 = totals.iter().sum();
    let mut capped = vec![false; totals.len()];
    // Each pass caps at least one more partner or ends, so there are at most as many passes
    // as partners.
    loop {
        let free: f64 = (0..totals.len())
            .filter(|&code| !capped[code])
            .map(|code| totals[code])
            .sum();
        // The capped partners take `cap` each; the free ones share the rest in proportion.
        let rest = 1.0 - cap * capped.iter().filter(|capped| **capped).count() as f64;
        let over: Vec<usize> = (0..totals.len())
            .filter(|&code| !capped[code] && free > 0.0 && totals[code] / free * rest > cap)
            .collect();
        if over.is_empty() {
            return (0..totals.len())
                .map(|code| match (capped[code], totals[code] > 0.0) {
                    (_, false) => 1.0,
                    (true, true) => cap * sum / totals[code],
                    (false, true) => rest * sum / free,
                })
                .collect();
        }
        for code in over {
            capped[code] = true;
        }
    }
}

#[cfg(test)]
mod weight_tests {
    use super::capped_shares;

    fn shares(totals: &[f64], cap: f64) -> Vec<f64> {
        let scaled: Vec<f64> = capped_shares(totals, cap)
            .iter()
            .zip(totals)
            .map(|(factor, total)| factor * total)
            .collect();
        let sum: f64 = scaled.iter().sum();
        scaled.iter().map(|total| total / sum).collect()
    }

    #[test]
    fn a_partner_with_many_rows_carries_no_more_than_the_cap_and_the_others_keep_their_ratio() {
        // One partner of 10,000 rows beside three of 1,000, each row at count^-0.5.
        let totals = [100.0, 31.6, 31.6, 15.8];
        let got = shares(&totals, 0.35);
        assert!((got[0] - 0.35).abs() < 1e-12, "{got:?}");
        assert!((got[1] / got[3] - 2.0).abs() < 1e-9, "{got:?}");
        assert!((got.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn under_the_cap_nothing_changes_and_two_partners_may_share_half_each() {
        assert_eq!(capped_shares(&[10.0, 9.0, 8.0], 0.4), vec![1.0, 1.0, 1.0]);
        let two = shares(&[100.0, 10.0], 0.35);
        assert!((two[0] - 0.5).abs() < 1e-12, "{two:?}");
        let several_over = shares(&[50.0, 40.0, 5.0, 5.0, 0.0], 0.3);
        assert!(
            several_over.iter().all(|share| *share <= 0.3 + 1e-12),
            "{several_over:?}"
        );
        assert_eq!(several_over[4], 0.0);
    }
}

fn complete(profiles: &[PartnerProfile], matrix: &mut [f64]) {
    let [pace, extra, strict] = PROFILE_FEATURES;
    for row in matrix.chunks_mut(N) {
        let code = row[PARTNER_FEATURE];
        let profile = profiles
            .get(code as usize)
            .filter(|_| code >= 0.0)
            .unwrap_or(&profiles[0]);
        row[pace] = profile.day_pace;
        row[extra] = profile.rest_extra_minutes;
        row[strict] = profile.strict_share;
    }
}

/// Profiles from the departure rows among `chosen` (mid-trip samples would count a trip many
/// times).
fn partner_profiles(rows: &Rows<'_>, chosen: &[usize], n_partners: usize) -> Vec<PartnerProfile> {
    let slot = |name: &str| {
        FEATURES
            .iter()
            .position(|known| *known == name)
            .expect("a feature")
    };
    let (elapsed, rests) = (slot("elapsed_minutes"), slot("rules_rest_minutes"));
    let strict_slot = slot("rules_strict_minutes");
    // Per code: (sum of log pace, day trips, sum of rest extra, rest trips).
    let mut sums = vec![(0.0f64, 0usize, 0.0f64, 0usize); n_partners + 1];
    // Per code: (trips closer to the strict plan, trips where the plans differ).
    let mut strict_counts = vec![(0usize, 0usize); n_partners + 1];
    for &row in chosen {
        let features = &rows.matrix[row * N..(row + 1) * N];
        let rules = features[RULES_FEATURE];
        if features[elapsed] != 0.0 || rules.is_nan() || rules <= 0.0 {
            continue;
        }
        let code = (features[PARTNER_FEATURE] as usize).min(n_partners);
        let strict = features[strict_slot];
        for slot in if code == 0 { vec![0] } else { vec![0, code] } {
            if (strict - rules).abs() >= 60.0 {
                let truth = rows.minutes[row];
                strict_counts[slot].1 += 1;
                if (truth - strict).abs() < (truth - rules).abs() {
                    strict_counts[slot].0 += 1;
                }
            }
            if features[rests] > 0.0 {
                sums[slot].2 += rows.minutes[row] - rules;
                sums[slot].3 += 1;
            } else {
                sums[slot].0 += (rows.minutes[row].max(1.0) / rules).ln();
                sums[slot].1 += 1;
            }
        }
    }
    let (pool_log, pool_days, pool_extra, pool_rests) = sums[0];
    let pool_log = pool_log / pool_days.max(1) as f64;
    let pool_extra = pool_extra / pool_rests.max(1) as f64;
    let shrunk = |sum: f64, count: usize, pool: f64| {
        (sum + PROFILE_PRIOR_TRIPS * pool) / (count as f64 + PROFILE_PRIOR_TRIPS)
    };
    let pool_strict = strict_counts[0].0 as f64 / strict_counts[0].1.max(1) as f64;
    sums.iter()
        .zip(&strict_counts)
        .map(
            |(&(log_sum, days, extra_sum, rest_trips), &(closer, differing))| PartnerProfile {
                day_pace: shrunk(log_sum, days, pool_log).exp(),
                rest_extra_minutes: shrunk(extra_sum, rest_trips, pool_extra),
                strict_share: shrunk(closer as f64, differing, pool_strict),
                trips: days + rest_trips,
            },
        )
        .collect()
}

fn strongest(contributions: &[f64], top: usize) -> Vec<(usize, f64)> {
    let mut factors: Vec<(usize, f64)> = contributions.iter().copied().enumerate().collect();
    factors.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    factors.truncate(top);
    factors
}

fn load(texts: &[String; 3]) -> Result<[Gbm; 3], ModelError> {
    Ok([
        Gbm::from_text(&texts[0])?,
        Gbm::from_text(&texts[1])?,
        Gbm::from_text(&texts[2])?,
    ])
}

/// What the boosters' answer for a row is added to.
fn base(target: Target, row: &[f64]) -> f64 {
    match target {
        Target::Total => 0.0,
        Target::Residual => row[RULES_FEATURE],
    }
}

fn label(target: Target, minutes: f64, row: &[f64]) -> f64 {
    match target {
        Target::Total => minutes,
        Target::Residual => minutes - row[RULES_FEATURE],
    }
}

/// Asks a fixed share of the rows as an unseen caller would: partner code blanked, the pool's
/// profile in place of the partner's. A hash of the row, like the conditions' dropout.
fn drop_partners(matrix: &mut [f64], profiles: &[PartnerProfile], params: &TrainParams) {
    for (index, row) in matrix.chunks_mut(N).enumerate() {
        let salted = index as u64 ^ params.seed ^ 0x5bd1_e995_9e37_79b9;
        let draw = (crate::domain::ids::splitmix(salted) >> 11) as f64 / (1u64 << 53) as f64;
        if draw < params.partner_dropout {
            row[PARTNER_FEATURE] = f64::from(UNSEEN_PARTNER);
        }
    }
    complete(profiles, matrix);
}

/// The rows a model learns from and the latest `share` of them (by `order`), which it holds
/// out to calibrate its interval: the holdout a new model is judged on.
pub fn holdout_split(order: &[i64], share: f64) -> (Vec<usize>, Vec<usize>) {
    let mut by_order: Vec<usize> = (0..order.len()).collect();
    by_order.sort_by_key(|&row| order[row]);
    let n_holdout = (order.len() as f64 * share).round() as usize;
    let holdout = by_order.split_off(order.len() - n_holdout.min(order.len()));
    (by_order, holdout)
}

/// The chosen rows, with the conditions of a fixed share of them blanked.
fn gather(rows: &Rows<'_>, chosen: &[usize], params: &TrainParams) -> (Vec<f64>, Vec<f64>) {
    let first_condition = FEATURES
        .iter()
        .position(|name| *name == CONDITION_COLUMNS[0])
        .expect("conditions are features");
    let mut matrix = Vec::with_capacity(chosen.len() * N);
    let mut minutes = Vec::with_capacity(chosen.len());
    for &row in chosen {
        let start = matrix.len();
        matrix.extend_from_slice(&rows.matrix[row * N..(row + 1) * N]);
        // A hash of the row, not a random draw: the same rows lose their conditions each run.
        let draw = (crate::domain::ids::splitmix(row as u64 ^ params.seed) >> 11) as f64
            / (1u64 << 53) as f64;
        if draw < params.conditions_dropout {
            let blank = start + first_condition..start + first_condition + CONDITION_COLUMNS.len();
            matrix[blank].fill(f64::NAN);
        }
        minutes.push(rows.minutes[row]);
    }
    (matrix, minutes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked_before_use() {
        let bad = TrainParams {
            max_bin: 1,
            ..TrainParams::default()
        };
        let error = bad.check().unwrap_err().to_string();
        assert_eq!(error, "parameter max_bin: must be between 2 and 65535");
        assert!(TrainParams::default().check().is_ok());
    }
}
