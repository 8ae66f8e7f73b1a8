//! The live-tracking service: registers shipments, takes pings, recomputes estimates (debounced
//! per vehicle), detects stop events and announces what changed to the webhooks.
//!
//! Every method is synchronous and may touch the disk; the HTTP layer calls it on the
//! blocking pool.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, TimeDelta, Utc};
use polars::prelude::*;
use serde::Serialize;

use super::book::{fixes, PingBook, VehicleKey};
use super::eta::{live_snapshot, Risk, Snapshot, StopSnapshot, TruckState};
use super::live::{LiveEvent, LiveSender};
use super::modes::{Embedded, Mode, Shared};
use super::pings::{ParsedBatch, PingLimits, Rejection};
use super::restoration::{Progress, Restoration, Stage};
use super::shipment::{
    detect_events, horizon_bucket, pooled_accuracy, EventKind, EventSource, Fix, HorizonAccuracy,
    Shipment, Status, StopDetection, StopEvent, HORIZONS,
};
use crate::config::TrackingSettings;
use crate::domain::clock::Clock;
use crate::domain::correction::{Corrections, Scored};
use crate::domain::forecast::Forecaster;
use crate::domain::risk::RiskThresholds;
use crate::domain::rules::DriverState;
use crate::domain::storage::StoreError;
use crate::ml::features::live::driving_state;
use crate::telemetry::Metrics;
use crate::tracking::reasons::DelayReason;
use crate::tracking::store::{PingArchive, SharedPings, ShipmentStore};

mod clock;

#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    #[error("no such shipment")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("the reference is already registered as shipment {0}")]
    DuplicateReference(String),
    #[error("{message}")]
    Invalid { field: String, message: String },
    #[error("storage failed: {0}")]
    Storage(String),
    /// The store is down or full for now; see `StoreError::Unavailable`.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl From<StoreError> for TrackError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::DuplicateReference(id) => Self::DuplicateReference(id),
            StoreError::Conflict => Self::Conflict(
                "the shipment changed while this was applied to it; try again".into(),
            ),
            StoreError::Unavailable(message) => Self::Unavailable(message),
            StoreError::Fenced => Self::Unavailable(StoreError::Fenced.to_string()),
            StoreError::Backend(message) => Self::Storage(message),
        }
    }
}

/// What happened, for the webhooks. `data` is the event's own part of the payload.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    pub organisation: String,
    pub event: &'static str,
    pub shipment_id: String,
    pub reference: String,
    pub vehicle_id: String,
    pub data: EventData,
    /// For `eta_changed`: each stop's median, so that each webhook can apply its own
    /// threshold against what it was last sent.
    #[serde(skip)]
    pub etas: Vec<DateTime<Utc>>,
}

/// What each event says of itself: the `data` of its webhook payload. Serialised as the
/// fields alone; the payload's `event` names which.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum EventData {
    /// `arrived` or `departed`.
    Stop {
        stop_index: usize,
        stop_id: String,
        at: DateTime<Utc>,
        source: EventSource,
    },
    Delivered {
        delivered_at: Option<DateTime<Utc>>,
        accuracy: Vec<HorizonAccuracy>,
    },
    /// `eta_changed` when what moved it is not known: the previous estimate's plan is gone
    /// (the first estimate after a restart).
    EtaChanged {
        stops: Vec<StopSnapshot>,
        as_of: DateTime<Utc>,
    },
    /// `eta_changed`, with which parts of the plan moved the arrival since the previous
    /// estimate.
    EtaMoved {
        stops: Vec<StopSnapshot>,
        as_of: DateTime<Utc>,
        delay_reasons: Vec<DelayReason>,
    },
    LateRiskChanged {
        changed: Vec<RiskChange>,
    },
}

/// A stop whose late risk is not what it was.
#[derive(Debug, Clone, Serialize)]
pub struct RiskChange {
    pub stop_index: usize,
    pub stop_id: String,
    pub from: Option<Risk>,
    pub to: Option<Risk>,
    pub late_probability: Option<f64>,
}

/// Woken each time notices are written to the store's outbox, so that the dispatcher delivers
/// them at once rather than at its next poll. The outbox, not this, is what keeps them: a
/// wake-up lost with the process loses no notice.
pub type NoticeWake = Arc<tokio::sync::Notify>;

/// A read-modify-write of a shipment gives up after this many conflicts in a row: another
/// writer winning every time is a fault to report, not contention to wait out.
const MAX_WRITE_ATTEMPTS: usize = 16;

/// The tries left after a conflict, or the error once there are none.
fn one_try_less(tries: usize) -> Result<usize, TrackError> {
    tries
        .checked_sub(1)
        .filter(|left| *left > 0)
        .ok_or_else(|| {
            TrackError::Conflict(
                "the shipment kept changing while this was applied; try again".into(),
            )
        })
}

/// A stop of a shipment, as a caller names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopRef {
    Index(usize),
    Id(String),
}

impl StopRef {
    fn index_in(&self, shipment: &Shipment) -> Result<usize, TrackError> {
        match self {
            Self::Index(index) if *index < shipment.stops.len() => Ok(*index),
            Self::Index(_) => Err(TrackError::Invalid {
                field: "stop_index".into(),
                message: format!(
                    "stop_index must be below {}, the number of stops",
                    shipment.stops.len()
                ),
            }),
            Self::Id(id) => shipment
                .stops
                .iter()
                .position(|stop| stop.id == *id)
                .ok_or_else(|| TrackError::Invalid {
                    field: "stop_id".into(),
                    message: "no stop of the shipment has this id".into(),
                }),
        }
    }
}

