//! Weather and congestion joined onto trips, as [`super::CONDITION_COLUMNS`].
//!
//! Weather is looked up in the 2-degree cell of the route's midpoint, at the hour the truck is
//! expected there; congestion at the metropolitan area nearest each end, at the hour the truck
//! leaves and the hour it is expected to arrive. The expected times use a plain 70 km/h on
//! 1.2 times the crow-flies distance: the join must not depend on the model it feeds.

use polars::prelude::*;

use super::crow_km;

/// The weather grid's cell size, in degrees (Open-Meteo's archive is resampled to it).
pub const WEATHER_CELL_DEG: f64 = 2.0;

const PLANNING_KMH: f64 = 70.0;
const PLANNING_CIRCUITY: f64 = 1.2;

/// Weather frame columns: `cell_lat`, `cell_lon` (cell centres), `time` (UTC hour) and
/// Open-Meteo's hourly variables. Traffic frame columns: `metro`, `lat`, `lon`, `time`,
/// `congestion`. Either may be absent; its columns are then left out (null in features).
pub fn with_conditions(
    trips: DataFrame,
    weather: Option<&DataFrame>,
    traffic: Option<&DataFrame>,
) -> PolarsResult<DataFrame> {
    let hours_to = |fraction: f64| {
        (crow_km(
            "origin_lat",
            "origin_lon",
            "destination_lat",
            "destination_lon",
        ) * lit(PLANNING_CIRCUITY * fraction * 3_600_000.0 / PLANNING_KMH))
        .cast(DataType::Int64)
        .cast(DataType::Duration(TimeUnit::Milliseconds))
    };
    let hour_of = |offset: Expr| {
        (col("departure_time").cast(DataType::Datetime(
            TimeUnit::Milliseconds,
            Some(TimeZone::UTC),
        )) + offset)
            .dt()
            .truncate(lit("1h"))
    };
    let cell_key = |value: Expr| {
        (((value / lit(WEATHER_CELL_DEG)).floor() + lit(0.5)) * lit(WEATHER_CELL_DEG * 10.0))
            .round(0, RoundMode::HalfToEven)
            .cast(DataType::Int32)
    };
    let mut frame = trips.lazy().with_row_index("__row", None).with_columns([
        cell_key((col("origin_lat") + col("destination_lat")) / lit(2.0)).alias("__cell_lat"),
        cell_key((col("origin_lon") + col("destination_lon")) / lit(2.0)).alias("__cell_lon"),
        hour_of(hours_to(0.5)).alias("__mid_hour"),
        hour_of(lit(0).cast(DataType::Duration(TimeUnit::Milliseconds))).alias("__start_hour"),
        hour_of(hours_to(1.0)).alias("__end_hour"),
    ]);
    if let Some(weather) = weather {
        let hourly = weather.clone().lazy().select([
            cell_key(col("cell_lat")).alias("__cell_lat"),
            cell_key(col("cell_lon")).alias("__cell_lon"),
            col("time")
                .cast(DataType::Datetime(
                    TimeUnit::Milliseconds,
                    Some(TimeZone::UTC),
                ))
                .alias("__mid_hour"),
            col("temperature_2m"),
            col("precipitation"),
            col("snowfall"),
            col("wind_speed_10m"),
            col("visibility"),
        ]);
        let keys = [col("__cell_lat"), col("__cell_lon"), col("__mid_hour")];
        frame = frame.join(hourly, keys.clone(), keys, JoinArgs::new(JoinType::Left));
    }
    if let Some(traffic) = traffic {
        let hourly = traffic.clone().lazy().select([
            col("metro"),
            col("time").cast(DataType::Datetime(
                TimeUnit::Milliseconds,
                Some(TimeZone::UTC),
            )),
            col("congestion"),
        ]);
        let metros = traffic
            .clone()
            .lazy()
            .group_by([col("metro")])
            .agg([col("lat").first(), col("lon").first()]);
        for (end, lat, lon, hour) in [
            ("origin", "origin_lat", "origin_lon", "__start_hour"),
            (
                "destination",
                "destination_lat",
                "destination_lon",
                "__end_hour",
            ),
        ] {
            let nearest = frame
                .clone()
                .select([
                    col("__row"),
                    col(lat).alias("__lat"),
                    col(lon).alias("__lon"),
                ])
                .cross_join(metros.clone(), None)
                .with_column(crow_km("__lat", "__lon", "lat", "lon").alias("__km"))
                .group_by([col("__row")])
                .agg([col("metro")
                    .sort_by([col("__km")], SortMultipleOptions::default())
                    .first()
                    .alias(format!("__{end}_metro"))]);
            let name = format!("{end}_congestion");
            frame = frame
                .join(
                    nearest,
                    [col("__row")],
                    [col("__row")],
                    JoinArgs::new(JoinType::Left),
                )
                .join(
                    hourly.clone().select([
                        col("metro").alias(format!("__{end}_metro")),
                        col("time").alias(hour),
                        col("congestion").alias(name.as_str()),
                    ]),
                    [col(format!("__{end}_metro")), col(hour)],
                    [col(format!("__{end}_metro")), col(hour)],
                    JoinArgs::new(JoinType::Left),
                );
        }
    }
    frame
        .sort(["__row"], SortMultipleOptions::default())
        .select([all().exclude_cols(["^__.*$"]).as_expr()])
        .collect()
}

