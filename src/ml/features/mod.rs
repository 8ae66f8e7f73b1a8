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

use crate::domain::calendar::french_public_holidays;
use crate::domain::eta::{EtaQuery, RulesEta};
use crate::domain::geo::EARTH_RADIUS_KM;

pub mod conditions;
pub mod live;
mod prior;
mod row;

pub use prior::{CanonicalTrip, ROAD_COLUMNS, RULES_PRIOR_COLUMNS};
pub use row::{feature_row, Prior};

/// The model's inputs, in order. A model directory records this list; loading refuses a model
/// whose list differs. The prior, live and condition columns are named once, in their own
/// lists, so that the frames that fill them and this order cannot drift apart.
pub const FEATURES: [&str; 37] = concat_columns(&[
    &[
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
    ],
    &RULES_PRIOR_COLUMNS,
    &LIVE_COLUMNS,
    &CONDITION_COLUMNS,
    &[
        "partner_day_pace",
        "partner_rest_extra_minutes",
        "partner_strict_share",
        "partner_code",
    ],
]);

/// Where `partner_code` sits in [`FEATURES`]: the model treats it as categorical.
pub const PARTNER_FEATURE: usize = FEATURES.len() - 1;

/// Where the partner's profile sits in [`FEATURES`]: how much slower than the rules its trips
/// run and by how many minutes they overrun, learnt by the model from its training trips (see
/// `crate::ml::model::train::PartnerProfile`). Left missing here; the model fills them in.
pub const PROFILE_FEATURES: [usize; 3] =
    [FEATURES.len() - 4, FEATURES.len() - 3, FEATURES.len() - 2];

/// Where a trip stands when it is asked about: zero at departure; for a sample taken mid-trip,
/// the time since departure and the driver's driving so far (see [`live`]). Optional columns
/// of a trips frame: absent means at departure with a rested driver.
pub const LIVE_COLUMNS: [&str; 3] = [
    "elapsed_minutes",
    "driven_today_minutes",
    "driven_since_break_minutes",
];

/// Weather at the middle of the remaining route (Open-Meteo's variables and units) and
/// congestion (0 free-flowing to 1 standstill) near both ends. Optional columns of a trips
/// frame: absent means unknown, and the model has learnt what to do without them.
pub const CONDITION_COLUMNS: [&str; 7] = [
    "temperature_2m",
    "precipitation",
    "snowfall",
    "wind_speed_10m",
    "visibility",
    "origin_congestion",
    "destination_congestion",
];

