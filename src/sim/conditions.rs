//! Weather and road congestion, as deterministic functions of a seed, a place and an hour, so
//! that the trips and the observation tables written beside them always agree.
//!
//! The fields are smooth in time (values at knots, interpolated) and shared within a region,
//! which is what makes them learnable: a wet spell lasts hours and covers a region.

use std::f64::consts::TAU;

use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};
use chrono_tz::Europe::Paris;

use super::world::Metro;
use crate::domain::ids::splitmix;

/// Weather is simulated on a grid of this many degrees, about 200 km: the scale of the
/// weather systems it models.
pub const WEATHER_GRID_DEG: f64 = 2.0;

/// The variables Open-Meteo's hourly API names, in its units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weather {
    pub temperature_2m: f64,
    /// mm in the hour.
    pub precipitation: f64,
    /// cm in the hour.
    pub snowfall: f64,
    /// km/h.
    pub wind_speed_10m: f64,
    /// metres.
    pub visibility: f64,
}

impl Weather {
    /// The share of free-flow speed a truck keeps in this weather.
    pub fn speed_factor(&self) -> f64 {
        let rain = (0.025 * self.precipitation).min(0.25);
        let snow = (0.3 * self.snowfall).min(0.5);
        let fog = if self.visibility < 1_000.0 { 0.15 } else { 0.0 };
        let wind = if self.wind_speed_10m > 60.0 {
            0.08
        } else {
            0.0
        };
        (1.0 - rain - snow - fog - wind).max(0.35)
    }
}

/// A grid cell's centre.
pub fn weather_cell(lat: f64, lon: f64) -> (f64, f64) {
    let centre = |value: f64| ((value / WEATHER_GRID_DEG).floor() + 0.5) * WEATHER_GRID_DEG;
    (centre(lat), centre(lon))
}

pub struct Conditions {
    seed: u64,
}

impl Conditions {
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    /// The weather in the grid cell holding (`lat`, `lon`) during the hour holding `at`.
    pub fn weather(&self, lat: f64, lon: f64, at: DateTime<Utc>) -> Weather {
        let (cell_lat, cell_lon) = weather_cell(lat, lon);
        let cell = cell_key(cell_lat, cell_lon);
        // Regions of two by two cells share their weather systems.
        let region = cell_key((cell_lat / 4.0).floor(), (cell_lon / 4.0).floor());
        let hour = at.timestamp().div_euclid(3600) as f64;
        let local = at.with_timezone(&Paris);
        let season = (TAU * (f64::from(local.ordinal()) - 200.0) / 365.25).cos(); // 1 in July, -1 in January
        let diurnal = (TAU * (f64::from(local.hour()) - 9.0) / 24.0).sin();

        let anomaly = 8.0 * (self.smooth(1, region, hour, 72.0) - 0.5)
            + 2.0 * (self.smooth(2, cell, hour, 24.0) - 0.5);
        let temperature = 12.5 - 0.7 * (cell_lat - 46.0) + 8.5 * season + 4.0 * diurnal + anomaly;

        // Wetter in winter and towards the Atlantic; wet spells last about a day.
        let wetness =
            0.7 * self.smooth(3, region, hour, 18.0) + 0.3 * self.smooth(4, cell, hour, 6.0);
        let threshold = 0.62 + 0.06 * season + 0.01 * (cell_lon - 2.0);
        let precipitation = ((wetness - threshold).max(0.0) * 25.0 * 10.0).round() / 10.0;
        let snowfall = if temperature < 0.5 {
            (0.7 * precipitation * 10.0).round() / 10.0
        } else {
            0.0
        };

        let wind_speed = 8.0 + 45.0 * self.smooth(5, region, hour, 36.0).powi(2) + 12.0 * wetness;
        let foggy_hours = (4..=10).contains(&local.hour()) && season < 0.2 && wind_speed < 20.0;
        let visibility = if foggy_hours && self.smooth(6, cell, hour, 12.0) > 0.72 {
            150.0 + 600.0 * self.unit(7, cell, hour as i64)
        } else if precipitation > 0.0 {
            (24_000.0 - 2_500.0 * precipitation).max(2_000.0)
        } else {
            24_000.0
        };
        Weather {
            temperature_2m: (temperature * 10.0).round() / 10.0,
            precipitation,
            snowfall,
            wind_speed_10m: (wind_speed * 10.0).round() / 10.0,
            visibility: visibility.round(),
        }
    }

