//! What the model is measured against: the rules engine alone, distance over an average
//! speed, and smartcore's linear regression and random forest on the same features.

use smartcore::ensemble::random_forest_regressor::{
    RandomForestRegressor, RandomForestRegressorParameters,
};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::linear_regression::{LinearRegression, LinearRegressionParameters};

use super::examples::{Examples, REQUEST_COLUMNS};
use super::fit::{Estimates, Fit, Predict};
use super::gbm::{self, Gbm, TrainingSet};
use super::train::{ModelError, Progress};
use crate::ml::features::FEATURES;

const N: usize = FEATURES.len();

fn feature(name: &str) -> usize {
    FEATURES
        .iter()
        .position(|known| *known == name)
        .expect("a known feature")
}

/// The rules engine's own estimate.
pub fn rules(matrix: &[f64]) -> Vec<f64> {
    let slot = feature("rules_minutes");
    matrix.chunks(N).map(|row| row[slot]).collect()
}

/// The rules engine alone: nothing to learn.
pub struct Rules;

impl Fit for Rules {
    type Fitted = Rules;

    fn fit(&self, _: &Examples, _: &mut dyn FnMut(Progress)) -> Result<Rules, ModelError> {
        Ok(Rules)
    }
}

impl Predict for Rules {
    fn predict(&self, set: &Examples) -> Result<Estimates, ModelError> {
        Ok(Estimates::points(rules(&set.matrix)))
    }
}

/// Road distance at the average speed of the training trips, stops and rests included.
pub struct AverageSpeed;

pub struct DistanceOverSpeed {
    pub kmh: f64,
}

impl Fit for AverageSpeed {
    type Fitted = DistanceOverSpeed;

    fn fit(
        &self,
        train: &Examples,
        _: &mut dyn FnMut(Progress),
    ) -> Result<DistanceOverSpeed, ModelError> {
        let slot = feature("rules_road_km");
        let km: f64 = train.matrix.chunks(N).map(|row| row[slot]).sum();
        let hours: f64 = train.minutes.iter().sum::<f64>() / 60.0;
        Ok(DistanceOverSpeed {
            kmh: km / hours.max(1e-9),
        })
    }
}

impl Predict for DistanceOverSpeed {
    fn predict(&self, set: &Examples) -> Result<Estimates, ModelError> {
        let slot = feature("rules_road_km");
        Ok(Estimates::points(
            set.matrix
                .chunks(N)
                .map(|row| row[slot] / self.kmh * 60.0)
                .collect(),
        ))
    }
}

/// Missing values replaced by the training mean of their column, which neither smartcore
/// model accepts.
struct Imputer {
    means: Vec<f64>,
}

impl Imputer {
    fn fit(matrix: &[f64]) -> Self {
        let means = (0..N)
            .map(|slot| {
                let (sum, count) = matrix
                    .chunks(N)
                    .map(|row| row[slot])
                    .filter(|value| value.is_finite())
                    .fold((0.0, 0usize), |(sum, count), value| {
                        (sum + value, count + 1)
                    });
                if count == 0 {
                    0.0
                } else {
                    sum / count as f64
                }
            })
            .collect();
        Self { means }
    }

    fn apply(&self, matrix: &[f64]) -> Result<DenseMatrix<f64>, ModelError> {
        let filled: Vec<f64> = matrix
            .chunks(N)
            .flat_map(|row| {
                row.iter()
                    .zip(&self.means)
                    .map(|(value, mean)| if value.is_finite() { *value } else { *mean })
            })
            .collect();
        DenseMatrix::new(matrix.len() / N, N, filled, false)
            .map_err(|error| ModelError::Data(error.to_string()))
    }
}

fn smartcore_error(error: smartcore::error::Failed) -> ModelError {
    ModelError::Data(format!("smartcore: {error}"))
}

/// smartcore's ordinary least squares on every feature.
pub struct LinearParams;

pub struct Linear {
    imputer: Imputer,
    model: LinearRegression<f64, f64, DenseMatrix<f64>, Vec<f64>>,
}

impl Fit for LinearParams {
    type Fitted = Linear;

