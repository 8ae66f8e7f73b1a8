//! Weather and congestion joined onto trips, as [`super::CONDITION_COLUMNS`].
//!
//! Weather is looked up in the 2-degree cell of the route's midpoint, at the hour the truck is
//! expected there; congestion at the metropolitan area nearest each end, at the hour the truck
//! leaves and the hour it is expected to arrive. The expected times use a plain 70 km/h on
//! 1.2 times the crow-flies distance: the join must not depend on the model it feeds.

use std::collections::HashMap;

use chrono::Utc;
use polars::prelude::*;

use super::{crow_km, crow_km_of};
use crate::domain::eta::{Conditions, EtaQuery};

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
    let mut frame = with_join_keys(trips);
    if let Some(weather) = weather {
        frame = join_weather(frame, weather);
    }
    if let Some(traffic) = traffic {
        frame = join_traffic(frame, traffic);
    }
    frame
        .sort(["__row"], SortMultipleOptions::default())
        .select([all().exclude_cols(["^__.*$"]).as_expr()])
        .collect()
}

/// Milliseconds since the epoch in UTC: the one time type the joins compare.
fn utc_millis() -> DataType {
    DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
}

/// The planning time to `fraction` of the route, as a duration (see the module's note: the
/// join must not depend on the model).
fn planned_offset(fraction: f64) -> Expr {
    (crow_km(
        "origin_lat",
        "origin_lon",
        "destination_lat",
        "destination_lon",
    ) * lit(PLANNING_CIRCUITY * fraction * 3_600_000.0 / PLANNING_KMH))
    .cast(DataType::Int64)
    .cast(DataType::Duration(TimeUnit::Milliseconds))
}

/// The UTC hour the truck is expected at `offset` after departure: weather and traffic are
/// hourly.
fn expected_hour(offset: Expr) -> Expr {
    (col("departure_time").cast(utc_millis()) + offset)
        .dt()
        .truncate(lit("1h"))
}

/// [`cell_key`] as an expression: an integer key, so that the cells of trips and of the
/// weather frame meet exactly.
fn cell_key_expr(value: Expr) -> Expr {
    (((value / lit(WEATHER_CELL_DEG)).floor() + lit(0.5)) * lit(WEATHER_CELL_DEG * 10.0))
        .round(0, RoundMode::HalfToEven)
        .cast(DataType::Int32)
}

/// The trips with what the joins match on: the weather cell of the route's midpoint, the hours
/// at the middle and both ends, and a row index that restores the trips' order afterwards.
fn with_join_keys(trips: DataFrame) -> LazyFrame {
    trips.lazy().with_row_index("__row", None).with_columns([
        cell_key_expr((col("origin_lat") + col("destination_lat")) / lit(2.0)).alias("__cell_lat"),
        cell_key_expr((col("origin_lon") + col("destination_lon")) / lit(2.0)).alias("__cell_lon"),
        expected_hour(planned_offset(0.5)).alias("__mid_hour"),
        expected_hour(lit(0).cast(DataType::Duration(TimeUnit::Milliseconds)))
            .alias("__start_hour"),
        expected_hour(planned_offset(1.0)).alias("__end_hour"),
    ])
}

/// The weather of the midpoint's cell at the hour the truck is expected there.
fn join_weather(frame: LazyFrame, weather: &DataFrame) -> LazyFrame {
    let mut columns = vec![
        cell_key_expr(col("cell_lat")).alias("__cell_lat"),
        cell_key_expr(col("cell_lon")).alias("__cell_lon"),
        col("time").cast(utc_millis()).alias("__mid_hour"),
    ];
    columns.extend(WEATHER_VARIABLES.iter().map(|name| col(*name)));
    let hourly = weather.clone().lazy().select(columns);
    let keys = [col("__cell_lat"), col("__cell_lon"), col("__mid_hour")];
    frame.join(hourly, keys.clone(), keys, JoinArgs::new(JoinType::Left))
}

/// Congestion near each end: near the origin at the hour the truck leaves, near the
/// destination at the hour it is expected to arrive.
fn join_traffic(mut frame: LazyFrame, traffic: &DataFrame) -> LazyFrame {
    let hourly = traffic.clone().lazy().select([
        col("metro"),
        col("time").cast(utc_millis()),
        col("congestion"),
    ]);
    // Each area's centre is its first row's.
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
        let nearest = nearest_metro(&frame, metros.clone(), end, lat, lon);
        frame = join_congestion(frame, nearest, hourly.clone(), end, hour);
    }
    frame
}

