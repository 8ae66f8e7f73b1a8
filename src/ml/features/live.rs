//! Mid-trip samples from a history's pings, so that the model learns to answer at every point
//! of a trip and not only at departure.
//!
//! Once an hour of each tracked trip, the ping then becomes a question asked at that moment:
//! from here (the ping's position) to the trip's destination, with the stops still ahead and
//! the driver's driving so far, when will the truck arrive? The driver's state is inferred from
//! the pings alone, as it will be for a live truck: an interval between two pings is driving
//! when the truck covered it faster than [`MOVING_KMH`]; standing still for [`BREAK_MINUTES`]
//! is a break, for [`REST_MINUTES`] a daily rest.

use polars::prelude::*;

use super::crow_km;

/// Slower than this between two pings is standing still (GPS noise is well under it).
pub const MOVING_KMH: f64 = 5.0;
/// A stop at least this long interrupts driving as EU 561/2006's break does; the driver's
/// state at a ping counts the stop so far, as a live truck's would.
pub const BREAK_MINUTES: f64 = 45.0;
/// A stop at least this long is a daily rest (a reduced one is 9 h; a little slack).
pub const REST_MINUTES: f64 = 8.5 * 60.0;
/// One sample per hour of a trip.
pub const SAMPLE_EVERY_MINUTES: f64 = 60.0;
/// No sample this close to arrival: nothing is left to predict.
pub const MIN_MINUTES_LEFT: f64 = 10.0;

/// A window expression; polars refuses only an empty partition, which none of these is.
fn over(expr: Expr, keys: &[&str]) -> Expr {
    expr.over(keys.iter().map(|key| col(*key)).collect::<Vec<_>>())
        .expect("a non-empty partition")
}

/// The driver's state at every ping: `driven_minutes`, `driven_today_minutes` and
/// `driven_since_break_minutes` beside the pings' own columns, sorted by trip and time.
pub fn driving_state(pings: &DataFrame) -> PolarsResult<DataFrame> {
    let mut pings = pings.clone();
    super::with_null_floats(&mut pings, &["speed_kmh"])?;
    let state = with_intervals(pings.lazy());
    let state = with_moving(state);
    let state = with_driven(state);
    let state = with_stopped_for(state);
    with_driving_since_stops(state)
        .select([all().exclude_cols(["^__.*$"]).as_expr()])
        .collect()
}

/// A window over each trip's pings.
fn over_trip(expr: Expr) -> Expr {
    over(expr, &["trip_id"])
}

/// The minutes from `earlier` to `later`, two datetimes.
fn minutes_between(later: Expr, earlier: Expr) -> Expr {
    (later - earlier)
        .dt()
        .total_milliseconds(false)
        .cast(DataType::Float64)
        / lit(60_000.0)
}

/// Each ping's interval to the trip's next one, in minutes (`__interval`) and crow-flies
/// kilometres (`__km`); zero after the last ping.
fn with_intervals(pings: LazyFrame) -> LazyFrame {
    let minutes_to_next = over_trip(minutes_between(
        col("timestamp").shift(lit(-1)),
        col("timestamp"),
    ))
    .fill_null(lit(0.0));
    let km_to_next =
        over_trip(crow_km("lat", "lon", "__next_lat", "__next_lon")).fill_null(lit(0.0));
    pings
        .sort(["trip_id", "timestamp"], SortMultipleOptions::default())
        .with_columns([
            over_trip(col("lat").shift(lit(-1))).alias("__next_lat"),
            over_trip(col("lon").shift(lit(-1))).alias("__next_lon"),
        ])
        .with_columns([
            minutes_to_next.alias("__interval"),
            km_to_next.alias("__km"),
        ])
}

/// `__moving`: whether the interval after a ping was driving (see [`MOVING_KMH`]).
fn with_moving(pings: LazyFrame) -> LazyFrame {
    pings.with_column(
        // The speed the unit reports, when it reports one, keeps a GPS outlier (a jump of
        // a kilometre and back) from splitting a rest into two short stops.
        (col("__interval")
            .gt(lit(0.0))
            .and((col("__km") / col("__interval") * lit(60.0)).gt(lit(MOVING_KMH)))
            .and(
                col("speed_kmh")
                    .cast(DataType::Float64)
                    .fill_null(lit(f64::INFINITY))
                    .gt(lit(MOVING_KMH)),
            ))
        .alias("__moving"),
    )
}

/// `driven_minutes`, the driving before each ping since the trip's first, and how the ping
/// was reached: moving or not (`__came_moving`), after how long (`__came_in`).
fn with_driven(pings: LazyFrame) -> LazyFrame {
    pings.with_columns([
        over_trip(
            (when(col("__moving"))
                .then(col("__interval"))
                .otherwise(lit(0.0)))
            .cum_sum(false)
            .shift(lit(1)),
        )
        .fill_null(lit(0.0))
        .alias("driven_minutes"),
        over_trip(col("__moving").shift(lit(1))).alias("__came_moving"),
        over_trip(col("__interval").shift(lit(1))).alias("__came_in"),
    ])
}

/// `__stopped_for`: how long the truck has stood still when the ping arrives, known at that
/// moment, unlike the length of the whole stop. A stretch (`__stretch`) is a run of pings
/// reached alike, moving or not.
fn with_stopped_for(pings: LazyFrame) -> LazyFrame {
    pings
        .with_column(
            over_trip(
                col("__came_moving")
                    .neq(col("__came_moving").shift(lit(1)))
                    .fill_null(lit(true))
                    .cast(DataType::UInt32)
                    .cum_sum(false),
            )
            .alias("__stretch"),
        )
        .with_column(
            when(col("__came_moving").fill_null(lit(true)))
                .then(lit(0.0))
                .otherwise(over(
                    col("__came_in").cum_sum(false),
                    &["trip_id", "__stretch"],
                ))
                .alias("__stopped_for"),
        )
}

