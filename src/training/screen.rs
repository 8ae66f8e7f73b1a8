//! What an upload must pass before its trips train a model. Validation at upload time checks
//! each value; this checks the history as a whole, the way a poisoned or broken export gives
//! itself away: trips repeated, one duration for every trip, trips that have not happened yet,
//! paces no truck reaches, or a pace far from what the other partners' trips keep.

use std::collections::HashSet;

use polars::prelude::*;

use crate::domain::geo::GeoPoint;

/// More repeated trips than this share of an upload leave it out.
pub const MAX_REPEATED_SHARE: f64 = 0.01;
/// More trips than this share with one and the same duration leave it out.
pub const MAX_ONE_DURATION_SHARE: f64 = 0.5;
/// Faster than this, as the crow flies, no road vehicle goes.
pub const MAX_CROW_KMH: f64 = 130.0;
/// More trips than this share faster than [`MAX_CROW_KMH`] leave it out.
pub const MAX_IMPOSSIBLE_SHARE: f64 = 0.01;
/// An upload whose median pace is more than this factor away from the pool's typical one.
/// Loose, because pools rightly mix short regional rounds with long hauls.
pub const MAX_PACE_FACTOR: f64 = 3.0;
/// The pool's typical pace needs at least this many other organisations: with fewer, one of
/// them could be the odd one and make the honest upload look odd.
const MIN_OTHERS_FOR_PACE: usize = 2;
/// Trips shorter than this, as the crow flies, say little of a pace.
const PACE_MIN_KM: f64 = 20.0;
/// Below this many trips, an upload's shares and medians are not judged.
const MIN_TRIPS: usize = 20;

/// What the screen reads of one upload's trips.
#[derive(Debug, Clone, Default)]
pub struct TripFacts {
    pub trips: usize,
    /// Trips identical to an earlier one: origin, destination, departure and arrival.
    pub repeated: usize,
    /// The trips sharing the commonest duration (to the minute), and that duration.
    pub commonest_duration: (usize, i64),
    /// Departures later than the moment screened at.
    pub future: usize,
    pub impossible: usize,
    /// Crow-fly pace of the trips long enough to tell one, in km/h.
    pub paces: Vec<f64>,
}

impl TripFacts {
    /// A trip between `ends` (origin and destination latitude and longitude) in `hours`.
    fn add_pace(&mut self, ends: [f64; 4], hours: f64) {
        let (Ok(from), Ok(to)) = (
            GeoPoint::new(ends[0], ends[1]),
            GeoPoint::new(ends[2], ends[3]),
        ) else {
            return;
        };
        let km = from.distance_km(to);
        if hours > 0.0 && km / hours > MAX_CROW_KMH {
            self.impossible += 1;
        }
        if hours > 0.0 && km >= PACE_MIN_KM {
            self.paces.push(km / hours);
        }
    }
}

/// Reads the facts of a validated trips table (coordinates as numbers, time-zone-aware
/// timestamps), `now_ms` being the moment of screening.
pub fn facts(trips: &DataFrame, now_ms: i64) -> PolarsResult<TripFacts> {
    let utc = DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC));
    let frame = trips
        .clone()
        .lazy()
        .select([
            col("origin_lat").cast(DataType::Float64),
            col("origin_lon").cast(DataType::Float64),
            col("destination_lat").cast(DataType::Float64),
            col("destination_lon").cast(DataType::Float64),
            col("departure_time")
                .cast(utc.clone())
                .cast(DataType::Int64),
            col("arrival_time").cast(utc).cast(DataType::Int64),
        ])
        .collect()?;
    let number = |name: &str| -> PolarsResult<Vec<f64>> {
        Ok(frame
            .column(name)?
            .f64()?
            .iter()
            .map(|value| value.unwrap_or(f64::NAN))
            .collect())
    };
    let instant = |name: &str| -> PolarsResult<Vec<i64>> {
        Ok(frame
            .column(name)?
            .i64()?
            .iter()
            .map(|value| value.unwrap_or_default())
            .collect())
    };
    let (o_lat, o_lon) = (number("origin_lat")?, number("origin_lon")?);
    let (d_lat, d_lon) = (number("destination_lat")?, number("destination_lon")?);
    let (left, arrived) = (instant("departure_time")?, instant("arrival_time")?);

    let mut facts = TripFacts {
        trips: frame.height(),
        ..TripFacts::default()
    };
    let mut seen = HashSet::with_capacity(frame.height());
    let mut durations: std::collections::HashMap<i64, usize> = Default::default();
    for row in 0..frame.height() {
        let ends = [o_lat[row], o_lon[row], d_lat[row], d_lon[row]];
        let (left, arrived) = (left[row], arrived[row]);
        let key = ends.map(f64::to_bits);
        if !seen.insert((key, left, arrived)) {
            facts.repeated += 1;
        }
        *durations.entry((arrived - left) / 60_000).or_default() += 1;
        if left > now_ms {
            facts.future += 1;
        }
        facts.add_pace(ends, (arrived - left) as f64 / 3_600_000.0);
    }
    facts.commonest_duration = durations
        .into_iter()
        .map(|(minutes, count)| (count, minutes))
        .max()
        .unwrap_or_default();
    Ok(facts)
}

