//! A multi-carrier world of trips, pings and the weather and traffic behind them.
//!
//! Deterministic for a seed: every trip draws from its own random stream, keyed by the seed,
//! its carrier and its index, so the output does not depend on how many threads made it.
//!
//! The generation here is pure; [`write_world`] is the edge that writes files.

pub mod conditions;
pub mod demo;
pub mod fleet;
pub mod trips;
pub mod world;

use std::path::Path;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use chrono_tz::Europe::Paris;
use polars::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::domain::calendar::BanCalendar;
use crate::domain::ids::splitmix;
use crate::domain::rules::Segment;
use crate::ml::history::files::{write_table, FileFormat};
use crate::ml::history::HistoryError;
use conditions::{weather_cell, Conditions, WEATHER_GRID_DEG};
use fleet::Carrier;
use trips::{Period, PingRecord, TripRecord, TripSimulator};
use world::{METROS, PLACES};

#[derive(Debug, Clone)]
pub struct SimulationConfig {
    pub carriers: usize,
    pub trips: usize,
    pub seed: u64,
    /// Share of trips that carry pings; 0 writes no pings table.
    pub ping_share: f64,
    pub period: Period,
    pub format: FileFormat,
    pub laws: Laws,
}

/// The laws of the simulated world, changed to try the model on a world that its rules prior
/// and its features were not built around: roads more winding, stops longer, trucks slower,
/// and a slowdown that grows over the period so that the later months (the ones an evaluation
/// tests on) run slower than the earlier ones it learns from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Laws {
    /// Multiplies each lane's road circuity.
    pub circuity: f64,
    /// Multiplies each dwell at a stop.
    pub dwell: f64,
    /// Multiplies each leg's driving time.
    pub driving: f64,
    /// Driving time added by the last day of the period, growing linearly from none on the
    /// first (0.1: the last day's legs take 10% longer).
    pub slowdown: f64,
}

impl Default for Laws {
    fn default() -> Self {
        Self {
            circuity: 1.0,
            dwell: 1.0,
            driving: 1.0,
            slowdown: 0.0,
        }
    }
}

/// One carrier's simulated history.
pub struct CarrierHistory {
    pub carrier: Carrier,
    pub trips: Vec<TripRecord>,
    /// What really happened on each trip: the rules engine's segments, by index into `trips`.
    pub segments: Vec<Vec<Segment>>,
    /// Pings of each trip, by index into `trips`.
    pub pings: Vec<(usize, Vec<PingRecord>)>,
}

pub fn trip_rng(seed: u64, carrier_idx: usize, trip_idx: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(splitmix(
        seed ^ splitmix(carrier_idx as u64 ^ splitmix(trip_idx as u64)),
    ))
}

/// Simulates one carrier's trips in parallel. `progress` is called with each finished trip count.
pub fn simulate_carrier(
    config: &SimulationConfig,
    carrier_idx: usize,
    carrier: &Carrier,
    progress: &(dyn Fn(u64) + Sync),
) -> CarrierHistory {
    let conditions = Conditions::new(config.seed);
    let bans = BanCalendar::default();
    let simulator = TripSimulator::new(&conditions, &bans, config.period).with_laws(config.laws);
    let results: Vec<(TripRecord, Vec<Segment>, Option<Vec<PingRecord>>)> = (0..carrier.n_trips)
        .into_par_iter()
        .map(|trip_idx| {
            let mut rng = trip_rng(config.seed, carrier_idx, trip_idx);
            let vehicle = carrier.vehicle(&mut rng);
            let lane = simulator.lane(carrier, vehicle, &mut rng);
            let departure = simulator.departure(&mut rng);
            let trip_id = format!("T{:07}", trip_idx + 1);
            let (record, timeline, legs) =
                simulator.trip(carrier, trip_id, vehicle, lane, departure, &mut rng);
            let with_pings = config.ping_share > 0.0
                && rand::Rng::random_bool(&mut rng, config.ping_share.min(1.0));
            let pings = with_pings.then(|| {
                trips::pings(
                    &record,
                    &timeline,
                    &legs,
                    carrier.ping_interval_minutes,
                    &mut rng,
                )
            });
            progress(1);
            (record, timeline.segments, pings)
        })
        .collect();
    let mut trips = Vec::with_capacity(results.len());
    let mut segments = Vec::with_capacity(results.len());
    let mut pings = Vec::new();
    for (trip_idx, (record, trip_segments, trip_pings)) in results.into_iter().enumerate() {
        trips.push(record);
        segments.push(trip_segments);
        if let Some(trip_pings) = trip_pings {
            pings.push((trip_idx, trip_pings));
        }
    }
    CarrierHistory {
        carrier: carrier.clone(),
        trips,
        segments,
        pings,
    }
}

