//! External feeds: weather, traffic and routing, fetched through reqwest behind a guard each,
//! cached, and turned into what an ETA query carries (its `TripContext`). Only this module
//! talks to them.
//!
//! A request never waits on the network longer than `feeds.wait_ms`: what is missing is
//! fetched in the background (one fetch per key at a time), waited for up to that limit, and
//! serves the next requests once it arrives. Weather and congestion are looked up for each
//! query by the rules of the training rows' join (`features::conditions::conditions_of`, held
//! equal to `with_conditions` by a test), without a frame.

pub mod guard;
pub mod routing;
pub mod traffic;
pub mod weather;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc};
use futures_util::future::{BoxFuture, FutureExt, Shared};
use polars::prelude::*;

use crate::config::{FeedSettings, RoutingEngine};
use crate::domain::clock::Clock;
use crate::domain::eta::{EtaQuery, RoadLeg};
use crate::domain::forecast::Surroundings;
use crate::domain::geo::GeoPoint;
use crate::ml::features::conditions::{
    conditions_of, congestion_profile, CongestionAt, HourlyWeather,
};
use crate::telemetry::Metrics;
use guard::FeedGuard;
use routing::{Osrm, Router, Valhalla};
use traffic::{Area, TomTom, TrafficSource};
use weather::{Cell, OpenMeteo};

/// What an ETA is flagged with when a configured feed could not serve it.
pub const WEATHER_UNAVAILABLE: &str = "weather_unavailable";
pub const WEATHER_STALE: &str = "weather_stale";
pub const TRAFFIC_UNAVAILABLE: &str = "traffic_unavailable";
pub const TRAFFIC_STALE: &str = "traffic_stale";
pub const ROUTING_UNAVAILABLE: &str = "routing_unavailable";

/// Fetches of one feed running at once: a batch of ten thousand trips must not open ten
/// thousand connections.
const CONCURRENT_FETCHES: usize = 8;

/// Routes kept; the oldest half is dropped beyond it.
const ROUTE_CACHE: usize = 20_000;

/// A provider's current congestion applies to the hours this close to the time it was read;
/// further hours take the congestion learnt from the pings.
const CURRENT_TRAFFIC_HOURS: i64 = 1;

/// Hours ahead for which congestion rows are laid out for the join.
const TRAFFIC_HOURS_AHEAD: i64 = 48;

struct Timed<T> {
    at: DateTime<Utc>,
    value: T,
}

/// A route's points, in ten-thousandths of a degree.
type RouteKey = Vec<(i64, i64)>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum FetchKey {
    Weather(Cell),
    Traffic(Area),
    Route(RouteKey),
}

struct Feed<S: ?Sized> {
    guard: FeedGuard,
    permits: tokio::sync::Semaphore,
    source: Box<S>,
}

impl<S: ?Sized> Feed<S> {
    fn new(name: &'static str, settings: &FeedSettings, metrics: &Metrics, source: Box<S>) -> Self {
        Self {
            guard: FeedGuard::new(name, settings.clone(), metrics.clone()),
            permits: tokio::sync::Semaphore::new(CONCURRENT_FETCHES),
            source,
        }
    }
}

/// A configured feed's state, for operators.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FeedStatus {
    pub feed: &'static str,
    pub circuit_open: bool,
    /// Since the newest data arrived; absent before any.
    pub data_age_seconds: Option<f64>,
}

/// Congestion learnt from pings: by area and hour of the week (0 is Monday 00:00 UTC).
pub type CongestionProfile = HashMap<(Area, u32), f64>;

/// A fetch under way, which any number of requests may wait for.
type Fetch = Shared<BoxFuture<'static, ()>>;

