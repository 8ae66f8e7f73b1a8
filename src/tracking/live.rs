//! What the tracker publishes as it happens: each current estimate it keeps and each change of
//! a shipment's status, on a broadcast channel that the event streams subscribe to.
//!
//! Publishing never waits: a subscriber that falls more than [`CAPACITY`] events behind loses
//! the oldest and is told how many (the stream then asks its client to reload). With a shared
//! store, only the replica holding the lease recomputes estimates, so only its channel carries
//! `Estimate`; a status changed through a request is published where the request landed.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::eta::Snapshot;
use super::shipment::Status;

#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// A shipment's new current estimate, whole.
    Estimate {
        organisation: String,
        snapshot: Arc<Snapshot>,
    },
    Status {
        organisation: String,
        shipment_id: String,
        status: Status,
    },
}

impl LiveEvent {
    /// Whose event it is: a stream passes on its own organisation's alone.
    pub fn organisation(&self) -> &str {
        match self {
            Self::Estimate { organisation, .. } | Self::Status { organisation, .. } => organisation,
        }
    }
}

pub type LiveSender = broadcast::Sender<LiveEvent>;

/// Events kept for the slowest subscriber: a few seconds of a busy fleet's estimates.
pub const CAPACITY: usize = 4096;

/// A channel nobody listens to yet; streams subscribe through the sender.
pub fn channel() -> LiveSender {
    broadcast::channel(CAPACITY).0
}