pub fn fleet(config: &SimulationConfig) -> Vec<Carrier> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    fleet::carriers(config.carriers, config.trips, &mut rng)
}

fn timestamp_column(name: &str, instants: &[DateTime<Utc>], format: FileFormat) -> Column {
    match format {
        FileFormat::Parquet => Int64Chunked::from_vec(
            name.into(),
            instants.iter().map(DateTime::timestamp_millis).collect(),
        )
        .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::from_chrono(&Paris)))
        .into_column(),
        FileFormat::CsvGz => Column::new(
            name.into(),
            instants
                .iter()
                .map(|instant| {
                    instant
                        .with_timezone(&Paris)
                        .to_rfc3339_opts(SecondsFormat::Secs, true)
                })
                .collect::<Vec<_>>(),
        ),
    }
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// The trips table in the history schema.
pub fn trips_frame(trips: &[TripRecord], format: FileFormat) -> PolarsResult<DataFrame> {
    let floats = |name: &str, value: &dyn Fn(&TripRecord) -> f64| {
        Column::new(name.into(), trips.iter().map(value).collect::<Vec<f64>>())
    };
    DataFrame::new(
        trips.len(),
        vec![
            Column::new(
                "trip_id".into(),
                trips.iter().map(|t| t.trip_id.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "vehicle_class".into(),
                trips.iter().map(|t| t.vehicle.as_str()).collect::<Vec<_>>(),
            ),
            floats("origin_lat", &|t| round(t.origin.lat(), 5)),
            floats("origin_lon", &|t| round(t.origin.lon(), 5)),
            floats("destination_lat", &|t| round(t.destination.lat(), 5)),
            floats("destination_lon", &|t| round(t.destination.lon(), 5)),
            timestamp_column(
                "departure_time",
                &trips.iter().map(|t| t.departure).collect::<Vec<_>>(),
                format,
            ),
            timestamp_column(
                "arrival_time",
                &trips.iter().map(|t| t.arrival).collect::<Vec<_>>(),
                format,
            ),
            floats("distance_km", &|t| t.distance_km),
            Column::new(
                "stops".into(),
                trips.iter().map(|t| t.stops).collect::<Vec<u32>>(),
            ),
            floats("dwell_minutes", &|t| t.dwell_minutes),
            floats("load_tonnes", &|t| t.load_tonnes),
        ],
    )
}

/// The pings table in the history schema.
pub fn pings_frame(history: &CarrierHistory, format: FileFormat) -> PolarsResult<DataFrame> {
    let n_pings: usize = history.pings.iter().map(|(_, pings)| pings.len()).sum();
    let mut trip_ids = Vec::with_capacity(n_pings);
    let mut instants = Vec::with_capacity(n_pings);
    let (mut lats, mut lons, mut speeds) = (
        Vec::with_capacity(n_pings),
        Vec::with_capacity(n_pings),
        Vec::with_capacity(n_pings),
    );
    for (trip_idx, pings) in &history.pings {
        let trip_id = history.trips[*trip_idx].trip_id.as_str();
        for ping in pings {
            trip_ids.push(trip_id);
            instants.push(ping.timestamp);
            lats.push(round(ping.lat, 6));
            lons.push(round(ping.lon, 6));
            speeds.push(ping.speed_kmh);
        }
    }
    DataFrame::new(
        n_pings,
        vec![
            Column::new("trip_id".into(), trip_ids),
            timestamp_column("timestamp", &instants, format),
            Column::new("lat".into(), lats),
            Column::new("lon".into(), lons),
            Column::new("speed_kmh".into(), speeds),
        ],
    )
}

/// The truth behind each trip, which no carrier has: every drive, break, rest, dwell and ban
/// wait the rules engine laid out. For analysis, not for training.
pub fn segments_frame(history: &CarrierHistory, format: FileFormat) -> PolarsResult<DataFrame> {
    let rows: Vec<(&str, &Segment)> = history
        .segments
        .iter()
        .zip(&history.trips)
        .flat_map(|(segments, trip)| {
            segments
                .iter()
                .map(move |segment| (trip.trip_id.as_str(), segment))
        })
        .collect();
    DataFrame::new(
        rows.len(),
        vec![
            Column::new(
                "trip_id".into(),
                rows.iter().map(|row| row.0).collect::<Vec<_>>(),
            ),
            Column::new(
                "kind".into(),
                rows.iter()
                    .map(|row| row.1.kind.as_str())
                    .collect::<Vec<_>>(),
            ),
            timestamp_column(
                "start",
                &rows.iter().map(|row| row.1.start).collect::<Vec<_>>(),
                format,
            ),
            timestamp_column(
                "end",
                &rows.iter().map(|row| row.1.end).collect::<Vec<_>>(),
                format,
            ),
        ],
    )
}

/// Hours from one day before the period to fifteen days after it, so that every trip's span
/// is covered.
fn observation_hours(period: Period) -> Vec<DateTime<Utc>> {
    let start = (period.start - TimeDelta::days(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    let n_hours = (i64::from(period.days) + 16) * 24;
    (0..n_hours)
        .map(|hour| start + TimeDelta::hours(hour))
        .collect()
}

/// A cell's centre, an hour, and its weather.
type WeatherRow = (f64, f64, DateTime<Utc>, conditions::Weather);

/// Hourly weather on every grid cell that covers the places, in Open-Meteo's variables.
pub fn weather_frame(conditions: &Conditions, period: Period) -> PolarsResult<DataFrame> {
    let mut cells: Vec<(f64, f64)> = Vec::new();
    let (min_lat, max_lat) = PLACES.iter().fold((90f64, -90f64), |(lo, hi), p| {
        (lo.min(p.lat), hi.max(p.lat))
    });
    let (min_lon, max_lon) = PLACES.iter().fold((180f64, -180f64), |(lo, hi), p| {
        (lo.min(p.lon), hi.max(p.lon))
    });
    let mut lat = weather_cell(min_lat, 0.0).0;
    while lat <= max_lat + WEATHER_GRID_DEG / 2.0 {
        let mut lon = weather_cell(0.0, min_lon).1;
        while lon <= max_lon + WEATHER_GRID_DEG / 2.0 {
            cells.push((lat, lon));
            lon += WEATHER_GRID_DEG;
        }
        lat += WEATHER_GRID_DEG;
    }
    let hours = observation_hours(period);
    let rows: Vec<_> = cells
        .par_iter()
        .flat_map_iter(|&(lat, lon)| {
            hours
                .iter()
                .map(move |&hour| (lat, lon, hour, conditions.weather(lat, lon, hour)))
        })
        .collect();
    let column = |name: &str, value: &dyn Fn(&WeatherRow) -> f64| {
        Column::new(name.into(), rows.iter().map(value).collect::<Vec<f64>>())
    };
    DataFrame::new(
        rows.len(),
        vec![
            column("cell_lat", &|row| row.0),
            column("cell_lon", &|row| row.1),
            Int64Chunked::from_vec(
                "time".into(),
                rows.iter().map(|row| row.2.timestamp_millis()).collect(),
            )
            .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
            .into_column(),
            column("temperature_2m", &|row| row.3.temperature_2m),
            column("precipitation", &|row| row.3.precipitation),
            column("snowfall", &|row| row.3.snowfall),
            column("wind_speed_10m", &|row| row.3.wind_speed_10m),
            column("visibility", &|row| row.3.visibility),
        ],
    )
}

/// Hourly congestion of every metropolitan area: the share of free-flow speed lost, and its
/// complement, the ratio of current to free-flow speed that traffic feeds report.
pub fn traffic_frame(conditions: &Conditions, period: Period) -> PolarsResult<DataFrame> {
    let hours = observation_hours(period);
    let rows: Vec<(usize, DateTime<Utc>, f64)> = (0..METROS.len())
        .into_par_iter()
        .flat_map_iter(|metro_idx| {
            hours.iter().map(move |&hour| {
                (
                    metro_idx,
                    hour,
                    conditions.congestion(metro_idx, &METROS[metro_idx], hour),
                )
            })
        })
        .collect();
    DataFrame::new(
        rows.len(),
        vec![
            Column::new(
                "metro".into(),
                rows.iter()
                    .map(|row| METROS[row.0].name)
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "lat".into(),
                rows.iter().map(|row| METROS[row.0].lat).collect::<Vec<_>>(),
            ),
            Column::new(
                "lon".into(),
                rows.iter().map(|row| METROS[row.0].lon).collect::<Vec<_>>(),
            ),
            Int64Chunked::from_vec(
                "time".into(),
                rows.iter().map(|row| row.1.timestamp_millis()).collect(),
            )
            .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
            .into_column(),
            Column::new(
                "congestion".into(),
                rows.iter().map(|row| round(row.2, 3)).collect::<Vec<_>>(),
            ),
            Column::new(
                "speed_ratio".into(),
                rows.iter()
                    .map(|row| round(1.0 - row.2, 3))
                    .collect::<Vec<_>>(),
            ),
        ],
    )
}

/// What a simulation wrote.
#[derive(Debug, Clone, Default)]
pub struct SimulationSummary {
    pub carriers: Vec<(String, usize, usize)>,
    pub trips: usize,
    pub pings: usize,
}

/// Simulates the world and writes it under `out`: one directory per carrier with `trips` and
/// `pings`, and `weather` and `traffic` beside them.
pub fn write_world(
    config: &SimulationConfig,
    out: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<SimulationSummary, HistoryError> {
    let unwritable = |reason: String| HistoryError::Unwritable {
        path: out.display().to_string(),
        reason,
    };
    std::fs::create_dir_all(out).map_err(|error| unwritable(error.to_string()))?;
    // Builds a table and writes it as `directory/name.<extension>`; returns its row count.
    let write = |frame: PolarsResult<DataFrame>, directory: &Path, name: &str| {
        let mut frame = frame.map_err(|error| unwritable(error.to_string()))?;
        let path = directory.join(format!("{name}.{}", config.format.extension()));
        write_table(&mut frame, &path, config.format)?;
        Ok::<usize, HistoryError>(frame.height())
    };
    let mut summary = SimulationSummary::default();
    for (carrier_idx, carrier) in fleet(config).iter().enumerate() {
        let history = simulate_carrier(config, carrier_idx, carrier, progress);
        let directory = out.join(&carrier.name);
        std::fs::create_dir_all(&directory).map_err(|error| unwritable(error.to_string()))?;
        write(
            trips_frame(&history.trips, config.format),
            &directory,
            "trips",
        )?;
        write(
            segments_frame(&history, config.format),
            &directory,
            "segments",
        )?;
        let n_pings = if config.ping_share > 0.0 {
            write(pings_frame(&history, config.format), &directory, "pings")?
        } else {
            0
        };
        summary.trips += history.trips.len();
        summary.pings += n_pings;
        summary
            .carriers
            .push((carrier.name.clone(), history.trips.len(), n_pings));
    }
    let conditions = Conditions::new(config.seed);
    write(weather_frame(&conditions, config.period), out, "weather")?;
    write(traffic_frame(&conditions, config.period), out, "traffic")?;
    Ok(summary)
}

#[cfg(test)]
mod tests;
