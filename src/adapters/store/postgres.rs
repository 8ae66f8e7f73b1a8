//! The shared store: PostgreSQL, for several `etape serve` processes behind one address.
//!
//! The [`Store`] trait is synchronous because its callers already run it on the blocking pool;
//! this store drives tokio-postgres (an async driver) and its deadpool pool on a small runtime
//! of its own, so that it can be called from any thread, inside or outside another runtime, the
//! way the SQLite store is.

mod tls;

use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde::de::DeserializeOwned;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::sql;
use super::{backend, from_json, instant, to_json};
use crate::adapters::webhooks::{outbox, Delivery, Outgoing, Settled, Webhook, WebhookStore};
use crate::domain::clock::Clock;
use crate::domain::storage::{StoreError, StoreResult};
use crate::partners::devices::{Device, DeviceStore};
use crate::partners::keys::{ApiKey, KeyStore, Organisation};
use crate::partners::uploads::{Consent, Upload, UploadStore};
use crate::tracking::eta::Snapshot;
use crate::tracking::pings::{reported, Ping};
use crate::tracking::sharing::{ShareLink, ShareStore};
use crate::tracking::shipment::{Shipment, Status};
use crate::tracking::store::{Leases, SharedPings, ShipmentStore};
use crate::tracking::tracker::Notice;
use crate::training::jobs::{Job, JobStore};

/// Applied in order, each once, recorded in `schema_migrations`: append, never edit, a
/// migration. The same tables as the SQLite store's, with sequences where SQLite has rowids.
const MIGRATIONS: &[&str] = &[
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
    CREATE INDEX shipments_active ON shipments (status, id);
    CREATE TABLE eta_snapshots (
        seq BIGSERIAL PRIMARY KEY,
        shipment_id TEXT NOT NULL REFERENCES shipments (id),
        body TEXT NOT NULL
    );
    CREATE INDEX eta_snapshots_by_shipment ON eta_snapshots (shipment_id, seq);
    CREATE TABLE webhooks (
        id TEXT PRIMARY KEY,
        organisation TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE TABLE deliveries (
        id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        webhook_id TEXT NOT NULL,
        seq BIGSERIAL NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (id, attempt)
    );
    CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, seq);
    CREATE TABLE organisations (
        id TEXT PRIMARY KEY,
        body TEXT NOT NULL
    );
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        organisation TEXT NOT NULL REFERENCES organisations (id),
        body TEXT NOT NULL
    );
    CREATE TABLE uploads (
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
    "CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_ms BIGINT NOT NULL
    );
    CREATE TABLE current_snapshots (
        shipment_id TEXT PRIMARY KEY REFERENCES shipments (id),
        body TEXT NOT NULL
    );
    CREATE INDEX shipments_by_vehicle ON shipments (organisation, vehicle_id, status);",
    "CREATE TABLE pings (
        organisation TEXT NOT NULL,
        vehicle_id TEXT NOT NULL,
        timestamp_ms BIGINT NOT NULL,
        lat DOUBLE PRECISION NOT NULL,
        lon DOUBLE PRECISION NOT NULL,
        speed_kmh DOUBLE PRECISION,
        heading DOUBLE PRECISION,
        PRIMARY KEY (organisation, vehicle_id, timestamp_ms)
    );
    CREATE INDEX pings_by_time ON pings (timestamp_ms);
    CREATE TABLE moved_vehicles (
        organisation TEXT NOT NULL,
        vehicle_id TEXT NOT NULL,
        PRIMARY KEY (organisation, vehicle_id)
    );",
    sql::training_jobs::TABLE,
    sql::share_links::TABLE,
    // Shipment versions (compare-and-set) and the webhooks' outbox.
    "ALTER TABLE shipments ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
    CREATE TABLE outbox (
        seq BIGSERIAL PRIMARY KEY,
        delivery_id TEXT NOT NULL UNIQUE,
        webhook_id TEXT NOT NULL,
        organisation TEXT NOT NULL,
        event TEXT NOT NULL,
        shipment_id TEXT NOT NULL,
        body TEXT NOT NULL,
        etas TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        status TEXT NOT NULL,
        next_attempt_at_ms BIGINT NOT NULL,
        claimed_until_ms BIGINT NOT NULL,
        created_at_ms BIGINT NOT NULL
    );
    CREATE INDEX outbox_due ON outbox (status, next_attempt_at_ms, seq);",
    // Phones' device tokens.
    sql::devices::TABLE,
];

