//! The rules-based ETA: road distance from the great circle, speeds from French limits, then the
//! driving-rules engine. It always answers, and it is the baseline a learned model must beat.

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};

use crate::domain::calendar::BanCalendar;
use crate::domain::geo::{GeoPoint, Region, Territory};
use crate::domain::risk::{ArrivalBand, LateRisk, RiskThresholds};
use crate::domain::rules::{
    self, Activity, Breakdown, DriverState, RulesPolicy, Timeline, TripPlan,
};
use crate::domain::vehicle::{Carriage, Operation, VehicleClass};

/// A delivery or collection window at a stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a window must not end before it starts")]
pub struct InvertedWindow;

impl Window {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self, InvertedWindow> {
        if end < start {
            return Err(InvertedWindow);
        }
        Ok(Self { start, end })
    }

    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }
}

/// An intermediate stop on the way to the destination.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stop {
    pub location: GeoPoint,
    pub dwell: TimeDelta,
    pub window: Option<Window>,
}

/// Everything an ETA is asked about one trip.
#[derive(Debug, Clone, PartialEq)]
pub struct EtaQuery {
    pub origin: GeoPoint,
    pub destination: GeoPoint,
    /// Kept with its offset so that answers come back in the caller's own offset.
    pub departure: DateTime<FixedOffset>,
    pub vehicle: VehicleClass,
    pub stops: Vec<Stop>,
    pub driver: DriverState,
    /// What is known about the trip beyond its plan; empty by default.
    pub context: TripContext,
}

/// Who runs a trip and what lies on its road: the carrier (as the model knows partners), the
/// weather and congestion, the routing engine's legs. Each part is optional; a missing one
/// leaves the estimators on what they do without it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TripContext {
    pub partner: Option<String>,
    pub conditions: Conditions,
    /// One per leg (origin to first stop, ..., last stop to destination), from a routing
    /// engine; without them road distance is the great circle times the circuity factor.
    pub legs: Option<Vec<RoadLeg>>,
    /// The vehicle's gross weight and the kind of carriage (domestic, international,
    /// cabotage), when the caller gives them.
    pub carriage: Carriage,
}

/// Weather at the middle of the route when the truck is expected there (Open-Meteo's variables
/// and units) and congestion near each end (0 free-flowing to 1 standstill).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Conditions {
    pub temperature_2m: Option<f64>,
    pub precipitation: Option<f64>,
    pub snowfall: Option<f64>,
    pub wind_speed_10m: Option<f64>,
    pub visibility: Option<f64>,
    pub origin_congestion: Option<f64>,
    pub destination_congestion: Option<f64>,
}

impl Conditions {
    /// In the order of `crate::ml::features::CONDITION_COLUMNS`.
    pub fn values(&self) -> [Option<f64>; 7] {
        [
            self.temperature_2m,
            self.precipitation,
            self.snowfall,
            self.wind_speed_10m,
            self.visibility,
            self.origin_congestion,
            self.destination_congestion,
        ]
    }

    pub fn from_values(values: [Option<f64>; 7]) -> Self {
        let [temperature_2m, precipitation, snowfall, wind_speed_10m, visibility, origin_congestion, destination_congestion] =
            values;
        Self {
            temperature_2m,
            precipitation,
            snowfall,
            wind_speed_10m,
            visibility,
            origin_congestion,
            destination_congestion,
        }
    }
}

/// One leg as a routing engine drives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoadLeg {
    pub km: f64,
    /// The engine's driving time without traffic.
    pub free_flow_minutes: f64,
}

/// Which estimator produced an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub name: String,
    pub version: String,
    /// The rules answered because the learned model was missing or failed.
    pub fallback: bool,
}

