//! The wire form of a shipment's live estimate: what `GET /v1/shipments/{id}/eta` answers, what
//! a listed shipment carries with `include=estimate`, and what the event stream pushes. Field
//! for field the JSON the tracker's [`Snapshot`] has always serialised to, now with a schema.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::tracking::eta::{
    ModelBand, Position, Risk, Snapshot, SnapshotFactor, SnapshotSegment, StopSnapshot, StopState,
};

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
        }
    }
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
            }],
            timeline: vec![SnapshotSegment {
                kind: "drive".into(),
                start: at,
                end: at,
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
        };
        let mut without_band = snapshot.clone();
        without_band.stops[0].model = None;
        without_band.position = None;
        for snapshot in [snapshot, without_band] {
            assert_eq!(
                serde_json::to_value(LiveEstimate::from(&snapshot)).unwrap(),
                serde_json::to_value(&snapshot).unwrap()
            );
        }
    }
}