/// Pings slower than this are stops, not traffic.
const MOVING_KMH: f64 = 5.0;

/// Moving pings an area and hour need before their congestion is believed.
pub const PROFILE_MIN_PINGS: u32 = 10;

/// Congestion learnt from pings (`timestamp`, `lat`, `lon`, `speed_kmh`): in each area (the
/// model's half-degree cells) and hour of the week (0 is Monday 00:00 UTC), the share of the
/// area's free-flow speed (the 85th percentile of its moving pings) that the median moving
/// ping lost. Columns `area_lat`, `area_lon` (cell indices), `hour_of_week`, `congestion`,
/// `pings`.
pub fn congestion_profile(pings: &DataFrame) -> PolarsResult<DataFrame> {
    let cell = |name: &str| {
        (col(name) / lit(super::AREA_CELL_DEG))
            .floor()
            .cast(DataType::Int32)
    };
    let at = col("timestamp").cast(DataType::Datetime(
        TimeUnit::Milliseconds,
        Some(TimeZone::UTC),
    ));
    let moving = pings
        .clone()
        .lazy()
        .filter(col("speed_kmh").gt(lit(MOVING_KMH)))
        .select([
            cell("lat").alias("area_lat"),
            cell("lon").alias("area_lon"),
            ((at.clone().dt().weekday().cast(DataType::UInt32) - lit(1u32)) * lit(24u32)
                + at.dt().hour().cast(DataType::UInt32))
            .alias("hour_of_week"),
            col("speed_kmh").cast(DataType::Float64),
        ]);
    let free_flow = moving
        .clone()
        .group_by([col("area_lat"), col("area_lon")])
        .agg([col("speed_kmh")
            .quantile(lit(0.85), QuantileMethod::Linear)
            .alias("free_flow_kmh")]);
    moving
        .group_by([col("area_lat"), col("area_lon"), col("hour_of_week")])
        .agg([
            col("speed_kmh").median().alias("median_kmh"),
            col("speed_kmh")
                .count()
                .cast(DataType::UInt32)
                .alias("pings"),
        ])
        .filter(col("pings").gt_eq(lit(PROFILE_MIN_PINGS)))
        .join(
            free_flow,
            [col("area_lat"), col("area_lon")],
            [col("area_lat"), col("area_lon")],
            JoinArgs::new(JoinType::Inner),
        )
        .select([
            col("area_lat"),
            col("area_lon"),
            col("hour_of_week"),
            (lit(1.0) - col("median_kmh") / col("free_flow_kmh"))
                .clip(lit(0.0), lit(1.0))
                .alias("congestion"),
            col("pings"),
        ])
        .sort(
            ["area_lat", "area_lon", "hour_of_week"],
            SortMultipleOptions::default(),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` pings at `speed` in an area near Lyon, at `hour` UTC on Monday 2026-11-30.
    fn pings(n: usize, hour: u32, speed: f64) -> DataFrame {
        let at = chrono::NaiveDate::from_ymd_opt(2026, 11, 30)
            .unwrap()
            .and_hms_opt(hour, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis();
        DataFrame::new(
            n,
            vec![
                Int64Chunked::from_vec(
                    "timestamp".into(),
                    (0..n as i64).map(|i| at + i * 60_000).collect(),
                )
                .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
                .into_column(),
                Column::new("lat".into(), vec![45.76; n]),
                Column::new("lon".into(), vec![4.84; n]),
                Column::new("speed_kmh".into(), vec![speed; n]),
            ],
        )
        .unwrap()
    }

    #[test]
    fn congestion_is_the_speed_lost_against_the_areas_free_flow() {
        let mut all = pings(20, 3, 90.0);
        for part in [pings(20, 8, 30.0), pings(40, 8, 2.0), pings(5, 12, 40.0)] {
            all.vstack_mut(&part).unwrap();
        }
        let profile = congestion_profile(&all).unwrap();
        let hours: Vec<u32> = profile
            .column("hour_of_week")
            .unwrap()
            .u32()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(
            hours,
            [3, 8],
            "the standing trucks and the thin hour are left out"
        );
        let congestion: Vec<f64> = profile
            .column("congestion")
            .unwrap()
            .f64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert!(congestion[0].abs() < 1e-9, "{congestion:?}");
        assert!(
            (congestion[1] - (1.0 - 30.0 / 90.0)).abs() < 1e-9,
            "{congestion:?}"
        );
        let area = profile.column("area_lat").unwrap().i32().unwrap().get(0);
        assert_eq!(area, Some(91), "45.76 / 0.5");
    }
}
