//! The demo fleet: simulated trucks that register shipments and send their pings through the
//! same parsing, checks and ingestion as `POST /v1/positions`, so that a fresh service shows
//! live trucks at once.
//!
//! Each truck joins mid-trip: its past pings are replayed fast (`catch_up_speed` simulated
//! minutes per real second), then it pings in real time, so its ETAs are real clock times.
//! At the destination it stands for its unloading, which the stop detection sees as the
//! delivery; a while later it sets off on a new trip.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::DemoSettings;
use crate::domain::calendar::BanCalendar;
use crate::domain::ids::new_id;
use crate::domain::rules::Timeline;
use crate::partners::keys::DEMO_ORGANISATION as ORGANISATION;
use crate::sim::conditions::Conditions;
use crate::sim::fleet::carriers;
use crate::sim::trips::{self, Leg, Period, PingRecord, TripRecord, TripSimulator};
use crate::tracking::pings::{self, PingFormat};
use crate::tracking::shipment::{Shipment, ShipmentStop, Status};
use crate::tracking::tracker::{TrackError, Tracker};

/// Real time between two sends of a truck.
const TICK: Duration = Duration::from_millis(500);
/// Minutes a truck stands at its destination, unloading.
const UNLOADING_MINUTES: i64 = 30;

/// One trip as the demo drives it.
pub struct DemoTrip {
    pub shipment: Shipment,
    pub pings: Vec<PingRecord>,
}

/// Simulates trip `number` of demo truck `truck`, departed `progress` of the way into it
/// (0 departs now).
pub fn demo_trip(
    settings: &DemoSettings,
    truck: usize,
    number: usize,
    progress: f64,
    now: DateTime<Utc>,
) -> DemoTrip {
    let seed = settings.seed ^ ((truck as u64) << 32) ^ number as u64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let fleet = carriers(1, 1_000, &mut ChaCha8Rng::seed_from_u64(settings.seed));
    let carrier = &fleet[0];
    let conditions = Conditions::new(settings.seed);
    let bans = BanCalendar::default();
    let period = Period {
        start: now.date_naive(),
        days: 1,
    };
    let simulator = TripSimulator::new(&conditions, &bans, period);
    let vehicle = carrier.vehicle(&mut rng);
    let lane = simulator.lane(carrier, vehicle, &mut rng);
    let trip_rng = rng.clone();
    let planned_at = now.timestamp_millis();
    let now = now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now);
    let trip_id = format!("DEMO-{truck:02}-{number:04}");
    // A first run to learn the trip's length, then the trip itself, started that far back.
    let (record, _, _) = simulator.trip(
        carrier,
        trip_id.clone(),
        vehicle,
        lane,
        now,
        &mut trip_rng.clone(),
    );
    let length = record.arrival - record.departure;
    let departure = now - TimeDelta::seconds((length.num_seconds() as f64 * progress) as i64);
    let mut rng = trip_rng;
    let (record, timeline, legs) =
        simulator.trip(carrier, trip_id.clone(), vehicle, lane, departure, &mut rng);
    let mut pings = trips::pings(&record, &timeline, &legs, 1.0, &mut rng);
    pings.extend(unloading(&record));
    let stops = demo_stops(&record, &timeline, &legs, truck);
    let created = now.min(departure);
    let shipment = Shipment {
        id: new_id("shp"),
        organisation: ORGANISATION.into(),
        // The planning instant keeps references unique across restarts: a reference stays
        // taken by the previous run's retired shipment.
        reference: format!("{trip_id}-{:x}-{:x}", planned_at, rng.random::<u16>()),
        vehicle_id: format!("{VEHICLE_PREFIX}{truck:02}"),
        vehicle: vehicle.as_str().into(),
        origin: Some((record.origin.lat(), record.origin.lon())),
        stops,
        planned_departure: departure,
        driven_today_minutes: 0.0,
        driven_since_break_minutes: 0.0,
        status: Status::Planned,
        created_at: created,
        updated_at: created,
        delivered_at: None,
        cancelled_at: None,
        accuracy: Vec::new(),
        version: 0,
        gross_weight_tonnes: None,
        operation: None,
        driver_declared: false,
        carried: None,
        ended_clock: None,
        cab: None,
    };
    DemoTrip { shipment, pings }
}

/// Unloading at the destination: the truck stands there, a ping a minute.
fn unloading(record: &TripRecord) -> impl Iterator<Item = PingRecord> + '_ {
    (1..=UNLOADING_MINUTES + 1).map(|minute| PingRecord {
        timestamp: record.arrival + TimeDelta::minutes(minute),
        lat: record.destination.lat(),
        lon: record.destination.lon(),
        speed_kmh: 0.0,
    })
}