/// One input's contribution to a learned estimate: `minutes` later (negative: earlier) than
/// the model's average answer because `feature` had `value`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Factor {
    pub feature: &'static str,
    pub value: f64,
    pub minutes: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StopEstimate {
    pub band: ArrivalBand,
    pub late_risk: Option<LateRisk>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Arrival at the destination: P10, median, P90.
    pub band: ArrivalBand,
    pub road_distance_km: f64,
    /// Where the minutes go: driving, breaks, rests, dwell, ban waits.
    pub breakdown: Breakdown,
    /// The plan the rules make, segment by segment; a learned estimate keeps the rules' plan.
    pub timeline: Timeline,
    /// Each intermediate stop's arrival, in the query's order.
    pub stops: Vec<StopEstimate>,
    /// The strongest contributions to a learned estimate; empty for the rules.
    pub factors: Vec<Factor>,
    pub model: ModelInfo,
    /// Whether Regulation (EC) 561/2006 governed the plan (see
    /// [`TripPlan::follows_driving_time_rules`]).
    pub under_driving_rules: bool,
    /// The kind of carriage the plan took: as given, or inferred from the route's countries.
    pub operation: Operation,
}

/// Anything that turns a query into an estimate. The API knows estimators only by this trait.
pub trait EstimateEta: Send + Sync {
    fn estimate(&self, query: &EtaQuery) -> Estimate;

    /// Estimates in the order of the queries, with their factors when `explain` is set;
    /// estimators that gain from seeing many at once override it.
    fn estimate_batch(&self, queries: &[EtaQuery], explain: bool) -> Vec<Estimate> {
        queries
            .iter()
            .map(|query| {
                let mut estimate = self.estimate(query);
                if !explain {
                    estimate.factors.clear();
                }
                estimate
            })
            .collect()
    }

    /// A question asked mid-trip: the truck left its origin `elapsed` ago. Estimators that
    /// learnt from mid-trip samples use it; factors only when `explain` is set.
    fn estimate_live(&self, query: &EtaQuery, elapsed: TimeDelta, explain: bool) -> Estimate {
        let _ = elapsed;
        let mut estimate = self.estimate(query);
        if !explain {
            estimate.factors.clear();
        }
        estimate
    }

    /// The model that answers, as reported by readiness checks.
    fn model_info(&self) -> ModelInfo;
}

/// Legal speed limits in France for one class of vehicle, in km/h.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeedLimits {
    pub motorway_kmh: f64,
    pub main_road_kmh: f64,
    pub urban_kmh: f64,
    /// The share of the limit that is realised on average (speed limiters, gradients, traffic).
    pub attainment: f64,
}

/// Goods vehicles above 3.5 t: 90 km/h on motorways, 80 on other roads, 50 in towns.
/// A 90 km/h limiter and the traffic give about 78 km/h on a long motorway run.
pub const HEAVY_GOODS_LIMITS: SpeedLimits = SpeedLimits {
    motorway_kmh: 90.0,
    main_road_kmh: 80.0,
    urban_kmh: 50.0,
    attainment: 0.87,
};

/// Vans keep the limits of cars: 130 km/h on motorways, 80 on two-lane roads, 50 in towns;
/// fully loaded vans cruise well below 130.
pub const VAN_LIMITS: SpeedLimits = SpeedLimits {
    motorway_kmh: 130.0,
    main_road_kmh: 80.0,
    urban_kmh: 50.0,
    attainment: 0.82,
};

/// How road distance and road types are inferred without a routing engine.
#[derive(Debug, Clone, PartialEq)]
pub struct RoadModel {
    /// Road distance over great-circle distance. 1.2 is typical of French long-haul lanes
    /// (Lille to Marseille: 835 km as the crow flies, about 1,000 km by motorway).
    pub circuity: f64,
    /// Kilometres at each end of a leg driven in town, then on main roads, before the motorway.
    pub urban_km_per_end: f64,
    pub main_road_km_per_end: f64,
    /// Sampling step along a leg to decide which stretches lie in France.
    pub territory_step_km: f64,
    pub heavy_goods: SpeedLimits,
    pub van: SpeedLimits,
}

