//! Traffic: the flow on the road nearest a point, from a provider behind [`TrafficSource`]
//! (TomTom's Flow Segment Data here; HERE or a DATEX II source would be another impl), turned
//! into a congestion index from 0 (free-flowing) to 1 (standstill or closed).

use futures_util::future::BoxFuture;
use serde::Deserialize;

use super::guard::{send, FeedError};
use crate::domain::geo::GeoPoint;
use crate::ml::features::AREA_CELL_DEG;

/// The flow on one road segment, as a provider reports it.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flow {
    pub current_speed: f64,
    pub free_flow_speed: f64,
    pub current_travel_time: f64,
    pub free_flow_travel_time: f64,
    pub confidence: f64,
    pub road_closure: bool,
}

impl Flow {
    /// The share of the free-flow speed lost: 0 free-flowing, 1 at a standstill or closed.
    pub fn congestion(&self) -> f64 {
        if self.road_closure {
            return 1.0;
        }
        if self.free_flow_speed <= 0.0 {
            return 0.0;
        }
        (1.0 - self.current_speed / self.free_flow_speed).clamp(0.0, 1.0)
    }
}

pub trait TrafficSource: Send + Sync {
    fn flow(&self, at: GeoPoint) -> BoxFuture<'_, Result<Flow, FeedError>>;
}

/// An area of the congestion index: the same half-degree cells as the model's areas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Area {
    pub lat_halves: i32,
    pub lon_halves: i32,
}

impl Area {
    pub fn of(point: GeoPoint) -> Self {
        let cell = |value: f64| (value / AREA_CELL_DEG).floor() as i32;
        Self {
            lat_halves: cell(point.lat()),
            lon_halves: cell(point.lon()),
        }
    }

    /// The middle of the area: where the provider is asked.
    pub fn centre(self) -> (f64, f64) {
        (
            (f64::from(self.lat_halves) + 0.5) * AREA_CELL_DEG,
            (f64::from(self.lon_halves) + 0.5) * AREA_CELL_DEG,
        )
    }

    pub fn name(self) -> String {
        format!("area:{}:{}", self.lat_halves, self.lon_halves)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    flow_segment_data: Flow,
}

/// TomTom's Flow Segment Data (`/traffic/services/4/flowSegmentData/absolute/10/json`).
pub struct TomTom {
    client: reqwest::Client,
    base: String,
    key: String,
}

impl TomTom {
    pub fn new(client: reqwest::Client, base: &str, key: &str) -> Self {
        Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
        }
    }
}

/// A Flow Segment Data answer's flow; anything else is refused.
pub fn parse_flow(body: &[u8]) -> Result<Flow, FeedError> {
    serde_json::from_slice::<Answer>(body)
        .map(|answer| answer.flow_segment_data)
        .map_err(|error| FeedError::Malformed(format!("TomTom: {error}")))
}

impl TrafficSource for TomTom {
    fn flow(&self, at: GeoPoint) -> BoxFuture<'_, Result<Flow, FeedError>> {
        Box::pin(async move {
            let request = self
                .client
                .get(format!(
                    "{}/traffic/services/4/flowSegmentData/absolute/10/json",
                    self.base
                ))
                .query(&[
                    ("point", format!("{},{}", at.lat(), at.lon())),
                    ("unit", "KMPH".to_owned()),
                    ("key", self.key.clone()),
                ]);
            parse_flow(&send(request, "TomTom").await?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_segment_gives_its_congestion() {
        let body = br#"{"flowSegmentData":{"frc":"FRC0","currentSpeed":27,"freeFlowSpeed":90,
            "currentTravelTime":400,"freeFlowTravelTime":120,"confidence":0.95,"roadClosure":false,
            "coordinates":{"coordinate":[{"latitude":48.85,"longitude":2.35}]},
            "@version":"traffic-service-flow 1.0.120"}}"#;
        let flow = parse_flow(body).unwrap();
        assert!((flow.congestion() - 0.7).abs() < 1e-9);
        let closed = Flow {
            road_closure: true,
            ..flow
        };
        assert_eq!(closed.congestion(), 1.0);
        assert!(parse_flow(br#"{"detailedError":{"code":"INVALID_REQUEST"}}"#).is_err());
    }
}