    fn fit(&self, train: &Examples, _: &mut dyn FnMut(Progress)) -> Result<Linear, ModelError> {
        let imputer = Imputer::fit(&train.matrix);
        let x = imputer.apply(&train.matrix)?;
        let model = LinearRegression::fit(
            &x,
            &train.minutes.to_vec(),
            LinearRegressionParameters::default(),
        )
        .map_err(smartcore_error)?;
        Ok(Linear { imputer, model })
    }
}

impl Predict for Linear {
    fn predict(&self, set: &Examples) -> Result<Estimates, ModelError> {
        self.model
            .predict(&self.imputer.apply(&set.matrix)?)
            .map(Estimates::points)
            .map_err(smartcore_error)
    }
}

/// smartcore's forest is single-threaded and slow on large sets: it learns from at most this
/// many rows, spread evenly over the training set.
pub const FOREST_MAX_ROWS: usize = 20_000;

/// smartcore's random forest, seeded.
pub struct ForestParams {
    pub seed: u64,
}

pub struct Forest {
    imputer: Imputer,
    model: RandomForestRegressor<f64, f64, DenseMatrix<f64>, Vec<f64>>,
}

impl Fit for ForestParams {
    type Fitted = Forest;

    fn fit(&self, train: &Examples, _: &mut dyn FnMut(Progress)) -> Result<Forest, ModelError> {
        let (matrix, minutes) = (&train.matrix, &train.minutes);
        let n_rows = minutes.len();
        let step = n_rows.div_ceil(FOREST_MAX_ROWS).max(1);
        let kept: Vec<usize> = (0..n_rows).step_by(step).collect();
        let sub_matrix: Vec<f64> = kept
            .iter()
            .flat_map(|row| matrix[row * N..(row + 1) * N].iter().copied())
            .collect();
        let sub_minutes: Vec<f64> = kept.iter().map(|row| minutes[*row]).collect();
        let imputer = Imputer::fit(&sub_matrix);
        let x = imputer.apply(&sub_matrix)?;
        let params = RandomForestRegressorParameters::default()
            .with_n_trees(60)
            .with_max_depth(14)
            .with_min_samples_leaf(5)
            .with_m(N / 3)
            .with_seed(self.seed);
        let model =
            RandomForestRegressor::fit(&x, &sub_minutes, params).map_err(smartcore_error)?;
        Ok(Forest { imputer, model })
    }
}

impl Predict for Forest {
    fn predict(&self, set: &Examples) -> Result<Estimates, ModelError> {
        self.model
            .predict(&self.imputer.apply(&set.matrix)?)
            .map(Estimates::points)
            .map_err(smartcore_error)
    }
}

/// The baseline a data scientist would write first: LightGBM with its default objective and
/// shape on the request's own columns ([`REQUEST_COLUMNS`]) and nothing of what etape knows
/// (the rules' plan, the partner, the weather, the driver), with the model's rounds and seed.
pub struct RequestLightGbm {
    pub rounds: usize,
    pub seed: u64,
    pub threads: usize,
}

pub struct RequestModel {
    booster: Gbm,
    threads: usize,
}

impl Fit for RequestLightGbm {
    type Fitted = RequestModel;

    fn fit(
        &self,
        train: &Examples,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<RequestModel, ModelError> {
        let labels: Vec<f32> = train
            .minutes
            .iter()
            .map(|minutes| *minutes as f32)
            .collect();
        let set = TrainingSet {
            features: &train.request,
            labels: &labels,
            weights: None,
            feature_names: &REQUEST_COLUMNS,
        };
        let vehicle = REQUEST_COLUMNS
            .iter()
            .position(|name| *name == "vehicle_code")
            .expect("the vehicle is a request column");
        let threads = self.threads;
        let text = gbm::train(
            &set,
            &format!("categorical_feature={vehicle} num_threads={threads} verbosity=-1"),
            &format!(
                "objective=regression num_threads={threads} seed={} deterministic=true \
                 force_col_wise=true verbosity=-1",
                self.seed
            ),
            self.rounds,
            |round| {
                progress(Progress {
                    quantile: super::train::Quantile::P50,
                    round,
                    rounds: self.rounds,
                })
            },
        )?;
        Ok(RequestModel {
            booster: Gbm::from_text(&text)?,
            threads,
        })
    }
}

impl Predict for RequestModel {
    fn predict(&self, set: &Examples) -> Result<Estimates, ModelError> {
        Ok(Estimates::points(
            self.booster.predict(&set.request, self.threads)?,
        ))
    }
}
