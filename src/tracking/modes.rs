//! Where the tracker keeps its pings and current estimates, and how it learns which vehicles
//! moved: in this process ([`Embedded`]: the ping book in memory, the segments on disk, a map
//! of current estimates), or in a database every replica shares ([`Shared`]: pings, moved
//! vehicles and current estimates in it, recomputed by whichever replica holds the lease).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use polars::prelude::DataFrame;

use super::book::{pings_frame, vehicle_frame, PingBook, VehicleKey};
use super::eta::Snapshot;
use super::pings::ParsedBatch;
use super::store::{PingArchive, SharedPings, ShipmentStore};
use super::tracker::{lock, TrackError};

/// Segments are merged once there are more than this many.
pub const MAX_SEGMENTS: usize = 256;

/// What a batch left behind: how many pings were new, and the vehicles this process must
/// recompute (none when the database marks them for whichever replica leads).
pub(super) struct Ingested {
    pub new: usize,
    pub moved: Vec<VehicleKey>,
}

pub(super) trait Mode: Send + Sync {
    /// Whether other processes share the pings (and so the work is led by one of them).
    fn is_shared(&self) -> bool;
    /// Brings back what an earlier run kept from `since_ms` on; returns how many pings.
    fn restore(&self, since_ms: i64) -> Result<usize, TrackError>;
    /// Keeps the batch's new pings durably before it is acknowledged.
    fn ingest(&self, organisation: &str, batch: &ParsedBatch) -> Result<Ingested, TrackError>;
    /// A vehicle's pings from `since` on, sorted.
    fn vehicle_frame(
        &self,
        key: &VehicleKey,
        since: DateTime<Utc>,
    ) -> Result<DataFrame, TrackError>;
    /// About `max_rows` of every vehicle's pings, for what is learnt from all of them.
    fn sample(&self, max_rows: usize) -> Result<DataFrame, TrackError>;
    /// The vehicles that moved through other processes since the last call.
    fn moved_elsewhere(&self) -> Result<Vec<VehicleKey>, TrackError>;
    /// The active shipments of a vehicle, when shipments may have been registered by another
    /// process; `None` when this process's own list is the whole truth.
    fn shipments_of(&self, key: &VehicleKey) -> Result<Option<Vec<String>>, TrackError>;
    /// A shipment's current estimate, whole (plan and factors included).
    fn current(&self, shipment_id: &str) -> Result<Option<Snapshot>, TrackError>;
    /// Keeps the current estimate of a shipment that is still `active`, forgets a finished one's.
    fn keep_current(&self, snapshot: Snapshot, active: bool) -> Result<(), TrackError>;
    /// Forgets a cancelled shipment's current estimate where memory holds it.
    fn forget_current(&self, shipment_id: &str);
    /// Forgets what is older than `since_ms` (and the vehicles quiet since `quiet_since_ms`);
    /// returns how many segments or pings went.
    fn compact(&self, since_ms: i64, quiet_since_ms: i64) -> Result<usize, TrackError>;
}

fn storage(error: impl std::fmt::Display) -> TrackError {
    TrackError::Storage(error.to_string())
}

/// One process: pings in a book of per-vehicle windows, made durable in the archive before
/// the answer; current estimates in memory (the history in the store has the rest).
pub(super) struct Embedded {
    pub book: Mutex<PingBook>,
    pub archive: Arc<dyn PingArchive>,
    pub latest: Mutex<HashMap<String, Snapshot>>,
}

impl Mode for Embedded {
    fn is_shared(&self) -> bool {
        false
    }

    fn restore(&self, since_ms: i64) -> Result<usize, TrackError> {
        self.archive.compact(since_ms, MAX_SEGMENTS)?;
        let mut book = lock(&self.book);
        let mut restored = 0;
        // A segment at a time: the window's pings are never all in one frame.
        self.archive.read_since(since_ms, &mut |frame| {
            restored += book.restore(&frame)?;
            Ok(())
        })?;
        Ok(restored)
    }

    fn ingest(&self, organisation: &str, batch: &ParsedBatch) -> Result<Ingested, TrackError> {
        let admitted = lock(&self.book).reserve(organisation, batch);
        if admitted.pings.is_empty() {
            return Ok(Ingested {
                new: 0,
                moved: Vec::new(),
            });
        }
        let mut frame = pings_frame(organisation, &batch.vehicles, &admitted.pings);
        if let Err(error) = self.archive.append(&mut frame) {
            lock(&self.book).release(organisation, &batch.vehicles, &admitted.pings);
            return Err(error.into());
        }
        let moved = lock(&self.book).append(organisation, &batch.vehicles, &admitted.pings);
        Ok(Ingested {
            new: admitted.pings.len(),
            moved: moved.into_iter().collect(),
        })
    }

