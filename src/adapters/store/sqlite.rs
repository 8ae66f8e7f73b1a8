//! The embedded store: one SQLite file in the data directory, in WAL mode with full
//! synchronisation, so that a write the API acknowledged survives a crash.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use rusqlite_migration::{Migrations, M};
use serde::de::DeserializeOwned;

use super::sql;
use super::{backend, from_json, instant, to_json};
use crate::adapters::webhooks::{outbox, Delivery, Outgoing, Settled, Webhook, WebhookStore};
use crate::domain::clock::Clock;
use crate::domain::storage::{StoreError, StoreResult};
use crate::partners::devices::{Device, DeviceStore};
use crate::partners::keys::{ApiKey, KeyStore, Organisation};
use crate::partners::uploads::{Consent, Upload, UploadStore};
use crate::tracking::eta::Snapshot;
use crate::tracking::sharing::{ShareLink, ShareStore};
use crate::tracking::shipment::{Shipment, Status};
use crate::tracking::store::{Leases, ShipmentStore};
use crate::tracking::tracker::Notice;
use crate::training::jobs::{Job, JobStore};

/// Versioned by SQLite's `user_version`; append, never edit, a migration.
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(
            "CREATE TABLE shipments (
            id TEXT PRIMARY KEY,
            organisation TEXT NOT NULL,
            reference TEXT NOT NULL,
            vehicle_id TEXT NOT NULL,
            status TEXT NOT NULL,
            body TEXT NOT NULL,
            UNIQUE (organisation, reference)
        );
        CREATE INDEX shipments_by_status ON shipments (organisation, status, id);
        CREATE TABLE eta_snapshots (
            shipment_id TEXT NOT NULL REFERENCES shipments (id),
            seq INTEGER NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (shipment_id, seq)
        );
        CREATE TABLE webhooks (
            id TEXT PRIMARY KEY,
            organisation TEXT NOT NULL,
            body TEXT NOT NULL
        );
        CREATE TABLE deliveries (
            id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            webhook_id TEXT NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (id, attempt)
        );
        CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id);",
        ),
        M::up(
            "CREATE TABLE organisations (
                id TEXT PRIMARY KEY,
                body TEXT NOT NULL
            );
            CREATE TABLE api_keys (
                id TEXT PRIMARY KEY,
                organisation TEXT NOT NULL REFERENCES organisations (id),
                body TEXT NOT NULL
            );",
        ),
        M::up(
            "CREATE TABLE uploads (
                id TEXT PRIMARY KEY,
                organisation TEXT NOT NULL,
                sha256 TEXT NOT NULL,
                body TEXT NOT NULL,
                UNIQUE (organisation, sha256)
            );
            CREATE TABLE consents (
                organisation TEXT PRIMARY KEY,
                body TEXT NOT NULL
            );",
        ),
        M::up(
            "CREATE TABLE leases (
                name TEXT PRIMARY KEY,
                holder TEXT NOT NULL,
                expires_ms INTEGER NOT NULL
            );
            CREATE TABLE current_snapshots (
                shipment_id TEXT PRIMARY KEY REFERENCES shipments (id),
                body TEXT NOT NULL
            );
            CREATE INDEX shipments_by_vehicle ON shipments (organisation, vehicle_id, status);",
        ),
        M::up(sql::training_jobs::TABLE),
        M::up(sql::share_links::TABLE),
        // Shipment versions (compare-and-set) and the webhooks' outbox.
        M::up(
            "ALTER TABLE shipments ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
            CREATE TABLE outbox (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                delivery_id TEXT NOT NULL UNIQUE,
                webhook_id TEXT NOT NULL,
                organisation TEXT NOT NULL,
                event TEXT NOT NULL,
                shipment_id TEXT NOT NULL,
                body TEXT NOT NULL,
                etas TEXT NOT NULL,
                attempts INTEGER NOT NULL,
                status TEXT NOT NULL,
                next_attempt_at_ms INTEGER NOT NULL,
                claimed_until_ms INTEGER NOT NULL,
                created_at_ms INTEGER NOT NULL
            );
            CREATE INDEX outbox_due ON outbox (status, next_attempt_at_ms, seq);",
        ),
        // Phones' device tokens.
        M::up(sql::devices::TABLE),
    ])
}