impl Default for RoadModel {
    fn default() -> Self {
        Self {
            circuity: 1.2,
            urban_km_per_end: 3.0,
            main_road_km_per_end: 12.0,
            territory_step_km: 5.0,
            heavy_goods: HEAVY_GOODS_LIMITS,
            van: VAN_LIMITS,
        }
    }
}

/// The rules baseline has no error model of its own: its band is a documented heuristic, wider
/// late than early, because delays (traffic, queues at the dock) outnumber gains.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BandHeuristic {
    /// P10 is earlier than the estimate by this share of the driving time.
    pub early_share_of_driving: f64,
    /// P90 is later by this share of the driving time, plus this share of the dwell time.
    pub late_share_of_driving: f64,
    pub late_share_of_dwell: f64,
}

impl Default for BandHeuristic {
    fn default() -> Self {
        Self {
            early_share_of_driving: 0.06,
            late_share_of_driving: 0.18,
            late_share_of_dwell: 0.5,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RulesEtaConfig {
    pub road: RoadModel,
    pub band: BandHeuristic,
    pub policy: RulesPolicy,
    pub risk: RiskThresholds,
    pub bans: BanCalendar,
}

/// The rules-based estimator.
#[derive(Debug, Clone, Default)]
pub struct RulesEta {
    config: RulesEtaConfig,
}

pub const RULES_MODEL_NAME: &str = "rules";

impl RulesEta {
    pub fn new(config: RulesEtaConfig) -> Self {
        Self { config }
    }

    /// The same engine planning without the regulation's extended days and reduced rests, as
    /// a carrier that never uses them drives.
    pub fn strict(&self) -> RulesEta {
        let mut config = self.config.clone();
        config.policy.use_extended_days = false;
        config.policy.use_reduced_rests = false;
        RulesEta { config }
    }

    pub fn risk_thresholds(&self) -> RiskThresholds {
        self.config.risk
    }

    /// The bans the engine plans with, to name a ban wait's rule in words.
    pub fn bans(&self) -> &BanCalendar {
        &self.config.bans
    }

    /// The trip as the engine sees it, and the total road distance.
    pub fn trip_plan(&self, query: &EtaQuery) -> (TripPlan, f64) {
        let limits = match query.vehicle {
            VehicleClass::Van => self.config.road.van,
            VehicleClass::Rigid | VehicleClass::Articulated => self.config.road.heavy_goods,
        };
        let mut activities = Vec::with_capacity(2 * query.stops.len() + 2);
        let mut road_distance_km = 0.0;
        let mut from = query.origin;
        // Routed legs count only when there is one per leg.
        let routed = query
            .context
            .legs
            .as_deref()
            .filter(|legs| legs.len() == query.stops.len() + 1);
        let routed_leg = |index: usize| routed.map(|legs| legs[index]);
        for (index, stop) in query.stops.iter().enumerate() {
            road_distance_km += self.push_leg(
                &mut activities,
                from,
                stop.location,
                limits,
                routed_leg(index),
            );
            activities.push(Activity::Stop { dwell: stop.dwell });
            from = stop.location;
        }
        road_distance_km += self.push_leg(
            &mut activities,
            from,
            query.destination,
            limits,
            routed_leg(query.stops.len()),
        );
        let plan = TripPlan {
            departure: query.departure.with_timezone(&Utc),
            vehicle: query.vehicle,
            driver: query.driver,
            activities,
            carriage: query.context.carriage,
        };
        (plan, road_distance_km)
    }

    fn push_leg(
        &self,
        activities: &mut Vec<Activity>,
        from: GeoPoint,
        to: GeoPoint,
        limits: SpeedLimits,
        routed: Option<RoadLeg>,
    ) -> f64 {
        let road = &self.config.road;
        let road_km = routed.map_or(from.distance_km(to) * road.circuity, |leg| leg.km);
        // An engine's free-flow time is a car's or a truck's without a limiter: never faster
        // than the limits allow this vehicle.
        let minutes = driving_minutes(road_km, road, limits)
            .max(routed.map_or(0.0, |leg| leg.free_flow_minutes));
        let total = TimeDelta::milliseconds((minutes * 60_000.0).round() as i64);
        activities.extend(drive_activities(from, to, total, road.territory_step_km));
        road_km
    }

    fn band(&self, at: DateTime<Utc>, breakdown: &Breakdown) -> ArrivalBand {
        let band = &self.config.band;
        let scaled = |delta: TimeDelta, share: f64| {
            TimeDelta::milliseconds((delta.num_milliseconds() as f64 * share).round() as i64)
        };
        ArrivalBand {
            p10: at - scaled(breakdown.driving, band.early_share_of_driving),
            p50: at,
            p90: at
                + scaled(breakdown.driving, band.late_share_of_driving)
                + scaled(breakdown.dwell, band.late_share_of_dwell),
        }
    }
}

/// The driving of one leg as activities, one per stretch of territory (and of region with
/// rules of its own), whose durations add up to `total` exactly. Stretches are decided by
/// sampling the great circle every `step_km`.
pub fn drive_activities(
    from: GeoPoint,
    to: GeoPoint,
    total: TimeDelta,
    step_km: f64,
) -> Vec<Activity> {
    if total <= TimeDelta::zero() {
        return Vec::new();
    }
    let n_samples = ((from.distance_km(to) / step_km).ceil() as usize).max(1);
    let mut stretches: Vec<((Territory, Option<Region>), usize)> = Vec::new();
    for place in sample_places(from, to, n_samples, locate_place) {
        match stretches.last_mut() {
            Some((last, count)) if *last == place => *count += 1,
            _ => stretches.push((place, 1)),
        }
    }
    let mut activities = Vec::with_capacity(stretches.len());
    let mut assigned = TimeDelta::zero();
    let mut samples_done = 0;
    for ((territory, region), count) in stretches {
        samples_done += count;
        // Cumulative rounding, so the stretches add up to the leg exactly.
        let until = total * samples_done as i32 / n_samples as i32;
        activities.push(Activity::Drive {
            duration: until - assigned,
            territory,
            region,
        });
        assigned = until;
    }
    activities
}

/// Every `COARSE_STRIDE`-th sample is located exactly; the samples between two that agree take
/// their territory, the others are located one by one. Only an excursion across a border and
/// back between two coarse samples (40 km apart at the default step) goes unseen, which the
/// outline's own precision would blur anyway; it saves most of the point-in-polygon work.
const COARSE_STRIDE: usize = 8;

#[cfg(test)]
fn sample_territories(from: GeoPoint, to: GeoPoint, n_samples: usize) -> Vec<Territory> {
    sample_places(from, to, n_samples, Territory::of)
}

/// The territory of a point and the region of that territory it lies in, if any.
fn locate_place(point: GeoPoint) -> (Territory, Option<Region>) {
    let territory = Territory::of(point);
    let region = Region::of(point).filter(|region| region.territory() == territory);
    (territory, region)
}

fn sample_places<T: Copy + PartialEq>(
    from: GeoPoint,
    to: GeoPoint,
    n_samples: usize,
    place_of: impl Fn(GeoPoint) -> T,
) -> Vec<T> {
    let locate = |sample_idx: usize| {
        let fraction = (sample_idx as f64 + 0.5) / n_samples as f64;
        place_of(from.towards(to, fraction))
    };
    let mut territories = Vec::with_capacity(n_samples);
    let mut start = 0;
    let mut start_territory = locate(0);
    while start < n_samples - 1 {
        let end = (start + COARSE_STRIDE).min(n_samples - 1);
        let end_territory = locate(end);
        territories.push(start_territory);
        if end_territory == start_territory {
            territories.extend(std::iter::repeat_n(start_territory, end - start - 1));
        } else {
            territories.extend((start + 1..end).map(locate));
        }
        start = end;
        start_territory = end_territory;
    }
    territories.push(start_territory);
    territories
}

/// Driving time for a leg of `road_km`: town and main-road stretches at both ends (shrunk
/// proportionally on short legs), the rest on motorways.
pub fn driving_minutes(road_km: f64, road: &RoadModel, limits: SpeedLimits) -> f64 {
    let access_km = 2.0 * (road.urban_km_per_end + road.main_road_km_per_end);
    let shrink = if road_km < access_km {
        road_km / access_km
    } else {
        1.0
    };
    let urban_km = 2.0 * road.urban_km_per_end * shrink;
    let main_road_km = 2.0 * road.main_road_km_per_end * shrink;
    let motorway_km = (road_km - urban_km - main_road_km).max(0.0);
    let hours = urban_km / limits.urban_kmh
        + main_road_km / limits.main_road_kmh
        + motorway_km / limits.motorway_kmh;
    60.0 * hours / limits.attainment
}

impl EstimateEta for RulesEta {
    fn estimate(&self, query: &EtaQuery) -> Estimate {
        let (plan, road_distance_km) = self.trip_plan(query);
        let timeline = rules::plan_trip(&plan, &self.config.bans, self.config.policy);
        let stops = query
            .stops
            .iter()
            .zip(&timeline.stop_arrivals)
            .map(|(stop, arrival)| {
                let band = self.band(*arrival, &breakdown_until(&timeline, *arrival));
                StopEstimate {
                    band,
                    late_risk: stop
                        .window
                        .map(|window| band.late_risk(window.end(), self.config.risk)),
                }
            })
            .collect();
        let breakdown = timeline.breakdown();
        Estimate {
            band: self.band(timeline.end, &breakdown),
            road_distance_km,
            breakdown,
            timeline,
            stops,
            factors: Vec::new(),
            model: self.model_info(),
            under_driving_rules: plan.follows_driving_time_rules(),
            operation: plan.operation(),
        }
    }

    fn model_info(&self) -> ModelInfo {
        ModelInfo {
            name: RULES_MODEL_NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            fallback: false,
        }
    }
}

/// The breakdown of the part of a timeline before `until`.
fn breakdown_until(timeline: &Timeline, until: DateTime<Utc>) -> Breakdown {
    let partial = Timeline {
        departure: timeline.departure,
        segments: timeline
            .segments
            .iter()
            .copied()
            .filter(|segment| segment.end <= until)
            .collect(),
        stop_arrivals: Vec::new(),
        end: until,
    };
    partial.breakdown()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::rules::SegmentKind;

    fn point(lat: f64, lon: f64) -> GeoPoint {
        GeoPoint::new(lat, lon).unwrap()
    }

    fn lille_to_marseille(departure: &str, vehicle: VehicleClass) -> EtaQuery {
        EtaQuery {
            origin: point(50.63, 3.06),
            destination: point(43.30, 5.37),
            departure: DateTime::parse_from_rfc3339(departure).unwrap(),
            vehicle,
            stops: Vec::new(),
            driver: DriverState::default(),
            context: Default::default(),
        }
    }

    #[test]
    fn lille_to_marseille_takes_breaks_and_a_daily_rest() {
        let estimate = RulesEta::default().estimate(&lille_to_marseille(
            "2026-12-01T06:00:00+01:00",
            VehicleClass::Articulated,
        ));
        assert!(
            (950.0..1050.0).contains(&estimate.road_distance_km),
            "{}",
            estimate.road_distance_km
        );
        let kinds: Vec<_> = estimate.timeline.segments.iter().map(|s| s.kind).collect();
        assert!(kinds.contains(&SegmentKind::Break));
        assert!(kinds.contains(&SegmentKind::Rest));
        let driving = estimate.breakdown.driving;
        assert!(
            driving > TimeDelta::hours(11) && driving < TimeDelta::hours(15),
            "{driving}"
        );
        assert!(estimate.timeline.duration() > driving + TimeDelta::hours(9));
        assert!(estimate.band.p10 < estimate.band.p50 && estimate.band.p50 < estimate.band.p90);
    }

    #[test]
    fn a_van_drives_straight_through() {
        let estimate = RulesEta::default().estimate(&lille_to_marseille(
            "2026-12-05T20:00:00+01:00",
            VehicleClass::Van,
        ));
        assert!(estimate
            .timeline
            .segments
            .iter()
            .all(|s| s.kind == SegmentKind::Drive));
        assert!(estimate.breakdown.driving < TimeDelta::hours(11));
    }

    #[test]
    fn a_cross_border_leg_is_split_by_territory() {
        let query = EtaQuery {
            destination: point(45.07, 7.69), // Turin
            ..lille_to_marseille("2026-12-01T06:00:00+01:00", VehicleClass::Rigid)
        };
        let (plan, _) = RulesEta::default().trip_plan(&query);
        let territories: Vec<_> = plan
            .activities
            .iter()
            .filter_map(|activity| match activity {
                Activity::Drive { territory, .. } => Some(*territory),
                Activity::Stop { .. } => None,
            })
            .collect();
        assert_eq!(territories.first(), Some(&Territory::France));
        assert_eq!(territories.last(), Some(&Territory::Italy));
    }

    #[test]
    fn stops_get_their_own_estimate_and_window_risk() {
        let departure = "2026-12-01T06:00:00+01:00";
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc)
        };
        let query = EtaQuery {
            stops: vec![Stop {
                location: point(45.76, 4.84), // Lyon
                dwell: TimeDelta::minutes(60),
                window: Some(
                    Window::new(
                        at("2026-12-01T07:00:00+01:00"),
                        at("2026-12-01T08:00:00+01:00"),
                    )
                    .unwrap(),
                ),
            }],
            ..lille_to_marseille(departure, VehicleClass::Articulated)
        };
        let estimate = RulesEta::default().estimate(&query);
        assert_eq!(estimate.stops.len(), 1);
        let stop = &estimate.stops[0];
        assert!(stop.band.p50 < estimate.band.p50);
        let risk = stop.late_risk.unwrap();
        assert_eq!(risk.severity, crate::domain::risk::Severity::Late);
        assert!(risk.probability > 0.99);
    }

    #[test]
    fn coarse_sampling_agrees_with_locating_every_sample() {
        let places = [
            (50.63, 3.06),
            (45.07, 7.69),
            (41.39, 2.17),
            (43.30, 5.37),
            (50.85, 4.35),
            (48.57, 7.75),
        ];
        for &(lat1, lon1) in &places {
            for &(lat2, lon2) in &places {
                let (from, to) = (point(lat1, lon1), point(lat2, lon2));
                for n_samples in [1, 2, 9, 17, 100] {
                    let exact: Vec<_> = (0..n_samples)
                        .map(|i| {
                            Territory::of(from.towards(to, (i as f64 + 0.5) / n_samples as f64))
                        })
                        .collect();
                    let coarse = sample_territories(from, to, n_samples);
                    let changes = |v: &[Territory]| v.windows(2).filter(|w| w[0] != w[1]).count();
                    assert_eq!(coarse.len(), n_samples);
                    // Agreement wherever no short excursion hides between coarse samples.
                    if changes(&exact) <= 1 {
                        assert_eq!(coarse, exact, "{from:?} -> {to:?}, {n_samples}");
                    }
                }
            }
        }
    }

    #[test]
    fn driving_time_grows_with_distance_and_never_goes_negative() {
        let road = RoadModel::default();
        let mut previous = 0.0;
        for km in [0.0, 1.0, 10.0, 30.0, 31.0, 100.0, 1000.0] {
            let minutes = driving_minutes(km, &road, HEAVY_GOODS_LIMITS);
            assert!(minutes >= previous, "{km} km: {minutes}");
            previous = minutes;
        }
    }
}
