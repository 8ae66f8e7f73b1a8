//! Open-Meteo's API: the forecast for live ETAs, the archive for histories. Both answer
//! `{latitude, longitude, ..., hourly: {time: [...], <variable>: [...]}, hourly_units: {...}}`
//! with times like `2025-09-08T00:00` in the requested zone (UTC here), and errors as
//! `{"error": true, "reason": "..."}`.

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveDateTime};
use polars::prelude::*;
use serde::Deserialize;

use super::guard::{send, FeedError};
use crate::ml::features::conditions::WEATHER_CELL_DEG;
use crate::ml::features::{departure_millis, float_values};

/// The hourly variables asked for, as the model's features name them.
pub const HOURLY: [&str; 5] = [
    "temperature_2m",
    "precipitation",
    "snowfall",
    "wind_speed_10m",
    "visibility",
];

/// A cell of the weather grid, by its centre in tenths of a degree (an exact key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cell {
    pub lat_tenths: i32,
    pub lon_tenths: i32,
}

impl Cell {
    /// The cell holding a point; the same centres as the training join's.
    pub fn of(lat: f64, lon: f64) -> Self {
        let centre = |value: f64| {
            (((value / WEATHER_CELL_DEG).floor() + 0.5) * WEATHER_CELL_DEG * 10.0).round() as i32
        };
        Self {
            lat_tenths: centre(lat),
            lon_tenths: centre(lon),
        }
    }

    pub fn lat(self) -> f64 {
        f64::from(self.lat_tenths) / 10.0
    }

    pub fn lon(self) -> f64 {
        f64::from(self.lon_tenths) / 10.0
    }
}

#[derive(Deserialize)]
struct Answer {
    hourly: Hourly,
}

#[derive(Deserialize)]
struct Hourly {
    time: Vec<String>,
    #[serde(flatten)]
    variables: HashMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct Refusal {
    reason: String,
}

/// The weather frame of one cell (`cell_lat`, `cell_lon`, `time`, [`HOURLY`]) from an
/// Open-Meteo answer. A variable the answer lacks is null; a body that is not the format, or
/// whose columns differ in length, is refused.
pub fn hourly_frame(body: &[u8], cell: Cell) -> Result<DataFrame, FeedError> {
    let malformed = |reason: String| FeedError::Malformed(format!("Open-Meteo: {reason}"));
    if let Ok(refusal) = serde_json::from_slice::<Refusal>(body) {
        return Err(malformed(refusal.reason));
    }
    let answer: Answer =
        serde_json::from_slice(body).map_err(|error| malformed(error.to_string()))?;
    let hours = answer.hourly.time.len();
    let times = answer
        .hourly
        .time
        .iter()
        .map(|text| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
                .map(|time| time.and_utc().timestamp_millis())
                .map_err(|_| malformed(format!("time {text:?} is not YYYY-MM-DDTHH:MM")))
        })
        .collect::<Result<Vec<i64>, _>>()?;
    let mut columns = vec![
        Column::new("cell_lat".into(), vec![cell.lat(); hours]),
        Column::new("cell_lon".into(), vec![cell.lon(); hours]),
        Int64Chunked::from_vec("time".into(), times)
            .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
            .into_column(),
    ];
    for name in HOURLY {
        let values: Vec<Option<f64>> = match answer.hourly.variables.get(name) {
            Some(serde_json::Value::Array(values)) => {
                values.iter().map(serde_json::Value::as_f64).collect()
            }
            Some(_) => return Err(malformed(format!("{name} is not a list"))),
            None => vec![None; hours],
        };
        if values.len() != hours {
            return Err(malformed(format!(
                "{name} has {} values for {hours} hours",
                values.len()
            )));
        }
        columns.push(Column::new(name.into(), values));
    }
    DataFrame::new(hours, columns).map_err(|error| malformed(error.to_string()))
}

pub struct OpenMeteo {
    client: reqwest::Client,
    base: String,
}