/// See [`Tracker::overview`].
#[derive(Debug, Clone, PartialEq)]
pub struct Overview {
    pub in_transit: usize,
    pub planned: usize,
    pub accuracy: Vec<HorizonAccuracy>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IngestOutcome {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: Vec<Rejection>,
}

/// A ping as `GET /v1/vehicles/{id}/positions` gives it back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoredPing {
    pub at: DateTime<Utc>,
    pub lat: f64,
    pub lon: f64,
    pub speed_kmh: Option<f64>,
}

pub struct Tracker {
    store: Arc<dyn ShipmentStore>,
    /// Where the pings and the current estimates live: this process, or a shared database.
    mode: Box<dyn Mode>,
    /// The estimator and the feeds' conditions, as `POST /v1/eta` asks them.
    forecaster: Forecaster,
    settings: TrackingSettings,
    thresholds: RiskThresholds,
    metrics: Metrics,
    clock: Clock,
    notices: Option<NoticeWake>,
    /// Pings accepted since start, by organisation: its ingestion rate, seen by it alone.
    received: Mutex<HashMap<String, u64>>,
    dirty: Mutex<HashSet<VehicleKey>>,
    /// Active shipments by vehicle, so that a ping finds its shipments without the store.
    following: Mutex<HashMap<VehicleKey, Vec<String>>>,
    /// One recomputation at a time: events and snapshots of a shipment stay in order.
    refreshing: Mutex<()>,
    corrections: Arc<Corrections>,
    /// Whether this process recomputes the estimates of the vehicles that moved: always
    /// alone, while it holds the lease with a shared store.
    leading: AtomicBool,
    /// Where each kept estimate and each status change is published for the event streams.
    live: Option<LiveSender>,
    /// How far the pings, corrections and estimates are back since the start.
    restoration: Restoration,
    /// A second `restore` would read the pings in twice.
    restore_begun: AtomicBool,
    /// The service stops: the restoration ends at its next shipment.
    restore_abandoned: AtomicBool,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The estimates kept in the history: a move smaller than this is noise.
const HISTORY_MIN_MOVE_MINUTES: f64 = 1.0;

pub struct TrackerParts {
    pub store: Arc<dyn ShipmentStore>,
    pub log: Arc<dyn PingArchive>,
    /// The estimator, with weather, traffic and routes from what the feeds have cached: a live
    /// estimate does not wait for a feed, it is recomputed at the next ping anyway.
    pub forecaster: Forecaster,
    pub settings: TrackingSettings,
    pub thresholds: RiskThresholds,
    pub metrics: Metrics,
    pub clock: Clock,
    /// Woken when notices are enqueued; none where nothing delivers them promptly.
    pub notices: Option<NoticeWake>,
    /// Pings in a shared store (several replicas) instead of this process's segments.
    pub shared: Option<Arc<dyn SharedPings>>,
    /// What the arrivals teach, applied to every answer of the forecaster.
    pub corrections: Arc<Corrections>,
    /// Where the event streams hear of estimates and statuses; none in tools and benches.
    pub live: Option<LiveSender>,
}

/// Deliveries whose scored estimates teach the corrections again at start.
const RELEARNT_DELIVERIES: usize = 2_000;

impl Tracker {
    /// A tracker with nothing restored yet: cheap, so that the service listens at once. Until
    /// [`Tracker::restore`] is done, pings wait for the window's to be back and estimates for
    /// the corrections (see [`Tracker::progress`]).
    pub fn new(parts: TrackerParts) -> Self {
        let TrackerParts {
            store,
            log,
            forecaster,
            settings,
            thresholds,
            metrics,
            clock,
            notices,
            shared,
            corrections,
            live,
        } = parts;
        let mode: Box<dyn Mode> = match shared {
            Some(pings) => Box::new(Shared {
                pings,
                store: store.clone(),
            }),
            None => Box::new(Embedded {
                book: Mutex::new(PingBook::new(settings.window_hours)),
                archive: log,
                latest: Mutex::default(),
            }),
        };
        Self {
            store,
            leading: AtomicBool::new(!mode.is_shared()),
            mode,
            forecaster: forecaster.with_corrections(corrections.clone(), thresholds),
            settings,
            thresholds,
            metrics,
            clock,
            notices,
            received: Mutex::default(),
            dirty: Mutex::new(HashSet::new()),
            following: Mutex::new(HashMap::new()),
            refreshing: Mutex::new(()),
            corrections,
            live,
            restoration: Restoration::default(),
            restore_begun: AtomicBool::new(false),
            restore_abandoned: AtomicBool::new(false),
        }
    }

    /// A tracker restored before it is returned, for tools, benches and tests that use it at
    /// once; the service uses [`Tracker::new`] and restores in the background.
    pub fn start(parts: TrackerParts) -> Result<Self, TrackError> {
        let tracker = Self::new(parts);
        tracker.restore()?;
        Ok(tracker)
    }

    /// Restores the pings of the window, the corrections and the active shipments, then
    /// estimates each: minutes with thousands of shipments, so the service runs it on the
    /// blocking pool after it listens. A failure is kept for `/readyz` and every waiter.
    pub fn restore(&self) -> Result<(), TrackError> {
        if self.restore_begun.swap(true, Ordering::SeqCst) {
            return self.restoration.wait_blocking(Stage::Ready);
        }
        let restored = self.restore_stages();
        if let Err(error) = &restored {
            tracing::error!(message = "Live tracking not restored.", %error);
            self.restoration.fail(error.to_string());
        }
        restored
    }

