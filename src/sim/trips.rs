//! One simulated trip: a lane, a departure, what the road, the weather, the docks and the
//! driving rules did to it, and the pings its truck sent.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc, Weekday};
use chrono_tz::Europe::Paris;
use rand::distr::weighted::WeightedIndex;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal, Normal};

use super::conditions::Conditions;
use super::fleet::Carrier;
use super::world::{Country, Place, PlaceKind, METROS, PLACES};
use super::Laws;
use crate::domain::calendar::BanCalendar;
use crate::domain::eta::{
    drive_activities, driving_minutes, RoadModel, SpeedLimits, HEAVY_GOODS_LIMITS, VAN_LIMITS,
};
use crate::domain::geo::GeoPoint;
use crate::domain::ids::splitmix;
use crate::domain::rules::{
    plan_trip, Activity, BorderWaits, DriverState, RulesPolicy, SegmentKind, Timeline, TripPlan,
};
use crate::domain::vehicle::{Carriage, VehicleClass};

#[derive(Debug, Clone, PartialEq)]
pub struct TripRecord {
    pub trip_id: String,
    pub vehicle: VehicleClass,
    /// Jittered around the places, as real depots and customers lie around a city.
    pub origin: GeoPoint,
    pub destination: GeoPoint,
    /// Indices into the world's places, for the lanes a carrier favours.
    pub origin_place: usize,
    pub destination_place: usize,
    pub departure: DateTime<Utc>,
    /// What the simulated truck really did, rests, bans and incidents included.
    pub arrival: DateTime<Utc>,
    /// The odometer's road distance, not the great circle.
    pub distance_km: f64,
    /// Intermediate stops and their total loading and unloading time.
    pub stops: u32,
    pub dwell_minutes: f64,
    pub load_tonnes: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PingRecord {
    pub timestamp: DateTime<Utc>,
    pub lat: f64,
    pub lon: f64,
    pub speed_kmh: f64,
}

/// The simulated period: departures fall on these days.
#[derive(Debug, Clone, Copy)]
pub struct Period {
    pub start: NaiveDate,
    pub days: u32,
}

pub struct TripSimulator<'a> {
    pub conditions: &'a Conditions,
    pub bans: &'a BanCalendar,
    pub road: RoadModel,
    pub period: Period,
    laws: Laws,
    popularity: WeightedIndex<f64>,
}

/// A leg as it was driven.
#[derive(Debug, Clone, Copy)]
pub struct Leg {
    pub from: GeoPoint,
    pub to: GeoPoint,
    pub road_km: f64,
    pub driving: TimeDelta,
}

/// Lanes have their own road circuity, between 1.12 and 1.37: the same pair of places is
/// always as winding, which a model can learn from history.
fn lane_circuity(from: GeoPoint, to: GeoPoint) -> f64 {
    let key = (from.lat() * 1e3) as i64 as u64
        ^ ((from.lon() * 1e3) as i64 as u64).rotate_left(21)
        ^ ((to.lat() * 1e3) as i64 as u64).rotate_left(42)
        ^ ((to.lon() * 1e3) as i64 as u64).rotate_left(7);
    1.12 + 0.25 * ((splitmix(key) >> 11) as f64 / (1u64 << 53) as f64)
}

fn jitter(point: GeoPoint, rng: &mut ChaCha8Rng, degrees: f64) -> GeoPoint {
    let lat = point.lat() + rng.random_range(-degrees..degrees);
    let lon = point.lon() + rng.random_range(-degrees..degrees);
    GeoPoint::new(lat.clamp(-90.0, 90.0), lon.clamp(-180.0, 180.0)).unwrap_or(point)
}

fn minutes(value: f64) -> TimeDelta {
    TimeDelta::milliseconds((value * 60_000.0).round() as i64)
}

impl<'a> TripSimulator<'a> {
    pub fn new(conditions: &'a Conditions, bans: &'a BanCalendar, period: Period) -> Self {
        Self {
            conditions,
            bans,
            road: RoadModel::default(),
            period,
            laws: Laws::default(),
            popularity: WeightedIndex::new(PLACES.iter().map(|place| place.popularity))
                .expect("positive"),
        }
    }