/// The area nearest one end (`lat`, `lon`) of each trip, by `__row`, as `__{end}_metro`: a
/// cross join, since areas are few.
fn nearest_metro(
    frame: &LazyFrame,
    metros: LazyFrame,
    end: &str,
    lat: &str,
    lon: &str,
) -> LazyFrame {
    frame
        .clone()
        .select([
            col("__row"),
            col(lat).alias("__lat"),
            col(lon).alias("__lon"),
        ])
        .cross_join(metros, None)
        .with_column(crow_km("__lat", "__lon", "lat", "lon").alias("__km"))
        .group_by([col("__row")])
        .agg([col("metro")
            .sort_by([col("__km")], SortMultipleOptions::default())
            .first()
            .alias(format!("__{end}_metro"))])
}

/// `{end}_congestion`: the congestion of the area `nearest` found, at the end's `hour`.
fn join_congestion(
    frame: LazyFrame,
    nearest: LazyFrame,
    hourly: LazyFrame,
    end: &str,
    hour: &str,
) -> LazyFrame {
    let metro = format!("__{end}_metro");
    let name = format!("{end}_congestion");
    frame
        .join(
            nearest,
            [col("__row")],
            [col("__row")],
            JoinArgs::new(JoinType::Left),
        )
        .join(
            hourly.select([
                col("metro").alias(metro.as_str()),
                col("time").alias(hour),
                col("congestion").alias(name.as_str()),
            ]),
            [col(metro.as_str()), col(hour)],
            [col(metro.as_str()), col(hour)],
            JoinArgs::new(JoinType::Left),
        )
}

/// One cell's hourly weather, keyed by UTC hour in milliseconds: what [`conditions_of`] reads
/// for a single query, built from a weather frame (as [`with_conditions`] takes it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HourlyWeather {
    pub cell_lat: f64,
    pub cell_lon: f64,
    pub hours: HashMap<i64, [Option<f64>; 5]>,
}

/// The weather frame's variables, in the order of [`super::CONDITION_COLUMNS`].
const WEATHER_VARIABLES: [&str; 5] = [
    "temperature_2m",
    "precipitation",
    "snowfall",
    "wind_speed_10m",
    "visibility",
];

impl HourlyWeather {
    /// The cells of a weather frame; the first row of a cell and hour wins, as in the join.
    pub fn from_frame(frame: &DataFrame) -> PolarsResult<Vec<Self>> {
        let float = |name: &str| super::float_values(frame, name);
        let (lats, lons) = (float("cell_lat")?, float("cell_lon")?);
        let times: Vec<Option<i64>> = frame
            .column("time")?
            .cast(&utc_millis())?
            .datetime()?
            .phys
            .iter()
            .collect();
        let variables = WEATHER_VARIABLES
            .iter()
            .map(|name| float(name))
            .collect::<PolarsResult<Vec<_>>>()?;
        let mut cells: Vec<Self> = Vec::new();
        for row in 0..frame.height() {
            let (Some(lat), Some(lon), Some(time)) = (lats[row], lons[row], times[row]) else {
                continue;
            };
            let position = match cells.iter().position(|cell| {
                cell_key(cell.cell_lat) == cell_key(lat) && cell_key(cell.cell_lon) == cell_key(lon)
            }) {
                Some(position) => position,
                None => {
                    cells.push(Self {
                        cell_lat: lat,
                        cell_lon: lon,
                        hours: HashMap::new(),
                    });
                    cells.len() - 1
                }
            };
            cells[position]
                .hours
                .entry(time)
                .or_insert_with(|| std::array::from_fn(|index| variables[index][row]));
        }
        Ok(cells)
    }
}

/// A congestion value of an area (named `metro`, centred at `lat`, `lon`) for one UTC hour in
/// milliseconds: a row of the traffic frame.
#[derive(Debug, Clone, PartialEq)]
pub struct CongestionAt {
    pub metro: String,
    pub lat: f64,
    pub lon: f64,
    pub hour_ms: i64,
    pub congestion: f64,
}

