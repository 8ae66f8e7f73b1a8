//! The carriers: organisations, API keys and roles, history uploads and consent.

pub mod keys;
pub mod uploads;
