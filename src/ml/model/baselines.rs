//! What the model is measured against: the rules engine alone, distance over an average
//! speed, and smartcore's linear regression and random forest on the same features.

use smartcore::ensemble::random_forest_regressor::{
    RandomForestRegressor, RandomForestRegressorParameters,
};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::linear_regression::{LinearRegression, LinearRegressionParameters};

use super::train::ModelError;
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

/// Road distance at the average speed of the training trips, stops and rests included.
pub struct DistanceOverSpeed {
    pub kmh: f64,
}

impl DistanceOverSpeed {
    pub fn fit(matrix: &[f64], minutes: &[f64]) -> Self {
        let slot = feature("rules_road_km");
        let km: f64 = matrix.chunks(N).map(|row| row[slot]).sum();
        let hours: f64 = minutes.iter().sum::<f64>() / 60.0;
        Self {
            kmh: km / hours.max(1e-9),
        }
    }

    pub fn predict(&self, matrix: &[f64]) -> Vec<f64> {
        let slot = feature("rules_road_km");
        matrix
            .chunks(N)
            .map(|row| row[slot] / self.kmh * 60.0)
            .collect()
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

pub struct Linear {
    imputer: Imputer,
    model: LinearRegression<f64, f64, DenseMatrix<f64>, Vec<f64>>,
}

impl Linear {
    pub fn fit(matrix: &[f64], minutes: &[f64]) -> Result<Self, ModelError> {
        let imputer = Imputer::fit(matrix);
        let x = imputer.apply(matrix)?;
        let model =
            LinearRegression::fit(&x, &minutes.to_vec(), LinearRegressionParameters::default())
                .map_err(smartcore_error)?;
        Ok(Self { imputer, model })
    }

    pub fn predict(&self, matrix: &[f64]) -> Result<Vec<f64>, ModelError> {
        self.model
            .predict(&self.imputer.apply(matrix)?)
            .map_err(smartcore_error)
    }
}

/// smartcore's forest is single-threaded and slow on large sets: it learns from at most this
/// many rows, spread evenly over the training set.
pub const FOREST_MAX_ROWS: usize = 20_000;

pub struct Forest {
    imputer: Imputer,
    model: RandomForestRegressor<f64, f64, DenseMatrix<f64>, Vec<f64>>,
}

impl Forest {
    pub fn fit(matrix: &[f64], minutes: &[f64], seed: u64) -> Result<Self, ModelError> {
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
            .with_seed(seed);
        let model =
            RandomForestRegressor::fit(&x, &sub_minutes, params).map_err(smartcore_error)?;
        Ok(Self { imputer, model })
    }

    pub fn predict(&self, matrix: &[f64]) -> Result<Vec<f64>, ModelError> {
        self.model
            .predict(&self.imputer.apply(matrix)?)
            .map_err(smartcore_error)
    }
}
