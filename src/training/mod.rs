//! The model's lifecycle: the training pipeline, model directories, pooled retraining, the
//! screen uploads pass and the judge a new model faces before it serves.

pub mod jobs;
pub mod judge;
pub mod pipeline;
pub mod registry;
pub mod screen;
