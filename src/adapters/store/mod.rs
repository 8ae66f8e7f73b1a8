//! Where the service keeps what it must not forget: shipments, their ETA history, webhooks,
//! the outbox of their pending deliveries and the log of their attempts, keys, uploads,
//! training jobs (a [`Store`]), and the pings ([`segments::PingLog`]).
//!
//! The trait is synchronous and small so that another database can take it: the embedded
//! default is SQLite ([`sqlite::SqliteStore`]), the shared one PostgreSQL
//! ([`postgres::PostgresStore`]), chosen by `storage.url`. Callers run it off the async workers.
//! Both keep webhook secrets sealed under a key outside the database ([`sealed`]).

pub mod postgres;
mod records;
pub mod sealed;
pub mod segments;
mod sql;
pub mod sqlite;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::adapters::webhooks::WebhookStore;
use crate::domain::storage::{StoreError, StoreResult};
use crate::partners::devices::DeviceStore;
use crate::partners::keys::KeyStore;
use crate::partners::uploads::UploadStore;
use crate::tracking::sharing::ShareStore;
use crate::tracking::store::{Leases, SharedPings, ShipmentStore};
use crate::training::jobs::JobStore;

/// A failure of the store, `Unavailable` when it is the disk refusing a write that may pass
/// once space returns (SQLite's `SQLITE_FULL` and I/O errors, a file system out of space) or
/// a database locked by another process for longer than the busy timeout: retrying later is
/// the cure, and the caller gets a 503 rather than a 500. One function for every error type
/// the stores meet, so that no call site can forget the distinction.
fn backend<E: std::fmt::Display + 'static>(error: E) -> StoreError {
    let any: &dyn std::any::Any = &error;
    let transient = if let Some(error) = any.downcast_ref::<rusqlite::Error>() {
        matches!(
            error.sqlite_error_code(),
            Some(
                rusqlite::ErrorCode::DiskFull
                    | rusqlite::ErrorCode::SystemIoFailure
                    | rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
            )
        )
    } else if let Some(error) = any.downcast_ref::<std::io::Error>() {
        is_out_of_space(error)
    } else {
        false
    };
    if transient {
        StoreError::Unavailable(error.to_string())
    } else {
        StoreError::Backend(error.to_string())
    }
}

/// ENOSPC, and EDQUOT (a quota reached), which the standard library names `QuotaExceeded`.
fn is_out_of_space(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
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

/// A row limit as both databases take it: `usize::MAX`, no limit, becomes `i64::MAX`, where
/// a cast would give the -1 that SQLite reads as none and PostgreSQL refuses.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Every record the service keeps, in one database: each layer sees only its own part
/// ([`ShipmentStore`], [`WebhookStore`], [`KeyStore`], [`UploadStore`], [`Leases`],
/// [`JobStore`], [`ShareStore`], [`DeviceStore`]).
pub trait Store:
    ShipmentStore + WebhookStore + KeyStore + UploadStore + Leases + JobStore + ShareStore + DeviceStore
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
            + DeviceStore
            + ?Sized,
    > Store for T
{
}

/// The PostgreSQL server the settings name, if any: an empty `storage.url` names none.
fn shared_url(settings: &crate::config::StorageSettings) -> Option<&str> {
    settings.url.as_deref().filter(|url| !url.is_empty())
}

/// The stores the settings name: PostgreSQL at `storage.url` for records and pings, or SQLite
/// in the data directory for records (pings then go to Parquet segments beside it). Webhook
/// secrets are sealed under `secrets` ([`sealed::secrets_key`]), when given.
pub fn open(
    settings: &crate::config::StorageSettings,
    data_dir: &Path,
    secrets: Option<sealed::SecretBox>,
) -> StoreResult<Opened> {
    Ok(match shared_url(settings) {
        Some(url) => {
            let shared = Arc::new(
                postgres::PostgresStore::connect_with(url, settings.ca_file.as_deref())?
                    .with_secrets(secrets)?,
            );
            Opened {
                store: shared.clone(),
                pings: Some(shared),
            }
        }
        None => Opened {
            store: Arc::new(
                sqlite::SqliteStore::open(&data_dir.join("etape.sqlite"))?.with_secrets(secrets)?,
            ),
            pings: None,
        },
    })
}

/// Seals every webhook secret of the store the settings name under `new`, reading them under
/// `current` ([`records::reseal_secrets`]): what `etape rekey` does. How many webhooks.
pub fn reseal_secrets(
    settings: &crate::config::StorageSettings,
    data_dir: &Path,
    current: Option<sealed::SecretBox>,
    new: &sealed::SecretBox,
) -> StoreResult<usize> {
    match shared_url(settings) {
        Some(url) => records::reseal_secrets(
            &postgres::PostgresStore::connect_with(url, settings.ca_file.as_deref())?
                .with_secrets(current)?,
            new,
        ),
        None => records::reseal_secrets(
            &sqlite::SqliteStore::open(&data_dir.join("etape.sqlite"))?.with_secrets(current)?,
            new,
        ),
    }
}

pub struct Opened {
    pub store: Arc<dyn Store>,
    /// With a shared store, where the pings go.
    pub pings: Option<Arc<dyn SharedPings>>,
}

#[cfg(test)]
mod tests;