/// Creates the database file with mode 0600 when it is missing (an empty file is an empty
/// database to SQLite), and brings an older file and its journals to that mode. SQLite gives
/// the -wal and -shm files it creates the database file's mode, whatever the umask.
#[cfg(unix)]
fn keep_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // Appending never truncates: a database another process created meanwhile stays whole.
    let database = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    let private = || std::fs::Permissions::from_mode(0o600);
    // A file system that refuses modes (some network mounts) still serves.
    let left = |file: &Path, error: std::io::Error| {
        tracing::warn!(
            message = "Database file left with its mode.",
            file = %file.display(),
            %error
        );
    };
    if let Err(error) = database.set_permissions(private()) {
        left(path, error);
    }
    for journal in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(journal);
        let name = std::path::PathBuf::from(name);
        match std::fs::set_permissions(&name, private()) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => left(name.as_path(), error),
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn keep_private(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Writes the outbox rows of `notices` in the caller's transaction: one per notice and webhook
/// of its organisation subscribed to its event.
fn enqueue(connection: &Connection, notices: &[Notice]) -> StoreResult<()> {
    if notices.is_empty() {
        return Ok(());
    }
    let mut webhooks: Vec<Webhook> = Vec::new();
    for organisation in outbox::organisations(notices) {
        let mut statement = connection
            .prepare_cached(sql::webhooks::LIST)
            .map_err(backend)?;
        let texts = statement
            .query_map(params![organisation], |row| row.get::<_, String>(0))
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(backend)?;
        for text in texts {
            webhooks.push(from_json(&text)?);
        }
    }
    let now = Clock::System.now();
    for row in outbox::fan_out(notices, &webhooks, now) {
        connection
            .execute(
                sql::outbox::INSERT,
                params![
                    row.delivery_id,
                    row.webhook_id,
                    row.organisation,
                    row.event,
                    row.shipment_id,
                    row.body,
                    row.etas,
                    now.timestamp_millis()
                ],
            )
            .map_err(backend)?;
    }
    Ok(())
}

/// Milliseconds since the epoch by SQLite's clock.
const NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";

pub struct SqliteStore {
    connection: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens the database at `path`, creating it when it is missing, readable by the service's
    /// user alone: it holds webhook secrets.
    pub fn open(path: &Path) -> StoreResult<Self> {
        keep_private(path).map_err(backend)?;
        Self::from_connection(Connection::open(path).map_err(backend)?)
    }

    pub fn in_memory() -> StoreResult<Self> {
        Self::from_connection(Connection::open_in_memory().map_err(backend)?)
    }

    fn from_connection(mut connection: Connection) -> StoreResult<Self> {
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(backend)?;
        connection
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(backend)?;
        migrations().to_latest(&mut connection).map_err(backend)?;
        Ok(Self {
            connection: Mutex::new(connection),
        })
    }

    fn with<T>(&self, work: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        let connection = self
            .connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        work(&connection).map_err(backend)
    }

    fn bodies<T: DeserializeOwned>(
        &self,
        sql: &str,
        parameters: impl rusqlite::Params,
    ) -> StoreResult<Vec<T>> {
        let texts = self.with(|connection| {
            let mut statement = connection.prepare_cached(sql)?;
            let rows = statement.query_map(parameters, |row| row.get::<_, String>(0))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
        })?;
        texts.iter().map(|text| from_json(text)).collect()
    }

    /// Runs `work` in one transaction of the one connection: committed when it succeeds, rolled
    /// back when it fails.
    fn in_transaction<T>(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let transaction = connection.transaction().map_err(backend)?;
        let value = work(&transaction)?;
        transaction.commit().map_err(backend)?;
        Ok(value)
    }

    /// The first body the query finds, if any.
    fn body<T: DeserializeOwned>(
        &self,
        sql: &str,
        parameters: impl rusqlite::Params,
    ) -> StoreResult<Option<T>> {
        Ok(self.bodies(sql, parameters)?.into_iter().next())
    }
}

impl ShipmentStore for SqliteStore {
    fn insert_shipment(&self, shipment: &Shipment) -> StoreResult<()> {
        let body = to_json(shipment)?;
        let existing = self.with(|connection| {
            connection
                .query_row(
                    sql::shipments::ID_BY_REFERENCE,
                    params![shipment.organisation, shipment.reference],
                    |row| row.get::<_, String>(0),
                )
                .optional()
        })?;
        if let Some(id) = existing {
            return Err(StoreError::DuplicateReference(id));
        }
        self.with(|connection| {
            connection.execute(
                "INSERT INTO shipments
                 (id, organisation, reference, vehicle_id, status, body, version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    shipment.id,
                    shipment.organisation,
                    shipment.reference,
                    shipment.vehicle_id,
                    shipment.status.as_str(),
                    body,
                    shipment.version
                ],
            )
        })?;
        Ok(())
    }

    fn save_shipment(&self, shipment: &mut Shipment, notices: &[Notice]) -> StoreResult<()> {
        let mut saved = shipment.clone();
        saved.version += 1;
        let body = to_json(&saved)?;
        self.in_transaction(|transaction| {
            let changed = transaction
                .execute(
                    sql::shipments::UPDATE,
                    params![
                        saved.status.as_str(),
                        body,
                        saved.version,
                        saved.id,
                        shipment.version
                    ],
                )
                .map_err(backend)?;
            if changed == 0 {
                return Err(StoreError::Conflict);
            }
            enqueue(transaction, notices)
        })?;
        shipment.version = saved.version;
        Ok(())
    }

    fn shipment(&self, organisation: &str, id: &str) -> StoreResult<Option<Shipment>> {
        self.body(sql::shipments::GET, params![organisation, id])
    }

    fn list_shipments(
        &self,
        organisation: &str,
        status: Option<Status>,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<Shipment>> {
        self.bodies(
            sql::shipments::PAGE,
            params![
                organisation,
                status.map(Status::as_str),
                after.unwrap_or(""),
                limit as i64
            ],
        )
    }

    fn active_shipments(&self) -> StoreResult<Vec<Shipment>> {
        self.bodies(sql::shipments::ACTIVE, [])
    }

    fn recent_deliveries(&self, limit: usize) -> StoreResult<Vec<Shipment>> {
        self.bodies(sql::shipments::RECENT_DELIVERED, params![limit as i64])
    }

    fn append_snapshot(&self, snapshot: &Snapshot, notices: &[Notice]) -> StoreResult<()> {
        let body = to_json(snapshot)?;
        self.in_transaction(|transaction| {
            transaction
                .execute(
                    "INSERT INTO eta_snapshots (shipment_id, seq, body)
                     VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM eta_snapshots
                                  WHERE shipment_id = ?1), ?2)",
                    params![snapshot.shipment_id, body],
                )
                .map_err(backend)?;
            enqueue(transaction, notices)
        })
    }

    fn snapshots(&self, shipment_id: &str) -> StoreResult<Vec<Snapshot>> {
        self.bodies(sql::snapshots::HISTORY, params![shipment_id])
    }

    fn save_current(&self, snapshot: &Snapshot) -> StoreResult<()> {
        let body = to_json(snapshot)?;
        self.with(|connection| {
            connection.execute(
                sql::snapshots::SAVE_CURRENT,
                params![snapshot.shipment_id, body],
            )
        })?;
        Ok(())
    }

    fn current(&self, shipment_id: &str) -> StoreResult<Option<Snapshot>> {
        self.body(sql::snapshots::CURRENT, params![shipment_id])
    }

    fn current_page(
        &self,
        organisation: &str,
        status: Option<Status>,
        first: &str,
        last: &str,
    ) -> StoreResult<Vec<Snapshot>> {
        self.bodies(
            sql::snapshots::CURRENT_PAGE,
            params![organisation, status.map(Status::as_str), first, last],
        )
    }

    fn latest_page(
        &self,
        organisation: &str,
        status: Option<Status>,
        first: &str,
        last: &str,
    ) -> StoreResult<Vec<Snapshot>> {
        self.bodies(
            sql::snapshots::LATEST_PAGE,
            params![organisation, status.map(Status::as_str), first, last],
        )
    }

    fn active_shipments_of(
        &self,
        organisation: &str,
        vehicle_id: &str,
    ) -> StoreResult<Vec<Shipment>> {
        self.bodies(
            sql::shipments::ACTIVE_OF_VEHICLE,
            params![organisation, vehicle_id],
        )
    }
}