    fn restore_stages(&self) -> Result<(), TrackError> {
        if self.settings.restore_delay_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(
                self.settings.restore_delay_ms,
            ));
        }
        let since = kept_since(&self.settings, self.clock.now());
        let restored = self.mode.restore(since.timestamp_millis())?;
        self.restoration.advance(Stage::Corrections);
        self.relearn()?;
        let active = self.store.active_shipments()?;
        for shipment in &active {
            self.follow(shipment);
        }
        self.restoration.advance(Stage::Estimates);
        tracing::info!(
            message = "Live tracking restored; recomputing the estimates.",
            pings = restored,
            active_shipments = active.len()
        );
        // Shipment by shipment rather than through the vehicles marked: the refresh loop may
        // drain those meanwhile, and readiness must mean these are all done. With a shared
        // store, whoever holds the lease recomputes them (see `set_leading`) in its refresh
        // loop, each pass under its lease's fence: a replica that took the lease while this
        // ran could lose it meanwhile, and writes made here would carry no fence.
        let mut recomputed = 0;
        if self.leading() && !self.is_shared() {
            for shipment in &active {
                if self.restore_abandoned.load(Ordering::SeqCst) {
                    tracing::info!(message = "Restoration abandoned.", recomputed);
                    return Ok(());
                }
                match self.refresh(&shipment.organisation, &shipment.id) {
                    Ok(()) => recomputed += 1,
                    Err(error) => tracing::error!(
                        message = "Live estimate failed.",
                        shipment = %shipment.id,
                        %error
                    ),
                }
            }
        }
        self.restoration.advance(Stage::Ready);
        tracing::info!(message = "Ready: the estimates are back.", recomputed);
        Ok(())
    }

    /// Ends a restoration still recomputing at its next shipment, as the service stops: the
    /// next start computes them all again anyway.
    pub fn abandon_restoration(&self) {
        self.restore_abandoned.store(true, Ordering::SeqCst);
    }

    /// How far the restoration has come.
    pub fn progress(&self) -> Progress {
        self.restoration.progress()
    }

    /// Completes once [`Tracker::restore`] is done (for in-process callers that need the
    /// restored state, as the tests do after a start); the error if it failed.
    pub async fn wait_restored(&self) -> Result<(), TrackError> {
        self.restoration.wait(Stage::Ready).await
    }

    /// Whether the refresh loop may recompute: not before the pings and the corrections are
    /// back, nor while a failed restoration leaves them missing.
    pub fn may_recompute(&self) -> bool {
        matches!(self.progress(), Progress::At(stage) if stage >= Stage::Estimates)
    }

    /// The corrections this tracker's arrivals teach, for every forecaster to apply.
    pub fn corrections(&self) -> Arc<Corrections> {
        self.corrections.clone()
    }

    /// Teaches the corrections the scored estimates of the latest deliveries, oldest first,
    /// as they were learnt before the process stopped: they are kept across restarts in the
    /// shipments and estimates the store keeps anyway.
    fn relearn(&self) -> Result<(), TrackError> {
        let mut delivered = self.store.recent_deliveries(RELEARNT_DELIVERIES)?;
        delivered.reverse();
        let mut estimates = 0;
        for shipment in &delivered {
            let scored = scored(shipment, &self.store.snapshots(&shipment.id)?);
            estimates += scored.len();
            self.corrections.record(&shipment.organisation, scored);
        }
        let organisations: std::collections::BTreeSet<&str> = delivered
            .iter()
            .map(|shipment| shipment.organisation.as_str())
            .collect();
        for organisation in organisations {
            self.expose_corrections(organisation);
        }
        tracing::info!(
            message = "Corrections learnt again from the latest deliveries.",
            deliveries = delivered.len(),
            estimates
        );
        Ok(())
    }

    /// The organisation's corrections as gauges.
    fn expose_corrections(&self, organisation: &str) {
        for group in self.corrections.of(organisation) {
            let gauge = |part| {
                self.metrics
                    .eta_correction
                    .with_label_values(&[organisation, group.horizon, part])
            };
            gauge("factor").set(group.correction.factor);
            gauge("widen").set(group.correction.widen);
        }
    }

    /// Whether this process recomputes the estimates of the vehicles that moved.
    pub fn leading(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    pub fn is_shared(&self) -> bool {
        self.mode.is_shared()
    }

    /// This process now holds the lease (or has lost it): on taking it over, every active
    /// shipment is recomputed, since the previous holder may have died with vehicles marked.
    pub fn set_leading(&self, leading: bool) -> Result<(), TrackError> {
        let was = self.leading.swap(leading, Ordering::SeqCst);
        if leading && !was {
            let active = self.store.active_shipments()?;
            lock(&self.dirty).extend(active.iter().map(key_of));
        }
        Ok(())
    }

    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn settings(&self) -> &TrackingSettings {
        &self.settings
    }

    /// What a ping received now is checked against.
    pub fn ping_limits(&self) -> PingLimits {
        PingLimits {
            now: self.now(),
            future_tolerance_ms: self.settings.future_tolerance_secs * 1000,
            max_age_ms: self.settings.max_age_hours * 3_600_000,
            max_speed_kmh: self.settings.max_speed_kmh,
            max_pings: self.settings.max_pings_per_request,
        }
    }

    fn follow(&self, shipment: &Shipment) {
        let mut following = lock(&self.following);
        let ids = following.entry(key_of(shipment)).or_default();
        // A shipment registered while the restoration runs is also among the active it reads.
        if !ids.contains(&shipment.id) {
            ids.push(shipment.id.clone());
        }
        self.count_active(&following);
    }

    fn unfollow(&self, shipment: &Shipment) {
        let mut following = lock(&self.following);
        if let Some(ids) = following.get_mut(&key_of(shipment)) {
            ids.retain(|id| *id != shipment.id);
        }
        self.count_active(&following);
    }

    fn count_active(&self, following: &HashMap<VehicleKey, Vec<String>>) {
        self.metrics
            .active_shipments
            .set(following.values().map(Vec::len).sum::<usize>() as i64);
    }

    /// Keeps a new shipment, its driver's clock carried from the vehicle's latest delivery
    /// unless it declares its own, and estimates it.
    pub fn register(&self, mut shipment: Shipment) -> Result<Shipment, TrackError> {
        if !shipment.driver_declared {
            shipment.carried = self.previous_clock(&shipment)?;
        }
        self.store.insert_shipment(&shipment)?;
        self.follow(&shipment);
        self.refresh(&shipment.organisation, &shipment.id)?;
        self.shipment(&shipment.organisation, &shipment.id)
    }

    pub fn shipment(&self, organisation: &str, id: &str) -> Result<Shipment, TrackError> {
        self.store
            .shipment(organisation, id)?
            .ok_or(TrackError::NotFound)
    }

    pub fn list(
        &self,
        organisation: &str,
        status: Option<Status>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Shipment>, TrackError> {
        Ok(self
            .store
            .list_shipments(organisation, status, after, limit)?)
    }

    /// An organisation's shipments at a glance: how many are under way and planned, and the
    /// live accuracy of its latest `recent` deliveries.
    pub fn overview(&self, organisation: &str, recent: usize) -> Result<Overview, TrackError> {
        let count = |status| {
            self.list(organisation, Some(status), None, usize::MAX)
                .map(|items| items.len())
        };
        let delivered = self.list(organisation, Some(Status::Delivered), None, recent)?;
        Ok(Overview {
            in_transit: count(Status::InTransit)?,
            planned: count(Status::Planned)?,
            accuracy: pooled_accuracy(&delivered),
        })
    }

    pub fn cancel(&self, organisation: &str, id: &str) -> Result<Shipment, TrackError> {
        let _one_at_a_time = lock(&self.refreshing);
        self.cancel_locked(organisation, id, MAX_WRITE_ATTEMPTS)
    }

    /// `cancel` under the lock, read again and re-applied while another writer saves the
    /// shipment first (`tries` left).
    fn cancel_locked(
        &self,
        organisation: &str,
        id: &str,
        tries: usize,
    ) -> Result<Shipment, TrackError> {
        let mut shipment = self.shipment(organisation, id)?;
        match shipment.status {
            Status::Cancelled => return Ok(shipment),
            Status::Delivered => {
                return Err(TrackError::Conflict(
                    "a delivered shipment cannot be cancelled".into(),
                ))
            }
            Status::Planned | Status::InTransit => {}
        }
        let now = self.now();
        let status_before = shipment.status;
        shipment.status = Status::Cancelled;
        shipment.cancelled_at = Some(now);
        shipment.updated_at = now;
        if !self.save(&mut shipment, &[])? {
            return self.cancel_locked(organisation, id, one_try_less(tries)?);
        }
        self.unfollow(&shipment);
        self.mode.forget_current(&shipment.id);
        self.publish_status(&shipment, status_before);
        Ok(shipment)
    }

    /// An arrival or departure reported by hand, at a stop named by its index or its id.
    pub fn record_event(
        &self,
        organisation: &str,
        id: &str,
        stop: &StopRef,
        kind: EventKind,
        at: DateTime<Utc>,
    ) -> Result<Shipment, TrackError> {
        {
            let _one_at_a_time = lock(&self.refreshing);
            let event = StopEvent {
                at,
                source: EventSource::Manual,
            };
            self.record_locked(organisation, id, stop, kind, event, MAX_WRITE_ATTEMPTS)?;
        }
        self.refresh(organisation, id)?;
        self.shipment(organisation, id)
    }

    /// `record_event` under the lock, read again and re-applied while another writer (the
    /// leader's recomputation) saves the shipment first (`tries` left).
    fn record_locked(
        &self,
        organisation: &str,
        id: &str,
        stop: &StopRef,
        kind: EventKind,
        event: StopEvent,
        tries: usize,
    ) -> Result<(), TrackError> {
        let mut shipment = self.shipment(organisation, id)?;
        if !shipment.status.is_active() {
            return Err(TrackError::Conflict(format!(
                "the shipment is {}",
                shipment.status.as_str()
            )));
        }
        let index = stop.index_in(&shipment)?;
        let status_before = shipment.status;
        let new = shipment.record(index, kind, event);
        if !self.settle(&mut shipment, &new)? {
            let tries = one_try_less(tries)?;
            return self.record_locked(organisation, id, stop, kind, event, tries);
        }
        self.publish_status(&shipment, status_before);
        Ok(())
    }

    /// Saves a shipment whose events changed with their notices and, once it is delivered,
    /// scores every estimate it was given; false, with nothing saved, when another writer
    /// saved the shipment first.
    fn settle(
        &self,
        shipment: &mut Shipment,
        new: &[(usize, EventKind)],
    ) -> Result<bool, TrackError> {
        shipment.updated_at = self.now();
        let delivered = shipment.status == Status::Delivered
            && new.iter().any(|(index, kind)| {
                *index == shipment.stops.len() - 1 && *kind == EventKind::Arrived
            });
        if delivered {
            shipment.accuracy = self.score(shipment)?;
            shipment.ended_clock = self.ended_clock(shipment)?;
        }
        let mut notices = Vec::new();
        for (index, kind) in new {
            let stop = &shipment.stops[*index];
            let (name, event) = match kind {
                EventKind::Arrived => ("arrived", stop.arrived),
                EventKind::Departed => ("departed", stop.departed),
            };
            let event = event.expect("just recorded");
            notices.push(notice(
                shipment,
                name,
                EventData::Stop {
                    stop_index: *index,
                    stop_id: stop.id.clone(),
                    at: event.at,
                    source: event.source,
                },
                Vec::new(),
            ));
        }
        if delivered {
            notices.push(notice(
                shipment,
                "delivered",
                EventData::Delivered {
                    delivered_at: shipment.delivered_at,
                    accuracy: shipment.accuracy.clone(),
                },
                Vec::new(),
            ));
        }
        if !self.save(shipment, &notices)? {
            return Ok(false);
        }
        if delivered {
            // Only once saved: a try that lost to another writer teaches nothing twice.
            self.learn(shipment);
            self.unfollow(shipment);
            self.hand_on(shipment);
        }
        Ok(true)
    }

    /// Teaches the corrections the scored estimates of a shipment saved as delivered.
    fn learn(&self, shipment: &Shipment) {
        match self.store.snapshots(&shipment.id) {
            Ok(snapshots) => {
                self.corrections
                    .record(&shipment.organisation, scored(shipment, &snapshots));
                self.expose_corrections(&shipment.organisation);
            }
            Err(error) => tracing::error!(
                message = "Corrections not taught a delivery.",
                shipment = %shipment.id,
                %error
            ),
        }
    }

    /// Compares every estimate given with the actual arrivals: the live accuracy metric by
    /// horizon, and the shipment's own record.
    fn score(&self, shipment: &Shipment) -> Result<Vec<HorizonAccuracy>, TrackError> {
        let snapshots = self.store.snapshots(&shipment.id)?;
        let mut sums: HashMap<&'static str, (usize, f64)> = HashMap::new();
        for snapshot in &snapshots {
            for stop in &snapshot.stops {
                let Some(arrived) = shipment.stops[stop.index].arrived else {
                    continue;
                };
                if stop.state != super::eta::StopState::Pending || snapshot.as_of > arrived.at {
                    continue;
                }
                let error_seconds = (stop.eta - arrived.at).num_seconds() as f64;
                let horizon = horizon_bucket(arrived.at - snapshot.as_of);
                self.metrics
                    .live_eta_error
                    .with_label_values(&[horizon])
                    .observe(error_seconds.abs());
                let entry = sums.entry(horizon).or_default();
                entry.0 += 1;
                entry.1 += error_seconds.abs() / 60.0;
            }
        }
        Ok(HORIZONS
            .iter()
            .filter_map(|horizon| {
                let (count, total) = sums.get(horizon)?;
                Some(HorizonAccuracy {
                    horizon: (*horizon).to_owned(),
                    estimates: *count,
                    mean_absolute_error_minutes: (total / *count as f64 * 10.0).round() / 10.0,
                })
            })
            .collect())
    }

    /// Saves the shipment over the version it was read at, with the notices its change
    /// causes, in one transaction; false, with nothing written, when another writer (another
    /// replica) saved it first: the caller reads it again and re-applies its change.
    fn save(&self, shipment: &mut Shipment, notices: &[Notice]) -> Result<bool, TrackError> {
        match self.store.save_shipment(shipment, notices) {
            Ok(()) => {
                self.wake(notices);
                Ok(true)
            }
            Err(StoreError::Conflict) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Tells the dispatcher that notices are waiting in the outbox.
    fn wake(&self, notices: &[Notice]) {
        if let (Some(wake), false) = (&self.notices, notices.is_empty()) {
            wake.notify_one();
        }
    }

    /// Takes a checked batch: keeps the new pings durably, then answers. Nothing is kept
    /// when the disk refuses.
    pub fn ingest(
        &self,
        organisation: &str,
        batch: ParsedBatch,
    ) -> Result<IngestOutcome, TrackError> {
        // Taken before the window's pings are back, a ping could be read in twice (its segment
        // is on disk when the restoration reads them): it waits the seconds that takes.
        self.restoration.wait_blocking(Stage::Corrections)?;
        self.record_cab(organisation, &batch)?;
        let ingested = self.mode.ingest(organisation, &batch)?;
        lock(&self.dirty).extend(ingested.moved);
        if ingested.new > 0 {
            *lock(&self.received)
                .entry(organisation.to_owned())
                .or_default() += ingested.new as u64;
        }
        let outcome = IngestOutcome {
            accepted: ingested.new,
            duplicates: batch.pings.len() - ingested.new,
            rejected: batch.rejected,
        };
        self.count_pings(&outcome);
        Ok(outcome)
    }

    fn count_pings(&self, outcome: &IngestOutcome) {
        for (name, count) in [
            ("accepted", outcome.accepted),
            ("duplicate", outcome.duplicates),
            ("rejected", outcome.rejected.len()),
        ] {
            self.metrics
                .pings
                .with_label_values(&[name])
                .inc_by(count as u64);
        }
    }

    /// Pings accepted from `organisation` since the service started.
    pub fn received(&self, organisation: &str) -> u64 {
        lock(&self.received).get(organisation).copied().unwrap_or(0)
    }

    pub fn positions(
        &self,
        organisation: &str,
        vehicle_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<StoredPing>, TrackError> {
        let key = VehicleKey::new(organisation, vehicle_id);
        let frame = self.mode.vehicle_frame(&key, since)?;
        let read = || -> PolarsResult<Vec<StoredPing>> {
            let timestamps = frame.column("timestamp")?.datetime()?.phys.clone();
            let lat = frame.column("lat")?.f64()?.clone();
            let lon = frame.column("lon")?.f64()?.clone();
            let speed = frame.column("speed_kmh")?.f64()?.clone();
            Ok((0..frame.height())
                .filter_map(|row| {
                    Some(StoredPing {
                        at: DateTime::from_timestamp_millis(timestamps.get(row)?)?,
                        lat: lat.get(row)?,
                        lon: lon.get(row)?,
                        speed_kmh: speed.get(row),
                    })
                })
                .collect())
        };
        read().map_err(|error| TrackError::Storage(error.to_string()))
    }

    /// Every vehicle's pings in the window, all organisations together: only for what is
    /// learnt from all of them (congestion), never shown to anyone. Every k-th of each
    /// vehicle's when there are more than `max_rows` (a random sample with a shared store).
    pub fn pings_sample(&self, max_rows: usize) -> Result<DataFrame, TrackError> {
        self.mode.sample(max_rows)
    }

    /// Recomputes the shipments of every vehicle that pinged since the last call (with a
    /// shared store, through any replica).
    pub fn refresh_dirty(&self) -> usize {
        let mut dirty: HashSet<VehicleKey> = lock(&self.dirty).drain().collect();
        match self.mode.moved_elsewhere() {
            Ok(moved) => dirty.extend(moved),
            Err(error) => tracing::error!(message = "Moved vehicles not read.", %error),
        }
        let mut refreshed = 0;
        for key in dirty {
            let ids = match self.mode.shipments_of(&key) {
                Ok(Some(ids)) => ids,
                Ok(None) => lock(&self.following).get(&key).cloned().unwrap_or_default(),
                Err(error) => {
                    tracing::error!(message = "Shipments of a vehicle not read.", %error);
                    lock(&self.dirty).insert(key);
                    continue;
                }
            };
            for id in ids {
                match self.refresh(&key.organisation, &id) {
                    Ok(()) => refreshed += 1,
                    Err(error) => {
                        tracing::error!(message = "Live estimate failed.", shipment = %id, %error)
                    }
                }
            }
        }
        refreshed
    }

    /// Brings one shipment up to date with its truck's pings.
    pub fn refresh(&self, organisation: &str, id: &str) -> Result<(), TrackError> {
        // Without the pings and the corrections the estimate would be wrong, and announced
        // as moved twice: a registration during the restoration waits for them.
        self.restoration.wait_blocking(Stage::Estimates)?;
        let _one_at_a_time = lock(&self.refreshing);
        self.refresh_locked(organisation, id, MAX_WRITE_ATTEMPTS)
    }

    /// `refresh` under the lock, computed again from a fresh read while another writer (a
    /// manual event or a cancel through another replica) saves the shipment first (`tries`
    /// left).
    fn refresh_locked(&self, organisation: &str, id: &str, tries: usize) -> Result<(), TrackError> {
        let mut shipment = self.shipment(organisation, id)?;
        if !shipment.status.is_active() {
            return Ok(());
        }
        let status_before = shipment.status;
        let since = frame_since(&self.settings, &shipment);
        let frame = self.mode.vehicle_frame(&key_of(&shipment), since)?;
        let fixes = fixes(&frame).map_err(|error| TrackError::Storage(error.to_string()))?;
        let new = self.record_detected(&mut shipment, &fixes);
        // Saved once its first estimate from the pings is in place, so that a reader who sees
        // the shipment under way also sees where the truck is.
        let set_off = shipment.status == Status::Planned && !fixes.is_empty();
        if set_off {
            shipment.status = Status::InTransit;
            shipment.updated_at = self.now();
        }
        if !new.is_empty() && !self.settle(&mut shipment, &new)? {
            return self.refresh_locked(organisation, id, one_try_less(tries)?);
        }
        let mut snapshot = self.live_estimate(&shipment, &frame, &fixes)?;
        self.metrics.live_recomputations.inc();
        let previous = match self.mode.current(&shipment.id)? {
            Some(previous) => Some(previous),
            None => self.store.snapshots(&shipment.id)?.pop(),
        };
        snapshot.follow(previous.as_ref());
        self.keep_history(&shipment, &snapshot, previous.as_ref())?;
        let heard = self.estimate_event(&shipment, &snapshot);
        self.mode
            .keep_current(snapshot, shipment.status.is_active())?;
        if set_off && new.is_empty() && !self.save(&mut shipment, &[])? {
            return self.refresh_locked(organisation, id, one_try_less(tries)?);
        }
        self.send(heard);
        self.publish_status(&shipment, status_before);
        Ok(())
    }

    /// The stop events the pings show, recorded on the shipment; the new ones returned.
    fn record_detected(&self, shipment: &mut Shipment, fixes: &[Fix]) -> Vec<(usize, EventKind)> {
        let detection = StopDetection {
            radius_km: self.settings.stop_radius_m / 1000.0,
            arrival: TimeDelta::milliseconds((self.settings.arrival_minutes * 60_000.0) as i64),
        };
        let mut new = Vec::new();
        for (index, kind, at) in detect_events(shipment, fixes, detection) {
            let event = StopEvent {
                at,
                source: EventSource::Gps,
            };
            new.extend(shipment.record(index, kind, event));
        }
        new
    }

    /// The shipment's estimate from its truck's last fix and driver, with what the feeds know.
    fn live_estimate(
        &self,
        shipment: &Shipment,
        frame: &DataFrame,
        fixes: &[Fix],
    ) -> Result<Snapshot, TrackError> {
        let driver = self.live_driver(shipment, frame, fixes)?;
        let truck = TruckState {
            last_fix: fixes.last().copied(),
            driver: driver.state,
            now: self.now(),
        };
        let mut snapshot = live_snapshot(shipment, truck, &self.forecaster, self.thresholds, true);
        snapshot.driver_source = Some(driver.source);
        snapshot.driver_carried_from = driver.carried_from;
        snapshot.driver_id = driver.driver_id;
        Ok(snapshot)
    }

    /// Keeps the estimate in the history when it moved or changed a stop's risk or state since
    /// `previous`, and announces what changed.
    fn keep_history(
        &self,
        shipment: &Shipment,
        snapshot: &Snapshot,
        previous: Option<&Snapshot>,
    ) -> Result<(), TrackError> {
        let changed = match previous {
            None => true,
            Some(previous) => {
                snapshot.largest_move_minutes(previous) >= HISTORY_MIN_MOVE_MINUTES
                    || !snapshot.risk_changes(previous).is_empty()
                    || snapshot
                        .stops
                        .iter()
                        .zip(&previous.stops)
                        .any(|(now, before)| now.state != before.state)
            }
        };
        if changed {
            // The history is about how the arrivals moved; the plan and the factors of the
            // latest estimate are served from memory.
            let mut kept = snapshot.clone();
            kept.timeline.clear();
            kept.factors.clear();
            let etas = snapshot.stops.iter().map(|stop| stop.eta).collect();
            let mut notices = Vec::new();
            if let Some(previous) = previous {
                let moved = snapshot.largest_move_minutes(previous);
                if moved > 0.0 {
                    let (stops, as_of) = (snapshot.stops.clone(), snapshot.as_of);
                    let data = match &snapshot.delay_reasons {
                        Some(reasons) => EventData::EtaMoved {
                            stops,
                            as_of,
                            delay_reasons: reasons.clone(),
                        },
                        None => EventData::EtaChanged { stops, as_of },
                    };
                    notices.push(notice(shipment, "eta_changed", data, etas));
                }
                let risky = snapshot.risk_changes(previous);
                if !risky.is_empty() {
                    notices.push(notice(
                        shipment,
                        "late_risk_changed",
                        EventData::LateRiskChanged {
                            changed: risky
                                .iter()
                                .map(|index| RiskChange {
                                    stop_index: *index,
                                    stop_id: snapshot.stops[*index].id.clone(),
                                    from: previous.stops[*index].severity,
                                    to: snapshot.stops[*index].severity,
                                    late_probability: snapshot.stops[*index].late_probability,
                                })
                                .collect(),
                        },
                        Vec::new(),
                    ));
                }
            }
            // The estimate and what it announces are kept together or not at all.
            self.store.append_snapshot(&kept, &notices)?;
            self.wake(&notices);
        }
        Ok(())
    }

    /// The current estimate of a shipment; a finished one keeps its last. Until the
    /// restoration is done, an active shipment not recomputed yet answers the last estimate
    /// its history kept (its `as_of` says how old; no plan nor factors, as a finished one's),
    /// and is computed on demand only when it has none.
    pub fn current(&self, organisation: &str, id: &str) -> Result<Snapshot, TrackError> {
        let shipment = self.shipment(organisation, id)?;
        if let Some(snapshot) = self.mode.current(&shipment.id)? {
            return Ok(snapshot);
        }
        if shipment.status.is_active() && !self.progress().is_ready() {
            if let Some(kept) = self.store.snapshots(&shipment.id)?.pop() {
                return Ok(kept);
            }
        }
        if shipment.status.is_active() {
            self.refresh(organisation, id)?;
            if let Some(snapshot) = self.mode.current(&shipment.id)? {
                return Ok(snapshot);
            }
        }
        self.store
            .snapshots(&shipment.id)?
            .pop()
            .ok_or(TrackError::NotFound)
    }

    pub fn history(&self, organisation: &str, id: &str) -> Result<Vec<Snapshot>, TrackError> {
        let shipment = self.shipment(organisation, id)?;
        Ok(self.store.snapshots(&shipment.id)?)
    }

    /// Merges small ping segments; run now and then.
    /// Also forgets the vehicles that have not pinged for the whole window.
    pub fn compact(&self) -> Result<usize, TrackError> {
        let now = self.now();
        let quiet_since = now - TimeDelta::hours(self.settings.window_hours);
        self.mode.compact(
            kept_since(&self.settings, now).timestamp_millis(),
            quiet_since.timestamp_millis(),
        )
    }
}

/// The event streams' side: what is published as it happens, and the estimates of a page.
impl Tracker {
    /// A new subscription to every organisation's events; none where nothing publishes.
    pub fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<LiveEvent>> {
        self.live.as_ref().map(LiveSender::subscribe)
    }

    /// The event of a kept estimate, when someone listens: it clones the whole estimate.
    fn estimate_event(&self, shipment: &Shipment, snapshot: &Snapshot) -> Option<LiveEvent> {
        let live = self.live.as_ref()?;
        if live.receiver_count() == 0 {
            return None;
        }
        Some(LiveEvent::Estimate {
            organisation: shipment.organisation.clone(),
            snapshot: Arc::new(snapshot.clone()),
        })
    }

    fn publish_status(&self, shipment: &Shipment, before: Status) {
        if shipment.status == before {
            return;
        }
        self.send(Some(LiveEvent::Status {
            organisation: shipment.organisation.clone(),
            shipment_id: shipment.id.clone(),
            status: shipment.status,
        }));
    }

    fn send(&self, event: Option<LiveEvent>) {
        let (Some(live), Some(event)) = (&self.live, event) else {
            return;
        };
        // An error only says that nobody listens.
        let _ = live.send(event);
    }

    /// The current estimate of each shipment of a listed page (as [`Tracker::current`] gives
    /// it), by shipment id: with a shared store, one query for the current ones of the page
    /// and one for the finished ones' last; then, one at a time, any the page's range missed
    /// (a status changed meanwhile, an estimate not computed yet).
    pub fn estimates(
        &self,
        organisation: &str,
        status: Option<Status>,
        shipments: &[Shipment],
    ) -> Result<HashMap<String, Snapshot>, TrackError> {
        let (Some(first), Some(last)) = (shipments.first(), shipments.last()) else {
            return Ok(HashMap::new());
        };
        let listed: HashSet<&str> = shipments
            .iter()
            .map(|shipment| shipment.id.as_str())
            .collect();
        let mut found = HashMap::new();
        let keep = |snapshots: Vec<Snapshot>, found: &mut HashMap<String, Snapshot>| {
            for snapshot in snapshots {
                if listed.contains(snapshot.shipment_id.as_str()) {
                    found.insert(snapshot.shipment_id.clone(), snapshot);
                }
            }
        };
        if self.mode.is_shared() {
            let current = self
                .store
                .current_page(organisation, status, &first.id, &last.id)?;
            keep(current, &mut found);
        } else {
            for shipment in shipments {
                if let Some(snapshot) = self.mode.current(&shipment.id)? {
                    found.insert(shipment.id.clone(), snapshot);
                }
            }
        }
        let finished_missing = shipments
            .iter()
            .any(|shipment| !shipment.status.is_active() && !found.contains_key(&shipment.id));
        if finished_missing {
            let latest = self
                .store
                .latest_page(organisation, status, &first.id, &last.id)?;
            let missing: Vec<Snapshot> = latest
                .into_iter()
                .filter(|snapshot| !found.contains_key(&snapshot.shipment_id))
                .collect();
            keep(missing, &mut found);
        }
        for shipment in shipments {
            if found.contains_key(&shipment.id) {
                continue;
            }
            match self.current(organisation, &shipment.id) {
                Ok(snapshot) => {
                    found.insert(shipment.id.clone(), snapshot);
                }
                // Deleted meanwhile, or never estimated: listed without an estimate.
                Err(TrackError::NotFound) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(found)
    }
}

/// The first of the vehicle's pings a shipment reads: those of the lead before its planned
/// departure on.
fn frame_since(settings: &TrackingSettings, shipment: &Shipment) -> DateTime<Utc> {
    shipment.planned_departure - TimeDelta::minutes(settings.lead_minutes)
}

/// The oldest ping worth keeping on disk: one still in the window, or still acceptable.
fn kept_since(settings: &TrackingSettings, now: DateTime<Utc>) -> DateTime<Utc> {
    now - TimeDelta::hours(settings.window_hours.max(settings.max_age_hours))
}

/// What a change of `shipment` announces to the webhooks.
fn notice(
    shipment: &Shipment,
    event: &'static str,
    data: EventData,
    etas: Vec<DateTime<Utc>>,
) -> Notice {
    Notice {
        organisation: shipment.organisation.clone(),
        event,
        shipment_id: shipment.id.clone(),
        reference: shipment.reference.clone(),
        vehicle_id: shipment.vehicle_id.clone(),
        data,
        etas,
    }
}

fn key_of(shipment: &Shipment) -> VehicleKey {
    VehicleKey::new(&shipment.organisation, &shipment.vehicle_id)
}

/// The driver's state at the last ping, inferred as the model's training samples were.
fn inferred_driver(frame: &DataFrame, trip_id: &str) -> Option<DriverState> {
    let mut frame = frame.clone();
    frame
        .with_column(Column::new("trip_id".into(), [trip_id]).new_from_index(0, frame.height()))
        .ok()?;
    let state = driving_state(&frame).ok()?;
    let last = state.height().checked_sub(1)?;
    let value = |name: &str| state.column(name).ok()?.f64().ok()?.get(last);
    let today = value("driven_today_minutes")?.clamp(0.0, 600.0);
    let since_break = value("driven_since_break_minutes")?
        .clamp(0.0, 270.0)
        .min(today);
    let minutes = |value: f64| TimeDelta::milliseconds((value * 60_000.0) as i64);
    DriverState::new(minutes(today), minutes(since_break)).ok()
}

/// Each pending estimate the model gave for a stop the truck then reached, before any
/// correction.
fn scored(shipment: &Shipment, snapshots: &[Snapshot]) -> Vec<Scored> {
    let mut scored = Vec::new();
    for snapshot in snapshots {
        for stop in &snapshot.stops {
            let (Some(arrived), Some(model)) = (shipment.stops[stop.index].arrived, stop.model)
            else {
                continue;
            };
            if stop.state == super::eta::StopState::Pending && model.from <= arrived.at {
                scored.push(Scored {
                    from: model.from,
                    band: model.band(),
                    arrived: arrived.at,
                });
            }
        }
    }
    scored
}