pub struct Feeds {
    settings: FeedSettings,
    weather: Option<Feed<OpenMeteo>>,
    traffic: Option<Feed<dyn TrafficSource>>,
    routing: Option<Feed<dyn Router>>,
    weather_cache: Mutex<HashMap<Cell, Timed<Arc<HourlyWeather>>>>,
    traffic_cache: Mutex<HashMap<Area, Timed<f64>>>,
    route_cache: Mutex<HashMap<RouteKey, Timed<Vec<RoadLeg>>>>,
    profile: ArcSwap<CongestionProfile>,
    /// Running fetches and when each started.
    inflight: Mutex<HashMap<FetchKey, (Fetch, Instant)>>,
    runtime: Option<tokio::runtime::Handle>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The HTTP client of every feed; each attempt's limit is the guard's.
pub fn client() -> reqwest::Client {
    crate::adapters::webhooks::install_tls_provider();
    reqwest::Client::builder()
        .user_agent(concat!("etape/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("a client with a TLS provider")
}

/// What a query needs from the feeds.
struct Needs {
    cell: Cell,
    areas: [(Area, GeoPoint); 2],
    route: Vec<GeoPoint>,
}

impl Needs {
    fn of(query: &EtaQuery) -> Self {
        let (origin, destination) = (query.origin, query.destination);
        let mut route = vec![origin];
        route.extend(query.stops.iter().map(|stop| stop.location));
        route.push(destination);
        Self {
            // The training join's weather is the middle of the route's.
            cell: Cell::of(
                (origin.lat() + destination.lat()) / 2.0,
                (origin.lon() + destination.lon()) / 2.0,
            ),
            areas: [
                (Area::of(origin), origin),
                (Area::of(destination), destination),
            ],
            route,
        }
    }
}

fn route_key(points: &[GeoPoint]) -> RouteKey {
    // About 10 m: a truck that moved less asks the same route.
    points
        .iter()
        .map(|point| {
            (
                (point.lat() * 1e4).round() as i64,
                (point.lon() * 1e4).round() as i64,
            )
        })
        .collect()
}

/// How usable a cached value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Freshness {
    Fresh,
    Stale,
    Unusable,
}

fn freshness(at: Option<DateTime<Utc>>, now: DateTime<Utc>, max_age_secs: u64) -> Freshness {
    let Some(at) = at else {
        return Freshness::Unusable;
    };
    let age = (now - at).num_seconds().max(0) as u64;
    if age <= max_age_secs {
        Freshness::Fresh
    } else if age <= 4 * max_age_secs {
        Freshness::Stale
    } else {
        Freshness::Unusable
    }
}

fn hour_of_week(at: DateTime<Utc>) -> u32 {
    at.weekday().num_days_from_monday() * 24 + at.hour()
}

impl Feeds {
    /// The configured feeds; one without a URL is off. Fetches run on the current tokio
    /// runtime, if any (none: only what is cached is used).
    pub fn new(settings: &FeedSettings, metrics: &Metrics) -> Arc<Self> {
        let client = client();
        let weather = (!settings.weather_url.is_empty()).then(|| {
            Feed::new(
                "weather",
                settings,
                metrics,
                Box::new(OpenMeteo::new(client.clone(), &settings.weather_url)),
            )
        });
        let traffic = (!settings.traffic_url.is_empty()).then(|| {
            let source: Box<dyn TrafficSource> = Box::new(TomTom::new(
                client.clone(),
                &settings.traffic_url,
                &settings.traffic_key,
            ));
            Feed::new("traffic", settings, metrics, source)
        });
        let routing = (!settings.routing_url.is_empty()).then(|| {
            let router: Box<dyn Router> = match settings.routing_engine {
                RoutingEngine::Valhalla => {
                    Box::new(Valhalla::new(client.clone(), &settings.routing_url))
                }
                RoutingEngine::Osrm => Box::new(Osrm::new(client.clone(), &settings.routing_url)),
            };
            Feed::new("routing", settings, metrics, router)
        });
        Arc::new(Self {
            settings: settings.clone(),
            weather,
            traffic,
            routing,
            weather_cache: Mutex::default(),
            traffic_cache: Mutex::default(),
            route_cache: Mutex::default(),
            profile: ArcSwap::default(),
            inflight: Mutex::default(),
            runtime: tokio::runtime::Handle::try_current().ok(),
        })
    }

    /// How long a request waits for what is not cached.
    pub fn wait(&self) -> Duration {
        Duration::from_millis(self.settings.wait_ms)
    }

    /// Whether anything can add to a query: a configured feed or learnt congestion.
    pub fn active(&self) -> bool {
        self.weather.is_some()
            || self.traffic.is_some()
            || self.routing.is_some()
            || !self.profile.load().is_empty()
    }

    /// Replaces the congestion learnt from the pings.
    pub fn set_profile(&self, profile: CongestionProfile) {
        self.profile.store(Arc::new(profile));
    }

    /// Learns congestion from pings (see [`congestion_profile`]); how many areas and hours.
    pub fn learn_congestion(&self, pings: &DataFrame) -> PolarsResult<usize> {
        let frame = congestion_profile(pings)?;
        let lats = frame.column("area_lat")?.i32()?.clone();
        let lons = frame.column("area_lon")?.i32()?.clone();
        let hours = frame.column("hour_of_week")?.u32()?.clone();
        let values = frame.column("congestion")?.f64()?.clone();
        let profile: CongestionProfile = (0..frame.height())
            .filter_map(|row| {
                let area = Area {
                    lat_halves: lats.get(row)?,
                    lon_halves: lons.get(row)?,
                };
                Some(((area, hours.get(row)?), values.get(row)?))
            })
            .collect();
        let learnt = profile.len();
        self.set_profile(profile);
        Ok(learnt)
    }

    /// The guards of the configured feeds.
    fn guards(&self) -> impl Iterator<Item = &FeedGuard> {
        [
            self.weather.as_ref().map(|feed| &feed.guard),
            self.traffic.as_ref().map(|feed| &feed.guard),
            self.routing.as_ref().map(|feed| &feed.guard),
        ]
        .into_iter()
        .flatten()
    }

    /// Each configured feed: whether its circuit is open and how old its newest data is.
    pub fn status(&self, now: DateTime<Utc>) -> Vec<FeedStatus> {
        self.guards()
            .map(|guard| FeedStatus {
                feed: guard.name(),
                circuit_open: guard.is_open(),
                data_age_seconds: guard
                    .newest()
                    .map(|at| (now - at).num_milliseconds() as f64 / 1_000.0),
            })
            .collect()
    }

    /// Sets each feed's data-age gauge; called when the metrics are read.
    pub fn publish_ages(&self, now: DateTime<Utc>) {
        for guard in self.guards() {
            guard.publish_age(now);
        }
    }

    /// Starts fetching what the queries need and the caches lack (or hold stale), and waits
    /// up to `wait` for it.
    pub async fn prefetch(
        self: &Arc<Self>,
        queries: &[EtaQuery],
        now: DateTime<Utc>,
        wait: Duration,
    ) {
        // A fetch is waited for during the first `wait` after it started, by whichever
        // requests come then, and only from a feed that has not failed since it last
        // answered: a feed that hangs or errs costs later requests nothing.
        let (waits, pending): (Vec<Duration>, Vec<_>) = self
            .fetch_missing(queries, now)
            .into_iter()
            .filter_map(|(fetch, started, healthy)| {
                let left = wait.saturating_sub(started.elapsed());
                (healthy && !left.is_zero()).then_some((left, fetch))
            })
            .unzip();
        if let Some(longest) = waits.into_iter().max() {
            let _ = tokio::time::timeout(longest, futures_util::future::join_all(pending)).await;
        }
    }

    /// Adds to each query what the caches hold (legs, weather, congestion) and says, per
    /// query, which configured feeds could not serve it. Microseconds a query: no I/O, no
    /// frame.
    pub fn apply(&self, queries: &mut [EtaQuery], now: DateTime<Utc>) -> Vec<Vec<&'static str>> {
        let needs: Vec<Needs> = queries.iter().map(Needs::of).collect();
        let mut degraded: Vec<Vec<&'static str>> = vec![Vec::new(); queries.len()];

        if self.routing.is_some() {
            let routes = lock(&self.route_cache);
            for ((query, need), flags) in queries.iter_mut().zip(&needs).zip(&mut degraded) {
                if query.context.legs.is_some() {
                    continue;
                }
                match routes.get(&route_key(&need.route)) {
                    Some(route) => query.context.legs = Some(route.value.clone()),
                    None => flags.push(ROUTING_UNAVAILABLE),
                }
            }
        }

        let mut weather = Vec::new();
        if self.weather.is_some() {
            let cache = lock(&self.weather_cache);
            let mut added = HashSet::new();
            for (need, flags) in needs.iter().zip(&mut degraded) {
                let entry = cache.get(&need.cell);
                match freshness(entry.map(|e| e.at), now, self.settings.weather_max_age_secs) {
                    Freshness::Fresh => {}
                    Freshness::Stale => flags.push(WEATHER_STALE),
                    Freshness::Unusable => {
                        flags.push(WEATHER_UNAVAILABLE);
                        continue;
                    }
                }
                if added.insert(need.cell) {
                    if let Some(entry) = entry {
                        weather.push(entry.value.clone());
                    }
                }
            }
        }

        let traffic = self.traffic_rows(&needs, &mut degraded, now);
        if !weather.is_empty() || !traffic.is_empty() {
            let weather: Vec<&HourlyWeather> = weather.iter().map(Arc::as_ref).collect();
            for query in queries.iter_mut() {
                query.context.conditions = conditions_of(query, &weather, &traffic);
            }
        }
        degraded
    }

    /// Congestion rows for the areas the queries start and end in: the provider's current
    /// reading near its time, the learnt profile for other hours.
    fn traffic_rows(
        &self,
        needs: &[Needs],
        degraded: &mut [Vec<&'static str>],
        now: DateTime<Utc>,
    ) -> Vec<CongestionAt> {
        let profile = self.profile.load();
        let cache = lock(&self.traffic_cache);
        let mut current: HashMap<Area, Option<Timed<f64>>> = HashMap::new();
        for (need, flags) in needs.iter().zip(degraded.iter_mut()) {
            for (area, _) in &need.areas {
                let entry = cache.get(area);
                let usable = if self.traffic.is_some() {
                    match freshness(entry.map(|e| e.at), now, self.settings.traffic_max_age_secs) {
                        Freshness::Fresh => true,
                        Freshness::Stale => {
                            if !flags.contains(&TRAFFIC_STALE) {
                                flags.push(TRAFFIC_STALE);
                            }
                            true
                        }
                        Freshness::Unusable => {
                            if !flags.contains(&TRAFFIC_UNAVAILABLE) {
                                flags.push(TRAFFIC_UNAVAILABLE);
                            }
                            false
                        }
                    }
                } else {
                    false
                };
                current.entry(*area).or_insert_with(|| {
                    entry.filter(|_| usable).map(|e| Timed {
                        at: e.at,
                        value: e.value,
                    })
                });
            }
        }
        let this_hour = now.duration_trunc_hour();
        let mut rows = Vec::new();
        for (area, reading) in &current {
            let (lat, lon) = area.centre();
            for offset in -1..=TRAFFIC_HOURS_AHEAD {
                let hour = this_hour + TimeDelta::hours(offset);
                let value = reading
                    .as_ref()
                    .filter(|reading| {
                        (hour - reading.at.duration_trunc_hour()).num_hours().abs()
                            <= CURRENT_TRAFFIC_HOURS
                    })
                    .map(|reading| reading.value)
                    .or_else(|| profile.get(&(*area, hour_of_week(hour))).copied());
                if let Some(value) = value {
                    rows.push(CongestionAt {
                        metro: area.name(),
                        lat,
                        lon,
                        hour_ms: hour.timestamp_millis(),
                        congestion: value,
                    });
                }
            }
        }
        rows
    }

    /// Starts a fetch for everything missing or stale; the fetches to wait for.
    fn fetch_missing(
        self: &Arc<Self>,
        queries: &[EtaQuery],
        now: DateTime<Utc>,
    ) -> Vec<(Fetch, Instant, bool)> {
        let mut keys: Vec<(FetchKey, Option<GeoPoint>)> = Vec::new();
        let mut seen = HashSet::new();
        for (query, need) in queries.iter().zip(queries.iter().map(Needs::of)) {
            // A query that carries its legs (a part of a trip already routed) needs no route.
            if self.routing.is_some() && query.context.legs.is_none() {
                let key = route_key(&need.route);
                if !lock(&self.route_cache).contains_key(&key)
                    && seen.insert(FetchKey::Route(key.clone()))
                {
                    keys.push((FetchKey::Route(key), None));
                }
            }
            if self.weather.is_some() {
                let at = lock(&self.weather_cache).get(&need.cell).map(|e| e.at);
                if freshness(at, now, self.settings.weather_max_age_secs) != Freshness::Fresh
                    && seen.insert(FetchKey::Weather(need.cell))
                {
                    keys.push((FetchKey::Weather(need.cell), None));
                }
            }
            if self.traffic.is_some() {
                for (area, point) in need.areas {
                    let at = lock(&self.traffic_cache).get(&area).map(|e| e.at);
                    if freshness(at, now, self.settings.traffic_max_age_secs) != Freshness::Fresh
                        && seen.insert(FetchKey::Traffic(area))
                    {
                        keys.push((FetchKey::Traffic(area), Some(point)));
                    }
                }
            }
        }
        keys.into_iter()
            .filter_map(|(key, point)| {
                let guard = self.guard_of(&key)?;
                // An open circuit would refuse the call: starting a task for it is waste.
                if guard.refusing() {
                    return None;
                }
                let healthy = guard.healthy();
                let (fetch, started) = self.start(key, point)?;
                Some((fetch, started, healthy))
            })
            .collect()
    }

    fn guard_of(&self, key: &FetchKey) -> Option<&FeedGuard> {
        match key {
            FetchKey::Weather(_) => self.weather.as_ref().map(|feed| &feed.guard),
            FetchKey::Traffic(_) => self.traffic.as_ref().map(|feed| &feed.guard),
            FetchKey::Route(_) => self.routing.as_ref().map(|feed| &feed.guard),
        }
    }

    /// The running fetch of `key`, started if none is.
    fn start(self: &Arc<Self>, key: FetchKey, point: Option<GeoPoint>) -> Option<(Fetch, Instant)> {
        let runtime = self.runtime.as_ref()?;
        let mut inflight = lock(&self.inflight);
        if let Some(running) = inflight.get(&key) {
            return Some(running.clone());
        }
        let feeds = self.clone();
        let fetched = key.clone();
        let task = runtime.spawn(async move {
            feeds.fetch(&fetched, point).await;
            lock(&feeds.inflight).remove(&fetched);
        });
        let shared = async move {
            let _ = task.await;
        }
        .boxed()
        .shared();
        let started = Instant::now();
        inflight.insert(key, (shared.clone(), started));
        Some((shared, started))
    }

    async fn fetch(&self, key: &FetchKey, point: Option<GeoPoint>) {
        let now = Clock::System.now();
        match key {
            FetchKey::Weather(cell) => {
                let Some(feed) = &self.weather else { return };
                let Ok(_permit) = feed.permits.acquire().await else {
                    return;
                };
                if let Ok(frame) = feed.guard.call(|| feed.source.forecast(*cell)).await {
                    feed.guard.received(now);
                    match HourlyWeather::from_frame(&frame) {
                        Ok(cells) => {
                            if let Some(hourly) = cells.into_iter().next() {
                                lock(&self.weather_cache).insert(
                                    *cell,
                                    Timed {
                                        at: now,
                                        value: Arc::new(hourly),
                                    },
                                );
                            }
                        }
                        Err(error) => tracing::error!(message = "Weather not read.", %error),
                    }
                }
            }
            FetchKey::Traffic(area) => {
                let (Some(feed), Some(point)) = (&self.traffic, point) else {
                    return;
                };
                let Ok(_permit) = feed.permits.acquire().await else {
                    return;
                };
                if let Ok(flow) = feed.guard.call(|| feed.source.flow(point)).await {
                    feed.guard.received(now);
                    lock(&self.traffic_cache).insert(
                        *area,
                        Timed {
                            at: now,
                            value: flow.congestion(),
                        },
                    );
                }
            }
            FetchKey::Route(rounded) => {
                let Some(feed) = &self.routing else { return };
                let points: Vec<GeoPoint> = rounded
                    .iter()
                    .filter_map(|(lat, lon)| {
                        GeoPoint::new(*lat as f64 / 1e4, *lon as f64 / 1e4).ok()
                    })
                    .collect();
                let Ok(_permit) = feed.permits.acquire().await else {
                    return;
                };
                if let Ok(legs) = feed.guard.call(|| feed.source.route(&points)).await {
                    feed.guard.received(now);
                    let mut cache = lock(&self.route_cache);
                    if cache.len() >= ROUTE_CACHE {
                        let mut ages: Vec<_> =
                            cache.iter().map(|(k, v)| (v.at, k.clone())).collect();
                        ages.sort();
                        for (_, old) in ages.into_iter().take(ROUTE_CACHE / 2) {
                            cache.remove(&old);
                        }
                    }
                    cache.insert(
                        rounded.clone(),
                        Timed {
                            at: now,
                            value: legs,
                        },
                    );
                }
            }
        }
    }
}

/// What the caches hold now: for `POST /v1/eta`, which has waited for the feeds first (see
/// [`Feeds::prefetch`]). The caches are keyed by real time, whatever clock the caller runs on.
impl Surroundings for Feeds {
    fn fill(&self, queries: &mut [EtaQuery]) -> Vec<Vec<&'static str>> {
        if !self.active() {
            return vec![Vec::new(); queries.len()];
        }
        self.apply(queries, Clock::System.now())
    }
}

/// The live estimates' conditions: what the caches hold, and fetches started for the rest
/// without waiting for them (the estimate is recomputed at the next ping anyway).
pub struct CachedFeeds(pub Arc<Feeds>);

impl Surroundings for CachedFeeds {
    fn fill(&self, queries: &mut [EtaQuery]) -> Vec<Vec<&'static str>> {
        let feeds = &self.0;
        if !feeds.active() {
            return vec![Vec::new(); queries.len()];
        }
        let now = Clock::System.now();
        feeds.fetch_missing(queries, now);
        feeds.apply(queries, now)
    }
}