    fn vehicle_frame(
        &self,
        key: &VehicleKey,
        since: DateTime<Utc>,
    ) -> Result<DataFrame, TrackError> {
        lock(&self.book).frame(key, since).map_err(storage)
    }

    fn sample(&self, max_rows: usize) -> Result<DataFrame, TrackError> {
        lock(&self.book).sample(max_rows).map_err(storage)
    }

    fn moved_elsewhere(&self) -> Result<Vec<VehicleKey>, TrackError> {
        Ok(Vec::new())
    }

    fn shipments_of(&self, _key: &VehicleKey) -> Result<Option<Vec<String>>, TrackError> {
        Ok(None)
    }

    fn current(&self, shipment_id: &str) -> Result<Option<Snapshot>, TrackError> {
        Ok(lock(&self.latest).get(shipment_id).cloned())
    }

    fn keep_current(&self, snapshot: Snapshot, active: bool) -> Result<(), TrackError> {
        if active {
            lock(&self.latest).insert(snapshot.shipment_id.clone(), snapshot);
        } else {
            // A finished shipment's last estimate is in the history; memory holds live ones.
            lock(&self.latest).remove(&snapshot.shipment_id);
        }
        Ok(())
    }

    fn forget_current(&self, shipment_id: &str) {
        lock(&self.latest).remove(shipment_id);
    }

    fn compact(&self, since_ms: i64, quiet_since_ms: i64) -> Result<usize, TrackError> {
        let forgotten = lock(&self.book).forget_quiet(quiet_since_ms);
        if forgotten > 0 {
            tracing::info!(message = "Quiet vehicles forgotten.", vehicles = forgotten);
        }
        Ok(self.archive.compact(since_ms, MAX_SEGMENTS)?)
    }
}

/// Several replicas on one database: a ping posted to one is seen through every other, the
/// database marks the vehicles it moved, and the current estimates live there too.
pub(super) struct Shared {
    pub pings: Arc<dyn SharedPings>,
    pub store: Arc<dyn ShipmentStore>,
}

impl Mode for Shared {
    fn is_shared(&self) -> bool {
        true
    }

    fn restore(&self, _since_ms: i64) -> Result<usize, TrackError> {
        Ok(0)
    }

    fn ingest(&self, organisation: &str, batch: &ParsedBatch) -> Result<Ingested, TrackError> {
        // The database de-duplicates across replicas and marks the vehicles moved.
        let new = self
            .pings
            .append_pings(organisation, &batch.vehicles, &batch.pings)?;
        Ok(Ingested {
            new: new.len(),
            moved: Vec::new(),
        })
    }

    fn vehicle_frame(
        &self,
        key: &VehicleKey,
        since: DateTime<Utc>,
    ) -> Result<DataFrame, TrackError> {
        Ok(vehicle_frame(&self.pings.vehicle_pings(
            &key.organisation,
            &key.vehicle_id,
            since.timestamp_millis(),
        )?))
    }

    fn sample(&self, max_rows: usize) -> Result<DataFrame, TrackError> {
        Ok(vehicle_frame(&self.pings.pings_sample(max_rows)?))
    }

    fn moved_elsewhere(&self) -> Result<Vec<VehicleKey>, TrackError> {
        Ok(self
            .pings
            .take_moved_vehicles()?
            .into_iter()
            .map(|(organisation, vehicle_id)| VehicleKey {
                organisation,
                vehicle_id,
            })
            .collect())
    }

    fn shipments_of(&self, key: &VehicleKey) -> Result<Option<Vec<String>>, TrackError> {
        // Another replica may have registered the shipment: the store knows them all.
        let shipments = self
            .store
            .active_shipments_of(&key.organisation, &key.vehicle_id)?;
        Ok(Some(
            shipments.into_iter().map(|shipment| shipment.id).collect(),
        ))
    }

    fn current(&self, shipment_id: &str) -> Result<Option<Snapshot>, TrackError> {
        // Whichever replica computed it last.
        Ok(self.store.current(shipment_id)?)
    }

    fn keep_current(&self, snapshot: Snapshot, _active: bool) -> Result<(), TrackError> {
        Ok(self.store.save_current(&snapshot)?)
    }

    fn forget_current(&self, _shipment_id: &str) {}

    fn compact(&self, since_ms: i64, _quiet_since_ms: i64) -> Result<usize, TrackError> {
        Ok(self.pings.delete_pings_before(since_ms)? as usize)
    }
}