/// The trip's drops and its destination, with windows around the true arrivals: most trucks
/// comfortably on time, some tight.
fn demo_stops(
    record: &TripRecord,
    timeline: &Timeline,
    legs: &[Leg],
    truck: usize,
) -> Vec<ShipmentStop> {
    let slack = [90, 60, 45, -20, 120, 30][truck % 6];
    let window = |arrival: DateTime<Utc>| {
        let end = arrival + TimeDelta::minutes(slack);
        (end - TimeDelta::hours(2), end)
    };
    let mut stops: Vec<ShipmentStop> = legs[..legs.len() - 1]
        .iter()
        .zip(&timeline.stop_arrivals)
        .enumerate()
        .map(|(index, (leg, arrival))| ShipmentStop {
            id: format!("drop-{}", index + 1),
            lat: leg.to.lat(),
            lon: leg.to.lon(),
            window: Some(window(*arrival)),
            planned_dwell_minutes: 30.0,
            arrived: None,
            departed: None,
        })
        .collect();
    stops.push(ShipmentStop {
        id: "destination".into(),
        lat: record.destination.lat(),
        lon: record.destination.lon(),
        window: Some(window(record.arrival)),
        planned_dwell_minutes: UNLOADING_MINUTES as f64,
        arrived: None,
        departed: None,
    });
    stops
}

/// NDJSON, as a tracker integration would send it.
pub fn ndjson(vehicle_id: &str, pings: &[PingRecord]) -> Vec<u8> {
    let mut body = String::with_capacity(pings.len() * 110);
    for ping in pings {
        let _ = writeln!(
            body,
            r#"{{"vehicle_id":"{vehicle_id}","timestamp":"{}","lat":{},"lon":{},"speed_kmh":{}}}"#,
            ping.timestamp.to_rfc3339(),
            ping.lat,
            ping.lon,
            ping.speed_kmh
        );
    }
    body.into_bytes()
}

/// Every demo vehicle's id starts with this.
pub const VEHICLE_PREFIX: &str = "DEMO-";

/// Cancels the demo shipments a previous run left on the road: their trucks will not ping
/// again.
fn retire_previous(tracker: &Tracker) -> Result<usize, TrackError> {
    const PAGE: usize = 500;
    let mut retired = 0;
    for status in [Status::Planned, Status::InTransit] {
        let mut cursor: Option<String> = None;
        loop {
            let page = tracker.list(ORGANISATION, Some(status), cursor.as_deref(), PAGE)?;
            for shipment in &page {
                if shipment.vehicle_id.starts_with(VEHICLE_PREFIX) {
                    tracker.cancel(ORGANISATION, &shipment.id)?;
                    retired += 1;
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE => cursor = Some(last.id.clone()),
                _ => break,
            }
        }
    }
    Ok(retired)
}

/// Runs the demo fleet until the service stops.
pub async fn run(tracker: Arc<Tracker>, settings: DemoSettings) {
    let retiring = tracker.clone();
    match tokio::task::spawn_blocking(move || retire_previous(&retiring)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(retired)) => {
            tracing::info!(
                message = "Demo shipments of a previous run cancelled.",
                retired
            )
        }
        Ok(Err(error)) => tracing::warn!(message = "Previous demo shipments stay.", %error),
        Err(_) => return,
    }
    tracing::info!(
        message = "Demo fleet on the road.",
        trucks = settings.trucks
    );
    let mut drivers = Vec::new();
    for truck in 0..settings.trucks {
        drivers.push(tokio::spawn(drive(
            tracker.clone(),
            settings.clone(),
            truck,
        )));
    }
    for driver in drivers {
        let _ = driver.await;
    }
}

async fn drive(tracker: Arc<Tracker>, settings: DemoSettings, truck: usize) {
    let mut number = 0;
    loop {
        // The first trips start part-way, so that the fleet is spread along its roads.
        let progress = if number == 0 {
            0.15 + 0.7 * (truck as f64 / settings.trucks.max(1) as f64)
        } else {
            0.0
        };
        let (demo_settings, now) = (settings.clone(), tracker.now());
        let Ok(trip) = tokio::task::spawn_blocking(move || {
            demo_trip(&demo_settings, truck, number, progress, now)
        })
        .await
        else {
            return;
        };
        if let Err(error) = play(&tracker, &settings, trip).await {
            tracing::warn!(message = "Demo truck stopped.", truck, %error);
            return;
        }
        number += 1;
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}

async fn play(
    tracker: &Arc<Tracker>,
    settings: &DemoSettings,
    trip: DemoTrip,
) -> anyhow::Result<()> {
    let DemoTrip { shipment, pings } = trip;
    let vehicle_id = shipment.vehicle_id.clone();
    let registering = tracker.clone();
    tokio::task::spawn_blocking(move || registering.register(shipment)).await??;
    let started = tracker.now();
    let first = pings.first().map_or(started, |ping| ping.timestamp);
    let mut sent = 0;
    while sent < pings.len() {
        tokio::time::sleep(TICK).await;
        let now = tracker.now();
        let replayed = first
            + TimeDelta::milliseconds(
                ((now - started).num_milliseconds() as f64 * settings.catch_up_speed) as i64,
            );
        let until = replayed.min(now);
        let due = pings[sent..].partition_point(|ping| ping.timestamp <= until);
        if due == 0 {
            continue;
        }
        let body = ndjson(&vehicle_id, &pings[sent..sent + due]);
        sent += due;
        let ingesting = tracker.clone();
        tokio::task::spawn_blocking(move || {
            let batch = pings::parse(&body, PingFormat::Ndjson, &ingesting.ping_limits())?;
            ingesting.ingest(ORGANISATION, batch)?;
            anyhow::Ok(())
        })
        .await??;
    }
    Ok(())
}
