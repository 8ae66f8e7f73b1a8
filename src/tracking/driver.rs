//! The driver's clock as the live estimate takes it, and where it came from: declared with the
//! shipment, inferred from the pings' speeds, carried from the vehicle's previous shipment, or
//! read from the cab's tachograph through the pings.
//!
//! A delivery keeps the clock it ended with ([`EndedClock`]); the vehicle's next shipment
//! starts from it, with the time the truck stood since credited as a break, a daily rest or a
//! weekly rest by its length. The cab's latest reading ([`CabReading`]) replaces what the
//! speeds say from the moment its activity began: its remaining driving time sets the driving
//! since the last break, its activity says whether the standing was a rest.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::shipment::Fix;
use crate::domain::geo::GeoPoint;
use crate::domain::rules::{DriverState, Week, MAX_DRIVING_BEFORE_BREAK};
use crate::ml::features::live::MOVING_KMH;

/// Where the driver's state of an estimate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverSource {
    /// As the shipment was registered with it (a rested driver when it gave none).
    Declared,
    /// From the pings' speeds, as the model's training samples were.
    Inferred,
    /// From the clock the vehicle's previous shipment ended with, and the pings since.
    Carried,
    /// From the cab's tachograph, as the pings reported it.
    Tachograph,
}

/// What the driver is doing by the cab's reckoning: the tachograph's selected activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CabActivity {
    Driving,
    /// A break or a rest: the only activity 561/2006 counts as time off the wheel.
    Rest,
    OtherWork,
    /// A period of availability: neither driving nor a break.
    Available,
}

impl CabActivity {
    pub const ALL: [Self; 4] = [Self::Driving, Self::Rest, Self::OtherWork, Self::Available];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Driving => "driving",
            Self::Rest => "rest",
            Self::OtherWork => "other_work",
            Self::Available => "available",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|activity| activity.as_str() == text)
    }
}

/// The most the tachograph's remaining driving time can be: a whole stint before a break.
pub const MAX_REMAINING_DRIVING_MINUTES: f64 = 270.0;

/// A driver's state as the shipments keep it, in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClockRecord {
    pub driven_today_minutes: f64,
    pub driven_since_break_minutes: f64,
    pub driven_this_week_minutes: f64,
    pub driven_last_week_minutes: f64,
    pub daily_rests: u32,
    pub reduced_rests: u32,
    pub extended_days: u32,
}

fn minutes(delta: TimeDelta) -> f64 {
    delta.num_milliseconds() as f64 / 60_000.0
}

fn delta(minutes: f64) -> TimeDelta {
    TimeDelta::milliseconds((minutes * 60_000.0).round() as i64)
}

impl From<DriverState> for ClockRecord {
    fn from(state: DriverState) -> Self {
        let week = state.week();
        Self {
            driven_today_minutes: minutes(state.driven_today()),
            driven_since_break_minutes: minutes(state.driven_since_break()),
            driven_this_week_minutes: minutes(week.driven),
            driven_last_week_minutes: minutes(week.driven_before),
            daily_rests: week.daily_rests,
            reduced_rests: week.reduced_rests,
            extended_days: week.extended_days,
        }
    }
}

impl ClockRecord {
    /// The state it records; a part that no longer reads (none should: each was a state)
    /// counts as unknown, a rested driver's day or a week that starts now.
    pub fn state(&self) -> DriverState {
        let day = DriverState::new(
            delta(self.driven_today_minutes),
            delta(self.driven_since_break_minutes),
        )
        .unwrap_or_default();
        let week = Week {
            driven: delta(self.driven_this_week_minutes),
            driven_before: delta(self.driven_last_week_minutes),
            daily_rests: self.daily_rests,
            reduced_rests: self.reduced_rests,
            extended_days: self.extended_days,
        };
        day.with_week(week).unwrap_or(day)
    }
}