    pub fn with_laws(self, laws: Laws) -> Self {
        Self { laws, ..self }
    }

    /// How much slower than at the start of the period the roads run at `at`.
    fn slowdown(&self, at: DateTime<Utc>) -> f64 {
        let start = self.period.start.and_time(NaiveTime::MIN).and_utc();
        let elapsed_days = (at - start).num_minutes() as f64 / 1440.0;
        1.0 + self.laws.slowdown
            * (elapsed_days / f64::from(self.period.days.max(1))).clamp(0.0, 1.0)
    }

    /// The lane of a trip: mostly the carrier's own, sometimes anything, never too short, and
    /// vans mostly regional.
    pub fn lane(
        &self,
        carrier: &Carrier,
        vehicle: VehicleClass,
        rng: &mut ChaCha8Rng,
    ) -> (usize, usize) {
        for _ in 0..50 {
            let (origin, destination) = if rng.random_bool(carrier.loyalty) {
                let favourite = carrier.favourites[rng.random_range(0..carrier.favourites.len())];
                if rng.random_bool(0.5) {
                    (carrier.home, favourite)
                } else {
                    (favourite, carrier.home)
                }
            } else {
                (self.popularity.sample(rng), self.popularity.sample(rng))
            };
            let km = PLACES[origin]
                .point()
                .distance_km(PLACES[destination].point());
            let too_far_for_a_van =
                vehicle == VehicleClass::Van && km > 500.0 && rng.random_bool(0.85);
            if origin != destination && km >= 40.0 && !too_far_for_a_van {
                return (origin, destination);
            }
        }
        (carrier.home, carrier.favourites[0])
    }

    /// A departure instant: weekdays far more than weekends, mostly early morning.
    pub fn departure(&self, rng: &mut ChaCha8Rng) -> DateTime<Utc> {
        loop {
            let date = self.period.start
                + TimeDelta::days(rng.random_range(0..i64::from(self.period.days)));
            let keep = match date.weekday() {
                Weekday::Sat => 0.3,
                Weekday::Sun => 0.12,
                _ => 1.0,
            };
            if !rng.random_bool(keep) {
                continue;
            }
            let (centre, spread) = match rng.random_range(0..100) {
                0..60 => (6.0, 1.8),
                60..85 => (14.0, 3.0),
                _ => (20.5, 1.5),
            };
            let hour: f64 = Normal::new(centre, spread).expect("valid").sample(rng);
            let minute_of_day = (hour.rem_euclid(24.0) * 60.0) as u32;
            let time = NaiveTime::from_num_seconds_from_midnight_opt(minute_of_day * 60, 0)
                .expect("in range");
            if let Some(local) = Paris.from_local_datetime(&date.and_time(time)).earliest() {
                return local.with_timezone(&Utc);
            }
        }
    }

    /// Simulates one trip of `carrier` from the given lane and departure.
    pub fn trip(
        &self,
        carrier: &Carrier,
        trip_id: String,
        vehicle: VehicleClass,
        lane: (usize, usize),
        departure: DateTime<Utc>,
        rng: &mut ChaCha8Rng,
    ) -> (TripRecord, Timeline, Vec<Leg>) {
        let (origin_place, destination_place) = (&PLACES[lane.0], &PLACES[lane.1]);
        let origin = jitter(origin_place.point(), rng, 0.02);
        let destination = jitter(destination_place.point(), rng, 0.02);
        let n_stops = stop_count(vehicle, rng);
        let route = Route {
            lane,
            n_stops,
            waypoints: waypoints(origin, destination, n_stops, rng),
        };
        let pace = Pace::of(vehicle, carrier, rng);
        let Driven {
            activities,
            legs,
            dwell_total,
        } = self.drive(carrier, &route, departure, pace, rng);
        let timeline = self.plan(carrier, vehicle, departure, activities, rng);

        let arrival = timeline.end + minutes(unexplained_lateness(carrier, rng));
        let road_km: f64 = legs.iter().map(|leg| leg.road_km).sum();
        let odometer = road_km * (1.0 + rng.random_range(-0.02..0.02));
        let load_tonnes = load_tonnes(vehicle, rng);
        let record = TripRecord {
            trip_id,
            vehicle,
            origin,
            destination,
            origin_place: lane.0,
            destination_place: lane.1,
            departure,
            arrival,
            distance_km: one_decimal(odometer),
            stops: n_stops as u32,
            dwell_minutes: one_decimal(dwell_total),
            load_tonnes: one_decimal(load_tonnes),
        };
        (record, timeline, legs)
    }