/// The conditions of one query, by the same rules and arithmetic as [`with_conditions`] but
/// without a frame: serving answers one ETA in microseconds instead of a join's milliseconds.
/// A test holds the two equal on random trips, weather and congestion.
pub fn conditions_of(
    query: &EtaQuery,
    weather: &[&HourlyWeather],
    traffic: &[CongestionAt],
) -> Conditions {
    let (origin, destination) = (query.origin, query.destination);
    let km = crow_km_of(
        origin.lat(),
        origin.lon(),
        destination.lat(),
        destination.lon(),
    );
    let departure_ms = query.departure.with_timezone(&Utc).timestamp_millis();
    let hour_of = |fraction: f64| {
        let offset = (km * (PLANNING_CIRCUITY * fraction * 3_600_000.0 / PLANNING_KMH)) as i64;
        (departure_ms + offset).div_euclid(HOUR_MS) * HOUR_MS
    };
    let mut found = Conditions::default();
    if let Some(values) = weather_at(
        weather,
        (origin.lat() + destination.lat()) / 2.0,
        (origin.lon() + destination.lon()) / 2.0,
        hour_of(0.5),
    ) {
        [
            found.temperature_2m,
            found.precipitation,
            found.snowfall,
            found.wind_speed_10m,
            found.visibility,
        ] = values;
    }
    let metros = area_centres(traffic);
    let congestion = |metro: Option<&str>, hour: i64| {
        let metro = metro?;
        traffic
            .iter()
            .find(|row| row.metro == metro && row.hour_ms == hour)
            .map(|row| row.congestion)
    };
    found.origin_congestion = congestion(
        nearest_area(&metros, origin.lat(), origin.lon()),
        departure_ms.div_euclid(HOUR_MS) * HOUR_MS,
    );
    found.destination_congestion = congestion(
        nearest_area(&metros, destination.lat(), destination.lon()),
        hour_of(1.0),
    );
    found
}

/// The weather of the cell holding (`lat`, `lon`) at `hour_ms`, as the join's cell keys match.
fn weather_at(
    weather: &[&HourlyWeather],
    lat: f64,
    lon: f64,
    hour_ms: i64,
) -> Option<[Option<f64>; 5]> {
    let (cell_lat, cell_lon) = (cell_key(lat), cell_key(lon));
    weather
        .iter()
        .filter(|cell| cell_key(cell.cell_lat) == cell_lat && cell_key(cell.cell_lon) == cell_lon)
        .find_map(|cell| cell.hours.get(&hour_ms))
        .copied()
}

/// The areas of the traffic rows, each centred at its first row's position, as the join's
/// `first()`.
fn area_centres(traffic: &[CongestionAt]) -> Vec<(&str, f64, f64)> {
    let mut metros: Vec<(&str, f64, f64)> = Vec::new();
    for row in traffic {
        if !metros.iter().any(|(metro, _, _)| *metro == row.metro) {
            metros.push((&row.metro, row.lat, row.lon));
        }
    }
    metros
}

/// The area whose centre is nearest (`lat`, `lon`), on the same haversine as the join's.
fn nearest_area<'a>(metros: &[(&'a str, f64, f64)], lat: f64, lon: f64) -> Option<&'a str> {
    metros
        .iter()
        .map(|(metro, metro_lat, metro_lon)| (*metro, crow_km_of(lat, lon, *metro_lat, *metro_lon)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(metro, _)| metro)
}

const HOUR_MS: i64 = 3_600_000;

/// The weather cell's join key of a coordinate, as [`with_conditions`] computes it.
fn cell_key(value: f64) -> i32 {
    (((value / WEATHER_CELL_DEG).floor() + 0.5) * (WEATHER_CELL_DEG * 10.0)).round_ties_even()
        as i32
}

