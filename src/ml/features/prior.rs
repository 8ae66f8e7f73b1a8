//! The rules engine's estimate of each row, as prior features. No expression can lay out a
//! timeline, so this is the one loop over rows; rows are independent and run on every core.

use chrono::{DateTime, TimeDelta, Utc};
use polars::prelude::*;
use rayon::prelude::*;

use super::in_minutes;
use crate::domain::eta::{Estimate, EstimateEta, EtaQuery, RoadLeg, RulesEta, Stop, TripContext};
use crate::domain::geo::GeoPoint;
use crate::domain::rules::DriverState;
use crate::domain::vehicle::VehicleClass;

/// The prior's columns, in the order [`prior_values`] returns them.
pub const RULES_PRIOR_COLUMNS: [&str; 7] = [
    "rules_minutes",
    "rules_driving_minutes",
    "rules_break_minutes",
    "rules_rest_minutes",
    "rules_ban_wait_minutes",
    "rules_road_km",
    "rules_strict_minutes",
];

/// Optional columns of a trips frame: a routing engine's road distance and free-flow time for
/// the whole route. Absent or null: the great circle times the circuity factor.
pub const ROAD_COLUMNS: [&str; 2] = ["road_km", "road_free_flow_minutes"];

/// At most this many stops are laid out for the prior; more only add their dwell.
const MAX_PRIOR_STOPS: usize = 20;

/// The prior's values from the rules estimates of the canonical trip: with the configured
/// policy, and without extended days and reduced rests (see [`RulesEta::strict`]).
pub(super) fn prior_values(estimate: &Estimate, strict: &Estimate) -> [f64; 7] {
    let breakdown = &estimate.breakdown;
    [
        in_minutes(estimate.band.p50 - estimate.timeline.departure),
        in_minutes(breakdown.driving),
        in_minutes(breakdown.breaks),
        in_minutes(breakdown.rests),
        in_minutes(breakdown.ban_waits),
        estimate.road_distance_km,
        in_minutes(strict.band.p50 - strict.timeline.departure),
    ]
}

/// The trip the prior is computed for, which training and serving both know: the stops spread
/// evenly along the great circle, the dwell shared among them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CanonicalTrip {
    pub origin: GeoPoint,
    pub destination: GeoPoint,
    pub departure: DateTime<Utc>,
    pub vehicle: VehicleClass,
    pub n_stops: usize,
    pub dwell_minutes: f64,
    pub driven_today_minutes: f64,
    pub driven_since_break_minutes: f64,
    /// The whole route as a routing engine drives it, when one was asked; shared among the
    /// canonical legs in proportion, as the stops are spread.
    pub road: Option<RoadLeg>,
}

impl CanonicalTrip {
    /// The trip as the rules engine takes it. Driving times beyond the legal limits (a
    /// history's inferred state can overshoot) are capped at them.
    pub fn query(&self) -> EtaQuery {
        let n_laid_out = self.n_stops.min(MAX_PRIOR_STOPS);
        let dwell_each = if n_laid_out == 0 {
            0.0
        } else {
            self.dwell_minutes / n_laid_out as f64
        };
        let as_delta = |minutes: f64| TimeDelta::milliseconds((minutes * 60_000.0).round() as i64);
        let stops = (1..=n_laid_out)
            .map(|stop_idx| Stop {
                location: self
                    .origin
                    .towards(self.destination, stop_idx as f64 / (n_laid_out + 1) as f64),
                dwell: as_delta(dwell_each),
                window: None,
            })
            .collect();
        let today = self.driven_today_minutes.clamp(0.0, 600.0);
        let since_break = self.driven_since_break_minutes.clamp(0.0, 270.0).min(today);
        let driver = DriverState::new(as_delta(today), as_delta(since_break)).unwrap_or_default();
        let legs = self.road.map(|road| {
            let share = 1.0 / (n_laid_out + 1) as f64;
            vec![
                RoadLeg {
                    km: road.km * share,
                    free_flow_minutes: road.free_flow_minutes * share,
                };
                n_laid_out + 1
            ]
        });
        EtaQuery {
            origin: self.origin,
            destination: self.destination,
            departure: self.departure.fixed_offset(),
            vehicle: self.vehicle,
            stops,
            driver,
            context: TripContext {
                legs,
                ..TripContext::default()
            },
        }
    }
}

pub(super) fn rules_prior(trips: &DataFrame, rules: &RulesEta) -> PolarsResult<Vec<Column>> {
    let number = |name: &str| super::float_values(trips, name);
    let (o_lat, o_lon) = (number("origin_lat")?, number("origin_lon")?);
    let (d_lat, d_lon) = (number("destination_lat")?, number("destination_lon")?);
    let (stops, dwell) = (number("stops")?, number("dwell_minutes")?);
    let today = number("driven_today_minutes")?;
    let since_break = number("driven_since_break_minutes")?;
    // A routing engine's distance and time for the whole route, when one was asked.
    let optional = |name: &str| super::optional_float_values(trips, name);
    let (road_km, road_minutes) = (optional(ROAD_COLUMNS[0])?, optional(ROAD_COLUMNS[1])?);
    let departures = super::departure_millis(trips)?;
    let classes = trips.column("vehicle_class")?.str()?.clone();
    let strict = rules.strict();
    let estimates: Vec<Option<[f64; 7]>> = (0..trips.height())
        .into_par_iter()
        .map(|row| {
            let origin = GeoPoint::new(o_lat[row]?, o_lon[row]?).ok()?;
            let destination = GeoPoint::new(d_lat[row]?, d_lon[row]?).ok()?;
            let departure = DateTime::from_timestamp_millis(departures[row]?)?;
            let vehicle = classes.get(row)?.parse::<VehicleClass>().ok()?;
            let trip = CanonicalTrip {
                origin,
                destination,
                departure,
                vehicle,
                n_stops: stops[row].unwrap_or(0.0) as usize,
                dwell_minutes: dwell[row].unwrap_or(0.0),
                driven_today_minutes: today[row].unwrap_or(0.0),
                driven_since_break_minutes: since_break[row].unwrap_or(0.0),
                road: road_km[row]
                    .zip(road_minutes[row])
                    .map(|(km, minutes)| RoadLeg {
                        km,
                        free_flow_minutes: minutes,
                    }),
            };
            let query = trip.query();
            Some(prior_values(
                &rules.estimate(&query),
                &strict.estimate(&query),
            ))
        })
        .collect();
    Ok(RULES_PRIOR_COLUMNS
        .iter()
        .enumerate()
        .map(|(slot, name)| {
            let values: Vec<Option<f64>> = estimates
                .iter()
                .map(|values| values.map(|values| values[slot]))
                .collect();
            Column::new((*name).into(), values)
        })
        .collect())
}
