use chrono::{DateTime, TimeDelta};
use proptest::prelude::*;

use super::*;
use crate::domain::clock::at;

fn hours(value: i64) -> TimeDelta {
    TimeDelta::hours(value)
}

fn minutes(value: i64) -> TimeDelta {
    TimeDelta::minutes(value)
}

fn drive_in_france(duration: TimeDelta) -> Activity {
    Activity::Drive {
        duration,
        territory: Territory::France,
        region: None,
    }
}

fn stop(dwell: TimeDelta) -> Activity {
    Activity::Stop { dwell }
}

fn plan(departure: &str, vehicle: VehicleClass, activities: Vec<Activity>) -> TripPlan {
    TripPlan {
        departure: at(departure),
        vehicle,
        driver: DriverState::default(),
        activities,
        carriage: Carriage::default(),
    }
}

/// The timeline of `trip` under the shipped bans and the default policy.
fn planned(trip: &TripPlan) -> Timeline {
    plan_trip(trip, &BanCalendar::default(), RulesPolicy::default())
}

/// Each segment as `Kind minutes`, in order: a timeline in one line, to compare at a glance.
fn outline(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|segment| format!("{:?} {}", segment.kind, segment.duration().num_minutes()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Plans `trip` under the shipped bans and `policy` and compares its outline with `expected`.
#[track_caller]
fn check_with(trip: &TripPlan, policy: RulesPolicy, expected: &str) -> Timeline {
    let timeline = plan_trip(trip, &BanCalendar::default(), policy);
    assert_eq!(outline(&timeline.segments), expected);
    timeline
}

#[track_caller]
fn check(trip: &TripPlan, expected: &str) -> Timeline {
    check_with(trip, RulesPolicy::default(), expected)
}

#[test]
fn a_tuesday_of_ten_hours_driving_takes_two_breaks_and_uses_an_extended_day() {
    let trip = plan(
        "2026-12-01T06:00:00+01:00",
        VehicleClass::Articulated,
        vec![drive_in_france(hours(10))],
    );
    check(&trip, "Drive 270, Break 45, Drive 270, Break 45, Drive 60");
}

#[test]
fn without_extended_days_the_driver_rests_after_nine_hours() {
    let trip = plan(
        "2026-12-01T06:00:00+01:00",
        VehicleClass::Rigid,
        vec![drive_in_france(hours(10))],
    );
    let policy = RulesPolicy {
        use_extended_days: false,
        use_reduced_rests: false,
        ..RulesPolicy::default()
    };
    check_with(
        &trip,
        policy,
        "Drive 270, Break 45, Drive 270, Rest 660, Drive 60",
    );
}

#[test]
fn a_long_dwell_counts_as_the_break() {
    let trip = plan(
        "2026-12-01T06:00:00+01:00",
        VehicleClass::Articulated,
        vec![
            drive_in_france(hours(4)),
            stop(minutes(50)),
            drive_in_france(hours(4)),
        ],
    );
    let timeline = check(&trip, "Drive 240, Dwell 50, Drive 240");
    assert_eq!(
        timeline.stop_arrivals,
        vec![at("2026-12-01T10:00:00+01:00")]
    );
}

#[test]
fn a_short_dwell_then_a_thirty_minute_break_is_a_split_break() {
    let trip = plan(
        "2026-12-01T06:00:00+01:00",
        VehicleClass::Articulated,
        vec![
            drive_in_france(hours(2)),
            stop(minutes(20)),
            drive_in_france(hours(4)),
        ],
    );
    check(&trip, "Drive 120, Dwell 20, Drive 150, Break 30, Drive 90");
}

#[test]
fn the_driver_state_carries_into_the_trip() {
    let mut trip = plan(
        "2026-12-01T14:00:00+01:00",
        VehicleClass::Articulated,
        vec![drive_in_france(hours(3))],
    );
    trip.driver = DriverState::new(hours(8), hours(4)).unwrap();
    // 30 minutes to the break, 45 off, 90 more up to the extended 10 h, then a reduced rest
    // and the last hour.
    check(&trip, "Drive 30, Break 45, Drive 90, Rest 540, Drive 60");
}

#[test]
fn a_saturday_evening_departure_waits_out_the_weekend_ban() {
    let trip = plan(
        "2026-12-05T20:00:00+01:00",
        VehicleClass::Articulated,
        vec![drive_in_france(hours(3))],
    );
    let timeline = planned(&trip);
    let ban_wait = timeline.segments[1];
    assert_eq!(ban_wait.kind, SegmentKind::BanWait);
    assert_eq!(ban_wait.start, at("2026-12-05T22:00:00+01:00"));
    assert_eq!(ban_wait.end, at("2026-12-06T22:00:00+01:00"));
    assert_eq!(timeline.end, at("2026-12-06T23:00:00+01:00"));
}

#[test]
fn a_van_ignores_bans_and_breaks() {
    let trip = plan(
        "2026-12-05T20:00:00+01:00",
        VehicleClass::Van,
        vec![drive_in_france(hours(12))],
    );
    check(&trip, "Drive 720");
}

#[test]
fn driving_abroad_is_not_stopped_by_a_french_ban() {
    let trip = plan(
        "2026-12-05T20:00:00+01:00",
        VehicleClass::Articulated,
        vec![
            Activity::Drive {
                duration: hours(3),
                territory: Territory::Elsewhere,
                region: None,
            },
            drive_in_france(hours(1)),
        ],
    );
    let timeline = planned(&trip);
    assert_eq!(outline(&timeline.segments[..2]), "Drive 180, BanWait 1380");
}

#[test]
fn a_rest_that_falls_due_during_a_ban_is_taken_inside_it() {
    let mut trip = plan(
        "2026-12-06T20:00:00+01:00",
        VehicleClass::Articulated,
        vec![drive_in_france(hours(1))],
    );
    trip.driver = DriverState::new(hours(10), hours(1)).unwrap();
    check(&trip, "Rest 540, Drive 60");
}

#[test]
fn driver_state_is_checked() {
    assert_eq!(
        DriverState::new(hours(11), hours(1)),
        Err(DriverStateError::TodayOverLimit)
    );
    assert_eq!(
        DriverState::new(hours(6), hours(5)),
        Err(DriverStateError::SinceBreakOverLimit)
    );
    assert_eq!(
        DriverState::new(hours(1), hours(2)),
        Err(DriverStateError::SinceBreakOverToday)
    );
    assert_eq!(
        DriverState::new(hours(-1), hours(0)),
        Err(DriverStateError::Negative)
    );
}

/// The driving the trip's activities ask for, in all.
pub(super) fn driving_of(trip: &TripPlan) -> TimeDelta {
    trip.activities
        .iter()
        .map(|activity| match activity {
            Activity::Drive { duration, .. } => *duration,
            Activity::Stop { .. } => TimeDelta::zero(),
        })
        .sum()
}

/// The dwell the trip's stops ask for, in all.
fn dwell_of(trip: &TripPlan) -> TimeDelta {
    trip.activities
        .iter()
        .map(|activity| match activity {
            Activity::Stop { dwell } => *dwell,
            Activity::Drive { .. } => TimeDelta::zero(),
        })
        .sum()
}

/// An independent reading of the regulation, walking the finished timeline.
fn check_timeline(trip: &TripPlan, timeline: &Timeline, bans: &BanCalendar) -> Result<(), String> {
    let segments = &timeline.segments;
    // Contiguous, ordered, non-empty segments from departure to the end.
    let mut cursor = trip.departure;
    for segment in segments {
        if segment.start != cursor || segment.end <= segment.start {
            return Err(format!("segment {segment:?} does not follow {cursor}"));
        }
        cursor = segment.end;
    }
    if cursor != timeline.end {
        return Err(format!(
            "segments end at {cursor}, timeline at {}",
            timeline.end
        ));
    }
    let (planned_driving, planned_dwell) = (driving_of(trip), dwell_of(trip));
    let breakdown = timeline.breakdown();
    if breakdown.driving != planned_driving || breakdown.dwell != planned_dwell {
        return Err(format!("driving or dwell lost: {breakdown:?}"));
    }
    if timeline.duration() < planned_driving + planned_dwell {
        return Err("elapsed time shorter than driving plus dwell".into());
    }
    if !trip.vehicle.follows_driving_time_rules() {
        let only_work = segments
            .iter()
            .all(|s| matches!(s.kind, SegmentKind::Drive | SegmentKind::Dwell));
        return if only_work {
            Ok(())
        } else {
            Err("a van took a break, rest or ban wait".into())
        };
    }
    let mut since_break = trip.driver.driven_since_break();
    let mut today = trip.driver.driven_today();
    let mut split_started = false;
    let mut long_days = 0;
    for segment in segments {
        let length = segment.duration();
        match segment.kind {
            SegmentKind::Drive => {
                since_break += length;
                today += length;
                if since_break > MAX_DRIVING_BEFORE_BREAK {
                    return Err(format!(
                        "{since_break} of driving without a break at {}",
                        segment.end
                    ));
                }
                if today > EXTENDED_DAILY_DRIVING {
                    return Err(format!("{today} of driving in a day at {}", segment.end));
                }
                let in_ban = bans
                    .bans_between(
                        segment.start.date_naive() - TimeDelta::days(1),
                        segment.end.date_naive() + TimeDelta::days(1),
                    )
                    .iter()
                    .any(|ban| ban.start < segment.end && segment.start < ban.end);
                if in_ban && segment.territory == Some(Territory::France) {
                    return Err(format!("driving inside a ban: {segment:?}"));
                }
            }
            _ if length >= REDUCED_DAILY_REST && segment.kind != SegmentKind::Break => {
                if today > DAILY_DRIVING {
                    long_days += 1;
                }
                if length >= WEEKLY_REST {
                    long_days = 0;
                }
                today = TimeDelta::zero();
                since_break = TimeDelta::zero();
                split_started = false;
            }
            _ if length >= BREAK || (split_started && length >= SPLIT_BREAK_SECOND) => {
                since_break = TimeDelta::zero();
                split_started = false;
            }
            _ if length >= SPLIT_BREAK_FIRST => split_started = true,
            _ => {}
        }
        if long_days + u32::from(today > DAILY_DRIVING) > EXTENDED_DAYS_PER_WEEK {
            return Err(format!(
                "more than two 10-hour days in a week by {}",
                segment.end
            ));
        }
    }
    Ok(())
}

fn arbitrary_activity() -> impl Strategy<Value = Activity> {
    prop_oneof![
        3 => (1i64..12 * 60, any::<bool>()).prop_map(|(minutes, in_france)| Activity::Drive {
            duration: TimeDelta::minutes(minutes),
            territory: if in_france { Territory::France } else { Territory::Elsewhere },
            region: None,
        }),
        1 => (0i64..4 * 60).prop_map(|minutes| Activity::Stop { dwell: TimeDelta::minutes(minutes) }),
    ]
}

fn arbitrary_trip() -> impl Strategy<Value = TripPlan> {
    let first_departure = at("2026-01-01T00:00:00Z").timestamp();
    let last_departure = at("2028-12-31T00:00:00Z").timestamp();
    (
        first_departure..last_departure,
        prop::sample::select(VehicleClass::ALL.to_vec()),
        0i64..=600,
        0i64..=270,
        prop::collection::vec(arbitrary_activity(), 1..10),
    )
        .prop_map(
            |(departure, vehicle, today, since_break, activities)| TripPlan {
                departure: DateTime::from_timestamp(departure, 0).unwrap(),
                vehicle,
                driver: DriverState::new(
                    TimeDelta::minutes(today),
                    TimeDelta::minutes(since_break.min(today)),
                )
                .unwrap(),
                activities,
                carriage: Carriage::default(),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_timeline_obeys_the_rules(
        trip in arbitrary_trip(),
        use_extended_days in any::<bool>(),
        use_reduced_rests in any::<bool>(),
        break_extension in 0i64..30,
        rest_extension in 0i64..120,
    ) {
        let bans = BanCalendar::default();
        let policy = RulesPolicy {
            use_extended_days,
            use_reduced_rests,
            break_extension: TimeDelta::minutes(break_extension),
            rest_extension: TimeDelta::minutes(rest_extension),
            ..RulesPolicy::default()
        };
        let timeline = plan_trip(&trip, &bans, policy);
        if let Err(problem) = check_timeline(&trip, &timeline, &bans) {
            prop_assert!(false, "{problem}\n{timeline:#?}");
        }
        prop_assert_eq!(
            timeline.stop_arrivals.len(),
            trip.activities.iter().filter(|a| matches!(a, Activity::Stop { .. })).count()
        );
    }
}

/// A driver's week as the tests give it: driving in hours, the counts as they are.
fn week(driven: i64, driven_before: i64, daily_rests: u32, reduced: u32, extended: u32) -> Week {
    Week {
        driven: hours(driven),
        driven_before: hours(driven_before),
        daily_rests,
        reduced_rests: reduced,
        extended_days: extended,
    }
}

#[test]
fn a_week_of_driving_ends_in_a_weekly_rest_at_56_hours() {
    let mut trip = plan(
        "2026-12-01T06:00:00+01:00",
        VehicleClass::Articulated,
        vec![drive_in_france(hours(4))],
    );
    trip.driver = DriverState::default()
        .with_week(week(54, 0, 4, 0, 2))
        .unwrap();
    check(&trip, "Drive 120, Rest 2700, Drive 120");
    // The same day of a driver whose week starts with the trip.
    trip.driver = DriverState::default();
    check(&trip, "Drive 240");
}

#[test]
fn the_week_before_shortens_this_one_to_90_hours_in_two() {
    let mut trip = plan(
        "2026-12-01T06:00:00+01:00",
        VehicleClass::Articulated,
        vec![drive_in_france(hours(5))],
    );
    trip.driver = DriverState::default()
        .with_week(week(30, 56, 2, 0, 0))
        .unwrap();
    check(&trip, "Drive 240, Rest 2700, Drive 60");
}

#[test]
fn reduced_rests_and_extended_days_used_up_lengthen_the_day_s_end() {
    let mut trip = plan(
        "2026-12-01T14:00:00+01:00",
        VehicleClass::Articulated,
        vec![drive_in_france(hours(3))],
    );
    trip.driver = DriverState::new(hours(8), hours(0)).unwrap();
    check(&trip, "Drive 120, Rest 540, Drive 60");
    trip.driver = trip.driver.with_week(week(20, 0, 3, 3, 2)).unwrap();
    check(&trip, "Drive 60, Rest 660, Drive 120");
}

#[test]
fn time_off_counts_as_a_break_a_daily_rest_or_a_weekly_rest_by_its_length() {
    let driven = DriverState::default().after_driving(hours(3));
    assert_eq!(
        (driven.driven_today(), driven.driven_since_break()),
        (hours(3), hours(3))
    );
    let short = driven.after_time_off(minutes(30));
    assert_eq!(
        short.driven_since_break(),
        hours(3),
        "30 minutes is no break"
    );
    let rested = driven.after_time_off(minutes(45));
    assert_eq!(
        (rested.driven_today(), rested.driven_since_break()),
        (hours(3), hours(0))
    );
    let night = driven.after_time_off(hours(9));
    assert_eq!(night.driven_today(), hours(0));
    assert_eq!(night.week(), week(3, 0, 1, 1, 0), "a reduced daily rest");
    let weekend = night.after_driving(hours(2)).after_time_off(hours(45));
    assert_eq!(
        weekend.week(),
        week(0, 5, 0, 0, 0),
        "the week before is kept"
    );
    // Past the limits the counters stop, and crossing 9 hours uses an extended day.
    let long = DriverState::default().after_driving(hours(11));
    assert_eq!(
        (long.driven_today(), long.driven_since_break()),
        (hours(10), minutes(270))
    );
    assert_eq!(long.week().extended_days, 1);
    // Six driving days in: a night is not the rest due, the weekly rest is.
    let sixth = DriverState::new(hours(5), hours(2))
        .unwrap()
        .with_week(week(40, 0, 5, 2, 1))
        .unwrap();
    let after_night = sixth.after_time_off(hours(11));
    assert_eq!(
        (after_night.driven_today(), after_night.driven_since_break()),
        (hours(5), hours(0))
    );
}

#[test]
fn a_week_is_checked() {
    let day = DriverState::default();
    assert_eq!(
        day.with_week(week(57, 0, 0, 0, 0)),
        Err(DriverStateError::WeekOverLimit)
    );
    assert_eq!(
        day.with_week(week(40, 56, 0, 0, 0)),
        Err(DriverStateError::WeekOverLimit)
    );
    assert_eq!(
        day.with_week(week(10, 0, 6, 0, 0)),
        Err(DriverStateError::WeekCountsOverLimit)
    );
    assert_eq!(
        day.with_week(week(10, 0, 2, 3, 0)),
        Err(DriverStateError::WeekCountsOverLimit)
    );
    assert_eq!(
        day.with_week(week(-1, 0, 0, 0, 0)),
        Err(DriverStateError::Negative)
    );
    assert!(day.with_week(week(56, 34, 5, 3, 2)).is_ok());
}

#[test]
fn a_tachograph_s_driving_since_the_break_sets_the_day_s_floor() {
    let state = DriverState::new(hours(1), hours(1))
        .unwrap()
        .with_driven_since_break(minutes(240));
    assert_eq!(
        (state.driven_today(), state.driven_since_break()),
        (minutes(240), minutes(240))
    );
    let capped = DriverState::default().with_driven_since_break(hours(6));
    assert_eq!(capped.driven_since_break(), minutes(270));
}
