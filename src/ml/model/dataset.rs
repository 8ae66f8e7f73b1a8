//! From partners' histories to the rows a model learns from.

use polars::prelude::*;

use crate::domain::eta::RulesEta;
use crate::ml::features::{self, conditions::with_conditions, live::mid_trip_samples, FEATURES};
use crate::ml::history::TripHistory;

/// The columns every training row carries before its features are built.
const TRAINING_COLUMNS: [&str; 15] = [
    "trip_id",
    "partner",
    "vehicle_class",
    "origin_lat",
    "origin_lon",
    "destination_lat",
    "destination_lon",
    "departure_time",
    "arrival_time",
    "stops",
    "dwell_minutes",
    "load_tonnes",
    "elapsed_minutes",
    "driven_today_minutes",
    "driven_since_break_minutes",
];

/// One partner's history, named.
pub struct PartnerHistory {
    pub partner: String,
    pub history: TripHistory,
}

/// Optional observations joined onto every row (see [`features::conditions`]).
#[derive(Default, Clone, Copy)]
pub struct Observations<'a> {
    pub weather: Option<&'a DataFrame>,
    pub traffic: Option<&'a DataFrame>,
}

/// Every partner's trips at departure and their mid-trip samples, with conditions joined and
/// features built: [`FEATURES`] beside `trip_id`, `partner`, `vehicle_class`, `departure_time`
/// (the moment asked), `arrival_time` and `minutes` (the truth: arrival minus that moment).
pub fn training_frame(
    partners: &[PartnerHistory],
    observations: Observations<'_>,
    vocabulary: &[String],
    rules: &RulesEta,
) -> PolarsResult<DataFrame> {
    let mut parts = Vec::new();
    for PartnerHistory { partner, history } in partners {
        let mut trips = history.trips.clone();
        trips.with_column(Column::new_scalar(
            "partner".into(),
            Scalar::from(PlSmallStr::from(partner.as_str())),
            trips.height(),
        ))?;
        parts.push(normalised(trips.clone().lazy().with_columns([
            lit(0.0).alias("elapsed_minutes"),
            lit(0.0).alias("driven_today_minutes"),
            lit(0.0).alias("driven_since_break_minutes"),
        ])));
        if let Some(pings) = &history.pings {
            parts.push(normalised(mid_trip_samples(&trips, pings)?.lazy()));
        }
    }
    if parts.is_empty() {
        return Err(PolarsError::NoData("no history to train on".into()));
    }
    let rows = concat(parts, UnionArgs::default())?.collect()?;
    let rows = with_conditions(rows, observations.weather, observations.traffic)?;
    let built = features::features(&rows, vocabulary, rules)?;
    built
        .lazy()
        .with_column(
            ((col("arrival_time") - col("departure_time"))
                .dt()
                .total_milliseconds(false)
                .cast(DataType::Float64)
                / lit(60_000.0))
            .alias("minutes"),
        )
        .collect()
}

fn normalised(frame: LazyFrame) -> LazyFrame {
    let utc = DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC));
    frame.select(
        TRAINING_COLUMNS
            .iter()
            .map(|name| match *name {
                "trip_id" | "partner" | "vehicle_class" => col(*name).cast(DataType::String),
                "departure_time" | "arrival_time" => col(*name).cast(utc.clone()),
                "stops" => col(*name).cast(DataType::UInt32),
                _ => col(*name).cast(DataType::Float64),
            })
            .collect::<Vec<_>>(),
    )
}

/// The [`FEATURES`] of a frame as a row-major matrix, missing values as NaN (LightGBM's own
/// marker of a missing value).
pub fn feature_matrix(frame: &DataFrame) -> PolarsResult<Vec<f64>> {
    let columns = FEATURES
        .iter()
        .map(|name| {
            let column = frame.column(name)?.cast(&DataType::Float64)?;
            Ok(column
                .f64()?
                .iter()
                .map(|value| value.unwrap_or(f64::NAN))
                .collect::<Vec<_>>())
        })
        .collect::<PolarsResult<Vec<_>>>()?;
    let mut matrix = Vec::with_capacity(frame.height() * FEATURES.len());
    for row in 0..frame.height() {
        matrix.extend(columns.iter().map(|column| column[row]));
    }
    Ok(matrix)
}

/// A column as plain numbers (null as NaN).
pub fn numbers(frame: &DataFrame, name: &str) -> PolarsResult<Vec<f64>> {
    Ok(frame
        .column(name)?
        .cast(&DataType::Float64)?
        .f64()?
        .iter()
        .map(|value| value.unwrap_or(f64::NAN))
        .collect())
}

/// A text column (null as empty).
pub fn texts(frame: &DataFrame, name: &str) -> PolarsResult<Vec<String>> {
    Ok(frame
        .column(name)?
        .str()?
        .iter()
        .map(|value| value.unwrap_or_default().to_owned())
        .collect())
}