/// The lists one after the other; `N` must be their total length (checked when compiling).
const fn concat_columns<const N: usize>(lists: &[&[&'static str]]) -> [&'static str; N] {
    let mut columns = [""; N];
    let mut filled = 0;
    let mut list_idx = 0;
    while list_idx < lists.len() {
        let list = lists[list_idx];
        let mut idx = 0;
        while idx < list.len() {
            columns[filled] = list[idx];
            filled += 1;
            idx += 1;
        }
        list_idx += 1;
    }
    assert!(
        filled == N,
        "the column lists do not add up to the declared length"
    );
    columns
}

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
/// total dwell, exactly as a history records them; the driver's state and `elapsed_minutes`
/// (zero at departure) fill the live columns.
pub fn query_frame(
    query: &EtaQuery,
    partner: &str,
    elapsed_minutes: f64,
) -> PolarsResult<DataFrame> {
    let dwell = total_dwell(query);
    let departure = query.departure.with_timezone(&Utc).timestamp_millis();
    let mut frame = DataFrame::new(
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
            Column::new("dwell_minutes".into(), [in_minutes(dwell)]),
            Column::new("load_tonnes".into(), [None::<f64>]),
            Column::new("elapsed_minutes".into(), [elapsed_minutes]),
            Column::new(
                "driven_today_minutes".into(),
                [in_minutes(query.driver.driven_today())],
            ),
            Column::new(
                "driven_since_break_minutes".into(),
                [in_minutes(query.driver.driven_since_break())],
            ),
        ],
    )?;
    for (name, value) in CONDITION_COLUMNS
        .iter()
        .zip(query.context.conditions.values())
    {
        frame.with_column(Column::new((*name).into(), [value]))?;
    }
    if let Some(road) = CanonicalTrip::of(query).road {
        frame.with_column(Column::new(ROAD_COLUMNS[0].into(), [road.km]))?;
        frame.with_column(Column::new(
            ROAD_COLUMNS[1].into(),
            [road.free_flow_minutes],
        ))?;
    }
    Ok(frame)
}

/// A column's values as floats, nulls kept.
pub fn float_values(frame: &DataFrame, name: &str) -> PolarsResult<Vec<Option<f64>>> {
    Ok(frame
        .column(name)?
        .cast(&DataType::Float64)?
        .f64()?
        .iter()
        .collect())
}

/// A column's values as floats, nulls kept; all null where the frame leaves the column out,
/// as it may an optional one.
fn optional_float_values(frame: &DataFrame, name: &str) -> PolarsResult<Vec<Option<f64>>> {
    if frame.schema().contains(name) {
        float_values(frame, name)
    } else {
        Ok(vec![None; frame.height()])
    }
}

/// `departure_time` in milliseconds since the epoch, nulls kept.
pub fn departure_millis(frame: &DataFrame) -> PolarsResult<Vec<Option<i64>>> {
    Ok(frame
        .column("departure_time")?
        .cast(&DataType::Datetime(
            TimeUnit::Milliseconds,
            Some(TimeZone::UTC),
        ))?
        .as_materialized_series()
        .to_physical_repr()
        .i64()?
        .iter()
        .collect())
}

pub(crate) fn in_minutes(delta: TimeDelta) -> f64 {
    delta.num_milliseconds() as f64 / 60_000.0
}

/// The dwell of all a request's intermediate stops: a history records only the total.
fn total_dwell(query: &EtaQuery) -> TimeDelta {
    query.stops.iter().map(|stop| stop.dwell).sum()
}

/// The features of every row of a trips frame (see [`INPUT_COLUMNS`]), with the input columns
/// kept beside them. `partners` is the model's vocabulary: the partner at index `i` has code
/// `i + 1`, any other [`UNSEEN_PARTNER`].
pub fn features(
    trips: &DataFrame,
    partners: &[String],
    rules: &RulesEta,
) -> PolarsResult<DataFrame> {
    let mut with_prior = with_absent_columns(trips)?;
    for column in prior::rules_prior(&with_prior, rules)? {
        with_prior.with_column(column)?;
    }
    let vocabulary = partner_vocabulary(partners)?;
    let (holidays, eves) = holiday_codes(trips)?;
    let mut columns = route_features();
    columns.extend(calendar_features(holidays, eves));
    columns.extend(load_features());
    columns.extend(partner_features());
    with_prior
        .lazy()
        .join(
            vocabulary.lazy(),
            [col("partner")],
            [col("partner")],
            JoinArgs::new(JoinType::Left),
        )
        .with_columns(columns)
        .with_columns(
            LIVE_COLUMNS
                .iter()
                .chain(&CONDITION_COLUMNS)
                .map(|name| col(*name).cast(DataType::Float64))
                .collect::<Vec<_>>(),
        )
        .collect()
}

/// The optional columns a trips frame may leave out, filled with what their absence means: at
/// departure with a rested driver, conditions unknown.
fn with_absent_columns(trips: &DataFrame) -> PolarsResult<DataFrame> {
    let mut frame = trips.clone();
    for name in LIVE_COLUMNS {
        if !frame.schema().contains(name) {
            let zeros = Column::new_scalar(name.into(), Scalar::from(0.0f64), trips.height());
            frame.with_column(zeros)?;
        }
    }
    with_null_floats(&mut frame, &CONDITION_COLUMNS)?;
    Ok(frame)
}

/// Float columns a frame left out, added as nulls, so that later steps can name them: absent
/// means unknown.
fn with_null_floats(frame: &mut DataFrame, names: &[&str]) -> PolarsResult<()> {
    for &name in names {
        if !frame.schema().contains(name) {
            let nulls = Column::full_null(name.into(), frame.height(), &DataType::Float64);
            frame.with_column(nulls)?;
        }
    }
    Ok(())
}

/// The partners' codes, to be joined on `partner`: a partner outside the vocabulary finds no
/// row, and its null code becomes [`UNSEEN_PARTNER`].
fn partner_vocabulary(partners: &[String]) -> PolarsResult<DataFrame> {
    DataFrame::new(
        partners.len(),
        vec![
            Column::new("partner".into(), partners),
            Column::new(
                "partner_code".into(),
                (1..=partners.len() as u32).collect::<Vec<_>>(),
            ),
        ],
    )
}

/// Where the trip goes: its length, its heading (as sine and cosine, so that north is one
/// place), and the areas of both ends.
fn route_features() -> Vec<Expr> {
    let cell = |name: &str| (col(name) / lit(AREA_CELL_DEG)).floor() * lit(AREA_CELL_DEG);
    let bearing = bearing_radians(
        "origin_lat",
        "origin_lon",
        "destination_lat",
        "destination_lon",
    );
    vec![
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
    ]
}

/// When the trip leaves, on the Paris clock that driving bans and traffic follow: hour,
/// weekday, month, and whether the day is a public holiday (`holidays`) or the eve of one
/// (`eves`), both as `yyyymmdd` codes (see [`holiday_codes`]).
fn calendar_features(holidays: Series, eves: Series) -> Vec<Expr> {
    let local = col("departure_time")
        .dt()
        .convert_time_zone(TimeZone::from_chrono(&chrono_tz::Europe::Paris));
    let day_code = local.clone().dt().year() * lit(10_000)
        + local.clone().dt().month().cast(DataType::Int32) * lit(100)
        + local.clone().dt().day().cast(DataType::Int32);
    vec![
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
    ]
}

/// What the truck is and carries, and the work on the way: as floats, the model's one type.
fn load_features() -> Vec<Expr> {
    let vehicle_code = when(col("vehicle_class").eq(lit("van")))
        .then(lit(0.0))
        .when(col("vehicle_class").eq(lit("rigid")))
        .then(lit(1.0))
        .otherwise(lit(2.0));
    vec![
        vehicle_code.alias("vehicle_code"),
        col("load_tonnes").cast(DataType::Float64),
        col("stops").cast(DataType::Float64),
        col("dwell_minutes").cast(DataType::Float64),
    ]
}

/// The partner's code from the joined vocabulary, and its profile left missing for the model
/// to fill in (see [`PROFILE_FEATURES`]).
fn partner_features() -> Vec<Expr> {
    vec![
        col("partner_code")
            .fill_null(lit(UNSEEN_PARTNER))
            .cast(DataType::Float64),
        lit(NULL).cast(DataType::Float64).alias("partner_day_pace"),
        lit(NULL)
            .cast(DataType::Float64)
            .alias("partner_rest_extra_minutes"),
        lit(NULL)
            .cast(DataType::Float64)
            .alias("partner_strict_share"),
    ]
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

/// [`crow_km`]'s haversine on numbers, operation for operation: the one-request paths
/// ([`feature_row`], [`conditions::conditions_of`]) must give what the frame gives.
fn crow_km_of(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let radians = |degrees: f64| degrees * (PI / 180.0);
    let half_dlat = (radians(lat2) - radians(lat1)) / 2.0;
    let half_dlon = (radians(lon2) - radians(lon1)) / 2.0;
    let a = half_dlat.sin() * half_dlat.sin()
        + radians(lat1).cos() * radians(lat2).cos() * half_dlon.sin() * half_dlon.sin();
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
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
    let millis = departure_millis(trips)?;
    let year_of = |value: Option<&i64>| {
        value
            .copied()
            .and_then(DateTime::from_timestamp_millis)
            .map(|instant| instant.year())
    };
    let known = || millis.iter().flatten();
    let (first, last) = match (year_of(known().min()), year_of(known().max())) {
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
