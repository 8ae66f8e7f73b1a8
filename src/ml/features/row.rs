//! The features of one serving request without a frame. Building and collecting a one-row
//! polars frame costs about a millisecond, twenty times a prediction; this computes the same
//! numbers with the same formulas, and a test holds it equal to [`super::features`].

use std::f64::consts::PI;

use chrono::{Datelike, Timelike, Utc};

use super::prior::prior_values;
use super::{crow_km_of, in_minutes, total_dwell, CanonicalTrip, AREA_CELL_DEG, FEATURES};
use crate::domain::calendar::french_public_holidays;
use crate::domain::eta::{Estimate, EtaQuery, RoadLeg};
use crate::domain::vehicle::VehicleClass;

/// The rules estimates of a request's canonical trip (see [`CanonicalTrip::of`]): with the
/// configured policy and with the strict one.
pub struct Prior<'a> {
    pub estimate: &'a Estimate,
    pub strict: &'a Estimate,
}

impl CanonicalTrip {
    /// The canonical trip of a request. Without intermediate stops it is the request itself,
    /// so the request's own rules estimate serves as the prior.
    pub fn of(query: &EtaQuery) -> Self {
        let dwell = total_dwell(query);
        Self {
            origin: query.origin,
            destination: query.destination,
            departure: query.departure.with_timezone(&Utc),
            vehicle: query.vehicle,
            n_stops: query.stops.len(),
            dwell_minutes: in_minutes(dwell),
            driven_today_minutes: in_minutes(query.driver.driven_today()),
            driven_since_break_minutes: in_minutes(query.driver.driven_since_break()),
            road: query.context.legs.as_ref().map(|legs| RoadLeg {
                km: legs.iter().map(|leg| leg.km).sum(),
                free_flow_minutes: legs.iter().map(|leg| leg.free_flow_minutes).sum(),
            }),
        }
    }
}

/// The features of a request, in [`FEATURES`] order, as the frame path computes them for
/// [`super::query_frame`]'s row: no load; weather and congestion from the query's context
/// (missing: NaN).
pub fn feature_row(
    query: &EtaQuery,
    partner_code: u32,
    elapsed_minutes: f64,
    prior: Prior<'_>,
) -> [f64; FEATURES.len()] {
    let (lat1, lon1) = (query.origin.lat(), query.origin.lon());
    let (lat2, lon2) = (query.destination.lat(), query.destination.lon());
    let bearing = bearing_of(lat1, lon1, lat2, lon2);
    let [local_hour, weekday, month, is_holiday, is_eve] = calendar_values(query);
    let conditions = query
        .context
        .conditions
        .values()
        .map(|value| value.unwrap_or(f64::NAN));
    let [rules, driving, breaks, rests, ban_waits, road_km, strict] =
        prior_values(prior.estimate, prior.strict);
    [
        crow_km_of(lat1, lon1, lat2, lon2),
        bearing.sin(),
        bearing.cos(),
        area_cell(lat1),
        area_cell(lon1),
        area_cell(lat2),
        area_cell(lon2),
        local_hour,
        weekday,
        month,
        is_holiday,
        is_eve,
        vehicle_code(query.vehicle),
        f64::NAN,
        query.stops.len() as f64,
        in_minutes(total_dwell(query)),
        rules,
        driving,
        breaks,
        rests,
        ban_waits,
        road_km,
        strict,
        elapsed_minutes,
        in_minutes(query.driver.driven_today()),
        in_minutes(query.driver.driven_since_break()),
        conditions[0],
        conditions[1],
        conditions[2],
        conditions[3],
        conditions[4],
        conditions[5],
        conditions[6],
        f64::NAN,
        f64::NAN,
        f64::NAN,
        f64::from(partner_code),
    ]
}

/// [`super::bearing_radians`] on numbers, operation for operation, as [`crow_km_of`] is.
fn bearing_of(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let radians = |degrees: f64| degrees * (PI / 180.0);
    let dlon = radians(lon2) - radians(lon1);
    let y = dlon.sin() * radians(lat2).cos();
    let x = radians(lat1).cos() * radians(lat2).sin()
        - radians(lat1).sin() * radians(lat2).cos() * dlon.cos();
    y.atan2(x)
}

/// The corner of the area cell a coordinate lies in, as the frame path floors it.
fn area_cell(degrees: f64) -> f64 {
    (degrees / AREA_CELL_DEG).floor() * AREA_CELL_DEG
}

/// The departure on the Paris clock, as the frame path reads it: hour, weekday (Monday 1),
/// month, and 1 for a public holiday or the eve of one.
fn calendar_values(query: &EtaQuery) -> [f64; 5] {
    let local = query
        .departure
        .with_timezone(&Utc)
        .with_timezone(&chrono_tz::Europe::Paris);
    let date = local.date_naive();
    let holidays = french_public_holidays(date.year());
    let is_holiday = holidays.contains(&date);
    let tomorrow = date.succ_opt().unwrap_or(date);
    let is_eve = french_public_holidays(tomorrow.year()).contains(&tomorrow);
    let flag = |value: bool| if value { 1.0 } else { 0.0 };
    [
        f64::from(local.hour()),
        f64::from(local.weekday().number_from_monday()),
        f64::from(local.month()),
        flag(is_holiday),
        flag(is_eve),
    ]
}

/// The vehicle class as the frame path codes it.
fn vehicle_code(vehicle: VehicleClass) -> f64 {
    match vehicle {
        VehicleClass::Van => 0.0,
        VehicleClass::Rigid => 1.0,
        VehicleClass::Articulated => 2.0,
    }
}
