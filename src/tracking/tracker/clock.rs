//! The tracker's side of the driver's clock (see [`crate::tracking::driver`]): the clock a
//! delivery ends with, handed to the vehicle's next shipment at its registration or, for one
//! registered before, at the delivery; the cab's readings kept on the vehicle's active
//! shipments as their pings arrive; and the clock a live estimate starts from.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use polars::prelude::DataFrame;

use super::{
    frame_since, inferred_driver, key_of, lock, one_try_less, TrackError, Tracker,
    MAX_WRITE_ATTEMPTS,
};
use crate::domain::clock::Clock;
use crate::domain::rules::DriverState;
use crate::tracking::book::fixes;
use crate::tracking::driver::{
    walk_clock, CabPing, CabReading, ClockRecord, ClockStart, DriverSource, EndedClock,
};
use crate::tracking::pings::ParsedBatch;
use crate::tracking::shipment::{Fix, Shipment, Status};

/// How far back a registration looks for the vehicle's latest delivery, by when that shipment
/// was registered: a truck idle for longer has had its weekly rest, and carries nothing a
/// plan needs but the week before's driving.
const CARRY_LOOKBACK: TimeDelta = TimeDelta::days(3);
/// Delivered shipments read at a time while looking.
const CARRY_PAGE: usize = 500;

/// The driver's state a live estimate starts from, and what it came from.
pub(super) struct LiveDriver {
    pub state: DriverState,
    pub source: DriverSource,
    pub carried_from: Option<String>,
    pub driver_id: Option<String>,
}

impl LiveDriver {
    fn of(state: DriverState, source: DriverSource) -> Self {
        Self {
            state,
            source,
            carried_from: None,
            driver_id: None,
        }
    }
}

impl Tracker {
    /// The clock the vehicle's latest delivery in the organisation ended with, when it ended
    /// before `shipment` sets off.
    pub(super) fn previous_clock(
        &self,
        shipment: &Shipment,
    ) -> Result<Option<EndedClock>, TrackError> {
        let sets_off = shipment.planned_departure.max(self.now());
        // Ids sort by the system's clock at registration (`new_id`), whatever clock the
        // tracker runs on: the cursor is read on the same one.
        let registered_since = Clock::System.now() - CARRY_LOOKBACK;
        let mut after = format!("shp_{:012x}", registered_since.timestamp_millis());
        let mut latest: Option<EndedClock> = None;
        loop {
            let page = self.store.list_shipments(
                &shipment.organisation,
                Some(Status::Delivered),
                Some(after.as_str()),
                CARRY_PAGE,
            )?;
            for delivered in &page {
                if delivered.vehicle_id != shipment.vehicle_id {
                    continue;
                }
                let Some(clock) = &delivered.ended_clock else {
                    continue;
                };
                let newer = latest.as_ref().is_none_or(|kept| clock.at > kept.at);
                if clock.at <= sets_off && newer {
                    latest = Some(clock.clone());
                }
            }
            match page.last() {
                Some(last) if page.len() == CARRY_PAGE => after.clone_from(&last.id),
                _ => return Ok(latest),
            }
        }
    }

    /// The clock the delivery of `shipment` ends with: walked along its pings up to the
    /// delivery, from the clock it carried or the one it was declared with.
    pub(super) fn ended_clock(
        &self,
        shipment: &Shipment,
    ) -> Result<Option<EndedClock>, TrackError> {
        let (Some(ended_at), Some(last)) = (shipment.delivered_at, shipment.stops.last()) else {
            return Ok(None);
        };
        let since = frame_since(&self.settings, shipment);
        let fixes: Vec<Fix> = self
            .fixes_since(shipment, since)?
            .into_iter()
            .filter(|fix| fix.at <= ended_at)
            .collect();
        let driver = match self.walked_driver(shipment, &fixes, ended_at)? {
            Some(walked) => walked,
            None => {
                let start = ClockStart {
                    state: shipment.declared_driver(),
                    at: fixes.first().map_or(ended_at, |fix| fix.at),
                    point: None,
                };
                LiveDriver::of(walk_clock(start, &fixes, None), DriverSource::Inferred)
            }
        };
        let carried_driver = shipment
            .carried
            .as_ref()
            .and_then(|clock| clock.driver_id.clone());
        Ok(Some(EndedClock {
            shipment_id: shipment.id.clone(),
            at: ended_at,
            lat: last.lat,
            lon: last.lon,
            driver: ClockRecord::from(driver.state),
            driver_id: driver.driver_id.or(carried_driver),
        }))
    }

