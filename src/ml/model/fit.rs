//! One shape for everything the evaluation trains and tests, after linfa's `Fit` and
//! `Predict`: checked parameters fit a training set into something that predicts. The model
//! and each baseline it is measured against take that shape, so an experiment is written once
//! for all of them and a new baseline is one more implementation.

use super::examples::Examples;
use super::metrics::{figures, Figures};
use super::train::{Band, Model, ModelError, Progress, ValidParams};

/// Parameters that can learn from a training set.
pub trait Fit {
    type Fitted: Predict;

    /// Learns from `train`; `progress` hears of each boosting round, where there are any.
    fn fit(
        &self,
        train: &Examples,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Self::Fitted, ModelError>;
}

/// What a fit learnt, asked about rows it may not have seen.
pub trait Predict {
    /// Estimates for each row of `set`, from whichever of its columns the fit learnt from.
    fn predict(&self, set: &Examples) -> Result<Estimates, ModelError>;
}

/// Minutes from the moment asked for each row: the median, and the band where the estimator
/// gives one.
#[derive(Debug, Clone)]
pub struct Estimates {
    pub medians: Vec<f64>,
    pub bands: Option<Vec<Band>>,
}

impl Estimates {
    pub fn points(medians: Vec<f64>) -> Self {
        Self {
            medians,
            bands: None,
        }
    }

    pub fn bands(bands: Vec<Band>) -> Self {
        Self {
            medians: bands.iter().map(|band| band.p50).collect(),
            bands: Some(bands),
        }
    }

    /// The chosen rows, in that order.
    pub fn select(&self, rows: &[usize]) -> Self {
        Self {
            medians: rows.iter().map(|row| self.medians[*row]).collect(),
            bands: self
                .bands
                .as_ref()
                .map(|bands| rows.iter().map(|row| bands[*row]).collect()),
        }
    }

    /// Error figures against the true minutes, with the band's coverage where there is one;
    /// `None` for no rows.
    pub fn figures(&self, truth: &[f64]) -> Option<Figures> {
        figures(&self.medians, truth, self.bands.as_deref())
    }
}

/// Fits on `train` and estimates `test`: one experiment's run.
pub fn trial(
    estimator: &impl Fit,
    train: &Examples,
    test: &Examples,
    progress: &mut dyn FnMut(Progress),
) -> Result<Estimates, ModelError> {
    estimator.fit(train, progress)?.predict(test)
}

/// [`Fit`] with the fitted type out of sight, so that estimators of every kind stand in one
/// list.
pub trait Trial {
    fn run(
        &self,
        train: &Examples,
        test: &Examples,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Estimates, ModelError>;
}

impl<F: Fit> Trial for F {
    fn run(
        &self,
        train: &Examples,
        test: &Examples,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Estimates, ModelError> {
        trial(self, train, test, progress)
    }
}

/// The served model's boosters with checked parameters, coding partners by `partners`.
pub struct Boosting {
    pub params: ValidParams,
    pub partners: Vec<String>,
}

/// A fitted [`Model`] and the threads it predicts with.
pub struct Boosted {
    pub model: Model,
    threads: usize,
}

impl Fit for Boosting {
    type Fitted = Boosted;

    fn fit(
        &self,
        train: &Examples,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Boosted, ModelError> {
        let model = Model::fit(&train.rows(), self.partners.clone(), &self.params, progress)?;
        Ok(Boosted {
            model,
            threads: self.params.get().threads,
        })
    }
}

impl Predict for Boosted {
    fn predict(&self, set: &Examples) -> Result<Estimates, ModelError> {
        Ok(Estimates::bands(
            self.model.predict_raw(&set.matrix, self.threads)?,
        ))
    }
}