/// Milliseconds since the epoch by the server's clock, which every replica shares (the
/// statement's, not the transaction's).
const NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// Replicas starting together wait on this lock instead of migrating twice.
const MIGRATION_LOCK: i64 = 0x6574_6170_655f_6d67;

/// Connections one process holds at most; the server's `max_connections` (100 by default)
/// bounds replicas times this.
const POOL_SIZE: usize = 16;

/// How long a request waits for a new connection, and for a free one of the pool, before it
/// is answered 503: a database that is down must fail requests fast, not hold every worker
/// for the default 30 s. Two seconds is ample for a connection on a local network or in one
/// cloud region, TLS included; a URL's own `connect_timeout` takes precedence for the socket.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const WAIT_TIMEOUT: Duration = Duration::from_secs(2);

pub struct PostgresStore {
    pool: Pool,
    runtime: Option<tokio::runtime::Runtime>,
}

/// tokio-postgres says only "db error" in its own message: the server's message is the cause.
/// A lost connection, one refused or timed out, and the server shutting down, starting up or
/// out of connections are `Unavailable`: a moment later, the same request may succeed.
fn database(error: tokio_postgres::Error) -> StoreError {
    if let Some(db) = error.as_db_error() {
        let code = db.code().code();
        let message = format!("{code}: {}", db.message());
        // Class 08: connection exceptions; 57P01-03: admin shutdown, crash shutdown, cannot
        // connect now (starting up or shutting down); 53300: too many connections.
        let transient =
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300");
        return if transient {
            StoreError::Unavailable(message)
        } else {
            StoreError::Backend(message)
        };
    }
    let message = with_causes(&error);
    if error.is_closed() || caused_by_io(&error) {
        StoreError::Unavailable(message)
    } else {
        StoreError::Backend(message)
    }
}

fn pooled(error: deadpool_postgres::PoolError) -> StoreError {
    match error {
        deadpool_postgres::PoolError::Backend(error) => database(error),
        timeout @ deadpool_postgres::PoolError::Timeout(_) => {
            StoreError::Unavailable(format!("no PostgreSQL connection: {timeout}"))
        }
        other => backend(other),
    }
}

/// tokio-postgres puts what went wrong ("Connection refused", "invalid peer certificate")
/// in the source, not in its own message.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        cause = inner.source();
    }
    message
}

/// Socket errors (refused, reset, timed out) and TLS handshake failures reach tokio-postgres
/// as `std::io::Error`s.
fn caused_by_io(error: &dyn std::error::Error) -> bool {
    let mut cause = error.source();
    while let Some(inner) = cause {
        if inner.is::<std::io::Error>() {
            return true;
        }
        cause = inner.source();
    }
    false
}

