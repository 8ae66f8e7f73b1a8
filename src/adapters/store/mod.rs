//! Where the service keeps what it must not forget: shipments, their ETA history, webhooks,
//! the outbox of their pending deliveries and the log of their attempts, keys, uploads,
//! training jobs (a [`Store`]), and the pings ([`segments::PingLog`]).
//!
//! The trait is synchronous and small so that another database can take it: the embedded
//! default is SQLite ([`sqlite::SqliteStore`]), the shared one PostgreSQL
//! ([`postgres::PostgresStore`]), chosen by `storage.url`. Callers run it off the async workers.

pub mod postgres;
pub mod segments;
mod sql;
pub mod sqlite;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::adapters::webhooks::WebhookStore;
use crate::domain::storage::{StoreError, StoreResult};
use crate::partners::keys::KeyStore;
use crate::partners::uploads::UploadStore;
use crate::tracking::sharing::ShareStore;
use crate::tracking::store::{Leases, SharedPings, ShipmentStore};
use crate::training::jobs::JobStore;

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

/// An instant in a text column, both stores alike: RFC 3339 in UTC to the millisecond, whose
/// fixed width sorts as time does.
fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The stores the settings name: PostgreSQL at `storage.url` for records and pings, or SQLite
/// in the data directory for records (pings then go to Parquet segments beside it).
/// Every record the service keeps, in one database: each layer sees only its own part
/// ([`ShipmentStore`], [`WebhookStore`], [`KeyStore`], [`UploadStore`], [`Leases`],
/// [`JobStore`], [`ShareStore`]).
pub trait Store:
    ShipmentStore + WebhookStore + KeyStore + UploadStore + Leases + JobStore + ShareStore
{
}

impl<
        T: ShipmentStore
            + WebhookStore
            + KeyStore
            + UploadStore
            + Leases
            + JobStore
            + ShareStore
            + ?Sized,
    > Store for T
{
}

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

#[cfg(test)]
mod tests;