/// The clock a delivered shipment ended with, for the vehicle's next shipment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndedClock {
    /// The delivered shipment.
    pub shipment_id: String,
    /// When it ended: its delivery.
    pub at: DateTime<Utc>,
    /// Where the truck stood then: its last stop.
    pub lat: f64,
    pub lon: f64,
    pub driver: ClockRecord,
    /// The driver the cab named last, when it named one: another driver in the cab of the
    /// next shipment does not bring this clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_id: Option<String>,
}

impl EndedClock {
    pub fn point(&self) -> Option<GeoPoint> {
        GeoPoint::new(self.lat, self.lon).ok()
    }
}

/// One ping's word on the cab, beside its position, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct CabPing {
    /// Index into the batch's vehicle list.
    pub vehicle: u32,
    pub timestamp_ms: i64,
    pub driver_id: Option<String>,
    pub activity: Option<CabActivity>,
    pub remaining_driving_minutes: Option<f64>,
}

/// What the cab said last: the latest ping that carried any of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CabReading {
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<CabActivity>,
    /// Since when the cab has reported this activity, reading after reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_since: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_driving_minutes: Option<f64>,
}

impl CabReading {
    /// `kept` brought up to date with `pings` (one vehicle's, any order); a ping older than
    /// the kept reading says nothing new. `None` when neither holds a reading.
    pub fn merged(kept: Option<&CabReading>, pings: &[&CabPing]) -> Option<CabReading> {
        let mut ordered: Vec<&CabPing> = pings.to_vec();
        ordered.sort_by_key(|ping| ping.timestamp_ms);
        let mut reading = kept.cloned();
        for ping in ordered {
            let Some(at) = DateTime::from_timestamp_millis(ping.timestamp_ms) else {
                continue;
            };
            if reading.as_ref().is_some_and(|kept| at <= kept.at) {
                continue;
            }
            let activity_since = match (&reading, ping.activity) {
                (Some(kept), Some(activity)) if kept.activity == Some(activity) => {
                    kept.activity_since.or(Some(kept.at))
                }
                (_, Some(_)) => Some(at),
                (_, None) => None,
            };
            reading = Some(CabReading {
                at,
                driver_id: ping.driver_id.clone(),
                activity: ping.activity,
                activity_since,
                remaining_driving_minutes: ping.remaining_driving_minutes,
            });
        }
        reading
    }
}

/// Where a walk of the clock starts: the state, the moment, and where the truck stood then
/// when it is known.
#[derive(Debug, Clone, Copy)]
pub struct ClockStart {
    pub state: DriverState,
    pub at: DateTime<Utc>,
    pub point: Option<GeoPoint>,
}

/// The driver's state at the last of `fixes` (sorted; those before `start.at` ignored): each
/// interval between two positions is driving when the truck covered it faster than
/// [`MOVING_KMH`], time off otherwise, a run of time off counting by its whole length. From
/// the moment the cab's activity began, the cab's reading replaces the speeds up to the
/// reading: driving is driving, a rest is time off, other work and availability are neither;
/// its remaining driving time then sets the driving since the last break.
pub fn walk_clock(start: ClockStart, fixes: &[Fix], cab: Option<&CabReading>) -> DriverState {
    let fixes: Vec<Fix> = fixes
        .iter()
        .copied()
        .filter(|fix| fix.at >= start.at)
        .collect();
    let Some(cab) = cab.filter(|cab| cab.at >= start.at) else {
        return by_speeds(start, &fixes);
    };
    let since = cab.activity_since.unwrap_or(cab.at).clamp(start.at, cab.at);
    let before: Vec<Fix> = fixes
        .iter()
        .copied()
        .filter(|fix| fix.at <= since)
        .collect();
    let mut state = by_speeds(start, &before);
    let activity = cab.at - since;
    state = match cab.activity {
        Some(CabActivity::Driving) => state.after_driving(activity),
        Some(CabActivity::Rest) => state.after_time_off(activity),
        Some(CabActivity::OtherWork | CabActivity::Available) | None => state,
    };
    if let Some(remaining) = cab.remaining_driving_minutes {
        let left = remaining.clamp(0.0, MAX_REMAINING_DRIVING_MINUTES);
        state = state.with_driven_since_break(MAX_DRIVING_BEFORE_BREAK - delta(left));
    }
    let point = fixes
        .iter()
        .rev()
        .find(|fix| fix.at <= cab.at)
        .map(|fix| fix.point)
        .or(start.point);
    let after: Vec<Fix> = fixes
        .iter()
        .copied()
        .filter(|fix| fix.at >= cab.at)
        .collect();
    by_speeds(
        ClockStart {
            state,
            at: cab.at,
            point,
        },
        &after,
    )
}