    /// Hands the clock a delivery ended with to the vehicle's other active shipments that
    /// declare no driver of their own, and has them planned again from it: the truck's driver
    /// is theirs too, and each walks on from the delivery along its own pings (one set off
    /// already, from pings in its lead before its departure, as much as one still planned).
    /// A failure is logged: the delivery stands.
    pub(super) fn hand_on(&self, delivered: &Shipment) {
        let Some(clock) = &delivered.ended_clock else {
            return;
        };
        let active = match self
            .store
            .active_shipments_of(&delivered.organisation, &delivered.vehicle_id)
        {
            Ok(active) => active,
            Err(error) => {
                tracing::error!(message = "Driver's clock not handed on.", shipment = %delivered.id, %error);
                return;
            }
        };
        let take = |next: &mut Shipment| {
            if next.driver_declared {
                return false;
            }
            let newer = next.carried.as_ref().is_none_or(|kept| clock.at > kept.at);
            if newer {
                next.carried = Some(clock.clone());
            }
            newer
        };
        for next in active.iter().filter(|next| next.id != delivered.id) {
            if let Err(error) = self.amend(&next.organisation, &next.id, &take) {
                tracing::error!(message = "Driver's clock not handed on.", shipment = %next.id, %error);
            }
        }
        lock(&self.dirty).insert(key_of(delivered));
    }

    /// Applies `change` to an active shipment and saves it, read again and re-applied while
    /// another writer saves it first; nothing is saved when `change` finds nothing to change.
    fn amend(
        &self,
        organisation: &str,
        id: &str,
        change: &dyn Fn(&mut Shipment) -> bool,
    ) -> Result<(), TrackError> {
        let mut tries = MAX_WRITE_ATTEMPTS;
        loop {
            let mut shipment = self.shipment(organisation, id)?;
            if !shipment.status.is_active() || !change(&mut shipment) {
                return Ok(());
            }
            if self.save(&mut shipment, &[])? {
                return Ok(());
            }
            tries = one_try_less(tries)?;
        }
    }

    /// Keeps what the batch's pings said of each cab on its vehicle's active shipments. Called
    /// before the pings are kept, which marks the vehicles for recomputation: the estimate
    /// that follows reads the reading.
    pub(super) fn record_cab(
        &self,
        organisation: &str,
        batch: &ParsedBatch,
    ) -> Result<(), TrackError> {
        let mut by_vehicle: BTreeMap<u32, Vec<&CabPing>> = BTreeMap::new();
        for ping in &batch.cab {
            by_vehicle.entry(ping.vehicle).or_default().push(ping);
        }
        for (vehicle, pings) in by_vehicle {
            let keep = |shipment: &mut Shipment| {
                let merged = CabReading::merged(shipment.cab.as_ref(), &pings);
                let changed = merged != shipment.cab;
                shipment.cab = merged;
                changed
            };
            let vehicle_id = &batch.vehicles[vehicle as usize];
            for shipment in self.store.active_shipments_of(organisation, vehicle_id)? {
                self.amend(organisation, &shipment.id, &keep)?;
            }
        }
        Ok(())
    }

