//! Where the service keeps what it must not forget: shipments, their ETA history, webhooks and
//! their deliveries (a [`Store`]), and the pings ([`segments::PingLog`]).
//!
//! The trait is synchronous and small so that another database can take it: the embedded
//! default is SQLite ([`sqlite::SqliteStore`]), the shared one PostgreSQL
//! ([`postgres::PostgresStore`]), chosen by `storage.url`. Callers run it off the async workers.

pub mod postgres;
pub mod segments;
pub mod sqlite;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::{ApiKey, Organisation};
use crate::live::eta::Snapshot;
use crate::live::pings::Ping;
use crate::live::shipment::{Shipment, Status};
use crate::uploads::Upload;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The organisation already has a shipment with this reference; its id is given.
    #[error("the reference is already registered as shipment {0}")]
    DuplicateReference(String),
    #[error("storage failed: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

fn backend(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(error.to_string())
}

/// Records are kept as JSON bodies beside the columns queries use, in both stores.
fn to_json(value: &impl Serialize) -> StoreResult<String> {
    serde_json::to_string(value).map_err(backend)
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(backend)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub organisation: String,
    pub url: String,
    pub events: Vec<String>,
    pub min_change_minutes: f64,
    /// Needed in clear to sign each delivery; shown to the caller once, at creation.
    pub secret: String,
    pub enabled: bool,
    pub consecutive_failures: u32,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub webhook_id: String,
    pub event: String,
    pub attempt: u32,
    pub at: DateTime<Utc>,
    /// `delivered`, `retrying` or `failed` (every attempt spent).
    pub outcome: String,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
}

pub trait Store: Send + Sync + 'static {
    fn insert_shipment(&self, shipment: &Shipment) -> StoreResult<()>;
    fn save_shipment(&self, shipment: &Shipment) -> StoreResult<()>;
    fn shipment(&self, organisation: &str, id: &str) -> StoreResult<Option<Shipment>>;
    /// Ordered by id (ids sort by creation); `after` is the last id of the previous page.
    fn list_shipments(
        &self,
        organisation: &str,
        status: Option<Status>,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<Shipment>>;
    /// Every planned or in-transit shipment of every organisation, to follow after a restart.
    fn active_shipments(&self) -> StoreResult<Vec<Shipment>>;
    fn append_snapshot(&self, snapshot: &Snapshot) -> StoreResult<()>;
    fn snapshots(&self, shipment_id: &str) -> StoreResult<Vec<Snapshot>>;
    fn insert_webhook(&self, webhook: &Webhook) -> StoreResult<()>;
    /// One organisation's webhooks, or everyone's.
    fn webhooks(&self, organisation: Option<&str>) -> StoreResult<Vec<Webhook>>;
    fn delete_webhook(&self, organisation: &str, id: &str) -> StoreResult<bool>;
    fn set_webhook_health(&self, id: &str, enabled: bool, failures: u32) -> StoreResult<()>;
    fn record_delivery(&self, delivery: &Delivery) -> StoreResult<()>;
    /// The latest deliveries first.
    fn deliveries(&self, webhook_id: &str, limit: usize) -> StoreResult<Vec<Delivery>>;
    fn insert_organisation(&self, organisation: &Organisation) -> StoreResult<()>;
    fn organisations(&self) -> StoreResult<Vec<Organisation>>;
    fn insert_key(&self, key: &ApiKey) -> StoreResult<()>;
    /// One organisation's keys, or everyone's; revoked ones included.
    fn keys(&self, organisation: Option<&str>) -> StoreResult<Vec<ApiKey>>;
    /// False when there is no such key.
    fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<bool>;
    fn insert_upload(&self, upload: &Upload) -> StoreResult<()>;
    /// One organisation's uploads, or everyone's, oldest first.
    fn uploads(&self, organisation: Option<&str>) -> StoreResult<Vec<Upload>>;
    /// False when the organisation has no such upload.
    fn delete_upload(&self, organisation: &str, id: &str) -> StoreResult<bool>;
    /// Whether the organisation's rows may train the pooled model; `None` until it says.
    fn consent(&self, organisation: &str) -> StoreResult<Option<Consent>>;
    fn set_consent(&self, consent: &Consent) -> StoreResult<()>;
    /// Keeps a shipment's current estimate, whole (plan and factors included), in place of
    /// the previous: with a shared store every replica answers it.
    fn save_current(&self, snapshot: &Snapshot) -> StoreResult<()>;
    fn current(&self, shipment_id: &str) -> StoreResult<Option<Snapshot>>;
    /// The planned or in-transit shipments of one vehicle.
    fn active_shipments_of(
        &self,
        organisation: &str,
        vehicle_id: &str,
    ) -> StoreResult<Vec<Shipment>>;
    /// Takes the lease `name` for `holder` for `ttl_ms` from now by the database's clock, or
    /// renews it, if it is free, expired or already `holder`'s; true when `holder` holds it.
    /// Work that must happen once across processes runs under a lease.
    fn acquire_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> StoreResult<bool>;
    /// Gives the lease up at once (a process stopping cleanly), if `holder` holds it.
    fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()>;
}