/// The walk by speeds alone.
fn by_speeds(start: ClockStart, fixes: &[Fix]) -> DriverState {
    let mut state = start.state;
    let mut standing = TimeDelta::zero();
    let (mut at, mut point) = (start.at, start.point);
    for fix in fixes {
        let interval = fix.at - at;
        if interval <= TimeDelta::zero() {
            point = Some(fix.point);
            continue;
        }
        let hours = minutes(interval) / 60.0;
        let moving = point.is_some_and(|from| from.distance_km(fix.point) / hours > MOVING_KMH);
        if moving {
            if standing > TimeDelta::zero() {
                state = state.after_time_off(standing);
                standing = TimeDelta::zero();
            }
            state = state.after_driving(interval);
        } else {
            standing += interval;
        }
        (at, point) = (fix.at, Some(fix.point));
    }
    if standing > TimeDelta::zero() {
        state = state.after_time_off(standing);
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clock::at;

    /// A fix every ten minutes from `from` for `count` of them, moving north at 60 km/h
    /// (0.09 degrees of latitude in ten minutes) or standing still.
    fn track(from: &str, count: i64, moving: bool) -> Vec<Fix> {
        let start = at(from);
        (0..count)
            .map(|n| {
                let lat = 45.0 + if moving { n as f64 * 0.09 } else { 0.0 };
                Fix {
                    at: start + TimeDelta::minutes(10 * n),
                    point: GeoPoint::new(lat, 4.8).unwrap(),
                }
            })
            .collect()
    }

    fn rested_at(when: &str) -> ClockStart {
        ClockStart {
            state: DriverState::default(),
            at: at(when),
            point: None,
        }
    }

    fn day_of(state: DriverState) -> (i64, i64) {
        (
            state.driven_today().num_minutes(),
            state.driven_since_break().num_minutes(),
        )
    }

    #[test]
    fn driving_and_standing_are_told_apart_by_speed() {
        // Two hours north, half an hour still, then an hour further north.
        let mut fixes = track("2026-11-28T06:00:00Z", 13, true);
        let stood = fixes.last().unwrap().point;
        for n in 1..=3 {
            fixes.push(Fix {
                at: at("2026-11-28T08:00:00Z") + TimeDelta::minutes(10 * n),
                point: stood,
            });
        }
        let later = track("2026-11-28T08:30:00Z", 7, true);
        fixes.extend(later.iter().skip(1).map(|fix| Fix {
            at: fix.at,
            point: GeoPoint::new(fix.point.lat() + 1.1, fix.point.lon()).unwrap(),
        }));
        let state = walk_clock(rested_at("2026-11-28T06:00:00Z"), &fixes, None);
        assert_eq!(day_of(state), (180, 180), "half an hour is no break");
        let mut standing = fixes.clone();
        let end = *standing.last().unwrap();
        standing.extend((1..=5).map(|n| Fix {
            at: end.at + TimeDelta::minutes(10 * n),
            point: end.point,
        }));
        assert_eq!(
            day_of(walk_clock(
                rested_at("2026-11-28T06:00:00Z"),
                &standing,
                None
            )),
            (180, 0),
            "fifty minutes still is a break"
        );
    }

    #[test]
    fn a_clock_carried_overnight_is_rested_and_one_carried_for_minutes_is_not() {
        let ended = ClockStart {
            state: DriverState::default().after_driving(TimeDelta::hours(3)),
            at: at("2026-11-27T18:00:00Z"),
            point: Some(GeoPoint::new(45.0, 4.8).unwrap()),
        };
        let next_morning = track("2026-11-28T06:00:00Z", 7, true);
        let state = walk_clock(ended, &next_morning, None);
        assert_eq!(day_of(state), (60, 60), "the night was a rest");
        assert_eq!(state.week().daily_rests, 1);
        let soon = track("2026-11-27T18:20:00Z", 7, true);
        assert_eq!(day_of(walk_clock(ended, &soon, None)), (240, 240));
    }

    #[test]
    fn the_tachograph_replaces_the_speeds_from_its_activity_on() {
        let fixes = track("2026-11-28T06:00:00Z", 7, true);
        let reading = |activity, since: &str, remaining| CabReading {
            at: at("2026-11-28T07:00:00Z"),
            driver_id: None,
            activity: Some(activity),
            activity_since: Some(at(since)),
            remaining_driving_minutes: remaining,
        };
        let start = rested_at("2026-11-28T06:00:00Z");
        assert_eq!(day_of(walk_clock(start, &fixes, None)), (60, 60));
        // Four hours of driving left before the break: 30 minutes since it.
        let driving = reading(CabActivity::Driving, "2026-11-28T06:00:00Z", Some(240.0));
        assert_eq!(day_of(walk_clock(start, &fixes, Some(&driving))), (60, 30));
        // The cab says the last fifty minutes were a rest, whatever the speeds say.
        let resting = reading(CabActivity::Rest, "2026-11-28T06:10:00Z", None);
        assert_eq!(day_of(walk_clock(start, &fixes, Some(&resting))), (10, 0));
        // Other work is no break.
        let working = reading(CabActivity::OtherWork, "2026-11-28T06:10:00Z", None);
        assert_eq!(day_of(walk_clock(start, &fixes, Some(&working))), (10, 10));
        // The pings after the reading are walked by their speeds.
        let longer = track("2026-11-28T06:00:00Z", 10, true);
        assert_eq!(day_of(walk_clock(start, &longer, Some(&driving))), (90, 60));
    }

    #[test]
    fn readings_merge_in_time_and_an_activity_keeps_its_start() {
        let ping = |minute: i64, activity: Option<CabActivity>| CabPing {
            vehicle: 0,
            timestamp_ms: at("2026-11-28T06:00:00Z").timestamp_millis() + minute * 60_000,
            driver_id: Some("FRD1234".into()),
            activity,
            remaining_driving_minutes: None,
        };
        let first = ping(0, Some(CabActivity::Rest));
        let second = ping(10, Some(CabActivity::Rest));
        let third = ping(20, Some(CabActivity::Driving));
        let merged = CabReading::merged(None, &[&second, &first]).unwrap();
        assert_eq!(merged.at, at("2026-11-28T06:10:00Z"));
        assert_eq!(merged.activity_since, Some(at("2026-11-28T06:00:00Z")));
        let later = CabReading::merged(Some(&merged), &[&third, &first]).unwrap();
        assert_eq!(later.activity, Some(CabActivity::Driving));
        assert_eq!(later.activity_since, Some(at("2026-11-28T06:20:00Z")));
        assert_eq!(CabReading::merged(Some(&later), &[&first]), Some(later));
        assert_eq!(CabReading::merged(None, &[]), None);
    }

    #[test]
    fn a_clock_record_reads_back_as_the_state_it_recorded() {
        let state = DriverState::default()
            .after_driving(TimeDelta::hours(4))
            .after_time_off(TimeDelta::hours(9))
            .after_driving(TimeDelta::minutes(95));
        let record = ClockRecord::from(state);
        assert_eq!(record.driven_this_week_minutes, 335.0);
        assert_eq!(record.state(), state);
        for text in ["driving", "rest", "other_work", "available"] {
            assert_eq!(
                CabActivity::parse(text).map(CabActivity::as_str),
                Some(text)
            );
        }
        assert_eq!(CabActivity::parse("sleeping"), None);
    }
}
