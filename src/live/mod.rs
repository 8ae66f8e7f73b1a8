//! Live tracking: shipments, the pings of their trucks, and estimates that follow them.
//!
//! - [`pings`]: parsing and checking position reports (no I/O).
//! - [`book`]: the recent pings of each vehicle as polars frames, de-duplicated.
//! - [`shipment`]: the shipment record and stop detection from pings (no I/O).
//! - [`eta`]: the live estimate of a shipment from the truck's state (no I/O).
//! - [`tracker`]: the service that ties them to storage, the model and webhooks.

pub mod book;
pub mod eta;
pub mod pings;
pub mod shipment;
#[cfg(test)]
mod tests;
pub mod tracker;
