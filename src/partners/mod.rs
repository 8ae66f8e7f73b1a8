//! The carriers: organisations, API keys and roles, phones' device tokens, history uploads and
//! consent.

pub mod devices;
pub mod keys;
pub mod uploads;
