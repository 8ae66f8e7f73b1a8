//! The wire form of a shipment's live estimate: what `GET /v1/shipments/{id}/eta` answers, what
//! a listed shipment carries with `include=estimate`, and what the event stream pushes. Field
//! for field the JSON the tracker's [`Snapshot`] has always serialised to, now with a schema.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::bans::BanRules;
use crate::domain::explain::{self, Adjustment, Facts, Step};
use crate::domain::geo::Territory;
use crate::domain::rules::SegmentKind;
use crate::http::api::dto::ReasonDto;
use crate::tracking::driver::DriverSource;
use crate::tracking::eta::{
    ModelBand, Position, Risk, Snapshot, SnapshotFactor, SnapshotSegment, StopSnapshot, StopState,
};
use crate::tracking::reasons::{DelayKind, DelayReason};

/// One estimate of a whole shipment, as it stood at `as_of`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LiveEstimate {
    pub shipment_id: String,
    /// When the service computed it.
    pub computed_at: DateTime<Utc>,
    /// The moment the estimate starts from: the last ping, or the planned departure.
    pub as_of: DateTime<Utc>,
    /// The truck's last known position.
    pub position: Option<LivePosition>,
    pub driven_today_minutes: f64,
    pub driven_since_break_minutes: f64,
    pub stops: Vec<LiveStop>,
    /// The plan ahead: driving, breaks, rests, dwells and ban waits. Empty in the history.
    pub timeline: Vec<LiveSegment>,
    /// The strongest factors of the model's answer. Empty in the history.
    pub factors: Vec<LiveFactor>,
    pub model: String,
    pub model_version: String,
    /// The rules answered: no model was served.
    pub fallback: bool,
    /// Configured feeds that could not serve this estimate.
    #[serde(default)]
    pub degraded: Vec<String>,
    /// The estimate's reasons in words, as `POST /v1/eta` gives them; given by
    /// `GET /v1/shipments/{id}/eta`, absent elsewhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub explanation: Vec<ReasonDto>,
    /// The driving-time rules the plan follows: `561/2006` or `none`; absent before the first
    /// estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driving_rules: Option<String>,
    /// Where `driven_today_minutes` and `driven_since_break_minutes` came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_source: Option<LiveDriverSource>,
    /// With `driver_source` `carried`: the delivered shipment of the same vehicle whose
    /// driver's clock this one carries on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_carried_from: Option<String>,
    /// The driver the cab named last (a ping's `driver_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_id: Option<String>,
    /// Which parts of the plan moved the last stop's arrival since the previous estimate, the
    /// largest first; absent for the first estimate and when the previous one's plan is not
    /// known (the first estimate after a restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_reasons: Option<Vec<LiveDelayReason>>,
}

/// Where the driver's state of an estimate came from: `declared` with the shipment (a rested
/// driver when it gave none), `inferred` from the pings' speeds, `carried` from the clock the
/// vehicle's previous shipment ended with, or read from the cab's `tachograph` through the
/// pings.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LiveDriverSource {
    Declared,
    Inferred,
    Carried,
    Tachograph,
}

/// How far one part of the plan moved the arrival since the previous estimate.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct LiveDelayReason {
    pub kind: LiveDelayKind,
    /// Minutes later (negative: earlier), to a tenth.
    pub minutes: f64,
}

