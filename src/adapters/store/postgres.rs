//! The shared store: PostgreSQL, for several `etape serve` processes behind one address.
//!
//! The [`Store`] trait is synchronous because its callers already run it on the blocking pool;
//! this store drives tokio-postgres (an async driver) and its deadpool pool on a small runtime
//! of its own, so that it can be called from any thread, inside or outside another runtime, the
//! way the SQLite store is.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde::de::DeserializeOwned;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::sql;
use super::{backend, from_json, instant, to_json};
use crate::adapters::webhooks::{Delivery, Webhook, WebhookStore};
use crate::domain::storage::{StoreError, StoreResult};
use crate::partners::keys::{ApiKey, KeyStore, Organisation};
use crate::partners::uploads::{Consent, Upload, UploadStore};
use crate::tracking::eta::Snapshot;
use crate::tracking::pings::{reported, Ping};
use crate::tracking::shipment::{Shipment, Status};
use crate::tracking::store::{Leases, SharedPings, ShipmentStore};
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
];

/// Milliseconds since the epoch by the server's clock, which every replica shares (the
/// statement's, not the transaction's).
const NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// Replicas starting together wait on this lock instead of migrating twice.
const MIGRATION_LOCK: i64 = 0x6574_6170_655f_6d67;

/// Connections one process holds at most; the server's `max_connections` (100 by default)
/// bounds replicas times this.
const POOL_SIZE: usize = 16;

pub struct PostgresStore {
    pool: Pool,
    runtime: Option<tokio::runtime::Runtime>,
}

/// tokio-postgres says only "db error" in its own message: the server's message is the cause.
fn database(error: tokio_postgres::Error) -> StoreError {
    match error.as_db_error() {
        Some(db) => StoreError::Backend(format!("{}: {}", db.code().code(), db.message())),
        None => backend(error),
    }
}

fn pooled(error: deadpool_postgres::PoolError) -> StoreError {
    match error {
        deadpool_postgres::PoolError::Backend(error) => database(error),
        other => backend(other),
    }
}

/// `usize::MAX` means no limit, as SQLite reads the -1 it wraps to; PostgreSQL refuses that.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and brings its schema
    /// to the latest version.
    pub fn connect(url: &str) -> StoreResult<Self> {
        let store = Self::connect_without_migrating(url)?;
        store.migrate()?;
        Ok(store)
    }

    fn connect_without_migrating(url: &str) -> StoreResult<Self> {
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|error| StoreError::Backend(format!("invalid PostgreSQL URL: {error}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("etape-postgres")
            .enable_all()
            .build()
            .map_err(backend)?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = {
            let _context = runtime.enter();
            Pool::builder(manager)
                .max_size(POOL_SIZE)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(Duration::from_secs(30)))
                .create_timeout(Some(Duration::from_secs(10)))
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
        let admin = Self::connect_without_migrating(url)?;
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
            "INSERT INTO shipments (id, organisation, reference, vehicle_id, status, body)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (organisation, reference) DO NOTHING",
            &[
                &shipment.id,
                &shipment.organisation,
                &shipment.reference,
                &shipment.vehicle_id,
                &shipment.status.as_str(),
                &body,
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

    fn save_shipment(&self, shipment: &Shipment) -> StoreResult<()> {
        let body = to_json(shipment)?;
        self.execute(
            sql::shipments::UPDATE,
            &[&shipment.status.as_str(), &body, &shipment.id],
        )?;
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

    fn append_snapshot(&self, snapshot: &Snapshot) -> StoreResult<()> {
        let body = to_json(snapshot)?;
        self.execute(
            "INSERT INTO eta_snapshots (shipment_id, body) VALUES ($1, $2)",
            &[&snapshot.shipment_id, &body],
        )?;
        Ok(())
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