/// The weather that was, from Open-Meteo's archive at `settings.weather_archive_url`, for every
/// cell and day the trips' routes cross, as one weather frame (the training join's layout).
/// Each cell is one request, under the same guard as the live feeds.
pub async fn archive_weather(
    settings: &FeedSettings,
    metrics: &Metrics,
    spans: &[(Cell, chrono::NaiveDate, chrono::NaiveDate)],
) -> Result<DataFrame, guard::FeedError> {
    let archive = OpenMeteo::new(client(), &settings.weather_archive_url);
    let guard = FeedGuard::new("weather_archive", settings.clone(), metrics.clone());
    let mut all: Option<DataFrame> = None;
    for (cell, first, last) in spans {
        let frame = guard.call(|| archive.archive(*cell, *first, *last)).await?;
        all = Some(match all {
            None => frame,
            Some(mut all) => {
                all.vstack_mut_owned(frame)
                    .map_err(|error| guard::FeedError::Malformed(error.to_string()))?;
                all
            }
        });
    }
    all.ok_or_else(|| guard::FeedError::Malformed("no trips to find weather for".into()))
}

/// Weather and congestion for each query, by the training rows' join.
trait TruncHour {
    fn duration_trunc_hour(self) -> DateTime<Utc>;
}

impl TruncHour for DateTime<Utc> {
    fn duration_trunc_hour(self) -> DateTime<Utc> {
        chrono::DurationRound::duration_trunc(self, TimeDelta::hours(1)).unwrap_or(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::rules::DriverState;
    use crate::domain::vehicle::VehicleClass;

    fn leaving(at: DateTime<Utc>) -> EtaQuery {
        EtaQuery {
            origin: GeoPoint::new(45.76, 4.84).unwrap(),
            destination: GeoPoint::new(45.19, 5.72).unwrap(),
            departure: at.fixed_offset(),
            vehicle: VehicleClass::Rigid,
            stops: Vec::new(),
            driver: DriverState::default(),
            context: Default::default(),
        }
    }

    /// Without a traffic provider, congestion learnt from the pings reaches the queries that
    /// start in that area at that hour of the week, and nothing is flagged.
    #[test]
    fn congestion_learnt_from_pings_joins_the_queries() {
        let feeds = Feeds::new(&FeedSettings::default(), &Metrics::new());
        assert!(!feeds.active());
        let now = Utc::now();
        let hour = now.duration_trunc_hour();
        let n = 30;
        // Trucks near Lyon this hour: half crawling, half at the area's free-flow speed.
        let speeds: Vec<f64> = (0..n).map(|i| if i < 16 { 25.0 } else { 85.0 }).collect();
        let pings = DataFrame::new(
            n,
            vec![
                Int64Chunked::from_vec(
                    "timestamp".into(),
                    (0..n as i64)
                        .map(|i| hour.timestamp_millis() + i * 60_000)
                        .collect(),
                )
                .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
                .into_column(),
                Column::new("lat".into(), vec![45.76; n]),
                Column::new("lon".into(), vec![4.84; n]),
                Column::new("speed_kmh".into(), speeds),
            ],
        )
        .unwrap();
        assert_eq!(feeds.learn_congestion(&pings).unwrap(), 1);
        assert!(feeds.active());
        let mut queries = [leaving(hour)];
        let flags = feeds.apply(&mut queries, now);
        assert_eq!(flags, [Vec::<&str>::new()]);
        let congestion = queries[0].context.conditions.origin_congestion.unwrap();
        assert!(
            (congestion - (1.0 - 25.0 / 85.0)).abs() < 1e-9,
            "{congestion}"
        );
        assert_eq!(queries[0].context.conditions.snowfall, None);
        // A week-hour without pings gives nothing.
        let mut later = [leaving(hour + TimeDelta::hours(5))];
        feeds.apply(&mut later, now);
        assert_eq!(later[0].context.conditions.origin_congestion, None);
    }
}