/// Why an upload may not train a model, in sentences its owner can act on; empty when it may.
/// `others`: the median pace of each other organisation that pools, when the upload is to
/// pool. Their median is the pool's typical pace: one organisation, however odd, cannot move it.
pub fn problems(upload: &TripFacts, others: Option<&[f64]>) -> Vec<String> {
    let mut problems = Vec::new();
    let n = upload.trips;
    let share = |count: usize| count as f64 / n.max(1) as f64;
    if upload.future > 0 {
        problems.push(format!(
            "{} of {n} trips leave after the moment of training: a history holds trips that \
             have happened",
            upload.future
        ));
    }
    if n < MIN_TRIPS {
        return problems;
    }
    if share(upload.repeated) > MAX_REPEATED_SHARE {
        problems.push(format!(
            "{} of {n} trips repeat another exactly (same origin, destination, departure and \
             arrival)",
            upload.repeated
        ));
    }
    let (count, minutes) = upload.commonest_duration;
    if share(count) > MAX_ONE_DURATION_SHARE {
        problems.push(format!(
            "{count} of {n} trips take exactly {minutes} minutes: durations look made up"
        ));
    }
    if share(upload.impossible) > MAX_IMPOSSIBLE_SHARE {
        problems.push(format!(
            "{} of {n} trips go faster than {MAX_CROW_KMH} km/h as the crow flies",
            upload.impossible
        ));
    }
    let typical = others
        .filter(|others| others.len() >= MIN_OTHERS_FOR_PACE)
        .map(middle);
    if let (Some(own), Some(rest)) = (median_pace(&upload.paces), typical) {
        if own > rest * MAX_PACE_FACTOR || own * MAX_PACE_FACTOR < rest {
            problems.push(format!(
                "its trips' median pace ({own:.0} km/h as the crow flies) is more than \
                 {MAX_PACE_FACTOR} times off the pool's typical one ({rest:.0} km/h)"
            ));
        }
    }
    problems
}

/// The median of an upload's paces, when it has enough trips long enough to tell one.
pub fn median_pace(values: &[f64]) -> Option<f64> {
    if values.len() < MIN_TRIPS {
        return None;
    }
    Some(middle(values))
}

/// The middle value of a non-empty list.
fn middle(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone as _, Utc};

    /// `n` trips Lille to Paris (204 km as the crow flies), the i-th leaving i hours after
    /// the first and taking `minutes(i)`.
    fn trips(n: usize, minutes: impl Fn(usize) -> i64) -> DataFrame {
        let first = Utc
            .with_ymd_and_hms(2026, 3, 2, 6, 0, 0)
            .unwrap()
            .timestamp_millis();
        let left: Vec<i64> = (0..n).map(|i| first + i as i64 * 3_600_000).collect();
        let arrived: Vec<i64> = (0..n).map(|i| left[i] + minutes(i) * 60_000).collect();
        let utc = DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC));
        df!(
            "origin_lat" => vec![50.6292; n],
            "origin_lon" => vec![3.0573; n],
            "destination_lat" => vec![48.8566; n],
            "destination_lon" => vec![2.3522; n],
            "departure_time" => left,
            "arrival_time" => arrived,
        )
        .unwrap()
        .lazy()
        .with_columns([
            col("departure_time").cast(utc.clone()),
            col("arrival_time").cast(utc),
        ])
        .collect()
        .unwrap()
    }

    fn later() -> i64 {
        Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn a_plain_history_passes_beside_a_pool_of_the_same_pace() {
        let upload = facts(&trips(200, |i| 180 + (i as i64 * 7) % 90), later()).unwrap();
        assert_eq!(
            (upload.repeated, upload.future, upload.impossible),
            (0, 0, 0)
        );

        assert_eq!(
            problems(&upload, Some(&[60.0, 30.0, 90.0])),
            Vec::<String>::new()
        );
    }

    #[test]
    fn ten_thousand_copies_of_one_trip_are_refused_as_repeated_and_made_up() {
        let one = trips(1, |_| 462);
        let mut copies = one.clone();
        for _ in 1..10_000 {
            copies.vstack_mut(&one).unwrap();
        }
        let upload = facts(&copies, later()).unwrap();
        let found = problems(&upload, None);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with("9999 of 10000 trips repeat"),
            "{found:?}"
        );
        assert!(found[1].contains("take exactly 462 minutes"), "{found:?}");
    }

    #[test]
    fn trips_yet_to_happen_impossible_paces_and_a_pace_far_from_the_pool_are_each_named() {
        let fast = facts(&trips(100, |i| 60 + i as i64 % 30), later()).unwrap();
        let found = problems(&fast, None);
        assert!(
            found.iter().any(|p| p.contains("faster than 130 km/h")),
            "{found:?}"
        );
        // 13 km/h against a pool whose organisations keep 55, 60 and 300 km/h.
        let slow = facts(&trips(100, |i| 900 + i as i64), later()).unwrap();
        let found = problems(&slow, Some(&[55.0, 300.0, 60.0]));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("median pace (13 km/h"), "{found:?}");
        assert!(found[0].contains("typical one (60 km/h)"), "{found:?}");
        // One other organisation is no pool to be typical of.
        assert!(problems(&slow, Some(&[60.0])).is_empty());
        let before = Utc
            .with_ymd_and_hms(2026, 3, 3, 0, 0, 0)
            .unwrap()
            .timestamp_millis();
        let early = facts(&trips(100, |i| 180 + i as i64), before).unwrap();
        assert!(problems(&early, None)[0].starts_with("81 of 100 trips leave after"));
    }
}
