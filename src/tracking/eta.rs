//! The live estimate of a shipment: from where the truck is now to every stop still ahead,
//! with the model at the current horizon, and the risk of missing each window.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::driver::DriverSource;
use super::reasons::DelayReason;
use super::shipment::{Fix, Shipment, ShipmentStop};
use crate::domain::eta::{EtaQuery, Stop, TripContext};
use crate::domain::explain::driving_rules_name;
use crate::domain::forecast::Forecaster;
use crate::domain::geo::{GeoPoint, Territory};
use crate::domain::risk::{ArrivalBand, RiskThresholds, Severity};
use crate::domain::rules::DriverState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopState {
    Pending,
    Arrived,
    Departed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    OnTime,
    AtRisk,
    Late,
}

impl From<Severity> for Risk {
    fn from(severity: Severity) -> Self {
        match severity {
            Severity::OnTime => Self::OnTime,
            Severity::AtRisk => Self::AtRisk,
            Severity::Late => Self::Late,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopSnapshot {
    pub index: usize,
    pub id: String,
    pub state: StopState,
    /// The predicted arrival, or the actual one once the truck is there.
    pub eta: DateTime<Utc>,
    pub eta_p10: DateTime<Utc>,
    pub eta_p90: DateTime<Utc>,
    /// Probability of arriving after the window closes; absent without a window.
    pub late_probability: Option<f64>,
    pub severity: Option<Risk>,
    /// The estimator's own band before any correction, and the moment it counts from: what
    /// the arrival scores, so that a correction learns from the model and never from itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelBand>,
    /// The first estimate recorded for the stop, and the median now against it, in minutes
    /// (positive: later); absent from the snapshots of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_eta: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slip_minutes: Option<f64>,
}

/// A band as the estimator gave it, from `from`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModelBand {
    pub from: DateTime<Utc>,
    pub p10: DateTime<Utc>,
    pub p50: DateTime<Utc>,
    pub p90: DateTime<Utc>,
}

impl ModelBand {
    fn of(from: DateTime<Utc>, band: ArrivalBand) -> Self {
        Self {
            from,
            p10: band.p10,
            p50: band.p50,
            p90: band.p90,
        }
    }

    pub fn band(&self) -> ArrivalBand {
        ArrivalBand {
            p10: self.p10,
            p50: self.p50,
            p90: self.p90,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotFactor {
    pub feature: String,
    pub value: Option<f64>,
    pub minutes: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotSegment {
    pub kind: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The segment's country (ISO 3166 alpha-2) and the ban rule a wait waits out, as the
    /// plan names them; absent from the snapshots of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// The truck's last known position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub lat: f64,
    pub lon: f64,
    pub at: DateTime<Utc>,
}

/// One estimate of a whole shipment, as it stood at `as_of`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub shipment_id: String,
    /// When the service computed it.
    pub computed_at: DateTime<Utc>,
    /// The moment the estimate starts from: the last ping, or the planned departure.
    pub as_of: DateTime<Utc>,
    pub position: Option<Position>,
    pub driven_today_minutes: f64,
    pub driven_since_break_minutes: f64,
    pub stops: Vec<StopSnapshot>,
    pub timeline: Vec<SnapshotSegment>,
    pub factors: Vec<SnapshotFactor>,
    pub model: String,
    pub model_version: String,
    pub fallback: bool,
    /// Configured feeds that could not serve this estimate (see the ETA answer's).
    #[serde(default)]
    pub degraded: Vec<String>,
    /// The driving-time rules the plan followed (see the ETA answer's); absent before the
    /// estimator is asked, and from the snapshots of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driving_rules: Option<String>,
    /// Where the driver's state came from; absent from the snapshots of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_source: Option<DriverSource>,
    /// The delivered shipment of the same vehicle whose clock the driver's state carries on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_carried_from: Option<String>,
    /// The driver the cab named last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_id: Option<String>,
    /// What moved the destination's arrival since the previous estimate (see
    /// [`crate::tracking::reasons`]); absent for the first estimate and when the previous
    /// one's plan is not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_reasons: Option<Vec<DelayReason>>,
}

impl Snapshot {
    /// The largest move of a stop's median between two snapshots, in minutes.
    pub fn largest_move_minutes(&self, previous: &Snapshot) -> f64 {
        self.stops
            .iter()
            .zip(&previous.stops)
            .map(|(now, before)| minutes(now.eta - before.eta).abs())
            .fold(0.0, f64::max)
    }

    /// Stops whose severity is not what it was.
    pub fn risk_changes(&self, previous: &Snapshot) -> Vec<usize> {
        self.stops
            .iter()
            .zip(&previous.stops)
            .filter(|(now, before)| now.severity != before.severity)
            .map(|(now, _)| now.index)
            .collect()
    }
}

/// What the live estimate knows about the truck.
#[derive(Debug, Clone, Copy)]
pub struct TruckState {
    pub last_fix: Option<Fix>,
    /// Inferred from the pings, or as declared when there are none.
    pub driver: DriverState,
    pub now: DateTime<Utc>,
}

fn minutes(delta: TimeDelta) -> f64 {
    delta.num_milliseconds() as f64 / 60_000.0
}

fn exact(at: DateTime<Utc>) -> ArrivalBand {
    ArrivalBand {
        p10: at,
        p50: at,
        p90: at,
    }
}

/// Estimates every stop of `shipment` from the truck's state.
pub fn live_snapshot(
    shipment: &Shipment,
    truck: TruckState,
    forecaster: &Forecaster,
    thresholds: RiskThresholds,
    explain: bool,
) -> Snapshot {
    let mut ahead = Ahead::unknown(shipment.stops.len());
    let as_of = match shipment.next_stop() {
        Some(next) => {
            let start = Start::of(shipment, next, truck.last_fix, truck.now);
            ahead.bands[0] = ahead.bands[0].or(start.at_first);
            if start.first_ahead < shipment.stops.len() {
                ahead.ask(shipment, &start, truck.driver, forecaster, explain);
            }
            start.as_of
        }
        None => shipment
            .stops
            .last()
            .and_then(|stop| stop.arrived)
            .map_or(truck.now, |event| event.at),
    };
    let stops = shipment
        .stops
        .iter()
        .enumerate()
        .map(|(index, stop)| {
            let mut snapshot = stop_snapshot(index, stop, ahead.bands[index], as_of, thresholds);
            if snapshot.state == StopState::Pending {
                snapshot.model = ahead.model_bands[index];
            }
            snapshot
        })
        .collect();
    Snapshot {
        shipment_id: shipment.id.clone(),
        computed_at: truck.now,
        as_of,
        position: truck.last_fix.map(|fix| Position {
            lat: fix.point.lat(),
            lon: fix.point.lon(),
            at: fix.at,
        }),
        driven_today_minutes: minutes(truck.driver.driven_today()),
        driven_since_break_minutes: minutes(truck.driver.driven_since_break()),
        stops,
        timeline: ahead.timeline,
        factors: ahead.factors,
        model: ahead.model,
        model_version: ahead.model_version,
        fallback: ahead.fallback,
        degraded: ahead.degraded,
        driving_rules: ahead.driving_rules,
        // The tracker knows these, and what came before.
        driver_source: None,
        driver_carried_from: None,
        driver_id: None,
        delay_reasons: None,
    }
}

/// Where the truck sets off for the next stop it has not reached, and when.
struct Start {
    point: GeoPoint,
    departure: DateTime<Utc>,
    /// The first stop the question asks about.
    first_ahead: usize,
    /// The moment the estimate starts from: the last sign of the truck, or the departure.
    as_of: DateTime<Utc>,
    /// The first stop's arrival when the trip begins there: the truck is there at departure.
    at_first: Option<ArrivalBand>,
}

impl Start {
    fn of(shipment: &Shipment, next: usize, last_fix: Option<Fix>, now: DateTime<Utc>) -> Self {
        let stop = &shipment.stops[next];
        match (stop.arrived, last_fix) {
            // At the stop: it leaves after its dwell, or now if that is past.
            (Some(arrived), fix) => {
                let seen = fix.map_or(arrived.at, |fix| fix.at.max(arrived.at));
                Self {
                    point: stop.location(),
                    departure: (arrived.at + stop.dwell()).max(seen),
                    first_ahead: next + 1,
                    as_of: seen,
                    at_first: None,
                }
            }
            (None, Some(fix)) => Self {
                point: fix.point,
                departure: fix.at,
                first_ahead: next,
                as_of: fix.at,
                at_first: None,
            },
            (None, None) => {
                let departure = shipment.planned_departure.max(now);
                match shipment.origin {
                    None => Self {
                        point: shipment.stops[0].location(),
                        departure: departure + shipment.stops[0].dwell(),
                        first_ahead: 1,
                        as_of: departure,
                        at_first: Some(exact(departure)),
                    },
                    Some(_) => Self {
                        point: shipment.origin_point(),
                        departure,
                        first_ahead: 0,
                        as_of: departure,
                        at_first: None,
                    },
                }
            }
        }
    }
}

/// What the estimator says of the stops ahead; nothing until it is asked.
struct Ahead {
    bands: Vec<Option<ArrivalBand>>,
    model_bands: Vec<Option<ModelBand>>,
    factors: Vec<SnapshotFactor>,
    timeline: Vec<SnapshotSegment>,
    model: String,
    model_version: String,
    fallback: bool,
    degraded: Vec<String>,
    driving_rules: Option<String>,
}

impl Ahead {
    fn unknown(stops: usize) -> Self {
        Self {
            bands: vec![None; stops],
            model_bands: vec![None; stops],
            factors: Vec::new(),
            timeline: Vec::new(),
            model: String::new(),
            model_version: String::new(),
            fallback: false,
            degraded: Vec::new(),
            driving_rules: None,
        }
    }

    /// Asks the question still open, from `start` through the last stop. The forecaster
    /// answers each stop ahead as its own question (the trip from `start` to it), so a rest
    /// taken after a stop cannot move it and a stop's arrival is what `POST /v1/eta` answers
    /// for the same leg. The whole trip's answer brings the plan, the factors and the model.
    fn ask(
        &mut self,
        shipment: &Shipment,
        start: &Start,
        driver: DriverState,
        forecaster: &Forecaster,
        explain: bool,
    ) {
        let last = self.bands.len() - 1;
        let answer = forecaster.answer(
            &shipment.organisation,
            query(shipment, start, last, driver),
            elapsed(shipment, start.departure),
            explain,
        );
        let from = answer.from();
        let stops = answer.estimate.stops.iter().zip(&answer.model_stops);
        for (target, (stop, model)) in (start.first_ahead..last).zip(stops) {
            self.bands[target] = Some(stop.band);
            self.model_bands[target] = Some(ModelBand::of(from, *model));
        }
        self.bands[last] = Some(answer.estimate.band);
        self.model_bands[last] = Some(ModelBand::of(from, answer.model_band));
        self.degraded = answer.degraded.into_iter().map(str::to_owned).collect();
        self.details(answer.estimate);
    }

    /// The plan, the factors and the model of the whole trip's answer.
    fn details(&mut self, estimate: crate::domain::eta::Estimate) {
        self.factors = estimate
            .factors
            .iter()
            .map(|factor| SnapshotFactor {
                feature: factor.feature.to_owned(),
                value: factor.value.is_finite().then_some(factor.value),
                minutes: factor.minutes,
            })
            .collect();
        self.timeline = estimate
            .timeline
            .segments
            .iter()
            .map(|segment| SnapshotSegment {
                kind: segment.kind.as_str().into(),
                start: segment.start,
                end: segment.end,
                country: segment
                    .country
                    .filter(|country| *country != Territory::Elsewhere)
                    .map(|country| country.code().to_owned()),
                rule: segment.rule.map(str::to_owned),
            })
            .collect();
        self.driving_rules = Some(driving_rules_name(estimate.under_driving_rules).to_owned());
        (self.model, self.model_version, self.fallback) = (
            estimate.model.name,
            estimate.model.version,
            estimate.model.fallback,
        );
    }
}

/// One stop: final once the truck arrived there, else its band and the risk to its window.
fn stop_snapshot(
    index: usize,
    stop: &ShipmentStop,
    band: Option<ArrivalBand>,
    as_of: DateTime<Utc>,
    thresholds: RiskThresholds,
) -> StopSnapshot {
    let window_end = stop.window().map(|window| window.end());
    let (state, band, risk) = match (stop.arrived, stop.departed) {
        (Some(arrived), departed) => {
            let risk = window_end.map(|end| match arrived.at > end {
                true => (1.0, Risk::Late),
                false => (0.0, Risk::OnTime),
            });
            let state = match departed {
                Some(_) => StopState::Departed,
                None => StopState::Arrived,
            };
            (state, exact(arrived.at), risk)
        }
        (None, _) => {
            let band = band.unwrap_or_else(|| exact(as_of));
            let risk = window_end.map(|end| {
                let risk = band.late_risk(end, thresholds);
                (risk.probability, risk.severity.into())
            });
            (StopState::Pending, band, risk)
        }
    };
    StopSnapshot {
        index,
        id: stop.id.clone(),
        state,
        eta: band.p50,
        eta_p10: band.p10,
        eta_p90: band.p90,
        late_probability: risk.map(|(probability, _)| (probability * 1000.0).round() / 1000.0),
        severity: risk.map(|(_, severity)| severity),
        model: None,
        first_eta: None,
        slip_minutes: None,
    }
}

/// The question for stop `target`: from where and when the truck sets off, through the stops
/// ahead before it.
fn query(shipment: &Shipment, start: &Start, target: usize, driver: DriverState) -> EtaQuery {
    EtaQuery {
        origin: start.point,
        destination: shipment.stops[target].location(),
        departure: start.departure.fixed_offset(),
        vehicle: shipment.vehicle_class(),
        stops: shipment.stops[start.first_ahead..target]
            .iter()
            .map(|stop| Stop {
                location: stop.location(),
                dwell: stop.dwell(),
                window: stop.window(),
            })
            .collect(),
        driver,
        // The forecaster adds the organisation and the conditions.
        context: TripContext {
            carriage: shipment.carriage(),
            ..TripContext::default()
        },
    }
}

/// Time since the trip began, as the model learnt it: from leaving the first stop when the
/// trip begins there, else from the planned departure.
fn elapsed(shipment: &Shipment, at: DateTime<Utc>) -> TimeDelta {
    let began = match shipment.origin {
        None => shipment.stops[0]
            .departed
            .map_or(shipment.planned_departure, |event| event.at),
        Some(_) => shipment.planned_departure,
    };
    (at - began).max(TimeDelta::zero())
}