    /// Drives the route leg by leg from `departure`: each leg's conditions depend on the hour
    /// it is driven at, so the clock runs on through the legs and the stops between them.
    fn drive(
        &self,
        carrier: &Carrier,
        route: &Route,
        departure: DateTime<Utc>,
        pace: Pace,
        rng: &mut ChaCha8Rng,
    ) -> Driven {
        let mut driven = Driven {
            activities: Vec::new(),
            legs: Vec::new(),
            dwell_total: 0.0,
        };
        let mut clock = departure;
        for (leg_idx, pair) in route.waypoints.windows(2).enumerate() {
            let (from, to) = (pair[0], pair[1]);
            let leg = self.drive_leg(from, to, clock, pace, rng);
            let mut leg_activities =
                drive_activities(from, to, leg.driving, self.road.territory_step_km);
            if let Some(border) =
                self.border_delay(from, to, route.lane, leg_idx, route.n_stops, rng)
            {
                insert_border_wait(&mut leg_activities, border);
            }
            driven.activities.extend(leg_activities);
            driven.legs.push(leg);
            clock += leg.driving;
            if leg_idx < route.n_stops {
                let dwell = self.dwell(PlaceKind::City, carrier, rng);
                driven.dwell_total += dwell;
                clock += minutes(dwell);
                driven.activities.push(Activity::Stop {
                    dwell: minutes(dwell),
                });
            }
        }
        driven
    }

    /// One leg starting at `clock`: free flow slowed by the weather halfway and the
    /// congestion at both ends when the truck passes them, with a little noise.
    fn drive_leg(
        &self,
        from: GeoPoint,
        to: GeoPoint,
        clock: DateTime<Utc>,
        pace: Pace,
        rng: &mut ChaCha8Rng,
    ) -> Leg {
        let road_km = from.distance_km(to) * lane_circuity(from, to) * self.laws.circuity;
        let free_flow = driving_minutes(road_km, &self.road, pace.driven);
        let midpoint = from.towards(to, 0.5);
        let weather = self.conditions.weather(
            midpoint.lat(),
            midpoint.lon(),
            clock + minutes(free_flow / 2.0),
        );
        let congestion_delay = self.congestion_delay(from, to, clock, free_flow);
        let noise: f64 = LogNormal::new(0.0, 0.04).expect("valid").sample(rng);
        let driven = (free_flow / weather.speed_factor() + congestion_delay)
            * noise
            * self.laws.driving
            * self.slowdown(clock);
        // Whatever the noise, no leg is driven faster than the speed limits allow.
        let lawful_floor = driving_minutes(
            road_km,
            &self.road,
            SpeedLimits {
                attainment: 1.0,
                ..pace.limits
            },
        );
        Leg {
            from,
            to,
            road_km,
            driving: minutes(driven.max(lawful_floor)),
        }
    }

    /// Minutes lost in the metros at both ends: leaving at `clock`, arriving after the free
    /// flow time, since rush hours are what make the same lane slow or quick.
    fn congestion_delay(
        &self,
        from: GeoPoint,
        to: GeoPoint,
        clock: DateTime<Utc>,
        free_flow: f64,
    ) -> f64 {
        let start_metro = nearest_metro(from);
        let end_metro = nearest_metro(to);
        35.0 * self
            .conditions
            .congestion(start_metro, &METROS[start_metro], clock)
            + 35.0
                * self.conditions.congestion(
                    end_metro,
                    &METROS[end_metro],
                    clock + minutes(free_flow),
                )
    }

