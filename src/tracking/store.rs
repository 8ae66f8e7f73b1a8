//! Where tracking keeps its shipments, estimates and (on a shared database) pings, and the
//! lease under which one process of several does the work done once. The adapters implement
//! these; the tracker sees nothing else of the database.
//!
//! The leader's writes are fenced: each carries the [`Fence`] of the lease it was decided
//! under, and the store refuses it once a newer holder has the lease, in the transaction of
//! the write. The tracker writes through the plain methods of these traits, synchronously;
//! the loop that runs its leader work on a thread says under which fence
//! ([`leader_work`]), so that a recomputation begun before a stall carries the lease it began
//! under, not the one the process learns of later.

use std::cell::RefCell;

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
    /// `StoreError::Fenced`, with nothing written, when a newer holder has `fence`'s lease.
    fn save_shipment_under(
        &self,
        shipment: &mut Shipment,
        notices: &[Notice],
        fence: Option<&Fence>,
    ) -> StoreResult<()>;

    /// [`ShipmentStore::save_shipment_under`] the fence of the leader work on this thread.
    fn save_shipment(&self, shipment: &mut Shipment, notices: &[Notice]) -> StoreResult<()> {
        self.save_shipment_under(shipment, notices, working_under().as_ref())
    }

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
    /// the outbox, in one transaction; nothing of it once a newer holder has `fence`'s lease.
    fn append_snapshot_under(
        &self,
        snapshot: &Snapshot,
        notices: &[Notice],
        fence: Option<&Fence>,
    ) -> StoreResult<()>;

    /// [`ShipmentStore::append_snapshot_under`] the fence of the leader work on this thread.
    fn append_snapshot(&self, snapshot: &Snapshot, notices: &[Notice]) -> StoreResult<()> {
        self.append_snapshot_under(snapshot, notices, working_under().as_ref())
    }

    fn snapshots(&self, shipment_id: &str) -> StoreResult<Vec<Snapshot>>;

    /// Keeps a shipment's current estimate, whole (plan and factors included), in place of
    /// the previous: with a shared store every replica answers it. Refused once a newer
    /// holder has `fence`'s lease.
    fn save_current_under(&self, snapshot: &Snapshot, fence: Option<&Fence>) -> StoreResult<()>;

    /// [`ShipmentStore::save_current_under`] the fence of the leader work on this thread.
    fn save_current(&self, snapshot: &Snapshot) -> StoreResult<()> {
        self.save_current_under(snapshot, working_under().as_ref())
    }

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
    /// `(organisation, vehicle_id)`. Refused, the marks left for the new holder, once a newer
    /// holder has `fence`'s lease.
    fn take_moved_vehicles_under(
        &self,
        fence: Option<&Fence>,
    ) -> StoreResult<Vec<(String, String)>>;

    /// [`SharedPings::take_moved_vehicles_under`] the fence of the leader work on this thread.
    fn take_moved_vehicles(&self) -> StoreResult<Vec<(String, String)>> {
        self.take_moved_vehicles_under(working_under().as_ref())
    }

    /// A uniform sample of every vehicle's pings, about `max_rows` of them at most.
    fn pings_sample(&self, max_rows: usize) -> StoreResult<Vec<Ping>>;
    /// Forgets the pings older than `before_ms`; returns how many.
    fn delete_pings_before(&self, before_ms: i64) -> StoreResult<u64>;
}

pub trait Leases: Send + Sync + 'static {
    /// Takes the lease `name` for `holder` for `ttl_ms` from now by the database's clock, or
    /// renews it, if it is free, expired or already `holder`'s; its fence when `holder` holds
    /// it. Work that must happen once across processes runs under a lease, and its writes
    /// carry the fence.
    fn acquire_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> StoreResult<Option<Fence>>;

    /// Gives the lease up at once (a process stopping cleanly), if `holder` holds it. The
    /// lease is kept, expired, rather than forgotten: its token never starts over.
    fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()>;
}

/// The lease a write of the leader's was decided under: `token` grows each time the lease
/// changes holder, and the store refuses the write once the lease's token is greater, so
/// that a leader stalled past its lease cannot land what it decided before another took over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub lease: String,
    pub token: i64,
}

impl Fence {
    /// The fence of a process alone on its store (the embedded one), where the lease is never
    /// taken: no token supersedes it, and its writes take the path a leader's take.
    pub fn alone(lease: &str) -> Self {
        Self {
            lease: lease.to_owned(),
            token: 0,
        }
    }
}

thread_local! {
    static LEADER_WORK: RefCell<Option<Fence>> = const { RefCell::new(None) };
}

/// Runs `work` on this thread as leader work under `fence`: every write the store traits'
/// plain methods make meanwhile carries it. A thread's own: the tracker's calls are
/// synchronous, and the API's requests run on other threads, unfenced.
pub fn leader_work<T>(fence: &Fence, work: impl FnOnce() -> T) -> T {
    /// Puts back what the thread worked under before, even when `work` panics: a pooled
    /// thread runs other work next.
    struct Restore(Option<Fence>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            LEADER_WORK.with(|current| *current.borrow_mut() = previous);
        }
    }
    let _restore = Restore(LEADER_WORK.with(|current| current.replace(Some(fence.clone()))));
    work()
}

/// The fence of the leader work running on this thread, if any.
fn working_under() -> Option<Fence> {
    LEADER_WORK.with(|current| current.borrow().clone())
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