    /// The driver's state at the truck's last fix (or, before any, when the trip sets off),
    /// and what it came from.
    pub(super) fn live_driver(
        &self,
        shipment: &Shipment,
        frame: &DataFrame,
        fixes: &[Fix],
    ) -> Result<LiveDriver, TrackError> {
        let until = fixes
            .last()
            .map_or(shipment.planned_departure.max(self.now()), |fix| fix.at);
        if let Some(walked) = self.walked_driver(shipment, fixes, until)? {
            return Ok(walked);
        }
        let inferred = if frame.height() >= 2 {
            inferred_driver(frame, &shipment.id)
        } else {
            None
        };
        Ok(match inferred {
            Some(state) => LiveDriver::of(state, DriverSource::Inferred),
            None => LiveDriver::of(shipment.declared_driver(), DriverSource::Declared),
        })
    }

    /// The clock walked along `fixes` up to `until`: from the clock the vehicle's previous
    /// shipment ended with (the time the truck stood since credited), or from the declared
    /// one when only the cab has spoken. `None` when neither applies: the speeds alone are
    /// then read as the model's training samples were.
    fn walked_driver(
        &self,
        shipment: &Shipment,
        fixes: &[Fix],
        until: DateTime<Utc>,
    ) -> Result<Option<LiveDriver>, TrackError> {
        let since = frame_since(&self.settings, shipment);
        let cab = shipment
            .cab
            .as_ref()
            .filter(|cab| cab.at >= since && cab.at <= until);
        // Another driver in the cab does not bring the previous one's clock.
        let cab_driver = cab.and_then(|cab| cab.driver_id.as_deref());
        let carried = shipment.carried.as_ref().filter(|clock| {
            let other_driver = matches!(
                (clock.driver_id.as_deref(), cab_driver),
                (Some(before), Some(now)) if before != now
            );
            clock.at <= until && !other_driver
        });
        if cab.is_none() && carried.is_none() {
            return Ok(None);
        }
        let (start, walked) = match carried {
            Some(clock) => {
                let walked = match clock.at < since {
                    true => self.fixes_since(shipment, clock.at)?,
                    false => fixes.to_vec(),
                };
                let start = ClockStart {
                    state: clock.driver.state(),
                    at: clock.at,
                    point: clock.point(),
                };
                (start, walked)
            }
            None => {
                let start = ClockStart {
                    state: shipment.declared_driver(),
                    at: fixes.first().map_or(until, |fix| fix.at),
                    point: None,
                };
                (start, fixes.to_vec())
            }
        };
        let mut walked: Vec<Fix> = walked
            .into_iter()
            .filter(|fix| fix.at >= start.at && fix.at <= until)
            .collect();
        // From its last sign until `until` (it sets off, or is delivered) the truck stood: a
        // last fix there, where it was, makes the walk count the standing with what came
        // before it.
        let (last_at, last_point) = walked
            .last()
            .map_or((start.at, start.point), |fix| (fix.at, Some(fix.point)));
        let mut stood_unplaced = TimeDelta::zero();
        if until > last_at {
            match last_point {
                Some(point) => walked.push(Fix { at: until, point }),
                None => stood_unplaced = until - last_at,
            }
        }
        let mut state = walk_clock(start, &walked, cab);
        if stood_unplaced > TimeDelta::zero() {
            state = state.after_time_off(stood_unplaced);
        }
        Ok(Some(LiveDriver {
            state,
            source: match cab {
                Some(_) => DriverSource::Tachograph,
                None => DriverSource::Carried,
            },
            carried_from: carried.map(|clock| clock.shipment_id.clone()),
            driver_id: cab_driver.map(str::to_owned),
        }))
    }

    /// The vehicle's fixes from `since` on.
    fn fixes_since(
        &self,
        shipment: &Shipment,
        since: DateTime<Utc>,
    ) -> Result<Vec<Fix>, TrackError> {
        let frame = self.mode.vehicle_frame(&key_of(shipment), since)?;
        fixes(&frame).map_err(|error| TrackError::Storage(error.to_string()))
    }
}