/// The conditions of queries by the frame path: each query's row through [`with_conditions`],
/// as training rows go. [`conditions_of`] must agree with it.
pub fn joined_conditions(
    queries: &[EtaQuery],
    weather: Option<&DataFrame>,
    traffic: Option<&DataFrame>,
) -> PolarsResult<Vec<Conditions>> {
    let mut frames = queries
        .iter()
        .map(|query| super::query_frame(query, "", 0.0));
    let Some(first) = frames.next() else {
        return Ok(Vec::new());
    };
    let mut trips = first?;
    for frame in frames {
        trips.vstack_mut_owned(frame?)?;
    }
    // The join fills these; the queries' own (missing) values must not shadow them.
    let trips = trips.drop_many(super::CONDITION_COLUMNS);
    let joined = with_conditions(trips, weather, traffic)?;
    // A frame joined without weather or without traffic leaves those columns out.
    let columns: Vec<Vec<Option<f64>>> = super::CONDITION_COLUMNS
        .iter()
        .map(|name| super::optional_float_values(&joined, name))
        .collect::<PolarsResult<_>>()?;
    Ok((0..joined.height())
        .map(|row| Conditions::from_values(std::array::from_fn(|index| columns[index][row])))
        .collect())
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
    let at = col("timestamp").cast(utc_millis());
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

    /// The single-query path gives what the join gives, on random trips across France and
    /// beyond the data (cells and hours missing), with weather of several cells and congestion
    /// of several areas.
    #[test]
    fn one_query_without_a_frame_agrees_with_the_join() {
        use crate::domain::eta::EtaQuery;
        use crate::domain::geo::GeoPoint;
        use rand::{Rng, SeedableRng};

        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let start = chrono::NaiveDate::from_ymd_opt(2026, 12, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        let hours: Vec<i64> = (0..48)
            .map(|hour| (start + chrono::TimeDelta::hours(hour)).timestamp_millis())
            .collect();
        // Weather: cells centred on odd degrees (the 2-degree grid) over France, some hours
        // missing, some values null.
        let (mut lats, mut lons, mut times) = (Vec::new(), Vec::new(), Vec::new());
        let mut variables: Vec<Vec<Option<f64>>> = vec![Vec::new(); 5];
        for cell_lat in [43.0, 45.0, 47.0, 49.0] {
            for cell_lon in [-1.0, 1.0, 3.0, 5.0] {
                for &time in &hours {
                    if rng.random_bool(0.1) {
                        continue;
                    }
                    lats.push(cell_lat);
                    lons.push(cell_lon);
                    times.push(time);
                    for values in &mut variables {
                        values.push(rng.random_bool(0.9).then(|| rng.random_range(-5.0..30.0)));
                    }
                }
            }
        }
        let mut columns = vec![
            Column::new("cell_lat".into(), lats),
            Column::new("cell_lon".into(), lons),
            Int64Chunked::from_vec("time".into(), times)
                .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
                .into_column(),
        ];
        for (name, values) in WEATHER_VARIABLES.iter().zip(variables) {
            columns.push(Column::new((*name).into(), values));
        }
        let weather = DataFrame::new(columns[0].len(), columns).unwrap();
        // Congestion: half-degree areas, some hours each.
        let mut traffic = Vec::new();
        for (name, lat, lon) in [
            ("lille", 50.75, 3.25),
            ("paris", 48.75, 2.25),
            ("lyon", 45.75, 4.75),
            ("marseille", 43.25, 5.25),
            ("bordeaux", 44.75, -0.75),
        ] {
            for &time in hours.iter().step_by(2) {
                traffic.push(CongestionAt {
                    metro: name.into(),
                    lat,
                    lon,
                    hour_ms: time,
                    congestion: rng.random_range(0.0..1.0),
                });
            }
        }
        let traffic_frame = DataFrame::new(
            traffic.len(),
            vec![
                Column::new(
                    "metro".into(),
                    traffic
                        .iter()
                        .map(|row| row.metro.as_str())
                        .collect::<Vec<_>>(),
                ),
                Column::new(
                    "lat".into(),
                    traffic.iter().map(|row| row.lat).collect::<Vec<_>>(),
                ),
                Column::new(
                    "lon".into(),
                    traffic.iter().map(|row| row.lon).collect::<Vec<_>>(),
                ),
                Int64Chunked::from_vec(
                    "time".into(),
                    traffic.iter().map(|row| row.hour_ms).collect(),
                )
                .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
                .into_column(),
                Column::new(
                    "congestion".into(),
                    traffic.iter().map(|row| row.congestion).collect::<Vec<_>>(),
                ),
            ],
        )
        .unwrap();
        let queries: Vec<EtaQuery> = (0..400)
            .map(|_| {
                let point = |rng: &mut rand_chacha::ChaCha8Rng| {
                    GeoPoint::new(rng.random_range(41.0..52.0), rng.random_range(-3.0..9.0))
                        .unwrap()
                };
                let offset = chrono::TimeDelta::seconds(rng.random_range(-6 * 3600..50 * 3600));
                EtaQuery {
                    origin: point(&mut rng),
                    destination: point(&mut rng),
                    departure: (start + offset).fixed_offset(),
                    vehicle: crate::domain::vehicle::VehicleClass::Articulated,
                    stops: Vec::new(),
                    driver: Default::default(),
                    context: Default::default(),
                }
            })
            .collect();
        let joined = joined_conditions(&queries, Some(&weather), Some(&traffic_frame)).unwrap();
        let cells = HourlyWeather::from_frame(&weather).unwrap();
        let cells: Vec<&HourlyWeather> = cells.iter().collect();
        let mut found = 0;
        for (query, expected) in queries.iter().zip(&joined) {
            let direct = conditions_of(query, &cells, &traffic);
            assert_eq!(&direct, expected, "{query:?}");
            found += usize::from(direct.temperature_2m.is_some());
            found += usize::from(direct.destination_congestion.is_some());
        }
        assert!(found > 200, "the trips meet the data: {found}");
        // Without data, nothing.
        let none = conditions_of(&queries[0], &[], &[]);
        assert_eq!(none, Conditions::default());
    }
}
