//! Live tracking: shipments, the pings of their trucks, and estimates that follow them.
//!
//! - [`pings`]: parsing and checking position reports (no I/O).
//! - [`book`]: the recent pings of each vehicle as polars frames, de-duplicated.
//! - [`shipment`]: the shipment record and stop detection from pings (no I/O).
//! - [`eta`]: the live estimate of a shipment from the truck's state (no I/O).
//! - [`driver`]: the driver's clock: carried from the vehicle's previous shipment, read from
//!   the cab's tachograph, walked along the pings (no I/O).
//! - [`reasons`]: what moved an estimate since the previous one, and each stop's slip since
//!   its first (no I/O).
//! - [`tracker`]: the service that ties them to storage, the model and webhooks.
//! - `modes`: where the tracker keeps pings and current estimates: this process, or a
//!   database shared by replicas.
//! - [`store`]: the ports the adapters implement for it.
//! - [`live`]: what the tracker publishes as it happens, for the event streams.
//! - [`restoration`]: how far the tracker has come back since it started (`/readyz`).
//! - [`sharing`]: the consignee's share links and the port that keeps them.

pub mod book;
pub mod driver;
pub mod eta;
pub mod live;
mod modes;
pub mod pings;
pub mod reasons;
pub mod restoration;
pub mod sharing;
pub mod shipment;
pub mod store;
#[cfg(test)]
mod tests;
pub mod tracker;
