//! The pure core: vehicles, places, the calendar of bans, the driving rules and the estimators.
//!
//! Architecture invariant: nothing here does I/O or knows HTTP, the network or the disk; it
//! depends on no other module of the crate. Its errors are about data, never about transport.

pub mod bans;
pub mod calendar;
pub mod clock;
pub mod correction;
pub mod eta;
pub mod explain;
pub mod forecast;
pub mod geo;
pub mod ids;
pub mod risk;
pub mod rules;
pub mod storage;
pub mod vehicle;
