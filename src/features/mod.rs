//! Model features, built by one code path for training and serving: a history's trips frame
//! and a serving request (as a one-row frame of the same schema, [`query_frame`]) go through
//! the same [`features`] function.
//!
//! Column work is polars expressions; the only loop over rows runs the driving-rules engine,
//! whose estimate and its parts are prior features (no expression can lay out a timeline).
//!
//! Architecture invariant: no I/O here; frames come in and go out.

use std::f64::consts::PI;

use chrono::{DateTime, Datelike, TimeDelta, Utc};
use polars::prelude::*;
use rayon::prelude::*;

use crate::domain::calendar::french_public_holidays;
use crate::domain::eta::{EstimateEta, EtaQuery, RulesEta, Stop};
use crate::domain::geo::{GeoPoint, EARTH_RADIUS_KM};
use crate::domain::rules::DriverState;
use crate::domain::vehicle::VehicleClass;

/// The model's inputs, in order. A model directory records this list; loading refuses a model
/// whose list differs.
pub const FEATURES: [&str; 23] = [
    "crow_km",
    "bearing_sin",
    "bearing_cos",
    "origin_cell_lat",
    "origin_cell_lon",
    "destination_cell_lat",
    "destination_cell_lon",
    "local_hour",
    "weekday",
    "month",
    "is_holiday",
    "is_holiday_eve",
    "vehicle_code",
    "load_tonnes",
    "stops",
    "dwell_minutes",
    "rules_minutes",
    "rules_driving_minutes",
    "rules_break_minutes",
    "rules_rest_minutes",
    "rules_ban_wait_minutes",
    "rules_road_km",
    "partner_code",
];

/// Origin and destination areas: cells of this many degrees (about 55 km north-south).
pub const AREA_CELL_DEG: f64 = 0.5;

/// The code of a partner the model has not seen; known partners are numbered from 1.
pub const UNSEEN_PARTNER: u32 = 0;

/// The columns a trips frame must hold for [`features`]: the history schema's trip columns
/// that are known before departure, and `partner`.
pub const INPUT_COLUMNS: [&str; 10] = [
    "partner",
    "vehicle_class",
    "origin_lat",
    "origin_lon",
    "destination_lat",
    "destination_lon",
    "departure_time",
    "stops",
    "dwell_minutes",
    "load_tonnes",
];

/// A serving request as a one-row trips frame. Intermediate stops become their count and
/// total dwell, exactly as a history records them.
pub fn query_frame(query: &EtaQuery, partner: &str) -> PolarsResult<DataFrame> {
    let dwell: TimeDelta = query.stops.iter().map(|stop| stop.dwell).sum();
    let departure = query.departure.with_timezone(&Utc).timestamp_millis();
    DataFrame::new(
        1,
        vec![
            Column::new("partner".into(), [partner]),
            Column::new("vehicle_class".into(), [query.vehicle.as_str()]),
            Column::new("origin_lat".into(), [query.origin.lat()]),
            Column::new("origin_lon".into(), [query.origin.lon()]),
            Column::new("destination_lat".into(), [query.destination.lat()]),
            Column::new("destination_lon".into(), [query.destination.lon()]),
            Int64Chunked::from_vec("departure_time".into(), vec![departure])
                .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
                .into_column(),
            Column::new("stops".into(), [query.stops.len() as u32]),
            Column::new(
                "dwell_minutes".into(),
                [dwell.num_milliseconds() as f64 / 60_000.0],
            ),
            Column::new("load_tonnes".into(), [None::<f64>]),
        ],
    )
}

