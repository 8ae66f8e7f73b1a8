//! What moved an estimate: which parts of the plan moved the destination's arrival since the
//! previous estimate, and how far each stop's arrival has slipped since its first estimate.
//!
//! A part's move is what the current plan still holds of it from the current estimate's
//! `as_of`, against what the previous plan held of it from that same moment: a break, a rest
//! or a dwell taken as planned leaves both alike, one that moved, appeared or went shows. The
//! wait before a plan sets off (at a stop, the rest of its dwell) is dwell. Traffic and weather
//! are the learned model's pulls of those kinds, against the previous estimate's. The
//! position is the rest of the move: where the truck now is against where the previous plan
//! had it by now, and what the estimator makes of that.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::eta::Snapshot;
use crate::domain::explain::{factor_kind, ReasonKind};

/// A part of the plan that moved the arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DelayKind {
    Position,
    Traffic,
    /// Breaks and rests.
    Rest,
    Ban,
    Border,
    Dwell,
    Weather,
}

/// How far one part moved the destination's arrival, in minutes (negative: earlier).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DelayReason {
    pub kind: DelayKind,
    pub minutes: f64,
}

/// A move under this rounds to no minute: not a reason.
const MIN_REASON_MINUTES: f64 = 0.5;

impl Snapshot {
    /// Carries each stop's first estimate on from `previous` (without one, the first is this
    /// one), with the slip since, and says what moved the arrival since `previous`.
    pub fn follow(&mut self, previous: Option<&Snapshot>) {
        for stop in &mut self.stops {
            let before = previous.and_then(|previous| previous.stops.get(stop.index));
            let first = before.map_or(stop.eta, |before| before.first_eta.unwrap_or(before.eta));
            stop.first_eta = Some(first);
            stop.slip_minutes = Some(rounded(minutes(stop.eta - first)));
        }
        let reasons = previous.and_then(|previous| delay_reasons(previous, self));
        self.delay_reasons = reasons;
    }
}

/// What moved the destination's arrival from `previous` to `current`, the largest move first;
/// `None` when either plan is not known (a finished shipment's, or an estimate kept in the
/// history without its plan).
pub fn delay_reasons(previous: &Snapshot, current: &Snapshot) -> Option<Vec<DelayReason>> {
    if previous.timeline.is_empty() || current.timeline.is_empty() {
        return None;
    }
    let (Some(before), Some(now)) = (previous.stops.last(), current.stops.last()) else {
        return None;
    };
    let from = current.as_of;
    let moved = |kinds: &[&str]| ahead(current, kinds, from) - ahead(previous, kinds, from);
    let pulled = |kind| pull(current, kind) - pull(previous, kind);
    let mut parts = vec![
        (DelayKind::Rest, moved(&["break", "rest"])),
        (DelayKind::Ban, moved(&["ban_wait"])),
        (DelayKind::Border, moved(&["border"])),
        (
            DelayKind::Dwell,
            moved(&["dwell"]) + waiting(current, from) - waiting(previous, from),
        ),
        (DelayKind::Traffic, pulled(ReasonKind::Traffic)),
        (DelayKind::Weather, pulled(ReasonKind::Weather)),
    ];
    let explained: f64 = parts.iter().map(|(_, minutes)| minutes).sum();
    parts.push((
        DelayKind::Position,
        minutes(now.eta - before.eta) - explained,
    ));
    let mut reasons: Vec<DelayReason> = parts
        .into_iter()
        .filter(|(_, minutes)| minutes.abs() >= MIN_REASON_MINUTES)
        .map(|(kind, minutes)| DelayReason {
            kind,
            minutes: rounded(minutes),
        })
        .collect();
    reasons.sort_by(|one, other| other.minutes.abs().total_cmp(&one.minutes.abs()));
    Some(reasons)
}

