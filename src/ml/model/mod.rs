//! The pooled model: three LightGBM boosters (the median and the 10th and 90th percentiles of
//! the trip's duration) trained on the features of every partner's history, with the interval
//! calibrated on held-out trips so that it means what it says.
//!
//! - [`dataset`]: histories to one training frame (departure rows and mid-trip samples), and
//!   that frame to a row-major matrix.
//! - [`train`]: parameters and fitting.
//! - [`calibrate`]: the interval's conformal calibration, per cell of caller, horizon and distance.
//! - [`examples`]: the training rows as plain columns.
//! - [`fit`]: the fit-and-predict shape the model and every baseline share.
//! - [`evaluate`]: splits, experiments, error figures, the report.
//! - [`serve`]: the [`crate::domain::eta::EstimateEta`] that answers from a model.
//! - [`gbm`]: LightGBM itself, the only `unsafe` code in the crate.
//! - [`forest`]: LightGBM's trees walked in Rust, for predictions and SHAP values at serving.
//!
//! Architecture invariant: no I/O; `crate::training::registry` reads and writes model directories.

pub mod baselines;
pub mod calibrate;
pub mod dataset;
pub mod evaluate;
pub mod examples;
pub mod fit;
pub mod forest;
pub mod gbm;
pub mod metrics;
pub mod serve;
pub mod train;

pub use train::{Model, ModelError, Target, TrainParams};