/// `usize::MAX` means no limit, as SQLite reads the -1 it wraps to; PostgreSQL refuses that.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and brings its schema
    /// to the latest version.
    pub fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(url, None)
    }

    /// As `connect`, with `ca_file` (`storage.ca_file`) the CA to verify the server with when
    /// the URL's `sslmode` asks and its `sslrootcert` names none (the modes: `postgres/tls.rs`).
    pub fn connect_with(url: &str, ca_file: Option<&Path>) -> StoreResult<Self> {
        let store = Self::connect_without_migrating(url, ca_file)?;
        store.migrate()?;
        Ok(store)
    }

    fn connect_without_migrating(url: &str, ca_file: Option<&Path>) -> StoreResult<Self> {
        let split = tls::split(url)?;
        let mut config = tokio_postgres::Config::from_str(&split.url)
            .map_err(|error| StoreError::Backend(format!("invalid PostgreSQL URL: {error}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let connector = tls::connector(split.mode, split.root_cert.as_deref(), ca_file)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("etape-postgres")
            .enable_all()
            .build()
            .map_err(backend)?;
        // `Fast` recycling: a connection the server closed (a restart terminates every
        // backend) reads as closed and is dropped on its way back out of the pool, without the
        // round trip `Verified` would add to every request.
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match connector {
            tls::Connector::Plain => Manager::from_config(config, NoTls, manager_config),
            tls::Connector::Tls {
                connector,
                fallback,
            } => {
                config.ssl_mode(if fallback {
                    tokio_postgres::config::SslMode::Prefer
                } else {
                    tokio_postgres::config::SslMode::Require
                });
                Manager::from_config(config, connector, manager_config)
            }
        };
        let pool = {
            let _context = runtime.enter();
            Pool::builder(manager)
                .max_size(POOL_SIZE)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(WAIT_TIMEOUT))
                .create_timeout(Some(CONNECT_TIMEOUT))
                .build()
                .map_err(backend)?
        };
        Ok(Self {
            pool,
            runtime: Some(runtime),
        })
    }

    /// Runs `work` to completion on the calling thread, its I/O driven by the store's runtime:
    /// unlike `Runtime::block_on`, this may be called from inside another runtime.
    fn run<T>(&self, work: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        let runtime = self
            .runtime
            .as_ref()
            .expect("the runtime lives as long as the store");
        let _context = runtime.enter();
        futures_executor::block_on(work)
    }

    fn migrate(&self) -> StoreResult<()> {
        self.run(async {
            let mut client = self.pool.get().await.map_err(pooled)?;
            let transaction = client.transaction().await.map_err(database)?;
            transaction
                .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await
                .map_err(database)?;
            transaction
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (
                        version INTEGER PRIMARY KEY,
                        applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                    )",
                )
                .await
                .map_err(database)?;
            let applied: i32 = transaction
                .query_one(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                    &[],
                )
                .await
                .map_err(database)?
                .get(0);
            for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
                let version = index as i32 + 1;
                transaction.batch_execute(sql).await.map_err(database)?;
                transaction
                    .execute(
                        "INSERT INTO schema_migrations (version) VALUES ($1)",
                        &[&version],
                    )
                    .await
                    .map_err(database)?;
                tracing::info!(message = "PostgreSQL schema migrated.", version);
            }
            transaction.commit().await.map_err(database)
        })
    }

    fn execute(&self, sql: &str, parameters: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        self.run(async {
            let client = self.pool.get().await.map_err(pooled)?;
            let statement = client.prepare_cached(sql).await.map_err(database)?;
            client
                .execute(&statement, parameters)
                .await
                .map_err(database)
        })
    }

    fn rows(&self, sql: &str, parameters: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<Row>> {
        self.run(async {
            let client = self.pool.get().await.map_err(pooled)?;
            let statement = client.prepare_cached(sql).await.map_err(database)?;
            client.query(&statement, parameters).await.map_err(database)
        })
    }

    fn bodies<T: DeserializeOwned>(
        &self,
        sql: &str,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Vec<T>> {
        self.rows(sql, parameters)?
            .iter()
            .map(|row| from_json(row.get::<_, &str>(0)))
            .collect()
    }

    fn body<T: DeserializeOwned>(
        &self,
        sql: &str,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Option<T>> {
        Ok(self.bodies(sql, parameters)?.into_iter().next())
    }

    /// The server tests and benchmarks may use (`ETAPE_TEST_POSTGRES_URL`), if any; with
    /// `ETAPE_REQUIRE_POSTGRES=1`, its absence is a failure rather than a skip.
    #[doc(hidden)]
    pub fn test_server() -> Option<String> {
        match std::env::var("ETAPE_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ => {
                assert!(
                    std::env::var("ETAPE_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                    "ETAPE_REQUIRE_POSTGRES=1 but ETAPE_TEST_POSTGRES_URL is not set"
                );
                eprintln!("PostgreSQL tests skipped: ETAPE_TEST_POSTGRES_URL is not set");
                None
            }
        }
    }

    /// Creates the empty database `etape_test_{name}` on the server of `url` (a
    /// `postgres://` URL), dropping any left by an earlier run, and returns its URL: tests
    /// and benchmarks take one each.
    #[doc(hidden)]
    pub fn scratch_database(url: &str, name: &str) -> StoreResult<String> {
        let scratch = format!("etape_test_{name}");
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (url, String::new()),
        };
        let (server, _) = base
            .rsplit_once('/')
            .filter(|(server, _)| server.contains("://"))
            .ok_or_else(|| StoreError::Backend(format!("not a postgres:// URL: {url}")))?;
        let admin = Self::connect_without_migrating(url, None)?;
        admin.run(async {
            let client = admin.pool.get().await.map_err(pooled)?;
            // One statement each: several in one batch would run as one transaction.
            for sql in [
                format!("DROP DATABASE IF EXISTS {scratch} WITH (FORCE)"),
                format!("CREATE DATABASE {scratch}"),
            ] {
                client.batch_execute(&sql).await.map_err(database)?;
            }
            Ok(())
        })?;
        Ok(format!("{server}/{scratch}{query}"))
    }

    /// Whether this store's own session is encrypted, as the server sees it: the TLS tests'
    /// evidence that `sslmode` did what it says.
    #[doc(hidden)]
    pub fn session_is_tls(&self) -> StoreResult<bool> {
        self.run(async {
            let client = self.pool.get().await.map_err(pooled)?;
            let row = client
                .query_one(
                    "SELECT COALESCE(
                        (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
                    &[],
                )
                .await
                .map_err(database)?;
            Ok(row.get(0))
        })
    }

    /// Whether each session connected to `database`, other than this store's, is encrypted:
    /// what the server says of a service's connections.
    #[doc(hidden)]
    pub fn sessions_tls(&self, database_name: &str) -> StoreResult<Vec<bool>> {
        self.run(async {
            let client = self.pool.get().await.map_err(pooled)?;
            let rows = client
                .query(
                    "SELECT ssl.ssl FROM pg_stat_ssl ssl
                     JOIN pg_stat_activity activity ON activity.pid = ssl.pid
                     WHERE activity.datname = $1 AND ssl.pid <> pg_backend_pid()",
                    &[&database_name],
                )
                .await
                .map_err(database)?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics on an async worker: let it wind down alone.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl ShipmentStore for PostgresStore {
    fn insert_shipment(&self, shipment: &Shipment) -> StoreResult<()> {
        let body = to_json(shipment)?;
        // The unique constraint decides, so that two replicas cannot both register a reference.
        let inserted = self.execute(
            "INSERT INTO shipments (id, organisation, reference, vehicle_id, status, body, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (organisation, reference) DO NOTHING",
            &[
                &shipment.id,
                &shipment.organisation,
                &shipment.reference,
                &shipment.vehicle_id,
                &shipment.status.as_str(),
                &body,
                &shipment.version,
            ],
        )?;
        if inserted == 0 {
            let existing = self.rows(
                sql::shipments::ID_BY_REFERENCE,
                &[&shipment.organisation, &shipment.reference],
            )?;
            let id = existing
                .first()
                .map(|row| row.get::<_, String>(0))
                .unwrap_or_default();
            return Err(StoreError::DuplicateReference(id));
        }
        Ok(())
    }

    fn save_shipment(&self, shipment: &mut Shipment, notices: &[Notice]) -> StoreResult<()> {
        let mut saved = shipment.clone();
        saved.version += 1;
        let body = to_json(&saved)?;
        let expected = shipment.version;
        self.run(async {
            let mut client = self.pool.get().await.map_err(pooled)?;
            let transaction = client.transaction().await.map_err(database)?;
            let changed = transaction
                .execute(
                    sql::shipments::UPDATE,
                    &[
                        &saved.status.as_str(),
                        &body,
                        &saved.version,
                        &saved.id,
                        &expected,
                    ],
                )
                .await
                .map_err(database)?;
            if changed == 0 {
                return Err(StoreError::Conflict);
            }
            enqueue(&transaction, notices).await?;
            transaction.commit().await.map_err(database)
        })?;
        shipment.version = saved.version;
        Ok(())
    }

    fn shipment(&self, organisation: &str, id: &str) -> StoreResult<Option<Shipment>> {
        self.body(sql::shipments::GET, &[&organisation, &id])
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
            &[
                &organisation,
                &status.map(Status::as_str),
                &after.unwrap_or(""),
                &sql_limit(limit),
            ],
        )
    }

    fn active_shipments(&self) -> StoreResult<Vec<Shipment>> {
        self.bodies(sql::shipments::ACTIVE, &[])
    }

    fn recent_deliveries(&self, limit: usize) -> StoreResult<Vec<Shipment>> {
        self.bodies(sql::shipments::RECENT_DELIVERED, &[&sql_limit(limit)])
    }

    fn append_snapshot(&self, snapshot: &Snapshot, notices: &[Notice]) -> StoreResult<()> {
        let body = to_json(snapshot)?;
        self.run(async {
            let mut client = self.pool.get().await.map_err(pooled)?;
            let transaction = client.transaction().await.map_err(database)?;
            transaction
                .execute(
                    "INSERT INTO eta_snapshots (shipment_id, body) VALUES ($1, $2)",
                    &[&snapshot.shipment_id, &body],
                )
                .await
                .map_err(database)?;
            enqueue(&transaction, notices).await?;
            transaction.commit().await.map_err(database)
        })
    }

    fn snapshots(&self, shipment_id: &str) -> StoreResult<Vec<Snapshot>> {
        self.bodies(sql::snapshots::HISTORY, &[&shipment_id])
    }

    fn save_current(&self, snapshot: &Snapshot) -> StoreResult<()> {
        self.execute(
            sql::snapshots::SAVE_CURRENT,
            &[&snapshot.shipment_id, &to_json(snapshot)?],
        )?;
        Ok(())
    }

    fn current(&self, shipment_id: &str) -> StoreResult<Option<Snapshot>> {
        self.body(sql::snapshots::CURRENT, &[&shipment_id])
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
            &[&organisation, &status.map(Status::as_str), &first, &last],
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
            &[&organisation, &status.map(Status::as_str), &first, &last],
        )
    }

    fn active_shipments_of(
        &self,
        organisation: &str,
        vehicle_id: &str,
    ) -> StoreResult<Vec<Shipment>> {
        self.bodies(
            sql::shipments::ACTIVE_OF_VEHICLE,
            &[&organisation, &vehicle_id],
        )
    }
}

impl WebhookStore for PostgresStore {
    fn insert_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        let body = to_json(webhook)?;
        self.execute(
            sql::webhooks::INSERT,
            &[&webhook.id, &webhook.organisation, &body],
        )?;
        Ok(())
    }

    fn webhooks(&self, organisation: Option<&str>) -> StoreResult<Vec<Webhook>> {
        self.bodies(sql::webhooks::LIST, &[&organisation])
    }

    fn delete_webhook(&self, organisation: &str, id: &str) -> StoreResult<bool> {
        let deleted = self.execute(sql::webhooks::DELETE, &[&organisation, &id])?;
        Ok(deleted > 0)
    }

    fn update_webhook(
        &self,
        organisation: &str,
        id: &str,
        change: &mut dyn FnMut(&mut Webhook),
    ) -> StoreResult<Option<Webhook>> {
        self.run(async {
            let mut client = self.pool.get().await.map_err(pooled)?;
            let transaction = client.transaction().await.map_err(database)?;
            // Locked until the commit: another replica's change waits instead of saving over.
            let row = transaction
                .query_opt(
                    "SELECT body FROM webhooks WHERE organisation = $1 AND id = $2 FOR UPDATE",
                    &[&organisation, &id],
                )
                .await
                .map_err(database)?;
            let Some(row) = row else {
                return Ok(None);
            };
            let mut webhook: Webhook = from_json(row.get::<_, &str>(0))?;
            change(&mut webhook);
            let body = to_json(&webhook)?;
            transaction
                .execute(sql::webhooks::UPDATE, &[&body, &id])
                .await
                .map_err(database)?;
            transaction.commit().await.map_err(database)?;
            Ok(Some(webhook))
        })
    }

    fn record_delivery(&self, delivery: &Delivery) -> StoreResult<()> {
        let body = to_json(delivery)?;
        // A new sequence number on update too: the latest attempt lists first, as in SQLite.
        self.execute(
            "INSERT INTO deliveries (id, attempt, webhook_id, body) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id, attempt) DO UPDATE
             SET webhook_id = excluded.webhook_id, body = excluded.body, seq = excluded.seq",
            &[
                &delivery.id,
                &(delivery.attempt as i32),
                &delivery.webhook_id,
                &body,
            ],
        )?;
        Ok(())
    }

    fn deliveries(&self, webhook_id: &str, limit: usize) -> StoreResult<Vec<Delivery>> {
        self.bodies(
            "SELECT body FROM deliveries WHERE webhook_id = $1 ORDER BY seq DESC LIMIT $2",
            &[&webhook_id, &sql_limit(limit)],
        )
    }

    fn delivery_attempts(&self, webhook_id: &str, delivery_id: &str) -> StoreResult<Vec<Delivery>> {
        self.bodies(
            sql::webhooks::DELIVERY_ATTEMPTS,
            &[&webhook_id, &delivery_id],
        )
    }

    fn claim_outbox(&self, now_ms: i64, hold_ms: i64, limit: usize) -> StoreResult<Vec<Outgoing>> {
        let rows = self.rows(sql::outbox::CLAIM, &[&now_ms, &hold_ms, &sql_limit(limit)])?;
        let mut claimed: Vec<Outgoing> = rows
            .iter()
            .map(|row| Outgoing {
                seq: row.get(0),
                delivery_id: row.get(1),
                webhook_id: row.get(2),
                organisation: row.get(3),
                event: row.get(4),
                shipment_id: row.get(5),
                body: row.get(6),
                etas: outbox::etas_of(row.get::<_, &str>(7)),
                attempts: u32::try_from(row.get::<_, i64>(8)).unwrap_or(u32::MAX),
            })
            .collect();
        // RETURNING gives the rows in no particular order.
        claimed.sort_by_key(|row| row.seq);
        Ok(claimed)
    }

    fn retry_outbox(&self, seq: i64, attempts: u32, next_attempt_ms: i64) -> StoreResult<()> {
        self.execute(
            sql::outbox::RETRY,
            &[&i64::from(attempts), &next_attempt_ms, &seq],
        )?;
        Ok(())
    }

    fn settle_outbox(
        &self,
        seq: i64,
        attempts: u32,
        settled: Settled,
        at_ms: i64,
    ) -> StoreResult<()> {
        self.execute(
            sql::outbox::SETTLE,
            &[&settled.as_str(), &i64::from(attempts), &at_ms, &seq],
        )?;
        Ok(())
    }

    fn release_outbox(&self) -> StoreResult<u64> {
        self.execute(sql::outbox::RELEASE, &[])
    }

    fn purge_outbox(&self, before_ms: i64) -> StoreResult<u64> {
        self.execute(sql::outbox::PURGE, &[&before_ms])
    }
}

impl KeyStore for PostgresStore {
    fn insert_organisation(&self, organisation: &Organisation) -> StoreResult<()> {
        self.execute(
            sql::keys::INSERT_ORGANISATION,
            &[&organisation.id, &to_json(organisation)?],
        )?;
        Ok(())
    }

    fn organisations(&self) -> StoreResult<Vec<Organisation>> {
        self.bodies(sql::keys::ORGANISATIONS, &[])
    }

    fn insert_key(&self, key: &ApiKey) -> StoreResult<()> {
        self.execute(
            sql::keys::INSERT_KEY,
            &[&key.id, &key.organisation, &to_json(key)?],
        )?;
        Ok(())
    }

    fn keys(&self, organisation: Option<&str>) -> StoreResult<Vec<ApiKey>> {
        self.bodies(sql::keys::KEYS, &[&organisation])
    }

    fn revoke_key(&self, id: &str, at: chrono::DateTime<chrono::Utc>) -> StoreResult<bool> {
        let Some(mut key): Option<ApiKey> = self.body(sql::keys::KEY, &[&id])? else {
            return Ok(false);
        };
        if key.revoked_at.is_none() {
            key.revoked_at = Some(at);
        }
        self.execute(sql::keys::UPDATE_KEY, &[&to_json(&key)?, &id])?;
        Ok(true)
    }
}

impl UploadStore for PostgresStore {
    fn insert_upload(&self, upload: &Upload) -> StoreResult<()> {
        self.execute(
            sql::uploads::INSERT,
            &[
                &upload.id,
                &upload.organisation,
                &upload.sha256,
                &to_json(upload)?,
            ],
        )?;
        Ok(())
    }

    fn uploads(&self, organisation: Option<&str>) -> StoreResult<Vec<Upload>> {
        self.bodies(sql::uploads::LIST, &[&organisation])
    }

    fn delete_upload(&self, organisation: &str, id: &str) -> StoreResult<bool> {
        let deleted = self.execute(sql::uploads::DELETE, &[&organisation, &id])?;
        Ok(deleted > 0)
    }

    fn consent(&self, organisation: &str) -> StoreResult<Option<Consent>> {
        self.body(sql::uploads::CONSENT, &[&organisation])
    }

    fn set_consent(&self, consent: &Consent) -> StoreResult<()> {
        self.execute(
            sql::uploads::SAVE_CONSENT,
            &[&consent.organisation, &to_json(consent)?],
        )?;
        Ok(())
    }
}

impl Leases for PostgresStore {
    fn acquire_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> StoreResult<bool> {
        let taken = self.execute(
            &format!(
                "INSERT INTO leases (name, holder, expires_ms) VALUES ($1, $2, {NOW_MS} + $3)
                 ON CONFLICT (name) DO UPDATE
                 SET holder = excluded.holder, expires_ms = excluded.expires_ms
                 WHERE leases.holder = excluded.holder OR leases.expires_ms < {NOW_MS}"
            ),
            &[&name, &holder, &ttl_ms],
        )?;
        Ok(taken > 0)
    }

    fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        self.execute(sql::leases::RELEASE, &[&name, &holder])?;
        Ok(())
    }
}

impl JobStore for PostgresStore {
    fn save_job(&self, job: &Job) -> StoreResult<()> {
        self.execute(
            sql::training_jobs::SAVE,
            &[
                &job.id,
                &job.status.as_str(),
                &instant(job.started_at),
                &job.finished_at.map(instant),
                &to_json(job)?,
            ],
        )?;
        Ok(())
    }

    fn job(&self, id: &str) -> StoreResult<Option<Job>> {
        self.body(sql::training_jobs::GET, &[&id])
    }

    fn running_jobs(&self) -> StoreResult<Vec<Job>> {
        self.bodies(sql::training_jobs::RUNNING, &[])
    }
}

impl ShareStore for PostgresStore {
    fn insert_share_link(&self, link: &ShareLink, token_sha256: &str) -> StoreResult<()> {
        self.execute(
            sql::share_links::INSERT,
            &[
                &link.id,
                &token_sha256,
                &link.organisation,
                &link.shipment_id,
                &to_json(link)?,
            ],
        )?;
        Ok(())
    }

    fn share_link_by_token(&self, token_sha256: &str) -> StoreResult<Option<ShareLink>> {
        self.body(sql::share_links::BY_TOKEN, &[&token_sha256])
    }

    fn share_link(
        &self,
        organisation: &str,
        shipment_id: &str,
        id: &str,
    ) -> StoreResult<Option<ShareLink>> {
        self.body(sql::share_links::OWNED, &[&organisation, &shipment_id, &id])
    }

    fn save_share_link(&self, link: &ShareLink) -> StoreResult<()> {
        self.execute(sql::share_links::UPDATE, &[&to_json(link)?, &link.id])?;
        Ok(())
    }
}

impl DeviceStore for PostgresStore {
    fn insert_device(&self, device: &Device, token_digest: &str) -> StoreResult<()> {
        self.execute(
            sql::devices::INSERT,
            &[
                &device.id,
                &token_digest,
                &device.organisation,
                &to_json(device)?,
            ],
        )?;
        Ok(())
    }

    fn device_by_token(&self, token_digest: &str) -> StoreResult<Option<Device>> {
        self.body(sql::devices::BY_TOKEN, &[&token_digest])
    }

    fn devices(&self, organisation: &str) -> StoreResult<Vec<Device>> {
        self.bodies(sql::devices::LIST, &[&organisation])
    }

    fn device(&self, organisation: &str, id: &str) -> StoreResult<Option<Device>> {
        self.body(sql::devices::OWNED, &[&organisation, &id])
    }

    fn save_device(&self, device: &Device) -> StoreResult<()> {
        self.execute(sql::devices::UPDATE, &[&to_json(device)?, &device.id])?;
        Ok(())
    }
}

/// Writes the outbox rows of `notices` in `transaction`: one per notice and webhook of its
/// organisation subscribed to its event.
async fn enqueue(
    transaction: &deadpool_postgres::Transaction<'_>,
    notices: &[Notice],
) -> StoreResult<()> {
    if notices.is_empty() {
        return Ok(());
    }
    let mut webhooks: Vec<Webhook> = Vec::new();
    for organisation in outbox::organisations(notices) {
        let rows = transaction
            .query(sql::webhooks::LIST, &[&organisation])
            .await
            .map_err(database)?;
        for row in &rows {
            webhooks.push(from_json(row.get::<_, &str>(0))?);
        }
    }
    let now = Clock::System.now();
    let now_ms = now.timestamp_millis();
    for row in outbox::fan_out(notices, &webhooks, now) {
        transaction
            .execute(
                sql::outbox::INSERT,
                &[
                    &row.delivery_id,
                    &row.webhook_id,
                    &row.organisation,
                    &row.event,
                    &row.shipment_id,
                    &row.body,
                    &row.etas,
                    &now_ms,
                ],
            )
            .await
            .map_err(database)?;
    }
    Ok(())
}

fn ping_of(row: &Row) -> Ping {
    Ping {
        vehicle: 0,
        timestamp_ms: row.get(0),
        lat: row.get(1),
        lon: row.get(2),
        speed_kmh: row.get::<_, Option<f64>>(3).unwrap_or(f64::NAN),
        heading: row.get::<_, Option<f64>>(4).unwrap_or(f64::NAN),
    }
}

impl SharedPings for PostgresStore {
    fn append_pings(
        &self,
        organisation: &str,
        vehicles: &[String],
        pings: &[Ping],
    ) -> StoreResult<Vec<Ping>> {
        let vehicle_ids: Vec<&str> = pings
            .iter()
            .map(|ping| vehicles[ping.vehicle as usize].as_str())
            .collect();
        let timestamps: Vec<i64> = pings.iter().map(|ping| ping.timestamp_ms).collect();
        let lat: Vec<f64> = pings.iter().map(|ping| ping.lat).collect();
        let lon: Vec<f64> = pings.iter().map(|ping| ping.lon).collect();
        let speed: Vec<Option<f64>> = pings.iter().map(|ping| reported(ping.speed_kmh)).collect();
        let heading: Vec<Option<f64>> = pings.iter().map(|ping| reported(ping.heading)).collect();
        // One statement: the pings and the marks of their vehicles commit together, so that
        // whoever takes a mark sees the pings behind it.
        let kept = self.rows(
            "WITH new AS (
                INSERT INTO pings
                    (organisation, vehicle_id, timestamp_ms, lat, lon, speed_kmh, heading)
                SELECT $1, * FROM unnest($2::TEXT[], $3::BIGINT[], $4::FLOAT8[], $5::FLOAT8[],
                                         $6::FLOAT8[], $7::FLOAT8[])
                ON CONFLICT DO NOTHING
                RETURNING vehicle_id, timestamp_ms
            ), marked AS (
                INSERT INTO moved_vehicles (organisation, vehicle_id)
                SELECT DISTINCT $1, vehicle_id FROM new
                ON CONFLICT DO NOTHING
            )
            SELECT vehicle_id, timestamp_ms FROM new",
            &[
                &organisation,
                &vehicle_ids,
                &timestamps,
                &lat,
                &lon,
                &speed,
                &heading,
            ],
        )?;
        let mut new: std::collections::HashSet<(String, i64)> = kept
            .iter()
            .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1)))
            .collect();
        // A ping twice in one batch was inserted once: the first copy is the new one.
        Ok(pings
            .iter()
            .filter(|ping| {
                new.remove(&(vehicles[ping.vehicle as usize].clone(), ping.timestamp_ms))
            })
            .copied()
            .collect())
    }

    fn vehicle_pings(
        &self,
        organisation: &str,
        vehicle_id: &str,
        since_ms: i64,
    ) -> StoreResult<Vec<Ping>> {
        Ok(self
            .rows(
                "SELECT timestamp_ms, lat, lon, speed_kmh, heading FROM pings
                 WHERE organisation = $1 AND vehicle_id = $2 AND timestamp_ms >= $3
                 ORDER BY timestamp_ms",
                &[&organisation, &vehicle_id, &since_ms],
            )?
            .iter()
            .map(ping_of)
            .collect())
    }

    fn take_moved_vehicles(&self) -> StoreResult<Vec<(String, String)>> {
        Ok(self
            .rows(
                "DELETE FROM moved_vehicles RETURNING organisation, vehicle_id",
                &[],
            )?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect())
    }

    fn pings_sample(&self, max_rows: usize) -> StoreResult<Vec<Ping>> {
        // The planner's estimate of the table's size: counting 14 million rows takes seconds.
        let estimate: f32 = self
            .rows(
                "SELECT GREATEST(reltuples, 0)::REAL FROM pg_class WHERE relname = 'pings'",
                &[],
            )?
            .first()
            .map_or(0.0, |row| row.get(0));
        let percent: f32 = if estimate <= max_rows as f32 {
            100.0
        } else {
            (max_rows as f32 / estimate * 100.0).max(0.001)
        };
        Ok(self
            .rows(
                "SELECT timestamp_ms, lat, lon, speed_kmh, heading
                 FROM pings TABLESAMPLE BERNOULLI ($1) LIMIT $2",
                &[&percent, &sql_limit(max_rows)],
            )?
            .iter()
            .map(ping_of)
            .collect())
    }

    fn delete_pings_before(&self, before_ms: i64) -> StoreResult<u64> {
        self.execute("DELETE FROM pings WHERE timestamp_ms < $1", &[&before_ms])
    }
}