    /// The driving rules place the breaks, rests and ban waits; the driver's habits decide
    /// how far each break and rest runs over.
    fn plan(
        &self,
        carrier: &Carrier,
        vehicle: VehicleClass,
        departure: DateTime<Utc>,
        activities: Vec<Activity>,
        rng: &mut ChaCha8Rng,
    ) -> Timeline {
        let policy = RulesPolicy {
            use_extended_days: carrier.uses_extensions,
            use_reduced_rests: carrier.uses_extensions,
            break_extension: minutes(rng.random_range(0.0..=carrier.break_extension_max)),
            rest_extension: minutes(rng.random_range(0.0..=carrier.rest_extension_max)),
            // The simulator draws its own border waits (`insert_border_wait`).
            border_waits: BorderWaits::NONE,
        };
        let plan = TripPlan {
            departure,
            vehicle,
            driver: DriverState::default(),
            activities,
            carriage: Carriage::default(),
        };
        plan_trip(&plan, self.bans, policy)
    }

    /// Border waits: Swiss customs always, spot checks elsewhere now and then.
    fn border_delay(
        &self,
        from: GeoPoint,
        to: GeoPoint,
        lane: (usize, usize),
        leg_idx: usize,
        n_stops: usize,
        rng: &mut ChaCha8Rng,
    ) -> Option<TimeDelta> {
        let country_at = |point: GeoPoint, place: &Place| {
            if point.distance_km(place.point()) < 40.0 {
                place.country
            } else {
                Country::France
            }
        };
        let from_country = if leg_idx == 0 {
            PLACES[lane.0].country
        } else {
            country_at(from, &PLACES[lane.0])
        };
        let to_country = if leg_idx == n_stops {
            PLACES[lane.1].country
        } else {
            country_at(to, &PLACES[lane.1])
        };
        if from_country == to_country {
            return None;
        }
        if from_country == Country::Switzerland || to_country == Country::Switzerland {
            return Some(minutes(
                25.0 + Exp::new(1.0 / 40.0).expect("valid").sample(rng),
            ));
        }
        rng.random_bool(0.12)
            .then(|| minutes(5.0 + Exp::new(1.0 / 20.0).expect("valid").sample(rng)))
    }

    /// Dwell at a place: heavy-tailed, longest at ports.
    fn dwell(&self, kind: PlaceKind, carrier: &Carrier, rng: &mut ChaCha8Rng) -> f64 {
        let (median, sigma) = match kind {
            PlaceKind::Port => (80.0, 0.8),
            PlaceKind::Platform => (50.0, 0.6),
            PlaceKind::City => (25.0, 0.7),
        };
        let dwell: f64 = LogNormal::new((median * carrier.dwell_factor).ln(), sigma)
            .expect("valid")
            .sample(rng);
        (dwell * self.laws.dwell).min(600.0)
    }
}

/// Where a trip goes, fixed before it is driven; the lane and the stop count stay beside
/// the waypoints because the border waits need to tell the first and last legs apart.
struct Route {
    lane: (usize, usize),
    n_stops: usize,
    waypoints: Vec<GeoPoint>,
}

/// What driving a route gave: the activities the driving rules plan around, the legs as
/// driven (for the pings) and the dwell the stops took (for the record).
struct Driven {
    activities: Vec<Activity>,
    legs: Vec<Leg>,
    dwell_total: f64,
}

/// The legal limits of a vehicle and the share of them this trip's driver attains: the
/// driven pace makes the trip time, the legal one is the floor it never goes below.
#[derive(Debug, Clone, Copy)]
struct Pace {
    limits: SpeedLimits,
    driven: SpeedLimits,
}

impl Pace {
    /// Each carrier drives at its own share of the limits, a little different every trip.
    fn of(vehicle: VehicleClass, carrier: &Carrier, rng: &mut ChaCha8Rng) -> Self {
        let limits = match vehicle {
            VehicleClass::Van => VAN_LIMITS,
            VehicleClass::Rigid | VehicleClass::Articulated => HEAVY_GOODS_LIMITS,
        };
        // Never faster than 95% of the limit on average: the legal bound stays provable.
        let attainment =
            (limits.attainment * carrier.speed_factor * rng.random_range(0.96..1.04)).min(0.95);
        Self {
            limits,
            driven: SpeedLimits {
                attainment,
                ..limits
            },
        }
    }
}