    /// How congested a metropolitan area's roads are during the hour holding `at`, as the
    /// share of free-flow speed lost (0: free flow).
    pub fn congestion(&self, metro_idx: usize, metro: &Metro, at: DateTime<Utc>) -> f64 {
        let local = at.with_timezone(&Paris);
        let hour = f64::from(local.hour());
        let peak = |centre: f64, width: f64| (-((hour - centre) / width).powi(2)).exp();
        let profile = match local.weekday() {
            Weekday::Sat => 0.1 + 0.35 * peak(12.0, 3.0),
            Weekday::Sun => 0.05 + 0.2 * peak(18.0, 2.0),
            _ => 0.08 + 0.92 * peak(8.0, 1.3) + 0.85 * peak(17.5, 1.6) + 0.3 * peak(13.0, 3.0),
        };
        let key = metro_idx as u64 + 1;
        let hours = at.timestamp().div_euclid(3600);
        let daily = 0.7 + 0.6 * self.unit(8, key, hours.div_euclid(24));
        let incident = if self.unit(9, key, hours) < 0.02 {
            0.3
        } else {
            0.0
        };
        (metro.peak_congestion * profile * daily + incident).clamp(0.0, 0.9)
    }

    /// A value in [0, 1) for (stream, key, index), the same for the same arguments.
    fn unit(&self, stream: u64, key: u64, index: i64) -> f64 {
        let mixed = splitmix(
            self.seed
                ^ splitmix(
                    stream.wrapping_mul(0x9E37_79B9) ^ splitmix(key ^ splitmix(index as u64)),
                ),
        );
        (mixed >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Smooth noise in [0, 1]: values at knots `period` hours apart, cosine-interpolated.
    fn smooth(&self, stream: u64, key: u64, hour: f64, period: f64) -> f64 {
        let position = hour / period;
        let knot = position.floor();
        let blend = (1.0 - (std::f64::consts::PI * (position - knot)).cos()) / 2.0;
        let before = self.unit(stream, key, knot as i64);
        let after = self.unit(stream, key, knot as i64 + 1);
        before + (after - before) * blend
    }
}

fn cell_key(lat: f64, lon: f64) -> u64 {
    (((lat * 10.0).round() as i64 + 10_000) as u64) << 20
        | ((lon * 10.0).round() as i64 + 10_000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clock::at;
    use crate::sim::world::METROS;

    #[test]
    fn weather_is_deterministic_seasonal_and_sometimes_bad() {
        let conditions = Conditions::new(7);
        let july = conditions.weather(48.8, 2.3, at("2025-07-15T14:00:00Z"));
        let january = conditions.weather(48.8, 2.3, at("2025-01-15T14:00:00Z"));
        assert_eq!(
            july,
            conditions.weather(48.8, 2.3, at("2025-07-15T14:00:00Z"))
        );
        assert!(
            july.temperature_2m > january.temperature_2m + 5.0,
            "{july:?} {january:?}"
        );
        let mut hours = 0;
        let (mut wet, mut snowy, mut foggy) = (0, 0, 0);
        let mut instant = at("2025-01-01T00:00:00Z");
        while instant < at("2026-01-01T00:00:00Z") {
            let weather = conditions.weather(49.5, 4.0, instant);
            wet += usize::from(weather.precipitation > 0.0);
            snowy += usize::from(weather.snowfall > 0.0);
            foggy += usize::from(weather.visibility < 1_000.0);
            assert!((0.35..=1.0).contains(&weather.speed_factor()));
            hours += 1;
            instant += chrono::TimeDelta::hours(1);
        }
        let share = |count: usize| count as f64 / hours as f64;
        assert!((0.05..0.35).contains(&share(wet)), "wet {}", share(wet));
        assert!(snowy > 0 && share(snowy) < 0.05, "snowy {}", share(snowy));
        assert!(foggy > 0 && share(foggy) < 0.08, "foggy {}", share(foggy));
    }

    #[test]
    fn rush_hour_on_a_weekday_is_worse_than_sunday_night() {
        let conditions = Conditions::new(7);
        let paris = &METROS[0];
        let tuesday_rush = conditions.congestion(0, paris, at("2025-03-04T08:00:00+01:00"));
        let sunday_night = conditions.congestion(0, paris, at("2025-03-09T03:00:00+01:00"));
        assert!(
            tuesday_rush > sunday_night + 0.2,
            "{tuesday_rush} {sunday_night}"
        );
    }
}