/// Minutes of the plan's segments of `kinds` from `from` on.
fn ahead(snapshot: &Snapshot, kinds: &[&str], from: DateTime<Utc>) -> f64 {
    snapshot
        .timeline
        .iter()
        .filter(|segment| kinds.contains(&segment.kind.as_str()))
        .map(|segment| minutes(segment.end - segment.start.max(from)).max(0.0))
        .sum()
}

/// The wait, from `from` on, before the plan sets off.
fn waiting(snapshot: &Snapshot, from: DateTime<Utc>) -> f64 {
    let Some(first) = snapshot.timeline.first() else {
        return 0.0;
    };
    minutes(first.start - from.max(snapshot.as_of)).max(0.0)
}

/// The learned model's pull of one kind, in minutes.
fn pull(snapshot: &Snapshot, kind: ReasonKind) -> f64 {
    snapshot
        .factors
        .iter()
        .filter(|factor| factor_kind(&factor.feature) == Some(kind))
        .map(|factor| factor.minutes)
        .sum()
}

fn minutes(delta: TimeDelta) -> f64 {
    delta.num_milliseconds() as f64 / 60_000.0
}

/// To a tenth of a minute, as the answers give durations.
fn rounded(minutes: f64) -> f64 {
    (minutes * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clock::at;
    use crate::tracking::eta::{SnapshotFactor, SnapshotSegment, StopSnapshot, StopState};

    fn segment(kind: &str, start: &str, end: &str) -> SnapshotSegment {
        SnapshotSegment {
            kind: kind.into(),
            start: at(start),
            end: at(end),
            country: Some("FR".into()),
            rule: None,
        }
    }

    /// An estimate from `as_of` whose plan is `timeline`, arriving when its last segment ends.
    fn estimate(as_of: &str, timeline: Vec<SnapshotSegment>) -> Snapshot {
        let eta = timeline.last().map_or(at(as_of), |segment| segment.end);
        Snapshot {
            shipment_id: "shp_1".into(),
            computed_at: at(as_of),
            as_of: at(as_of),
            position: None,
            driven_today_minutes: 0.0,
            driven_since_break_minutes: 0.0,
            stops: vec![StopSnapshot {
                index: 0,
                id: "marseille".into(),
                state: StopState::Pending,
                eta,
                eta_p10: eta,
                eta_p90: eta,
                late_probability: None,
                severity: None,
                model: None,
                first_eta: None,
                slip_minutes: None,
            }],
            timeline,
            factors: Vec::new(),
            model: "rules".into(),
            model_version: "rules".into(),
            fallback: true,
            degraded: Vec::new(),
            driving_rules: Some("561/2006".into()),
            driver_source: None,
            driver_carried_from: None,
            driver_id: None,
            delay_reasons: None,
        }
    }

    fn reasons(previous: &Snapshot, current: &Snapshot) -> Vec<(DelayKind, f64)> {
        delay_reasons(previous, current)
            .unwrap()
            .into_iter()
            .map(|reason| (reason.kind, reason.minutes))
            .collect()
    }

    /// From `as_of` on 30 November, driving to a 45-minute break at `break_at`, then on to the
    /// destination, reached at `arrival` (times of day, UTC).
    fn with_a_break(as_of: &str, break_at: &str, arrival: &str) -> Snapshot {
        let on_day = |time: &str| format!("2026-11-30T{time}:00Z");
        let back_on_the_road = (at(&on_day(break_at)) + TimeDelta::minutes(45))
            .format("%H:%M")
            .to_string();
        estimate(
            &on_day(as_of),
            vec![
                segment("drive", &on_day(as_of), &on_day(break_at)),
                segment("break", &on_day(break_at), &on_day(&back_on_the_road)),
                segment("drive", &on_day(&back_on_the_road), &on_day(arrival)),
            ],
        )
    }

    /// Lille at 08:00, a break at 12:30, Marseille at 15:00.
    fn planned() -> Snapshot {
        with_a_break("08:00", "12:30", "15:00")
    }

    #[test]
    fn a_truck_on_its_plan_moves_nothing_and_one_that_stands_moves_by_its_position() {
        let on_plan = with_a_break("09:00", "12:30", "15:00");
        assert!(reasons(&planned(), &on_plan).is_empty());
        let stood = with_a_break("09:00", "13:30", "16:00");
        assert_eq!(reasons(&planned(), &stood), [(DelayKind::Position, 60.0)]);
    }

    #[test]
    fn a_ban_and_a_rest_that_appear_are_named_with_their_minutes() {
        let later = estimate(
            "2026-11-30T09:00:00Z",
            vec![
                segment("drive", "2026-11-30T09:00:00Z", "2026-11-30T10:00:00Z"),
                segment("ban_wait", "2026-11-30T10:00:00Z", "2026-11-30T12:00:00Z"),
                segment("drive", "2026-11-30T12:00:00Z", "2026-11-30T14:30:00Z"),
                segment("break", "2026-11-30T14:30:00Z", "2026-11-30T15:15:00Z"),
                segment("rest", "2026-11-30T15:15:00Z", "2026-12-01T00:15:00Z"),
                segment("drive", "2026-12-01T00:15:00Z", "2026-12-01T02:00:00Z"),
            ],
        );
        // The driving left is the same: the position moved nothing.
        assert_eq!(
            reasons(&planned(), &later),
            [(DelayKind::Rest, 540.0), (DelayKind::Ban, 120.0)]
        );
    }

    #[test]
    fn the_dwell_at_a_stop_reached_on_time_moves_nothing_and_traffic_is_the_model_s() {
        let before = estimate(
            "2026-11-30T08:00:00Z",
            vec![
                segment("drive", "2026-11-30T08:00:00Z", "2026-11-30T10:00:00Z"),
                segment("dwell", "2026-11-30T10:00:00Z", "2026-11-30T10:30:00Z"),
                segment("drive", "2026-11-30T10:30:00Z", "2026-11-30T12:00:00Z"),
            ],
        );
        // At the stop since 10:00, seen at 10:05: the plan sets off after the dwell.
        let mut there = estimate(
            "2026-11-30T10:05:00Z",
            vec![segment(
                "drive",
                "2026-11-30T10:30:00Z",
                "2026-11-30T12:00:00Z",
            )],
        );
        assert!(reasons(&before, &there).is_empty());
        let congested = |minutes: f64| SnapshotFactor {
            feature: "destination_congestion".into(),
            value: Some(0.6),
            minutes,
        };
        let mut jammed = before.clone();
        jammed.factors = vec![congested(5.0)];
        there.factors = vec![congested(20.0)];
        for stop in &mut there.stops {
            stop.eta += TimeDelta::minutes(15);
        }
        assert_eq!(reasons(&jammed, &there), [(DelayKind::Traffic, 15.0)]);
    }

    #[test]
    fn each_stop_keeps_its_first_estimate_and_slips_from_it() {
        let mut first = planned();
        first.follow(None);
        assert_eq!(first.stops[0].first_eta, Some(at("2026-11-30T15:00:00Z")));
        assert_eq!(first.stops[0].slip_minutes, Some(0.0));
        assert_eq!(first.delay_reasons, None);
        let mut later = estimate(
            "2026-11-30T09:00:00Z",
            vec![segment(
                "drive",
                "2026-11-30T09:00:00Z",
                "2026-11-30T15:40:00Z",
            )],
        );
        later.follow(Some(&first));
        let mut last = later.clone();
        for stop in &mut last.stops {
            stop.eta += TimeDelta::minutes(5);
        }
        last.follow(Some(&later));
        assert_eq!(last.stops[0].first_eta, Some(at("2026-11-30T15:00:00Z")));
        assert_eq!(last.stops[0].slip_minutes, Some(45.0));
        // A previous estimate kept without its plan says nothing of what moved.
        let mut kept = later.clone();
        kept.timeline.clear();
        assert_eq!(delay_reasons(&kept, &last), None);
    }
}
