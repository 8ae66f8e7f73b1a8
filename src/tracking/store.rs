//! Where tracking keeps its shipments, estimates and (on a shared database) pings, and the
//! lease under which one process of several does the work done once. The adapters implement
//! these; the tracker sees nothing else of the database.

use polars::prelude::{DataFrame, PolarsResult};

use crate::domain::storage::StoreResult;
use crate::tracking::eta::Snapshot;
use crate::tracking::pings::Ping;
use crate::tracking::shipment::{Shipment, Status};
use crate::tracking::tracker::Notice;

pub trait ShipmentStore: Send + Sync + 'static {
    fn insert_shipment(&self, shipment: &Shipment) -> StoreResult<()>;

    /// Compare-and-set: saves `shipment` over the version it was read at (`shipment.version`)
    /// and enqueues `notices` in the outbox, in one transaction, then sets `shipment.version`
    /// to the version saved. `StoreError::Conflict`, with nothing written, when another writer
    /// saved it since: the caller reads it again and re-applies its change.
    fn save_shipment(&self, shipment: &mut Shipment, notices: &[Notice]) -> StoreResult<()>;

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

    /// The latest `limit` delivered shipments of every organisation, newest first: their
    /// scored estimates teach the corrections again after a restart.
    fn recent_deliveries(&self, limit: usize) -> StoreResult<Vec<Shipment>>;

    /// Appends the estimate to the shipment's history and enqueues the `notices` it causes in
    /// the outbox, in one transaction.
    fn append_snapshot(&self, snapshot: &Snapshot, notices: &[Notice]) -> StoreResult<()>;

    fn snapshots(&self, shipment_id: &str) -> StoreResult<Vec<Snapshot>>;

    /// Keeps a shipment's current estimate, whole (plan and factors included), in place of
    /// the previous: with a shared store every replica answers it.
    fn save_current(&self, snapshot: &Snapshot) -> StoreResult<()>;

    fn current(&self, shipment_id: &str) -> StoreResult<Option<Snapshot>>;

    /// The current estimates of an organisation's shipments (of `status`, or any) with ids
    /// from `first` to `last`: a listed page's, in one query.
    fn current_page(
        &self,
        organisation: &str,
        status: Option<Status>,
        first: &str,
        last: &str,
    ) -> StoreResult<Vec<Snapshot>>;

    /// The last estimate kept in the history of each such shipment: a finished one's answer.
    fn latest_page(
        &self,
        organisation: &str,
        status: Option<Status>,
        first: &str,
        last: &str,
    ) -> StoreResult<Vec<Snapshot>>;

    /// The planned or in-transit shipments of one vehicle.
    fn active_shipments_of(
        &self,
        organisation: &str,
        vehicle_id: &str,
    ) -> StoreResult<Vec<Shipment>>;
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

pub trait Leases: Send + Sync + 'static {
    /// Takes the lease `name` for `holder` for `ttl_ms` from now by the database's clock, or
    /// renews it, if it is free, expired or already `holder`'s; true when `holder` holds it.
    /// Work that must happen once across processes runs under a lease.
    fn acquire_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> StoreResult<bool>;

    /// Gives the lease up at once (a process stopping cleanly), if `holder` holds it.
    fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()>;
}

/// Where one process keeps the pings of the window between restarts, when no shared database
/// holds them: append-only segments, merged now and then, read back one at a time.
pub trait PingArchive: Send + Sync + 'static {
    /// Keeps the frame's pings durably before the batch is acknowledged.
    fn append(&self, frame: &mut DataFrame) -> StoreResult<()>;
    /// Merges small segments and drops what is older than `since_ms` once there are more than
    /// `max_segments`; returns the segments removed.
    fn compact(&self, since_ms: i64, max_segments: usize) -> StoreResult<usize>;
    /// Hands every kept ping from `since_ms` on to `take`, a segment at a time.
    fn read_since(
        &self,
        since_ms: i64,
        take: &mut dyn FnMut(DataFrame) -> PolarsResult<()>,
    ) -> StoreResult<()>;
}
