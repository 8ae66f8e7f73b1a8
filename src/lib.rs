//! etape predicts when a truck will arrive.
//!
//! # Layout
//! - [`domain`]: the pure core (driving rules, bans, estimators); no I/O.
//! - [`api`]: the HTTP surface (actix-web), its wire types and its error mapping.
//! - [`auth`]: organisations, API keys and roles.
//! - [`cli`]: the command line.
//! - [`config`]: layered settings (defaults, file, environment, flags).
//! - [`telemetry`]: logging and every Prometheus metric.
//! - [`features`]: model inputs in polars, one code path for training and serving.
//! - [`model`]: the pooled LightGBM model: training, calibration, evaluation, serving.
//! - [`jobs`]: pooled retraining in the background.
//! - [`registry`]: model directories on disk.
//! - [`live`]: shipments, pings and the estimates that follow them.
//! - [`store`]: SQLite and Parquet segments behind a storage trait.
//! - [`uploads`]: partners' history uploads on disk.
//! - [`webhooks`]: signed deliveries to the carriers' systems.
//! - [`demo`]: a simulated fleet driving through the real ingestion path.
//! - [`startup`]: wires everything into a running server; shared by `main` and the tests.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod domain;
pub mod features;
pub mod feeds;
pub mod history;
pub mod jobs;
pub mod live;
pub mod model;
pub mod pipeline;
pub mod registry;
pub mod simulate;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod uploads;
pub mod webhooks;
