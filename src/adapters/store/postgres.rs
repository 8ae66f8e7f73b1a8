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
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::records::{self, fenced, Arg, Columns, Database, Statements, TakeRow};
use super::sealed::SecretBox;
use super::sql;
use super::{backend, sql_limit};
use crate::adapters::webhooks::Delivery;
use crate::domain::storage::{StoreError, StoreResult};
use crate::tracking::pings::{reported, Ping};
use crate::tracking::shipment::Shipment;
use crate::tracking::store::{Fence, SharedPings};

/// Applied in order, each once, recorded in `schema_migrations`: append, never edit, a
/// migration. The same tables as the SQLite store's, with sequences where SQLite has rowids;
/// a migration is the statements of its list, run in one transaction.
const MIGRATIONS: &[&[&str]] = &[
    &[
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
    CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, seq);",
        sql::keys::TABLES,
        sql::uploads::TABLES,
    ],
    &["CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_ms BIGINT NOT NULL
    );
    CREATE TABLE current_snapshots (
        shipment_id TEXT PRIMARY KEY REFERENCES shipments (id),
        body TEXT NOT NULL
    );
    CREATE INDEX shipments_by_vehicle ON shipments (organisation, vehicle_id, status);"],
    &["CREATE TABLE pings (
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
    );"],
    &[sql::training_jobs::TABLE],
    &[sql::share_links::TABLE],
    // Shipment versions (compare-and-set) and the webhooks' outbox.
    &[
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
    ],
    // Phones' device tokens.
    &[sql::devices::TABLE],
    // Lease tokens: the fences of the leader's writes.
    &[sql::leases::TOKENS],
];

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
    secrets: Option<SecretBox>,
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

    /// Seals webhook secrets under `secrets` from now on, when given, and at once those kept
    /// in clear so far. Every replica must seal under the same key: one opens none of what
    /// another sealed under its own. Without a key the store keeps them in clear, and reads
    /// none that another sealed.
    pub fn with_secrets(mut self, secrets: Option<SecretBox>) -> StoreResult<Self> {
        if secrets.is_none() {
            return Ok(self);
        }
        self.secrets = secrets;
        records::seal_kept_secrets(&self)?;
        Ok(self)
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
            secrets: None,
        })
    }

    /// Runs `work` to completion on the calling thread, its I/O driven by the store's runtime:
    /// unlike `Runtime::block_on`, this may be called from inside another runtime.
    fn wait<T>(&self, work: impl Future<Output = T>) -> T {
        let runtime = self
            .runtime
            .as_ref()
            .expect("the runtime lives as long as the store");
        let _context = runtime.enter();
        futures_executor::block_on(work)
    }

    /// As `wait`, for an async block: its output named, so that each `?` in it knows the
    /// error it returns.
    fn run<T>(&self, work: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        self.wait(work)
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
            for (index, statements) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
                let version = index as i32 + 1;
                for sql in *statements {
                    transaction.batch_execute(sql).await.map_err(database)?;
                }
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

/// The arguments as tokio-postgres binds them.
fn postgres_args<'a>(args: &[&'a dyn Arg]) -> Vec<&'a (dyn ToSql + Sync)> {
    args.iter().map(|&arg| arg.postgres()).collect()
}

impl Columns for Row {
    fn text(&self, column: usize) -> StoreResult<String> {
        self.try_get(column).map_err(database)
    }

    fn integer(&self, column: usize) -> StoreResult<i64> {
        self.try_get(column).map_err(database)
    }
}

impl Statements for PostgresStore {
    fn write(&self, sql: &str, args: &[&dyn Arg]) -> StoreResult<u64> {
        self.execute(sql, &postgres_args(args))
    }

    fn each_row(&self, sql: &str, args: &[&dyn Arg], take: &mut TakeRow<'_>) -> StoreResult<()> {
        for row in &self.rows(sql, &postgres_args(args))? {
            take(row)?;
        }
        Ok(())
    }
}

