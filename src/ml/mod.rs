//! The model and what it learns from: trip histories, features, the LightGBM model.

pub mod features;
pub mod history;
pub mod model;