impl WebhookStore for SqliteStore {
    fn insert_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        let body = to_json(webhook)?;
        self.with(|connection| {
            connection.execute(
                sql::webhooks::INSERT,
                params![webhook.id, webhook.organisation, body],
            )
        })?;
        Ok(())
    }

    fn webhooks(&self, organisation: Option<&str>) -> StoreResult<Vec<Webhook>> {
        self.bodies(sql::webhooks::LIST, params![organisation])
    }

    fn delete_webhook(&self, organisation: &str, id: &str) -> StoreResult<bool> {
        let deleted = self.with(|connection| {
            connection.execute(sql::webhooks::DELETE, params![organisation, id])
        })?;
        Ok(deleted > 0)
    }

    fn update_webhook(
        &self,
        organisation: &str,
        id: &str,
        change: &mut dyn FnMut(&mut Webhook),
    ) -> StoreResult<Option<Webhook>> {
        // The read and the write under one lock of the one connection: nothing comes between.
        let connection = self
            .connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let text: Option<String> = connection
            .query_row(sql::webhooks::OWNED, params![organisation, id], |row| {
                row.get(0)
            })
            .optional()
            .map_err(backend)?;
        let Some(text) = text else {
            return Ok(None);
        };
        let mut webhook: Webhook = from_json(&text)?;
        change(&mut webhook);
        connection
            .execute(sql::webhooks::UPDATE, params![to_json(&webhook)?, id])
            .map_err(backend)?;
        Ok(Some(webhook))
    }

    fn record_delivery(&self, delivery: &Delivery) -> StoreResult<()> {
        let body = to_json(delivery)?;
        self.with(|connection| {
            connection.execute(
                "INSERT OR REPLACE INTO deliveries (id, attempt, webhook_id, body)
                 VALUES (?1, ?2, ?3, ?4)",
                params![delivery.id, delivery.attempt, delivery.webhook_id, body],
            )
        })?;
        Ok(())
    }

    fn deliveries(&self, webhook_id: &str, limit: usize) -> StoreResult<Vec<Delivery>> {
        self.bodies(
            "SELECT body FROM deliveries WHERE webhook_id = ?1
             ORDER BY rowid DESC LIMIT ?2",
            params![webhook_id, limit as i64],
        )
    }

    fn delivery_attempts(&self, webhook_id: &str, delivery_id: &str) -> StoreResult<Vec<Delivery>> {
        self.bodies(
            sql::webhooks::DELIVERY_ATTEMPTS,
            params![webhook_id, delivery_id],
        )
    }

    fn claim_outbox(&self, now_ms: i64, hold_ms: i64, limit: usize) -> StoreResult<Vec<Outgoing>> {
        let mut claimed = self.with(|connection| {
            let mut statement = connection.prepare_cached(sql::outbox::CLAIM)?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = statement.query_map(params![now_ms, hold_ms, limit], |row| {
                Ok(Outgoing {
                    seq: row.get(0)?,
                    delivery_id: row.get(1)?,
                    webhook_id: row.get(2)?,
                    organisation: row.get(3)?,
                    event: row.get(4)?,
                    shipment_id: row.get(5)?,
                    body: row.get(6)?,
                    etas: outbox::etas_of(&row.get::<_, String>(7)?),
                    attempts: row.get(8)?,
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<Outgoing>>>()
        })?;
        // RETURNING gives the rows in no particular order.
        claimed.sort_by_key(|row| row.seq);
        Ok(claimed)
    }

    fn retry_outbox(&self, seq: i64, attempts: u32, next_attempt_ms: i64) -> StoreResult<()> {
        self.with(|connection| {
            connection.execute(sql::outbox::RETRY, params![attempts, next_attempt_ms, seq])
        })?;
        Ok(())
    }

    fn settle_outbox(
        &self,
        seq: i64,
        attempts: u32,
        settled: Settled,
        at_ms: i64,
    ) -> StoreResult<()> {
        self.with(|connection| {
            connection.execute(
                sql::outbox::SETTLE,
                params![settled.as_str(), attempts, at_ms, seq],
            )
        })?;
        Ok(())
    }

    fn release_outbox(&self) -> StoreResult<u64> {
        let released = self.with(|connection| connection.execute(sql::outbox::RELEASE, []))?;
        Ok(released as u64)
    }

    fn purge_outbox(&self, before_ms: i64) -> StoreResult<u64> {
        let purged =
            self.with(|connection| connection.execute(sql::outbox::PURGE, params![before_ms]))?;
        Ok(purged as u64)
    }
}

impl KeyStore for SqliteStore {
    fn insert_organisation(&self, organisation: &Organisation) -> StoreResult<()> {
        self.insert_body(
            sql::keys::INSERT_ORGANISATION,
            &organisation.id,
            None,
            to_json(organisation)?,
        )
    }

    fn organisations(&self) -> StoreResult<Vec<Organisation>> {
        self.bodies(sql::keys::ORGANISATIONS, [])
    }

    fn insert_key(&self, key: &ApiKey) -> StoreResult<()> {
        self.insert_body(
            sql::keys::INSERT_KEY,
            &key.id,
            Some(&key.organisation),
            to_json(key)?,
        )
    }

    fn keys(&self, organisation: Option<&str>) -> StoreResult<Vec<ApiKey>> {
        self.bodies(sql::keys::KEYS, params![organisation])
    }

    fn revoke_key(&self, id: &str, at: chrono::DateTime<chrono::Utc>) -> StoreResult<bool> {
        let Some(mut key): Option<ApiKey> = self.body(sql::keys::KEY, params![id])? else {
            return Ok(false);
        };
        if key.revoked_at.is_none() {
            key.revoked_at = Some(at);
        }
        let body = to_json(&key)?;
        self.with(|connection| connection.execute(sql::keys::UPDATE_KEY, params![body, id]))?;
        Ok(true)
    }
}

impl UploadStore for SqliteStore {
    fn insert_upload(&self, upload: &Upload) -> StoreResult<()> {
        let body = to_json(upload)?;
        self.with(|connection| {
            connection.execute(
                sql::uploads::INSERT,
                params![upload.id, upload.organisation, upload.sha256, body],
            )
        })?;
        Ok(())
    }

    fn uploads(&self, organisation: Option<&str>) -> StoreResult<Vec<Upload>> {
        self.bodies(sql::uploads::LIST, params![organisation])
    }

    fn delete_upload(&self, organisation: &str, id: &str) -> StoreResult<bool> {
        let deleted = self.with(|connection| {
            connection.execute(sql::uploads::DELETE, params![organisation, id])
        })?;
        Ok(deleted > 0)
    }

    fn consent(&self, organisation: &str) -> StoreResult<Option<Consent>> {
        self.body(sql::uploads::CONSENT, params![organisation])
    }

    fn set_consent(&self, consent: &Consent) -> StoreResult<()> {
        let body = to_json(consent)?;
        self.with(|connection| {
            connection.execute(
                sql::uploads::SAVE_CONSENT,
                params![consent.organisation, body],
            )
        })?;
        Ok(())
    }
}

impl Leases for SqliteStore {
    fn acquire_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> StoreResult<bool> {
        let taken = self.with(|connection| {
            connection.execute(
                &format!(
                    "INSERT INTO leases (name, holder, expires_ms) VALUES (?1, ?2, {NOW_MS} + ?3)
                     ON CONFLICT (name) DO UPDATE
                     SET holder = excluded.holder, expires_ms = excluded.expires_ms
                     WHERE leases.holder = excluded.holder OR leases.expires_ms < {NOW_MS}"
                ),
                params![name, holder, ttl_ms],
            )
        })?;
        Ok(taken > 0)
    }

    fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        self.with(|connection| connection.execute(sql::leases::RELEASE, params![name, holder]))?;
        Ok(())
    }
}

impl JobStore for SqliteStore {
    fn save_job(&self, job: &Job) -> StoreResult<()> {
        let body = to_json(job)?;
        self.with(|connection| {
            connection.execute(
                sql::training_jobs::SAVE,
                params![
                    job.id,
                    job.status.as_str(),
                    instant(job.started_at),
                    job.finished_at.map(instant),
                    body
                ],
            )
        })?;
        Ok(())
    }

    fn job(&self, id: &str) -> StoreResult<Option<Job>> {
        self.body(sql::training_jobs::GET, params![id])
    }

    fn running_jobs(&self) -> StoreResult<Vec<Job>> {
        self.bodies(sql::training_jobs::RUNNING, [])
    }
}

impl ShareStore for SqliteStore {
    fn insert_share_link(&self, link: &ShareLink, token_sha256: &str) -> StoreResult<()> {
        let body = to_json(link)?;
        self.with(|connection| {
            connection.execute(
                sql::share_links::INSERT,
                params![
                    link.id,
                    token_sha256,
                    link.organisation,
                    link.shipment_id,
                    body
                ],
            )
        })?;
        Ok(())
    }

    fn share_link_by_token(&self, token_sha256: &str) -> StoreResult<Option<ShareLink>> {
        self.body(sql::share_links::BY_TOKEN, params![token_sha256])
    }

    fn share_link(
        &self,
        organisation: &str,
        shipment_id: &str,
        id: &str,
    ) -> StoreResult<Option<ShareLink>> {
        self.body(
            sql::share_links::OWNED,
            params![organisation, shipment_id, id],
        )
    }

    fn save_share_link(&self, link: &ShareLink) -> StoreResult<()> {
        let body = to_json(link)?;
        self.with(|connection| {
            connection.execute(sql::share_links::UPDATE, params![body, link.id])
        })?;
        Ok(())
    }
}

impl DeviceStore for SqliteStore {
    fn insert_device(&self, device: &Device, token_digest: &str) -> StoreResult<()> {
        let body = to_json(device)?;
        self.with(|connection| {
            connection.execute(
                sql::devices::INSERT,
                params![device.id, token_digest, device.organisation, body],
            )
        })?;
        Ok(())
    }

    fn device_by_token(&self, token_digest: &str) -> StoreResult<Option<Device>> {
        self.body(sql::devices::BY_TOKEN, params![token_digest])
    }

    fn devices(&self, organisation: &str) -> StoreResult<Vec<Device>> {
        self.bodies(sql::devices::LIST, params![organisation])
    }

    fn device(&self, organisation: &str, id: &str) -> StoreResult<Option<Device>> {
        self.body(sql::devices::OWNED, params![organisation, id])
    }

    fn save_device(&self, device: &Device) -> StoreResult<()> {
        let body = to_json(device)?;
        self.with(|connection| connection.execute(sql::devices::UPDATE, params![body, device.id]))?;
        Ok(())
    }
}

impl SqliteStore {
    fn insert_body(
        &self,
        sql: &str,
        id: &str,
        owner: Option<&str>,
        body: String,
    ) -> StoreResult<()> {
        self.with(|connection| match owner {
            Some(owner) => connection.execute(sql, params![id, owner, body]),
            None => connection.execute(sql, params![id, body]),
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        migrations().validate().expect("valid migrations");
    }
}
