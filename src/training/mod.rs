//! The model's lifecycle: the training pipeline, model directories, pooled retraining.

pub mod jobs;
pub mod pipeline;
pub mod registry;
