//! The recent pings of every vehicle, in memory: each vehicle's pings over a bounded window,
//! sorted by time in a compact ring, handed out as polars frames.
//!
//! Ten thousand trucks with a day of pings at one a minute are 14.4 million pings: a ping
//! takes 40 bytes here. A polars frame per vehicle, with its chunks and a set of the
//! timestamps seen, took about three times as much.

use std::collections::{HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use polars::prelude::*;

use super::pings::{reported, ParsedBatch, Ping};
use super::shipment::Fix;
use crate::domain::geo::GeoPoint;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VehicleKey {
    pub organisation: String,
    pub vehicle_id: String,
}

impl VehicleKey {
    pub fn new(organisation: &str, vehicle_id: &str) -> Self {
        Self {
            organisation: organisation.to_owned(),
            vehicle_id: vehicle_id.to_owned(),
        }
    }
}

/// A ping as the book keeps it: without its batch's vehicle number.
#[derive(Debug, Clone, Copy)]
struct Kept {
    timestamp_ms: i64,
    lat: f64,
    lon: f64,
    /// NaN when not reported, as in [`Ping`].
    speed_kmh: f64,
    heading: f64,
}

impl From<&Ping> for Kept {
    fn from(ping: &Ping) -> Self {
        Self {
            timestamp_ms: ping.timestamp_ms,
            lat: ping.lat,
            lon: ping.lon,
            speed_kmh: ping.speed_kmh,
            heading: ping.heading,
        }
    }
}

#[derive(Default)]
struct Track {
    /// Sorted by time, one ping per timestamp.
    pings: VecDeque<Kept>,
    /// Timestamps reserved by a batch being made durable: a copy arriving meanwhile is a
    /// duplicate too.
    reserved: HashSet<i64>,
    newest_ms: i64,
}

/// What [`PingBook::reserve`] decided about a batch.
#[derive(Debug, Default)]
pub struct Admitted {
    /// The batch's pings that are new, by vehicle number.
    pub pings: Vec<Ping>,
    pub duplicates: usize,
}

pub struct PingBook {
    tracks: HashMap<VehicleKey, Track>,
    window_ms: i64,
}

/// The segments' layout: a vehicle frame's columns after the organisation and the vehicle.
pub fn pings_frame(organisation: &str, vehicles: &[String], pings: &[Ping]) -> DataFrame {
    let height = pings.len();
    let mut frame = track_frame(pings.iter().map(Kept::from), height);
    let keys = [
        Column::new("organisation".into(), [organisation]).new_from_index(0, height),
        Column::new(
            "vehicle_id".into(),
            pings
                .iter()
                .map(|ping| vehicles[ping.vehicle as usize].as_str())
                .collect::<Vec<_>>(),
        ),
    ];
    for (position, column) in keys.into_iter().enumerate() {
        frame
            .insert_column(position, column)
            .expect("columns of one length");
    }
    frame
}

/// One vehicle's pings, sorted, as [`PingBook::frame`] gives them.
pub fn vehicle_frame(pings: &[Ping]) -> DataFrame {
    track_frame(pings.iter().map(Kept::from), pings.len())
}

/// A vehicle's frame holds only the columns that vary.
fn track_frame(pings: impl Iterator<Item = Kept>, capacity: usize) -> DataFrame {
    let mut timestamps = Vec::with_capacity(capacity);
    let mut lat = Vec::with_capacity(capacity);
    let mut lon = Vec::with_capacity(capacity);
    let mut speed = Vec::with_capacity(capacity);
    let mut heading = Vec::with_capacity(capacity);
    for ping in pings {
        timestamps.push(ping.timestamp_ms);
        lat.push(ping.lat);
        lon.push(ping.lon);
        speed.push(reported(ping.speed_kmh));
        heading.push(reported(ping.heading));
    }
    let height = timestamps.len();
    let timestamps = Int64Chunked::from_vec("timestamp".into(), timestamps)
        .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
        .into_column();
    DataFrame::new(
        height,
        vec![
            timestamps,
            Column::new("lat".into(), lat),
            Column::new("lon".into(), lon),
            Column::new("speed_kmh".into(), speed),
            Column::new("heading".into(), heading),
        ],
    )
    .expect("columns of one length")
}

impl PingBook {
    pub fn new(window_hours: i64) -> Self {
        Self {
            tracks: HashMap::new(),
            window_ms: window_hours * 3_600_000,
        }
    }

    /// Marks the batch's new pings as seen and returns them; pings already seen, in this
    /// batch or before, are counted as duplicates. Call [`PingBook::append`] once they are
    /// durable, or [`PingBook::release`] if they could not be made so.
    pub fn reserve(&mut self, organisation: &str, batch: &ParsedBatch) -> Admitted {
        let mut admitted = Admitted::default();
        admitted.pings.reserve(batch.pings.len());
        for (vehicle, group) in batch
            .vehicles
            .iter()
            .zip(group(batch.vehicles.len(), &batch.pings))
        {
            let track = self.track_mut(organisation, vehicle);
            for ping in group {
                if !track.holds(ping.timestamp_ms) && track.reserved.insert(ping.timestamp_ms) {
                    admitted.pings.push(*ping);
                } else {
                    admitted.duplicates += 1;
                }
            }
        }
        admitted
    }

    fn track_mut(&mut self, organisation: &str, vehicle: &str) -> &mut Track {
        let key = VehicleKey::new(organisation, vehicle);
        self.tracks.entry(key).or_insert_with(|| Track {
            newest_ms: i64::MIN,
            ..Track::default()
        })
    }

    /// Forgets a reservation whose pings could not be stored.
    pub fn release(&mut self, organisation: &str, vehicles: &[String], pings: &[Ping]) {
        for ping in pings {
            let key = VehicleKey::new(organisation, &vehicles[ping.vehicle as usize]);
            if let Some(track) = self.tracks.get_mut(&key) {
                track.reserved.remove(&ping.timestamp_ms);
            }
        }
    }

    /// Adds reserved, now durable, pings to their vehicles' tracks and returns the vehicles
    /// that moved.
    pub fn append(
        &mut self,
        organisation: &str,
        vehicles: &[String],
        pings: &[Ping],
    ) -> Vec<VehicleKey> {
        let mut moved = Vec::new();
        for (vehicle, group) in vehicles.iter().zip(group(vehicles.len(), pings)) {
            if group.is_empty() {
                continue;
            }
            let window_ms = self.window_ms;
            let track = self.track_mut(organisation, vehicle);
            for ping in &group {
                track.reserved.remove(&ping.timestamp_ms);
                track.insert(Kept::from(*ping));
            }
            track.evict(window_ms);
            moved.push(VehicleKey::new(organisation, vehicle));
        }
        moved
    }

    /// Loads stored pings (as [`pings_frame`] lays them out) after a restart.
    pub fn restore(&mut self, stored: &DataFrame) -> PolarsResult<usize> {
        if stored.height() == 0 {
            return Ok(0);
        }
        let organisations = stored.column("organisation")?.str()?.clone();
        let vehicles = stored.column("vehicle_id")?.str()?.clone();
        let timestamps = stored.column("timestamp")?.datetime()?.phys.clone();
        let lat = stored.column("lat")?.f64()?.clone();
        let lon = stored.column("lon")?.f64()?.clone();
        let speed = stored.column("speed_kmh")?.f64()?.clone();
        let heading = stored.column("heading")?.f64()?.clone();
        let mut per_org: HashMap<&str, ParsedBatch> = HashMap::new();
        let mut numbers: HashMap<(&str, &str), u32> = HashMap::new();
        for row in 0..stored.height() {
            let (Some(organisation), Some(vehicle), Some(timestamp_ms), Some(lat), Some(lon)) = (
                organisations.get(row),
                vehicles.get(row),
                timestamps.get(row),
                lat.get(row),
                lon.get(row),
            ) else {
                continue;
            };
            let batch = per_org.entry(organisation).or_default();
            let number = *numbers.entry((organisation, vehicle)).or_insert_with(|| {
                batch.vehicles.push(vehicle.to_owned());
                batch.vehicles.len() as u32 - 1
            });
            batch.pings.push(Ping {
                vehicle: number,
                timestamp_ms,
                lat,
                lon,
                speed_kmh: speed.get(row).unwrap_or(f64::NAN),
                heading: heading.get(row).unwrap_or(f64::NAN),
            });
        }
        let mut restored = 0;
        for (organisation, batch) in per_org {
            let admitted = self.reserve(organisation, &batch);
            restored += admitted.pings.len();
            self.append(organisation, &batch.vehicles, &admitted.pings);
        }
        Ok(restored)
    }

    /// A vehicle's pings from `since` on, sorted by time.
    pub fn frame(&self, key: &VehicleKey, since: DateTime<Utc>) -> PolarsResult<DataFrame> {
        let Some(track) = self.tracks.get(key) else {
            return Ok(track_frame(std::iter::empty(), 0));
        };
        let since_ms = since.timestamp_millis();
        let first = track
            .pings
            .partition_point(|ping| ping.timestamp_ms < since_ms);
        let height = track.pings.len() - first;
        Ok(track_frame(track.pings.range(first..).copied(), height))
    }

    /// Every vehicle's pings in the window, in no particular order (congestion is learnt
    /// from them).
    pub fn all(&self) -> PolarsResult<DataFrame> {
        self.sample(usize::MAX)
    }

    /// Every vehicle's pings, or every k-th of each when there are more than `max_rows` in
    /// all: learning from a day of ten thousand trucks must not copy 14 million rows.
    pub fn sample(&self, max_rows: usize) -> PolarsResult<DataFrame> {
        let total: usize = self.tracks.values().map(|track| track.pings.len()).sum();
        let every = total.div_ceil(max_rows.max(1)).max(1);
        let sampled = self
            .tracks
            .values()
            .flat_map(|track| track.pings.iter().step_by(every).copied());
        Ok(track_frame(sampled, total.div_ceil(every)))
    }

    pub fn len(&self, key: &VehicleKey) -> usize {
        self.tracks.get(key).map_or(0, |track| track.pings.len())
    }

    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    pub fn vehicles(&self) -> usize {
        self.tracks.len()
    }

    /// Drops the vehicles whose newest ping is older than `before_ms`; returns how many.
    pub fn forget_quiet(&mut self, before_ms: i64) -> usize {
        let before = self.tracks.len();
        self.tracks
            .retain(|_, track| track.newest_ms >= before_ms || !track.reserved.is_empty());
        before - self.tracks.len()
    }
}

impl Track {
    fn holds(&self, timestamp_ms: i64) -> bool {
        self.pings
            .binary_search_by_key(&timestamp_ms, |ping| ping.timestamp_ms)
            .is_ok()
    }

    /// Trackers send in order, mostly: a ping newer than the last is pushed, an older one
    /// placed where it sorts.
    fn insert(&mut self, ping: Kept) {
        self.newest_ms = self.newest_ms.max(ping.timestamp_ms);
        match self.pings.back() {
            Some(last) if last.timestamp_ms >= ping.timestamp_ms => {
                if let Err(position) = self
                    .pings
                    .binary_search_by_key(&ping.timestamp_ms, |kept| kept.timestamp_ms)
                {
                    self.pings.insert(position, ping);
                }
            }
            _ => self.pings.push_back(ping),
        }
    }

    fn evict(&mut self, window_ms: i64) {
        let cutoff = self.newest_ms.saturating_sub(window_ms);
        while self
            .pings
            .front()
            .is_some_and(|ping| ping.timestamp_ms < cutoff)
        {
            self.pings.pop_front();
        }
    }
}

/// Fixes of a sorted vehicle frame, for stop detection.
pub fn fixes(frame: &DataFrame) -> PolarsResult<Vec<Fix>> {
    let timestamps = frame.column("timestamp")?.datetime()?.phys.clone();
    let lat = frame.column("lat")?.f64()?.clone();
    let lon = frame.column("lon")?.f64()?.clone();
    Ok(timestamps
        .iter()
        .zip(lat.iter().zip(lon.iter()))
        .filter_map(|(at, (lat, lon))| {
            let at = DateTime::from_timestamp_millis(at?)?;
            let point = GeoPoint::new(lat?, lon?).ok()?;
            Some(Fix { at, point })
        })
        .collect())
}

/// A batch's pings by vehicle number.
fn group(vehicles: usize, pings: &[Ping]) -> Vec<Vec<&Ping>> {
    let mut grouped: Vec<Vec<&Ping>> = vec![Vec::new(); vehicles];
    for ping in pings {
        grouped[ping.vehicle as usize].push(ping);
    }
    grouped
}