/// An open transaction, its statements run one at a time from the synchronous code that
/// fills it: each waits on the store's runtime, as every call of the store does.
struct InTransaction<'t, 'c> {
    store: &'t PostgresStore,
    transaction: &'t deadpool_postgres::Transaction<'c>,
}

impl Statements for InTransaction<'_, '_> {
    fn write(&self, sql: &str, args: &[&dyn Arg]) -> StoreResult<u64> {
        let args = postgres_args(args);
        self.store
            .wait(self.transaction.execute(sql, &args))
            .map_err(database)
    }

    fn each_row(&self, sql: &str, args: &[&dyn Arg], take: &mut TakeRow<'_>) -> StoreResult<()> {
        let args = postgres_args(args);
        let rows = self
            .store
            .wait(self.transaction.query(sql, &args))
            .map_err(database)?;
        for row in &rows {
            take(row)?;
        }
        Ok(())
    }
}

impl Database for PostgresStore {
    /// By the server's clock, which every replica shares (the statement's, not the
    /// transaction's).
    const NOW_MS: &'static str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";
    const APPEND_SNAPSHOT: &'static str =
        "INSERT INTO eta_snapshots (shipment_id, body) VALUES ($1, $2)";
    /// Locked until the commit: another replica's change waits instead of saving over.
    const WEBHOOK_TO_CHANGE: &'static str =
        "SELECT body FROM webhooks WHERE organisation = $1 AND id = $2 FOR UPDATE";
    const DELIVERIES: &'static str =
        "SELECT body FROM deliveries WHERE webhook_id = $1 ORDER BY seq DESC LIMIT $2";
    /// Key-share-locked until the commit: a takeover, which changes the token (part of the
    /// row's key), waits for the fenced write to land or roll back rather than come between
    /// its check and its commit, while the holder's renewals, which leave the token alone, do
    /// not wait. A leader stalled inside the transaction would hold a takeover up as long as
    /// it stalls, so the server ends such a session once idle in it for 5 s, rolling the
    /// write back: a stall delays a takeover by that much at most.
    const LEASE_TOKEN: &'static str = "SELECT token,
            set_config('idle_in_transaction_session_timeout', '5000', true)
         FROM leases WHERE name = $1 FOR KEY SHARE";

    fn sealing(&self) -> Option<&SecretBox> {
        self.secrets.as_ref()
    }

    fn in_transaction<T>(
        &self,
        work: impl FnOnce(&dyn Statements) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut client = self.wait(self.pool.get()).map_err(pooled)?;
        let transaction = self.wait(client.transaction()).map_err(database)?;
        let value = work(&InTransaction {
            store: self,
            transaction: &transaction,
        })?;
        self.wait(transaction.commit()).map_err(database)?;
        Ok(value)
    }

    fn exclusively<T>(
        &self,
        work: impl FnOnce(&dyn Statements) -> StoreResult<T>,
    ) -> StoreResult<T> {
        // The row `WEBHOOK_TO_CHANGE` reads stays locked until the transaction ends.
        self.in_transaction(work)
    }

    fn insert_shipment_body(&self, shipment: &Shipment, body: &str) -> StoreResult<()> {
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

    fn record_delivery_body(&self, delivery: &Delivery, body: &str) -> StoreResult<()> {
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

    fn take_moved_vehicles_under(
        &self,
        fence: Option<&Fence>,
    ) -> StoreResult<Vec<(String, String)>> {
        fenced(self, fence, |statements| {
            let mut moved = Vec::new();
            statements.each_row(
                "DELETE FROM moved_vehicles RETURNING organisation, vehicle_id",
                &[],
                &mut |row: &dyn Columns| -> StoreResult<()> {
                    moved.push((row.text(0)?, row.text(1)?));
                    Ok(())
                },
            )?;
            Ok(moved)
        })
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