/// The features of every row of a trips frame (see [`INPUT_COLUMNS`]), with the input columns
/// kept beside them. `partners` is the model's vocabulary: the partner at index `i` has code
/// `i + 1`, any other [`UNSEEN_PARTNER`].
pub fn features(
    trips: &DataFrame,
    partners: &[String],
    rules: &RulesEta,
) -> PolarsResult<DataFrame> {
    let mut with_prior = trips.clone();
    for column in rules_prior(trips, rules)? {
        with_prior.with_column(column)?;
    }
    let vocabulary = DataFrame::new(
        partners.len(),
        vec![
            Column::new("partner".into(), partners),
            Column::new(
                "partner_code".into(),
                (1..=partners.len() as u32).collect::<Vec<_>>(),
            ),
        ],
    )?;
    let local = col("departure_time")
        .dt()
        .convert_time_zone(TimeZone::from_chrono(&chrono_tz::Europe::Paris));
    let day_code = local.clone().dt().year() * lit(10_000)
        + local.clone().dt().month().cast(DataType::Int32) * lit(100)
        + local.clone().dt().day().cast(DataType::Int32);
    let (holidays, eves) = holiday_codes(trips)?;
    let cell = |name: &str| (col(name) / lit(AREA_CELL_DEG)).floor() * lit(AREA_CELL_DEG);
    let bearing = bearing_radians(
        "origin_lat",
        "origin_lon",
        "destination_lat",
        "destination_lon",
    );
    let vehicle_code = when(col("vehicle_class").eq(lit("van")))
        .then(lit(0.0))
        .when(col("vehicle_class").eq(lit("rigid")))
        .then(lit(1.0))
        .otherwise(lit(2.0));
    with_prior
        .lazy()
        .join(
            vocabulary.lazy(),
            [col("partner")],
            [col("partner")],
            JoinArgs::new(JoinType::Left),
        )
        .with_columns([
            crow_km(
                "origin_lat",
                "origin_lon",
                "destination_lat",
                "destination_lon",
            )
            .alias("crow_km"),
            bearing.clone().sin().alias("bearing_sin"),
            bearing.cos().alias("bearing_cos"),
            cell("origin_lat").alias("origin_cell_lat"),
            cell("origin_lon").alias("origin_cell_lon"),
            cell("destination_lat").alias("destination_cell_lat"),
            cell("destination_lon").alias("destination_cell_lon"),
            local
                .clone()
                .dt()
                .hour()
                .cast(DataType::Float64)
                .alias("local_hour"),
            local
                .clone()
                .dt()
                .weekday()
                .cast(DataType::Float64)
                .alias("weekday"),
            local.dt().month().cast(DataType::Float64).alias("month"),
            day_code
                .clone()
                .is_in(lit(holidays).implode(false), false)
                .cast(DataType::Float64)
                .alias("is_holiday"),
            day_code
                .is_in(lit(eves).implode(false), false)
                .cast(DataType::Float64)
                .alias("is_holiday_eve"),
            vehicle_code.alias("vehicle_code"),
            col("load_tonnes").cast(DataType::Float64),
            col("stops").cast(DataType::Float64),
            col("dwell_minutes").cast(DataType::Float64),
            col("partner_code")
                .fill_null(lit(UNSEEN_PARTNER))
                .cast(DataType::Float64),
        ])
        .collect()
}

/// The rules-based estimate of each trip and its parts, from the same canonical trip that
/// serving builds: stops spread evenly along the great circle, the dwell shared among them.
fn rules_prior(trips: &DataFrame, rules: &RulesEta) -> PolarsResult<Vec<Column>> {
    let number = |name: &str| -> PolarsResult<Vec<Option<f64>>> {
        Ok(trips
            .column(name)?
            .cast(&DataType::Float64)?
            .f64()?
            .iter()
            .collect())
    };
    let (o_lat, o_lon) = (number("origin_lat")?, number("origin_lon")?);
    let (d_lat, d_lon) = (number("destination_lat")?, number("destination_lon")?);
    let (stops, dwell) = (number("stops")?, number("dwell_minutes")?);
    let departures: Vec<Option<i64>> = trips
        .column("departure_time")?
        .cast(&DataType::Datetime(
            TimeUnit::Milliseconds,
            Some(TimeZone::UTC),
        ))?
        .as_materialized_series()
        .to_physical_repr()
        .i64()?
        .iter()
        .collect();
    let classes = trips.column("vehicle_class")?.str()?.clone();
    let minutes = |delta: TimeDelta| delta.num_milliseconds() as f64 / 60_000.0;
    // The engine runs once per row; rows are independent, so they run on every core.
    let estimates: Vec<Option<[f64; 6]>> = (0..trips.height())
        .into_par_iter()
        .map(|row| {
            let origin = GeoPoint::new(o_lat[row]?, o_lon[row]?).ok()?;
            let destination = GeoPoint::new(d_lat[row]?, d_lon[row]?).ok()?;
            let departure = DateTime::from_timestamp_millis(departures[row]?)?;
            let vehicle = classes.get(row)?.parse::<VehicleClass>().ok()?;
            let query = canonical_query(
                origin,
                destination,
                departure,
                vehicle,
                stops[row].unwrap_or(0.0) as usize,
                dwell[row].unwrap_or(0.0),
            );
            let estimate = rules.estimate(&query);
            let breakdown = estimate.breakdown;
            Some([
                minutes(estimate.band.p50 - estimate.timeline.departure),
                minutes(breakdown.driving),
                minutes(breakdown.breaks),
                minutes(breakdown.rests),
                minutes(breakdown.ban_waits),
                estimate.road_distance_km,
            ])
        })
        .collect();
    let parts: Vec<Vec<Option<f64>>> = (0..6)
        .map(|slot| {
            estimates
                .iter()
                .map(|values| values.map(|values| values[slot]))
                .collect()
        })
        .collect();
    Ok(RULES_PRIOR_COLUMNS
        .iter()
        .zip(parts)
        .map(|(name, values)| Column::new((*name).into(), values))
        .collect())
}

