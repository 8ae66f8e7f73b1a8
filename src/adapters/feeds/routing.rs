//! Road distance and free-flow time per leg from a routing engine behind [`Router`]: Valhalla
//! (`/route` with truck costing) or OSRM (`/route/v1/driving`).

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;

use super::guard::{send, FeedError};
use crate::domain::eta::RoadLeg;
use crate::domain::geo::GeoPoint;

pub trait Router: Send + Sync {
    /// One leg per pair of consecutive points.
    fn route(&self, points: &[GeoPoint]) -> BoxFuture<'_, Result<Vec<RoadLeg>, FeedError>>;
}

fn check_legs(legs: Vec<RoadLeg>, points: usize, engine: &str) -> Result<Vec<RoadLeg>, FeedError> {
    if legs.len() + 1 != points
        || legs
            .iter()
            .any(|leg| !(leg.km >= 0.0 && leg.free_flow_minutes >= 0.0))
    {
        return Err(FeedError::Malformed(format!(
            "{engine}: {} legs for {points} points",
            legs.len()
        )));
    }
    Ok(legs)
}

pub struct Valhalla {
    client: reqwest::Client,
    base: String,
}

impl Valhalla {
    pub fn new(client: reqwest::Client, base: &str) -> Self {
        Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
        }
    }
}

#[derive(Deserialize)]
struct ValhallaAnswer {
    trip: ValhallaTrip,
}

#[derive(Deserialize)]
struct ValhallaTrip {
    legs: Vec<ValhallaLeg>,
}

#[derive(Deserialize)]
struct ValhallaLeg {
    summary: ValhallaSummary,
}

#[derive(Deserialize)]
struct ValhallaSummary {
    /// Kilometres, as asked.
    length: f64,
    /// Seconds.
    time: f64,
}

/// A Valhalla `/route` answer's legs.
pub fn parse_valhalla(body: &[u8], points: usize) -> Result<Vec<RoadLeg>, FeedError> {
    let answer: ValhallaAnswer = serde_json::from_slice(body)
        .map_err(|error| FeedError::Malformed(format!("Valhalla: {error}")))?;
    let legs = answer
        .trip
        .legs
        .iter()
        .map(|leg| RoadLeg {
            km: leg.summary.length,
            free_flow_minutes: leg.summary.time / 60.0,
        })
        .collect();
    check_legs(legs, points, "Valhalla")
}

impl Router for Valhalla {
    fn route(&self, points: &[GeoPoint]) -> BoxFuture<'_, Result<Vec<RoadLeg>, FeedError>> {
        let n = points.len();
        let body = json!({
            "locations": points
                .iter()
                .map(|point| json!({"lat": point.lat(), "lon": point.lon()}))
                .collect::<Vec<_>>(),
            "costing": "truck",
            "units": "kilometers",
            "directions_type": "none",
        });
        Box::pin(async move {
            let request = self.client.post(format!("{}/route", self.base)).json(&body);
            parse_valhalla(&send(request, "Valhalla").await?, n)
        })
    }
}

pub struct Osrm {
    client: reqwest::Client,
    base: String,
}

impl Osrm {
    pub fn new(client: reqwest::Client, base: &str) -> Self {
        Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
        }
    }
}

#[derive(Deserialize)]
struct OsrmAnswer {
    code: String,
    #[serde(default)]
    routes: Vec<OsrmRoute>,
}

#[derive(Deserialize)]
struct OsrmRoute {
    legs: Vec<OsrmLeg>,
}

#[derive(Deserialize)]
struct OsrmLeg {
    /// Metres.
    distance: f64,
    /// Seconds.
    duration: f64,
}

/// An OSRM `/route/v1/driving` answer's legs (the first route).
pub fn parse_osrm(body: &[u8], points: usize) -> Result<Vec<RoadLeg>, FeedError> {
    let answer: OsrmAnswer = serde_json::from_slice(body)
        .map_err(|error| FeedError::Malformed(format!("OSRM: {error}")))?;
    if answer.code != "Ok" {
        return Err(FeedError::Malformed(format!("OSRM: {}", answer.code)));
    }
    let route = answer
        .routes
        .into_iter()
        .next()
        .ok_or_else(|| FeedError::Malformed("OSRM: no route".into()))?;
    let legs = route
        .legs
        .iter()
        .map(|leg| RoadLeg {
            km: leg.distance / 1_000.0,
            free_flow_minutes: leg.duration / 60.0,
        })
        .collect();
    check_legs(legs, points, "OSRM")
}

impl Router for Osrm {
    fn route(&self, points: &[GeoPoint]) -> BoxFuture<'_, Result<Vec<RoadLeg>, FeedError>> {
        let n = points.len();
        let coordinates = points
            .iter()
            .map(|point| format!("{},{}", point.lon(), point.lat()))
            .collect::<Vec<_>>()
            .join(";");
        Box::pin(async move {
            let request = self
                .client
                .get(format!("{}/route/v1/driving/{coordinates}", self.base))
                .query(&[("overview", "false")]);
            parse_osrm(&send(request, "OSRM").await?, n)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_engines_answers_become_legs() {
        let valhalla =
            br#"{"trip":{"locations":[],"legs":[{"summary":{"length":12.5,"time":900.0}},
            {"summary":{"length":3.0,"time":240.0}}],"summary":{"length":15.5,"time":1140.0},
            "status":0,"units":"kilometers"}}"#;
        let legs = parse_valhalla(valhalla, 3).unwrap();
        assert_eq!(
            legs[0],
            RoadLeg {
                km: 12.5,
                free_flow_minutes: 15.0
            }
        );
        assert!(
            parse_valhalla(valhalla, 2).is_err(),
            "a leg per pair of points"
        );
        let osrm =
            br#"{"code":"Ok","routes":[{"legs":[{"distance":12500.0,"duration":900.0,"steps":[]}],
            "distance":12500.0,"duration":900.0}],"waypoints":[]}"#;
        assert_eq!(
            parse_osrm(osrm, 2).unwrap()[0],
            RoadLeg {
                km: 12.5,
                free_flow_minutes: 15.0
            }
        );
        assert!(parse_osrm(br#"{"code":"NoRoute","message":"Impossible route"}"#, 2).is_err());
    }
}
