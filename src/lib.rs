//! etape predicts when a truck will arrive.
//!
//! Each top-level module is one layer; a layer uses only the layers below it (the map, with
//! what each owns and may use, is in the README's architecture section, and
//! `tests/api/architecture.rs` holds every import to it). From the top:
//! - [`app`]: the composition root: the command line, start-up, the background loops.
//! - [`http`]: the API and the dashboard (actix-web): wire types, handlers, the error mapping.
//! - [`sim`]: the trip-history simulator and the demo fleet that drives through the real
//!   ingestion path.
//! - [`adapters`]: the edges: the SQLite and PostgreSQL stores and the ping segments, the
//!   weather, traffic and routing feeds, webhook delivery.
//! - [`training`]: the model's lifecycle: the pipeline, model directories, pooled retraining.
//! - [`tracking`]: shipments, pings and the live estimates that follow them.
//! - [`partners`]: organisations, API keys and roles, phones' device tokens, history uploads and
//!   consent.
//! - [`ml`]: trip histories, features in polars, the LightGBM model and its evaluation.
//! - [`telemetry`]: logging and every Prometheus metric.
//! - [`config`]: the layered settings, one section per layer.
//! - [`domain`]: the driving rules, bans, geography and estimators; no I/O.

pub mod adapters;
pub mod app;
pub mod config;
pub mod domain;
pub mod http;
pub mod ml;
pub mod partners;
pub mod sim;
pub mod telemetry;
pub mod tracking;
pub mod training;
