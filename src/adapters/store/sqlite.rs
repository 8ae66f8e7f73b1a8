//! The embedded store: one SQLite file in the data directory, in WAL mode with full
//! synchronisation, so that a write the API acknowledged survives a crash.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};
use rusqlite_migration::{Migrations, M};

use super::backend;
use super::records::{self, Arg, Columns, Database, Statements, TakeRow};
use super::sealed::SecretBox;
use super::sql;
use crate::adapters::webhooks::Delivery;
use crate::domain::storage::{StoreError, StoreResult};
use crate::tracking::shipment::Shipment;

/// Versioned by SQLite's `user_version`; append, never edit, a migration. SQLite keeps the
/// text of each `CREATE` as written, white space included: it is part of the schema.
const MIGRATIONS: &[M<'static>] = &[
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
    M::up(sql::keys::TABLES),
    M::up(sql::uploads::TABLES),
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
    // Lease tokens: the fences of the leader's writes.
    M::up(sql::leases::TOKENS),
];

fn migrations() -> Migrations<'static> {
    Migrations::from_slice(MIGRATIONS)
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

pub struct SqliteStore {
    connection: Mutex<Connection>,
    secrets: Option<SecretBox>,
}

impl SqliteStore {
    /// Opens the database at `path`, creating it when it is missing, readable by the service's
    /// user alone: it holds partners' shipments and webhooks. Webhook secrets are kept in
    /// clear until [`SqliteStore::with_secrets`] gives it a key.
    pub fn open(path: &Path) -> StoreResult<Self> {
        keep_private(path).map_err(backend)?;
        Self::from_connection(Connection::open(path).map_err(backend)?)
    }

    /// Seals webhook secrets under `secrets` from now on, when given, and at once those kept
    /// in clear so far. The file is then rewritten (VACUUM) and its WAL emptied: the clear
    /// text an update replaces stays in the file's free space, and in the WAL, until
    /// overwritten.
    pub fn with_secrets(mut self, secrets: Option<SecretBox>) -> StoreResult<Self> {
        if secrets.is_none() {
            return Ok(self);
        }
        self.secrets = secrets;
        if records::seal_kept_secrets(&self)? > 0 {
            self.with(|connection| {
                connection.execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")
            })?;
        }
        Ok(self)
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
            secrets: None,
        })
    }

    /// The one connection. A poisoned lock is taken all the same: a panic while it was held
    /// left nothing half-done, SQLite rolling back what a statement or transaction did not
    /// finish.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn with<T>(&self, work: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        work(&self.lock()).map_err(backend)
    }
}

/// The arguments as rusqlite binds them, `$N` placeholders by their order of appearance.
fn sqlite_args<'a>(args: &[&'a dyn Arg]) -> Vec<&'a dyn rusqlite::ToSql> {
    args.iter().map(|&arg| arg.sqlite()).collect()
}

impl Columns for rusqlite::Row<'_> {
    fn text(&self, column: usize) -> StoreResult<String> {
        self.get(column).map_err(backend)
    }

    fn integer(&self, column: usize) -> StoreResult<i64> {
        self.get(column).map_err(backend)
    }
}

/// The connection, or the transaction open on it.
impl Statements for Connection {
    fn write(&self, sql: &str, args: &[&dyn Arg]) -> StoreResult<u64> {
        let changed = self
            .execute(sql, sqlite_args(args).as_slice())
            .map_err(backend)?;
        Ok(changed as u64)
    }

    fn each_row(&self, sql: &str, args: &[&dyn Arg], take: &mut TakeRow<'_>) -> StoreResult<()> {
        let mut statement = self.prepare_cached(sql).map_err(backend)?;
        let mut rows = statement
            .query(sqlite_args(args).as_slice())
            .map_err(backend)?;
        while let Some(row) = rows.next().map_err(backend)? {
            take(row)?;
        }
        Ok(())
    }
}

impl Statements for SqliteStore {
    fn write(&self, sql: &str, args: &[&dyn Arg]) -> StoreResult<u64> {
        self.lock().write(sql, args)
    }

    fn each_row(&self, sql: &str, args: &[&dyn Arg], take: &mut TakeRow<'_>) -> StoreResult<()> {
        self.lock().each_row(sql, args, take)
    }
}

impl Database for SqliteStore {
    const NOW_MS: &'static str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";
    const APPEND_SNAPSHOT: &'static str = "INSERT INTO eta_snapshots (shipment_id, seq, body)
         VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM eta_snapshots
                      WHERE shipment_id = ?1), ?2)";
    /// The one connection's lock is all `exclusively` needs.
    const WEBHOOK_TO_CHANGE: &'static str = sql::webhooks::OWNED;
    const DELIVERIES: &'static str = "SELECT body FROM deliveries WHERE webhook_id = ?1
         ORDER BY rowid DESC LIMIT ?2";
    /// The transaction holds the one connection: no takeover comes before its commit.
    const LEASE_TOKEN: &'static str = "SELECT token FROM leases WHERE name = ?1";

    fn sealing(&self) -> Option<&SecretBox> {
        self.secrets.as_ref()
    }

    fn in_transaction<T>(
        &self,
        work: impl FnOnce(&dyn Statements) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut connection = self.lock();
        let transaction = connection.transaction().map_err(backend)?;
        let value = work(&*transaction)?;
        transaction.commit().map_err(backend)?;
        Ok(value)
    }

    fn exclusively<T>(
        &self,
        work: impl FnOnce(&dyn Statements) -> StoreResult<T>,
    ) -> StoreResult<T> {
        // The read and the write under one lock of the one connection: nothing comes between.
        work(&*self.lock())
    }

    fn insert_shipment_body(&self, shipment: &Shipment, body: &str) -> StoreResult<()> {
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

    fn record_delivery_body(&self, delivery: &Delivery, body: &str) -> StoreResult<()> {
        self.with(|connection| {
            connection.execute(
                "INSERT OR REPLACE INTO deliveries (id, attempt, webhook_id, body)
                 VALUES (?1, ?2, ?3, ?4)",
                params![delivery.id, delivery.attempt, delivery.webhook_id, body],
            )
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