impl OpenMeteo {
    pub fn new(client: reqwest::Client, base: &str) -> Self {
        Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// Yesterday to a week ahead, hourly, at the cell's centre.
    pub async fn forecast(&self, cell: Cell) -> Result<DataFrame, FeedError> {
        let url = format!("{}/v1/forecast", self.base);
        let query = self.query(
            cell,
            &[("past_days", "1".into()), ("forecast_days", "7".into())],
        );
        self.get(&url, &query, cell).await
    }

    /// The weather that was, hourly, from `start` to `end` inclusive.
    pub async fn archive(
        &self,
        cell: Cell,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<DataFrame, FeedError> {
        let url = format!("{}/v1/archive", self.base);
        let query = self.query(
            cell,
            &[
                ("start_date", start.to_string()),
                ("end_date", end.to_string()),
            ],
        );
        self.get(&url, &query, cell).await
    }

    fn query(&self, cell: Cell, extra: &[(&str, String)]) -> Vec<(String, String)> {
        let mut query = vec![
            ("latitude".to_owned(), cell.lat().to_string()),
            ("longitude".to_owned(), cell.lon().to_string()),
            ("hourly".to_owned(), HOURLY.join(",")),
            ("timezone".to_owned(), "UTC".to_owned()),
        ];
        query.extend(
            extra
                .iter()
                .map(|(key, value)| ((*key).to_owned(), value.clone())),
        );
        query
    }

    async fn get(
        &self,
        url: &str,
        query: &[(String, String)],
        cell: Cell,
    ) -> Result<DataFrame, FeedError> {
        let request = self.client.get(url).query(query);
        hourly_frame(&send(request, "Open-Meteo").await?, cell)
    }
}

/// The cells the middles of these trips' routes fall in, each with the first and last day a
/// truck could be there (departure day to two days after the last departure).
pub fn cells_and_days(trips: &[&DataFrame]) -> PolarsResult<Vec<(Cell, NaiveDate, NaiveDate)>> {
    let mut spans: std::collections::BTreeMap<Cell, (i64, i64)> = Default::default();
    for frame in trips {
        let number = |name: &str| float_values(frame, name);
        let (o_lat, o_lon) = (number("origin_lat")?, number("origin_lon")?);
        let (d_lat, d_lon) = (number("destination_lat")?, number("destination_lon")?);
        for (row, departure) in departure_millis(frame)?.into_iter().enumerate() {
            let (Some(a), Some(b), Some(c), Some(d), Some(at)) =
                (o_lat[row], o_lon[row], d_lat[row], d_lon[row], departure)
            else {
                continue;
            };
            let span = spans
                .entry(Cell::of((a + c) / 2.0, (b + d) / 2.0))
                .or_insert((at, at));
            span.0 = span.0.min(at);
            span.1 = span.1.max(at);
        }
    }
    Ok(spans
        .into_iter()
        .filter_map(|(cell, (first, last))| {
            let day =
                |ms: i64| chrono::DateTime::from_timestamp_millis(ms).map(|at| at.date_naive());
            Some((cell, day(first)?, day(last)? + chrono::TimeDelta::days(2)))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_becomes_the_cells_frame_and_a_refusal_says_why() {
        let body = r#"{"latitude":47.0,"longitude":5.0,"elevation":250.0,"generationtime_ms":0.1,
            "utc_offset_seconds":0,"timezone":"UTC","timezone_abbreviation":"UTC",
            "hourly":{"time":["2026-01-10T06:00","2026-01-10T07:00"],
                      "temperature_2m":[-3.5,-3.1],"precipitation":[1.2,null],"snowfall":[2.1,1.4],
                      "wind_speed_10m":[22.0,25.0],"visibility":[800.0,1200.0]},
            "hourly_units":{"time":"iso8601","temperature_2m":"°C"}}"#
            .as_bytes();
        let cell = Cell::of(47.3, 5.9);
        assert_eq!((cell.lat(), cell.lon()), (47.0, 5.0));
        let frame = hourly_frame(body, cell).unwrap();
        assert_eq!(frame.height(), 2);
        let snow = frame.column("snowfall").unwrap().f64().unwrap();
        assert_eq!(snow.get(0), Some(2.1));
        let rain = frame.column("precipitation").unwrap().f64().unwrap();
        assert_eq!(rain.get(1), None);

        let refusal = br#"{"error":true,"reason":"Cannot initialize WeatherVariable from invalid String value"}"#;
        let error = hourly_frame(refusal, cell).unwrap_err();
        assert!(error.to_string().contains("invalid String"), "{error}");
        let short = br#"{"hourly":{"time":["2026-01-10T06:00"],"snowfall":[1.0,2.0]}}"#;
        assert!(matches!(
            hourly_frame(short, cell),
            Err(FeedError::Malformed(_))
        ));
        assert!(hourly_frame(b"<html>", cell).is_err());
    }
}
