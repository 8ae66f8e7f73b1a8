//! Shipments as the service tracks them: the stops, what happened at each, and the status.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::eta::Window;
use crate::domain::geo::GeoPoint;
use crate::domain::rules::DriverState;
use crate::domain::vehicle::{Carriage, GrossWeight, Operation, VehicleClass};
use crate::tracking::driver::{CabReading, EndedClock};
use crate::tracking::tracker::TrackError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Planned,
    InTransit,
    Delivered,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Self::Planned,
        Self::InTransit,
        Self::Delivered,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::InTransit => "in_transit",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// Still followed: pings move its estimates.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Planned | Self::InTransit)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Arrived,
    Departed,
}

/// Who said a stop event happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    /// Inferred from the pings.
    Gps,
    /// Posted by the caller.
    Manual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopEvent {
    pub at: DateTime<Utc>,
    pub source: EventSource,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipmentStop {
    pub id: String,
    pub lat: f64,
    pub lon: f64,
    pub window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub planned_dwell_minutes: f64,
    pub arrived: Option<StopEvent>,
    pub departed: Option<StopEvent>,
}

impl ShipmentStop {
    pub fn location(&self) -> GeoPoint {
        GeoPoint::new(self.lat, self.lon).expect("checked when the shipment was registered")
    }

    pub fn window(&self) -> Option<Window> {
        self.window
            .and_then(|(start, end)| Window::new(start, end).ok())
    }

    pub fn dwell(&self) -> TimeDelta {
        TimeDelta::milliseconds((self.planned_dwell_minutes * 60_000.0).round() as i64)
    }
}

/// Live accuracy of one stop's estimates, once the truck got there: mean absolute error of
/// the median by how long before the arrival it was given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HorizonAccuracy {
    pub horizon: String,
    pub estimates: usize,
    pub mean_absolute_error_minutes: f64,
}

/// A shipment as a caller asks for it, each value already a checked domain type; what the
/// registration rules still decide is in [`ShipmentPlan::into_shipment`].
#[derive(Debug, Clone)]
pub struct ShipmentPlan {
    pub reference: String,
    pub vehicle_id: String,
    pub vehicle: VehicleClass,
    pub origin: Option<GeoPoint>,
    pub stops: Vec<PlannedStop>,
    pub planned_departure: DateTime<Utc>,
    pub driver: Option<DriverState>,
    /// The declared gross weight and kind of carriage, each optional.
    pub carriage: Carriage,
}

#[derive(Debug, Clone)]
pub struct PlannedStop {
    pub id: String,
    pub location: GeoPoint,
    pub window: Option<Window>,
    pub planned_dwell_minutes: f64,
}