/// The stores the settings name: PostgreSQL at `storage.url` for records and pings, or SQLite
/// in the data directory for records (pings then go to Parquet segments beside it).
pub fn open(settings: &crate::config::StorageSettings, data_dir: &Path) -> StoreResult<Opened> {
    Ok(
        match settings.url.as_deref().filter(|url| !url.is_empty()) {
            Some(url) => {
                let shared = Arc::new(postgres::PostgresStore::connect(url)?);
                Opened {
                    store: shared.clone(),
                    pings: Some(shared),
                }
            }
            None => Opened {
                store: Arc::new(sqlite::SqliteStore::open(&data_dir.join("etape.sqlite"))?),
                pings: None,
            },
        },
    )
}

pub struct Opened {
    pub store: Arc<dyn Store>,
    /// With a shared store, where the pings go.
    pub pings: Option<Arc<dyn SharedPings>>,
}

/// Pings in a database every replica reads and writes (PostgreSQL), instead of the Parquet
/// segments and the in-memory book of one process: a ping posted to one replica is seen
/// through every other, and the vehicles that moved are recomputed by whichever holds the
/// lease, once.
pub trait SharedPings: Send + Sync + 'static {
    /// Keeps the batch's pings not kept yet (another replica may have had them first) and
    /// marks their vehicles as moved, in one transaction; returns the new ones.
    fn append_pings(
        &self,
        organisation: &str,
        vehicles: &[String],
        pings: &[Ping],
    ) -> StoreResult<Vec<Ping>>;
    /// A vehicle's pings from `since_ms` on, sorted by time, each with `vehicle` 0.
    fn vehicle_pings(
        &self,
        organisation: &str,
        vehicle_id: &str,
        since_ms: i64,
    ) -> StoreResult<Vec<Ping>>;
    /// Takes the vehicles marked as moved since the last call, by any replica:
    /// `(organisation, vehicle_id)`.
    fn take_moved_vehicles(&self) -> StoreResult<Vec<(String, String)>>;
    /// A uniform sample of every vehicle's pings, about `max_rows` of them at most.
    fn pings_sample(&self, max_rows: usize) -> StoreResult<Vec<Ping>>;
    /// Forgets the pings older than `before_ms`; returns how many.
    fn delete_pings_before(&self, before_ms: i64) -> StoreResult<u64>;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consent {
    pub organisation: String,
    pub pool: bool,
    pub updated_at: DateTime<Utc>,
}

/// Identifiers that sort by creation time: a prefix, the millisecond clock and randomness.
pub fn new_id(prefix: &str) -> String {
    let millis = Utc::now().timestamp_millis();
    let random: u32 = rand::random();
    format!("{prefix}_{millis:012x}{random:08x}")
}

#[cfg(test)]
mod tests;