/// The driving since the last break and since the last daily rest: a stop long enough resets
/// the count, as EU 561/2006 does.
fn with_driving_since_stops(pings: LazyFrame) -> LazyFrame {
    pings.with_columns([
        (col("driven_minutes") - driven_at_last_stop(BREAK_MINUTES))
            .alias("driven_since_break_minutes"),
        (col("driven_minutes") - driven_at_last_stop(REST_MINUTES)).alias("driven_today_minutes"),
    ])
}

/// `driven_minutes` at the trip's last ping so far that had stood still for `stop_minutes`
/// (zero before any): the base the counters restart from.
fn driven_at_last_stop(stop_minutes: f64) -> Expr {
    over_trip(
        when(col("__stopped_for").gt_eq(lit(stop_minutes)))
            .then(col("driven_minutes"))
            .otherwise(lit(NULL).cast(DataType::Float64))
            .fill_null_with_strategy(FillNullStrategy::Forward(None)),
    )
    .fill_null(lit(0.0))
}

/// One sample an hour of every tracked trip, in the trips frame's schema (see
/// [`super::INPUT_COLUMNS`] and [`super::LIVE_COLUMNS`]) plus `trip_id` and `arrival_time`:
/// `departure_time` is the moment of the sample and the origin is the truck's position then.
pub fn mid_trip_samples(trips: &DataFrame, pings: &DataFrame) -> PolarsResult<DataFrame> {
    let state = driving_state(pings)?;
    let trip_columns = trips.clone().lazy().select(trip_schema(
        col("origin_lat").alias("__start_lat"),
        col("origin_lon").alias("__start_lon"),
        col("departure_time").alias("__departed"),
        col("stops").cast(DataType::Float64).alias("__stops"),
        col("dwell_minutes")
            .cast(DataType::Float64)
            .alias("__dwell"),
    ));
    let pings_of_trips = state.lazy().join(
        trip_columns,
        [col("trip_id")],
        [col("trip_id")],
        JoinArgs::new(JoinType::Inner),
    );
    let mut sample_columns = trip_schema(
        col("lat").alias("origin_lat"),
        col("lon").alias("origin_lon"),
        col("timestamp").alias("departure_time"),
        col("stops"),
        col("dwell_minutes"),
    );
    sample_columns.extend(super::LIVE_COLUMNS.iter().map(|name| col(*name)));
    with_stops_ahead(hourly_pings(pings_of_trips))
        .select(sample_columns)
        .sort(
            ["trip_id", "departure_time"],
            SortMultipleOptions::default(),
        )
        .collect()
}

/// A trip's columns in the trips frame's order, with `trip_id` and `arrival_time`: the trip as
/// recorded and a sample of it differ only in the origin, departure, stops and dwell given.
fn trip_schema(
    origin_lat: Expr,
    origin_lon: Expr,
    departure: Expr,
    stops: Expr,
    dwell: Expr,
) -> Vec<Expr> {
    vec![
        col("trip_id"),
        col("partner"),
        col("vehicle_class"),
        origin_lat,
        origin_lon,
        col("destination_lat"),
        col("destination_lon"),
        departure,
        col("arrival_time"),
        stops,
        dwell,
        col("load_tonnes"),
    ]
}

/// The pings samples are taken at: the first of each hour of a trip after the first, with
/// `elapsed_minutes`, while at least [`MIN_MINUTES_LEFT`] remain.
fn hourly_pings(pings: LazyFrame) -> LazyFrame {
    pings
        .with_columns([
            minutes_between(col("timestamp"), col("__departed")).alias("elapsed_minutes"),
            minutes_between(col("arrival_time"), col("timestamp")).alias("__left"),
        ])
        .filter(
            col("elapsed_minutes")
                .gt_eq(lit(SAMPLE_EVERY_MINUTES))
                .and(col("__left").gt_eq(lit(MIN_MINUTES_LEFT))),
        )
        .with_column(
            (col("elapsed_minutes") / lit(SAMPLE_EVERY_MINUTES))
                .floor()
                .alias("__hour"),
        )
        .filter(col("timestamp").eq(over(col("timestamp").min(), &["trip_id", "__hour"])))
}

/// The stops still ahead of a sample, and their dwell: the pings do not say which stops were
/// made, so the trip's are taken in the share of its distance left.
fn with_stops_ahead(samples: LazyFrame) -> LazyFrame {
    let stops_left =
        (col("__stops").fill_null(lit(0.0)) * share_left()).round(0, RoundMode::HalfToEven);
    samples.with_columns([
        stops_left.clone().cast(DataType::UInt32).alias("stops"),
        (col("__dwell").fill_null(lit(0.0))
            * when(col("__stops").gt(lit(0.0)))
                .then(stops_left / col("__stops"))
                .otherwise(lit(0.0)))
        .alias("dwell_minutes"),
    ])
}

/// The share of the trip's crow-flies distance still ahead of the ping, from 0 to 1 (0 where
/// both distances are zero).
fn share_left() -> Expr {
    (crow_km("lat", "lon", "destination_lat", "destination_lon")
        / crow_km(
            "__start_lat",
            "__start_lon",
            "destination_lat",
            "destination_lon",
        ))
    .clip(lit(0.0), lit(1.0))
    .fill_nan(lit(0.0))
}