/// The bounds a registration is held to (the number of stops is bounded while the request is
/// read, before each stop is).
#[derive(Debug, Clone, Copy)]
pub struct RegistrationLimits {
    pub max_departure_offset_days: i64,
    pub max_reference_len: usize,
    pub max_vehicle_id_len: usize,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> TrackError {
    TrackError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

impl ShipmentPlan {
    /// Holds the plan to the registration rules (lengths, the number of stops, a departure
    /// near now, stop ids unique, dwells under a week) and builds the record to store, under
    /// a new id, planned.
    pub fn into_shipment(
        self,
        organisation: &str,
        id: String,
        now: DateTime<Utc>,
        limits: RegistrationLimits,
    ) -> Result<Shipment, TrackError> {
        let reference = checked_text("reference", &self.reference, limits.max_reference_len)?;
        let vehicle_id = checked_text("vehicle_id", &self.vehicle_id, limits.max_vehicle_id_len)?;
        if (self.planned_departure - now).abs() > TimeDelta::days(limits.max_departure_offset_days)
        {
            return Err(invalid(
                "planned_departure",
                format!(
                    "planned_departure must be within {} days of now",
                    limits.max_departure_offset_days
                ),
            ));
        }
        let stops = checked_stops(self.stops, limits)?;
        let minutes = |delta: TimeDelta| delta.num_milliseconds() as f64 / 60_000.0;
        let driver = self.driver;
        Ok(Shipment {
            id,
            organisation: organisation.to_owned(),
            reference,
            vehicle_id,
            vehicle: self.vehicle.as_str().to_owned(),
            origin: self.origin.map(|point| (point.lat(), point.lon())),
            stops,
            planned_departure: self.planned_departure,
            driven_today_minutes: driver.map_or(0.0, |driver| minutes(driver.driven_today())),
            driven_since_break_minutes: driver
                .map_or(0.0, |driver| minutes(driver.driven_since_break())),
            status: Status::Planned,
            created_at: now,
            updated_at: now,
            delivered_at: None,
            cancelled_at: None,
            accuracy: Vec::new(),
            version: 0,
            gross_weight_tonnes: self.carriage.gross_weight.map(GrossWeight::tonnes),
            operation: self
                .carriage
                .operation
                .map(|operation| operation.as_str().to_owned()),
            driver_declared: driver.is_some(),
            carried: None,
            ended_clock: None,
            cab: None,
        })
    }
}

/// The text trimmed, when it then has 1 to `max` characters.
fn checked_text(field: &str, text: &str, max: usize) -> Result<String, TrackError> {
    let text = text.trim();
    if text.is_empty() || text.len() > max {
        let name = field.rsplit('.').next().unwrap_or(field);
        return Err(invalid(
            field,
            format!("{name} must have 1 to {max} characters"),
        ));
    }
    Ok(text.to_owned())
}

fn checked_stops(
    planned: Vec<PlannedStop>,
    limits: RegistrationLimits,
) -> Result<Vec<ShipmentStop>, TrackError> {
    let mut stops: Vec<ShipmentStop> = Vec::with_capacity(planned.len());
    for (index, stop) in planned.into_iter().enumerate() {
        let field = |name: &str| format!("stops[{index}].{name}");
        let id = checked_text(&field("id"), &stop.id, limits.max_reference_len)?;
        if stops.iter().any(|other| other.id == id) {
            return Err(invalid(field("id"), "stop ids must be unique"));
        }
        if !(0.0..=7.0 * 24.0 * 60.0).contains(&stop.planned_dwell_minutes) {
            return Err(invalid(
                field("planned_dwell_minutes"),
                "planned_dwell_minutes must be between 0 and a week",
            ));
        }
        stops.push(ShipmentStop {
            id,
            lat: stop.location.lat(),
            lon: stop.location.lon(),
            window: stop.window.map(|window| (window.start(), window.end())),
            planned_dwell_minutes: stop.planned_dwell_minutes,
            arrived: None,
            departed: None,
        });
    }
    Ok(stops)
}

/// The live accuracy over many delivered shipments: per horizon, every estimate scored and
/// their mean absolute error, each shipment weighted by its estimates.
pub fn pooled_accuracy(delivered: &[Shipment]) -> Vec<HorizonAccuracy> {
    let mut by_horizon: std::collections::BTreeMap<&str, (usize, f64)> = Default::default();
    for horizon in delivered.iter().flat_map(|shipment| &shipment.accuracy) {
        let entry = by_horizon.entry(&horizon.horizon).or_default();
        entry.0 += horizon.estimates;
        entry.1 += horizon.mean_absolute_error_minutes * horizon.estimates as f64;
    }
    by_horizon
        .into_iter()
        .filter(|(_, (estimates, _))| *estimates > 0)
        .map(|(horizon, (estimates, total))| HorizonAccuracy {
            horizon: horizon.to_owned(),
            estimates,
            mean_absolute_error_minutes: total / estimates as f64,
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shipment {
    pub id: String,
    pub organisation: String,
    pub reference: String,
    pub vehicle_id: String,
    pub vehicle: String,
    /// Where the truck sets off; the first stop when absent.
    pub origin: Option<(f64, f64)>,
    pub stops: Vec<ShipmentStop>,
    pub planned_departure: DateTime<Utc>,
    pub driven_today_minutes: f64,
    pub driven_since_break_minutes: f64,
    pub status: Status,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub accuracy: Vec<HorizonAccuracy>,
    /// How many times the shipment was saved since it was registered: each save is a
    /// compare-and-set on it, so that two writers (replicas) never overwrite each other.
    /// Absent from the records of earlier versions, which were never saved under one.
    #[serde(default)]
    pub version: i64,
    /// The declared gross weight, in tonnes, and the kind of carriage (`domestic`,
    /// `international`, `cabotage`); absent when not declared, and from the records of
    /// earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gross_weight_tonnes: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Whether the shipment was registered with its own `driver`: then it keeps it, and no
    /// clock is carried to it. False in the records of earlier versions.
    #[serde(default)]
    pub driver_declared: bool,
    /// The clock the vehicle's previous shipment ended with, when this one sets off after it
    /// (see [`crate::tracking::driver`]); absent when there was none, and from the records
    /// of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried: Option<EndedClock>,
    /// The driver's clock at the delivery, for the vehicle's next shipment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_clock: Option<EndedClock>,
    /// What the cab's tachograph said last through the vehicle's pings, while the shipment
    /// was active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cab: Option<CabReading>,
}

impl Shipment {
    pub fn vehicle_class(&self) -> VehicleClass {
        self.vehicle
            .parse()
            .expect("checked when the shipment was registered")
    }

    /// What the rules need beyond the class; a stored value that no longer reads (none
    /// should: both were checked at registration) counts as undeclared.
    pub fn carriage(&self) -> Carriage {
        Carriage {
            gross_weight: self
                .gross_weight_tonnes
                .and_then(|tonnes| GrossWeight::new(tonnes).ok()),
            operation: self
                .operation
                .as_deref()
                .and_then(|text| text.parse::<Operation>().ok()),
        }
    }

    pub fn declared_driver(&self) -> DriverState {
        let minutes = |value: f64| TimeDelta::milliseconds((value * 60_000.0).round() as i64);
        DriverState::new(
            minutes(self.driven_today_minutes),
            minutes(self.driven_since_break_minutes),
        )
        .unwrap_or_default()
    }

    pub fn origin_point(&self) -> GeoPoint {
        match self.origin {
            Some((lat, lon)) => GeoPoint::new(lat, lon).expect("checked at registration"),
            None => self.stops[0].location(),
        }
    }

    /// The first stop the truck has not left yet; `None` once it has reached the last one.
    pub fn next_stop(&self) -> Option<usize> {
        let last = self.stops.len() - 1;
        if self.stops[last].arrived.is_some() {
            return None;
        }
        self.stops.iter().position(|stop| stop.departed.is_none())
    }

    /// Records an event at a stop. Earlier stops the truck must have passed are completed
    /// with it, so that the record never shows a truck at stop 3 that never left stop 2.
    /// Returns the events that are new.
    pub fn record(
        &mut self,
        index: usize,
        kind: EventKind,
        event: StopEvent,
    ) -> Vec<(usize, EventKind)> {
        let mut new = Vec::new();
        for earlier in 0..index {
            let stop = &mut self.stops[earlier];
            if stop.departed.is_none() {
                if stop.arrived.is_none() {
                    stop.arrived = Some(event);
                    new.push((earlier, EventKind::Arrived));
                }
                stop.departed = Some(event);
                new.push((earlier, EventKind::Departed));
            }
        }
        let stop = &mut self.stops[index];
        if stop.arrived.is_none() {
            stop.arrived = Some(event);
            new.push((index, EventKind::Arrived));
        }
        if kind == EventKind::Departed && stop.departed.is_none() {
            stop.departed = Some(event);
            new.push((index, EventKind::Departed));
        }
        if self.status == Status::Planned {
            self.status = Status::InTransit;
        }
        let last = self.stops.len() - 1;
        if let Some(arrived) = self.stops[last].arrived {
            if self.status != Status::Delivered {
                self.status = Status::Delivered;
                self.delivered_at = Some(arrived.at);
            }
        }
        new
    }
}

/// A position report, as the live estimate uses it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fix {
    pub at: DateTime<Utc>,
    pub point: GeoPoint,
}

/// How stops are recognised in the pings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StopDetection {
    pub radius_km: f64,
    pub arrival: TimeDelta,
}

/// Arrivals and departures the pings show, from the first stop the truck has not left.
///
/// A truck has arrived once its pings stayed within the radius of the stop for the arrival
/// time (a truck passing by does not count), at its first ping inside; it has left at its
/// first ping outside after that. `fixes` are sorted by time.
pub fn detect_events(
    shipment: &Shipment,
    fixes: &[Fix],
    detection: StopDetection,
) -> Vec<(usize, EventKind, DateTime<Utc>)> {
    let mut events = Vec::new();
    let Some(mut index) = shipment.next_stop() else {
        return events;
    };
    let mut arrived = shipment.stops[index].arrived.map(|event| event.at);
    // Pings before the last event cannot be about the stops after it.
    let latest = shipment
        .stops
        .iter()
        .filter_map(|stop| stop.departed.or(stop.arrived).map(|event| event.at))
        .max();
    let mut cursor = latest.map_or(0, |at| fixes.partition_point(|fix| fix.at < at));
    let last = shipment.stops.len() - 1;
    while cursor < fixes.len() {
        let stop = shipment.stops[index].location();
        let inside = |fix: &Fix| fix.point.distance_km(stop) <= detection.radius_km;
        match arrived {
            None => {
                let Some(start) = fixes[cursor..].iter().position(inside) else {
                    break;
                };
                let start = cursor + start;
                let run_end = fixes[start..]
                    .iter()
                    .position(|fix| !inside(fix))
                    .map_or(fixes.len(), |offset| start + offset);
                let stayed = fixes[run_end - 1].at - fixes[start].at;
                let left = run_end < fixes.len();
                if stayed >= detection.arrival {
                    events.push((index, EventKind::Arrived, fixes[start].at));
                    if index == last {
                        break;
                    }
                    arrived = Some(fixes[start].at);
                    cursor = start;
                } else if left {
                    // Passed by without stopping.
                    cursor = run_end;
                } else {
                    break;
                }
            }
            Some(at) => {
                let after = cursor + fixes[cursor..].partition_point(|fix| fix.at <= at);
                let Some(out) = fixes[after..].iter().position(|fix| !inside(fix)) else {
                    break;
                };
                let out = after + out;
                events.push((index, EventKind::Departed, fixes[out].at));
                if index == last {
                    break;
                }
                index += 1;
                arrived = None;
                cursor = out;
            }
        }
    }
    events
}

/// Horizon buckets of the live accuracy metric, the same as the corrections'.
pub use crate::domain::correction::{horizon_bucket, HORIZONS};
