//! The HTTP surface: the `/v1` API and the dashboard.

pub mod api;
pub mod dashboard;