/// How many stops a trip makes on the way: vans deliver rounds, articulated trucks mostly
/// run straight through.
fn stop_count(vehicle: VehicleClass, rng: &mut ChaCha8Rng) -> usize {
    match vehicle {
        VehicleClass::Van => [0, 0, 1, 1, 2, 3][rng.random_range(0..6)],
        VehicleClass::Rigid => [0, 0, 0, 1, 1, 2][rng.random_range(0..6)],
        VehicleClass::Articulated => [0, 0, 0, 0, 0, 1][rng.random_range(0..6)],
    }
}

/// Stops spread roughly evenly along the way and a little off it, so that a trip with
/// stops is longer than its lane but still heads for its destination.
fn waypoints(
    origin: GeoPoint,
    destination: GeoPoint,
    n_stops: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<GeoPoint> {
    let mut waypoints = vec![origin];
    for stop_idx in 0..n_stops {
        let fraction =
            (stop_idx as f64 + 1.0) / (n_stops as f64 + 1.0) + rng.random_range(-0.08..0.08);
        waypoints.push(jitter(origin.towards(destination, fraction), rng, 0.25));
    }
    waypoints.push(destination);
    waypoints
}

/// Wait where the territory changes, or halfway when it does not.
fn insert_border_wait(activities: &mut Vec<Activity>, border: TimeDelta) {
    let at = activities.len().div_ceil(2).max(1).min(activities.len());
    activities.insert(at, Activity::Stop { dwell: border });
}

/// Lateness nobody explains: queues, a wrong turn, a long phone call; now and then an
/// incident of an hour or more.
fn unexplained_lateness(carrier: &Carrier, rng: &mut ChaCha8Rng) -> f64 {
    let mut late = Normal::new(0.0, carrier.punctuality_minutes)
        .expect("valid")
        .sample(rng)
        .abs();
    if rng.random_bool(0.04) {
        late += Exp::new(1.0 / 70.0).expect("valid").sample(rng);
    }
    late
}

/// Loads by vehicle class, in tonnes: what each class typically carries, not its legal most.
fn load_tonnes(vehicle: VehicleClass, rng: &mut ChaCha8Rng) -> f64 {
    match vehicle {
        VehicleClass::Van => rng.random_range(0.1..1.2),
        VehicleClass::Rigid => rng.random_range(1.0..12.0),
        VehicleClass::Articulated => rng.random_range(3.0..26.0),
    }
}

/// Records keep one decimal, as a carrier's export would.
fn one_decimal(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

fn nearest_metro(point: GeoPoint) -> usize {
    METROS
        .iter()
        .enumerate()
        .map(|(index, metro)| {
            (
                index,
                point.distance_km(GeoPoint::new(metro.lat, metro.lon).expect("valid")),
            )
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(index, _)| index)
        .expect("metros exist")
}

/// Pings every `interval` minutes (with a little jitter) from departure to arrival: moving
/// along the legs while driving, standing still otherwise, with GPS noise, rare outliers and
/// gaps where coverage drops.
pub fn pings(
    record: &TripRecord,
    timeline: &Timeline,
    legs: &[Leg],
    interval_minutes: f64,
    rng: &mut ChaCha8Rng,
) -> Vec<PingRecord> {
    let mut pings = Vec::new();
    let gps_noise = Normal::new(0.0, 0.00008).expect("valid"); // about 9 m
    let mut cursor = TimelineCursor {
        segment_idx: 0,
        driven_before_segment: TimeDelta::zero(),
    };
    let mut gap_left = 0u32;
    let mut at = record.departure;
    let leg_ends = leg_ends(legs);
    let average_kmh: Vec<f64> = legs
        .iter()
        .map(|leg| leg.road_km / (leg.driving.num_milliseconds().max(1) as f64 / 3.6e6))
        .collect();
    while at <= record.arrival {
        let now = cursor.advance(timeline, at);
        let (leg_idx, along) = leg_position(legs, &leg_ends, now.driven);
        let position = if now.on_timeline {
            along
        } else {
            record.destination
        };
        if gap_left > 0 {
            gap_left -= 1;
        } else if rng.random_bool(0.01) {
            gap_left = rng.random_range(3..20);
        } else {
            let moving_at = now.driving.then(|| average_kmh[leg_idx]);
            pings.push(noisy_ping(at, position, moving_at, &gps_noise, rng));
        }
        let step = interval_minutes * rng.random_range(0.85..1.15);
        at += TimeDelta::seconds((step * 60.0).round() as i64);
    }
    pings
}

/// Where a truck is on its timeline, walked forward ping by ping: pings only move on, so
/// each segment passed is counted once rather than summed again for every ping.
struct TimelineCursor {
    segment_idx: usize,
    driven_before_segment: TimeDelta,
}

/// The truck's state at one ping's instant.
struct Whereabouts {
    /// False once the timeline is over: the truck stands at its destination.
    on_timeline: bool,
    driving: bool,
    /// Driving time since departure, which places the truck along its legs.
    driven: TimeDelta,
}

impl TimelineCursor {
    /// Moves on to `at`, which must not be earlier than the instant of the last call.
    fn advance(&mut self, timeline: &Timeline, at: DateTime<Utc>) -> Whereabouts {
        let segments = &timeline.segments;
        while self.segment_idx < segments.len() && segments[self.segment_idx].end <= at {
            if segments[self.segment_idx].kind == SegmentKind::Drive {
                self.driven_before_segment += segments[self.segment_idx].duration();
            }
            self.segment_idx += 1;
        }
        let segment = segments
            .get(self.segment_idx)
            .filter(|segment| segment.start <= at);
        let driving = segment.is_some_and(|segment| segment.kind == SegmentKind::Drive);
        let driven = self.driven_before_segment
            + if driving {
                at - segment.expect("checked").start
            } else {
                TimeDelta::zero()
            };
        Whereabouts {
            on_timeline: segment.is_some(),
            driving,
            driven,
        }
    }
}

/// Each leg's end in driving time since departure: the pings find their leg by the driving
/// done, since breaks and stops do not move the truck.
fn leg_ends(legs: &[Leg]) -> Vec<TimeDelta> {
    legs.iter()
        .scan(TimeDelta::zero(), |total, leg| {
            *total += leg.driving;
            Some(*total)
        })
        .collect()
}

/// The leg the truck is on after `driven` of driving, and its point along it.
fn leg_position(legs: &[Leg], leg_ends: &[TimeDelta], driven: TimeDelta) -> (usize, GeoPoint) {
    let leg_idx = leg_ends
        .iter()
        .position(|end| driven < *end)
        .unwrap_or(legs.len() - 1);
    let Leg {
        from,
        to,
        driving: leg_driving,
        ..
    } = legs[leg_idx];
    let leg_start = leg_ends[leg_idx] - leg_driving;
    let fraction = ((driven - leg_start).num_milliseconds() as f64
        / leg_driving.num_milliseconds().max(1) as f64)
        .clamp(0.0, 1.0);
    (leg_idx, from.towards(to, fraction))
}

/// One ping as a GPS reports it: a few metres off, now and then far off, and a speed near
/// the leg's average when driving (`average_kmh` is `None` when standing still).
fn noisy_ping(
    at: DateTime<Utc>,
    position: GeoPoint,
    average_kmh: Option<f64>,
    gps_noise: &Normal<f64>,
    rng: &mut ChaCha8Rng,
) -> PingRecord {
    let outlier = if rng.random_bool(0.002) { 0.01 } else { 0.0 };
    let lat = position.lat() + gps_noise.sample(rng) + outlier;
    let lon = position.lon() + gps_noise.sample(rng) * 1.5;
    let speed_kmh = match average_kmh {
        Some(average_kmh) => (average_kmh * rng.random_range(0.85..1.15)).min(105.0),
        None => 0.0,
    };
    PingRecord {
        timestamp: at,
        lat: lat.clamp(-90.0, 90.0),
        lon: lon.clamp(-180.0, 180.0),
        speed_kmh: one_decimal(speed_kmh),
    }
}