/// The prior's columns, in the order [`rules_prior`] computes them.
const RULES_PRIOR_COLUMNS: [&str; 6] = [
    "rules_minutes",
    "rules_driving_minutes",
    "rules_break_minutes",
    "rules_rest_minutes",
    "rules_ban_wait_minutes",
    "rules_road_km",
];

/// At most this many stops are laid out for the prior; more only add their dwell.
const MAX_PRIOR_STOPS: usize = 20;

fn canonical_query(
    origin: GeoPoint,
    destination: GeoPoint,
    departure: DateTime<Utc>,
    vehicle: VehicleClass,
    n_stops: usize,
    dwell_minutes: f64,
) -> EtaQuery {
    let n_laid_out = n_stops.min(MAX_PRIOR_STOPS);
    let dwell_each = if n_laid_out == 0 {
        0.0
    } else {
        dwell_minutes / n_laid_out as f64
    };
    let stops = (1..=n_laid_out)
        .map(|stop_idx| Stop {
            location: origin.towards(destination, stop_idx as f64 / (n_laid_out + 1) as f64),
            dwell: TimeDelta::milliseconds((dwell_each * 60_000.0).round() as i64),
            window: None,
        })
        .collect();
    EtaQuery {
        origin,
        destination,
        departure: departure.fixed_offset(),
        vehicle,
        stops,
        driver: DriverState::default(),
    }
}

fn radians(name: &str) -> Expr {
    col(name) * lit(PI / 180.0)
}

/// Great-circle distance by the haversine formula, as an expression.
pub fn crow_km(lat1: &str, lon1: &str, lat2: &str, lon2: &str) -> Expr {
    let half_dlat = (radians(lat2) - radians(lat1)) / lit(2.0);
    let half_dlon = (radians(lon2) - radians(lon1)) / lit(2.0);
    let a = half_dlat.clone().sin() * half_dlat.sin()
        + radians(lat1).cos() * radians(lat2).cos() * half_dlon.clone().sin() * half_dlon.sin();
    lit(2.0 * EARTH_RADIUS_KM) * a.sqrt().clip_max(lit(1.0)).arcsin()
}

/// Initial bearing in radians, as an expression.
fn bearing_radians(lat1: &str, lon1: &str, lat2: &str, lon2: &str) -> Expr {
    let dlon = radians(lon2) - radians(lon1);
    let y = dlon.clone().sin() * radians(lat2).cos();
    let x = radians(lat1).cos() * radians(lat2).sin()
        - radians(lat1).sin() * radians(lat2).cos() * dlon.cos();
    y.arctan2(x)
}

/// French public holidays, and their eves, as `yyyymmdd` codes over the years the trips span.
fn holiday_codes(trips: &DataFrame) -> PolarsResult<(Series, Series)> {
    let departures = trips.column("departure_time")?.cast(&DataType::Datetime(
        TimeUnit::Milliseconds,
        Some(TimeZone::UTC),
    ))?;
    let millis = departures.as_materialized_series().to_physical_repr();
    let millis = millis.i64()?;
    let year_of = |value: Option<i64>| {
        value
            .and_then(DateTime::from_timestamp_millis)
            .map(|instant| instant.year())
    };
    let (first, last) = match (year_of(millis.min()), year_of(millis.max())) {
        (Some(first), Some(last)) => (first, last + 1),
        _ => (2000, 2000),
    };
    let code = |date: chrono::NaiveDate| {
        date.year() * 10_000 + date.month() as i32 * 100 + date.day() as i32
    };
    let holidays: Vec<chrono::NaiveDate> =
        (first..=last).flat_map(french_public_holidays).collect();
    let eves: Vec<i32> = holidays
        .iter()
        .filter_map(|date| date.pred_opt())
        .map(code)
        .collect();
    let holidays: Vec<i32> = holidays.into_iter().map(code).collect();
    Ok((
        Series::new("holidays".into(), holidays),
        Series::new("eves".into(), eves),
    ))
}

#[cfg(test)]
mod tests;