/// `position`: where the truck is against where the previous plan had it; `traffic` and
/// `weather`: the learned model's pulls of those kinds; `rest`: breaks and rests; `ban`: ban
/// waits; `border`: border crossings; `dwell`: loading and unloading.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LiveDelayKind {
    Position,
    Traffic,
    Rest,
    Ban,
    Border,
    Dwell,
    Weather,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LiveStop {
    pub index: usize,
    pub id: String,
    pub state: LiveStopState,
    /// The predicted arrival, or the actual one once the truck is there.
    pub eta: DateTime<Utc>,
    pub eta_p10: DateTime<Utc>,
    pub eta_p90: DateTime<Utc>,
    /// Probability of arriving after the window closes; absent without a window.
    pub late_probability: Option<f64>,
    pub severity: Option<LiveRisk>,
    /// The estimator's own band before any correction, and the moment it counts from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<LiveModelBand>,
    /// The first estimate recorded for the stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_eta: Option<DateTime<Utc>>,
    /// `eta` against `first_eta`, in minutes (positive: later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slip_minutes: Option<f64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LiveStopState {
    Pending,
    Arrived,
    Departed,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LiveRisk {
    OnTime,
    AtRisk,
    Late,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct LiveModelBand {
    pub from: DateTime<Utc>,
    pub p10: DateTime<Utc>,
    pub p50: DateTime<Utc>,
    pub p90: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct LivePosition {
    pub lat: f64,
    pub lon: f64,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LiveSegment {
    /// `drive`, `break`, `rest`, `dwell`, `ban_wait` or `border`.
    pub kind: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The country the segment is about (ISO 3166 alpha-2), as in `POST /v1/eta`'s timeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// The ban rule a `ban_wait` waits out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LiveFactor {
    pub feature: String,
    pub value: Option<f64>,
    /// What the factor adds to the arrival, in minutes (negative: earlier).
    pub minutes: f64,
}

impl From<&Snapshot> for LiveEstimate {
    fn from(snapshot: &Snapshot) -> Self {
        Self {
            shipment_id: snapshot.shipment_id.clone(),
            computed_at: snapshot.computed_at,
            as_of: snapshot.as_of,
            position: snapshot.position.map(LivePosition::from),
            driven_today_minutes: snapshot.driven_today_minutes,
            driven_since_break_minutes: snapshot.driven_since_break_minutes,
            stops: snapshot.stops.iter().map(LiveStop::from).collect(),
            timeline: snapshot.timeline.iter().map(LiveSegment::from).collect(),
            factors: snapshot.factors.iter().map(LiveFactor::from).collect(),
            model: snapshot.model.clone(),
            model_version: snapshot.model_version.clone(),
            fallback: snapshot.fallback,
            degraded: snapshot.degraded.clone(),
            explanation: Vec::new(),
            driving_rules: snapshot.driving_rules.clone(),
            driver_source: snapshot.driver_source.map(LiveDriverSource::from),
            driver_carried_from: snapshot.driver_carried_from.clone(),
            driver_id: snapshot.driver_id.clone(),
            delay_reasons: snapshot
                .delay_reasons
                .as_ref()
                .map(|reasons| reasons.iter().map(LiveDelayReason::from).collect()),
        }
    }
}

impl From<DriverSource> for LiveDriverSource {
    fn from(source: DriverSource) -> Self {
        match source {
            DriverSource::Declared => Self::Declared,
            DriverSource::Inferred => Self::Inferred,
            DriverSource::Carried => Self::Carried,
            DriverSource::Tachograph => Self::Tachograph,
        }
    }
}

impl From<&DelayReason> for LiveDelayReason {
    fn from(reason: &DelayReason) -> Self {
        Self {
            kind: match reason.kind {
                DelayKind::Position => LiveDelayKind::Position,
                DelayKind::Traffic => LiveDelayKind::Traffic,
                DelayKind::Rest => LiveDelayKind::Rest,
                DelayKind::Ban => LiveDelayKind::Ban,
                DelayKind::Border => LiveDelayKind::Border,
                DelayKind::Dwell => LiveDelayKind::Dwell,
                DelayKind::Weather => LiveDelayKind::Weather,
            },
            minutes: reason.minutes,
        }
    }
}

impl LiveEstimate {
    /// The estimate with its reasons in words, a ban's kind named from `bans`.
    pub fn explained(snapshot: &Snapshot, bans: &BanRules) -> Self {
        let steps: Vec<Step> = snapshot.timeline.iter().filter_map(step_of).collect();
        let factors: Vec<(&str, f64)> = snapshot
            .factors
            .iter()
            .map(|factor| (factor.feature.as_str(), factor.minutes))
            .collect();
        let explanation = explain::explain(&Facts {
            steps: &steps,
            factors: &factors,
            correction: adjustment(snapshot),
            bans,
        });
        Self {
            explanation: explanation.into_iter().map(ReasonDto::from).collect(),
            ..Self::from(snapshot)
        }
    }
}

/// A stored segment as the words read it; one of a kind this version does not know is
/// left out.
fn step_of(segment: &SnapshotSegment) -> Option<Step<'_>> {
    let kind = match segment.kind.as_str() {
        "drive" => SegmentKind::Drive,
        "break" => SegmentKind::Break,
        "rest" => SegmentKind::Rest,
        "dwell" => SegmentKind::Dwell,
        "ban_wait" => SegmentKind::BanWait,
        "border" => SegmentKind::Border,
        _ => return None,
    };
    Some(Step {
        kind,
        duration: segment.end - segment.start,
        country: segment
            .country
            .as_deref()
            .and_then(|code| code.parse::<Territory>().ok()),
        rule: segment.rule.as_deref(),
    })
}

/// What the arrivals' correction did to the destination: its median against the estimator's
/// own, while the truck has not reached it.
fn adjustment(snapshot: &Snapshot) -> Option<Adjustment> {
    let last = snapshot.stops.last()?;
    let model = last.model?;
    let planned = (model.p50 - model.from).num_seconds() as f64;
    if planned <= 0.0 {
        return None;
    }
    let corrected = (last.eta - model.from).num_seconds() as f64;
    Some(Adjustment {
        share: corrected / planned - 1.0,
        minutes: (last.eta - model.p50).num_seconds() as f64 / 60.0,
    })
}

impl From<&StopSnapshot> for LiveStop {
    fn from(stop: &StopSnapshot) -> Self {
        Self {
            index: stop.index,
            id: stop.id.clone(),
            state: LiveStopState::from(stop.state),
            eta: stop.eta,
            eta_p10: stop.eta_p10,
            eta_p90: stop.eta_p90,
            late_probability: stop.late_probability,
            severity: stop.severity.map(LiveRisk::from),
            model: stop.model.map(LiveModelBand::from),
            first_eta: stop.first_eta,
            slip_minutes: stop.slip_minutes,
        }
    }
}

impl From<StopState> for LiveStopState {
    fn from(state: StopState) -> Self {
        match state {
            StopState::Pending => Self::Pending,
            StopState::Arrived => Self::Arrived,
            StopState::Departed => Self::Departed,
        }
    }
}

impl From<Risk> for LiveRisk {
    fn from(risk: Risk) -> Self {
        match risk {
            Risk::OnTime => Self::OnTime,
            Risk::AtRisk => Self::AtRisk,
            Risk::Late => Self::Late,
        }
    }
}

impl From<ModelBand> for LiveModelBand {
    fn from(band: ModelBand) -> Self {
        Self {
            from: band.from,
            p10: band.p10,
            p50: band.p50,
            p90: band.p90,
        }
    }
}

impl From<Position> for LivePosition {
    fn from(position: Position) -> Self {
        Self {
            lat: position.lat,
            lon: position.lon,
            at: position.at,
        }
    }
}

impl From<&SnapshotSegment> for LiveSegment {
    fn from(segment: &SnapshotSegment) -> Self {
        Self {
            kind: segment.kind.clone(),
            start: segment.start,
            end: segment.end,
            country: segment.country.clone(),
            rule: segment.rule.clone(),
        }
    }
}

impl From<&SnapshotFactor> for LiveFactor {
    fn from(factor: &SnapshotFactor) -> Self {
        Self {
            feature: factor.feature.clone(),
            value: factor.value,
            minutes: factor.minutes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema'd form must stay the JSON clients have always read.
    #[test]
    fn an_estimate_serialises_as_the_snapshot_does() {
        let at = DateTime::parse_from_rfc3339("2026-11-28T09:00:00.123Z")
            .unwrap()
            .with_timezone(&Utc);
        let snapshot = Snapshot {
            shipment_id: "shp_1".into(),
            computed_at: at,
            as_of: at,
            position: Some(Position {
                lat: 45.0,
                lon: 4.0,
                at,
            }),
            driven_today_minutes: 120.0,
            driven_since_break_minutes: 30.0,
            stops: vec![StopSnapshot {
                index: 0,
                id: "lyon".into(),
                state: StopState::Pending,
                eta: at,
                eta_p10: at,
                eta_p90: at,
                late_probability: Some(0.25),
                severity: Some(Risk::AtRisk),
                model: Some(ModelBand {
                    from: at,
                    p10: at,
                    p50: at,
                    p90: at,
                }),
                first_eta: Some(at),
                slip_minutes: Some(12.5),
            }],
            timeline: vec![SnapshotSegment {
                kind: "drive".into(),
                start: at,
                end: at,
                country: Some("FR".into()),
                rule: None,
            }],
            factors: vec![SnapshotFactor {
                feature: "distance_km".into(),
                value: None,
                minutes: -3.5,
            }],
            model: "rules".into(),
            model_version: "v1".into(),
            fallback: true,
            degraded: vec!["weather".into()],
            driving_rules: Some("561/2006".into()),
            driver_source: Some(DriverSource::Carried),
            driver_carried_from: Some("shp_0".into()),
            driver_id: Some("FRD1234".into()),
            delay_reasons: Some(vec![DelayReason {
                kind: DelayKind::Rest,
                minutes: 45.0,
            }]),
        };
        let mut without_band = snapshot.clone();
        without_band.stops[0].model = None;
        without_band.stops[0].first_eta = None;
        without_band.stops[0].slip_minutes = None;
        without_band.position = None;
        without_band.driver_source = None;
        without_band.driver_carried_from = None;
        without_band.driver_id = None;
        without_band.delay_reasons = None;
        for snapshot in [snapshot, without_band] {
            assert_eq!(
                serde_json::to_value(LiveEstimate::from(&snapshot)).unwrap(),
                serde_json::to_value(&snapshot).unwrap()
            );
        }
    }
}
