//! External feeds against local servers that speak their formats: Open-Meteo's hourly JSON,
//! TomTom's Flow Segment Data, Valhalla's `/route`; failing in every way a feed fails.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DurationRound, TimeDelta, Utc};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{lille_to_marseille, spawn_app_with, TestApp, BUNDLED_MODEL};

/// How a fake feed answers a request (given its request line).
#[derive(Clone)]
pub enum Reply {
    Json(Value),
    Status(u16, &'static str),
    /// Never answers.
    Hang,
    Slow(Duration, Value),
    Malformed,
}

/// A feed on 127.0.0.1 whose answers the test decides, counting the requests it gets.
pub struct FakeFeed {
    pub base: String,
    pub hits: Arc<AtomicUsize>,
}

impl FakeFeed {
    pub async fn start(reply: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let reply: Arc<dyn Fn(&str) -> Reply + Send + Sync> = Arc::new(reply);
        let counted = hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let answers = reply.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 4096];
                    // The head, and a body as long as it says.
                    loop {
                        let Ok(read) = socket.read(&mut buffer).await else {
                            return;
                        };
                        if read == 0 {
                            return;
                        }
                        request.extend_from_slice(&buffer[..read]);
                        let text = String::from_utf8_lossy(&request).to_string();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let length = text
                                .lines()
                                .find_map(|line| {
                                    line.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|value| value.trim().parse::<usize>().unwrap_or(0))
                                })
                                .unwrap_or(0);
                            if request.len() >= end + 4 + length {
                                break;
                            }
                        }
                    }
                    let text = String::from_utf8_lossy(&request).to_string();
                    let line = text.lines().next().unwrap_or_default().to_owned();
                    let (status, body) = match answers(&line) {
                        Reply::Json(body) => (200, body.to_string()),
                        Reply::Status(status, body) => (status, body.to_owned()),
                        Reply::Hang => {
                            tokio::time::sleep(Duration::from_secs(3_600)).await;
                            return;
                        }
                        Reply::Slow(delay, body) => {
                            tokio::time::sleep(delay).await;
                            (200, body.to_string())
                        }
                        Reply::Malformed => (200, "{\"flowSegmentData\": [1, 2".to_owned()),
                    };
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(body.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self { base, hits }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Weather the way Open-Meteo forecasts it: hourly, from yesterday to a week ahead, in UTC.
pub fn open_meteo(weather: [f64; 5]) -> Value {
    let start = (Utc::now() - TimeDelta::days(1))
        .duration_trunc(TimeDelta::days(1))
        .unwrap();
    let hours = 8 * 24;
    let times: Vec<String> = (0..hours)
        .map(|hour| {
            (start + TimeDelta::hours(hour))
                .format("%Y-%m-%dT%H:%M")
                .to_string()
        })
        .collect();
    let series = |value: f64| vec![value; hours as usize];
    json!({
        "latitude": 47.0, "longitude": 5.0, "elevation": 200.0, "generationtime_ms": 0.2,
        "utc_offset_seconds": 0, "timezone": "UTC", "timezone_abbreviation": "UTC",
        "hourly": {
            "time": times,
            "temperature_2m": series(weather[0]),
            "precipitation": series(weather[1]),
            "snowfall": series(weather[2]),
            "wind_speed_10m": series(weather[3]),
            "visibility": series(weather[4]),
        },
        "hourly_units": {"time": "iso8601", "temperature_2m": "°C", "precipitation": "mm",
            "snowfall": "cm", "wind_speed_10m": "km/h", "visibility": "m"},
    })
}

/// TomTom's Flow Segment Data for one road.
pub fn tomtom(current_kmh: f64, free_flow_kmh: f64) -> Value {
    json!({"flowSegmentData": {
        "frc": "FRC0", "currentSpeed": current_kmh, "freeFlowSpeed": free_flow_kmh,
        "currentTravelTime": (3_600.0 / current_kmh.max(1.0)).round(),
        "freeFlowTravelTime": (3_600.0 / free_flow_kmh).round(),
        "confidence": 0.97, "roadClosure": false,
        "coordinates": {"coordinate": [{"latitude": 50.6, "longitude": 3.0}]},
        "@version": "traffic-service-flow 1.0.120"}})
}

const CLEAR: [f64; 5] = [14.0, 0.0, 0.0, 8.0, 40_000.0];
const HEAVY_SNOW: [f64; 5] = [-4.0, 6.0, 5.0, 45.0, 300.0];

/// The bundled model, with the feeds at these servers.
async fn app_with_feeds(
    weather: &FakeFeed,
    traffic: &FakeFeed,
    tune: impl FnOnce(&mut etape::config::Settings),
) -> TestApp {
    let (weather, traffic) = (weather.base.clone(), traffic.base.clone());
    spawn_app_with(move |settings| {
        settings.model.dir = BUNDLED_MODEL.into();
        settings.feeds.weather_url = weather;
        settings.feeds.traffic_url = traffic;
        settings.feeds.traffic_key = "test-key".into();
        settings.feeds.wait_ms = 2_000;
        tune(settings);
    })
    .await
}

/// A Lille to Marseille trip leaving now.
fn leaving_now() -> Value {
    let now = Utc::now().duration_trunc(TimeDelta::minutes(1)).unwrap() + TimeDelta::minutes(5);
    lille_to_marseille(&now.to_rfc3339(), "articulated")
}

async fn eta(app: &TestApp, request: &Value) -> Value {
    let (status, body) = app.post_json("/v1/eta", request).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn heavy_snow_and_a_congestion_spike_make_the_same_trip_later() {
    let clear_weather = FakeFeed::start(|_| Reply::Json(open_meteo(CLEAR))).await;
    let free_roads = FakeFeed::start(|_| Reply::Json(tomtom(88.0, 90.0))).await;
    let snow = FakeFeed::start(|_| Reply::Json(open_meteo(HEAVY_SNOW))).await;
    let jammed = FakeFeed::start(|_| Reply::Json(tomtom(9.0, 90.0))).await;
    let request = leaving_now();

    let calm = eta(
        &app_with_feeds(&clear_weather, &free_roads, |_| {}).await,
        &request,
    )
    .await;
    let storm = eta(&app_with_feeds(&snow, &jammed, |_| {}).await, &request).await;
    for answer in [&calm, &storm] {
        assert_eq!(answer["degraded"], json!([]), "{answer}");
        assert_eq!(answer["model"]["fallback"], false);
    }
    assert_eq!(calm["conditions"]["snowfall"], 0.0, "{calm}");
    assert_eq!(storm["conditions"]["snowfall"], 5.0, "{storm}");
    assert_eq!(storm["conditions"]["visibility"], 300.0);
    assert!((storm["conditions"]["origin_congestion"].as_f64().unwrap() - 0.9).abs() < 1e-9);
    let minutes = |answer: &Value| answer["duration_minutes"].as_f64().unwrap();
    assert!(
        minutes(&storm) > minutes(&calm) + 10.0,
        "snow and jams {:.0} min against clear and free {:.0} min",
        minutes(&storm),
        minutes(&calm)
    );
    // Asked once per cell and area: the second answer comes from the cache.
    let hits = snow.hits();
    let app = app_with_feeds(&snow, &jammed, |_| {}).await;
    eta(&app, &request).await;
    let after_first = snow.hits();
    eta(&app, &request).await;
    assert_eq!(snow.hits(), after_first);
    assert!(after_first > hits);
}

#[tokio::test]
async fn with_every_feed_down_the_eta_answers_flagged_and_the_circuits_open() {
    let weather =
        FakeFeed::start(|_| Reply::Status(503, "{\"error\":true,\"reason\":\"overloaded\"}")).await;
    let traffic = FakeFeed::start(|_| Reply::Hang).await;
    let routing = FakeFeed::start(|_| Reply::Malformed).await;
    let route_base = routing.base.clone();
    let app = app_with_feeds(&weather, &traffic, move |settings| {
        settings.feeds.routing_url = route_base;
        settings.feeds.timeout_ms = 150;
        settings.feeds.retries = 1;
        settings.feeds.backoff_initial_ms = 10;
        settings.feeds.backoff_max_ms = 20;
        settings.feeds.breaker_failures = 2;
        settings.feeds.breaker_cooldown_secs = 3_600;
        settings.feeds.wait_ms = 400;
    })
    .await;
    let request = leaving_now();
    let mut flags = Vec::new();
    for _ in 0..4 {
        let answer = eta(&app, &request).await;
        assert_eq!(answer["model"]["fallback"], false, "the model answers");
        assert!(answer["eta"].is_string());
        flags = answer["degraded"].as_array().unwrap().clone();
        // Let a fetch still under way end before the next question.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let mut flags: Vec<&str> = flags.iter().map(|flag| flag.as_str().unwrap()).collect();
    flags.sort_unstable();
    assert_eq!(
        flags,
        [
            "routing_unavailable",
            "traffic_unavailable",
            "weather_unavailable"
        ]
    );

    // Open circuits: nothing more reaches the feeds, and the answer does not wait for them.
    let before = (weather.hits(), traffic.hits(), routing.hits());
    let started = std::time::Instant::now();
    for _ in 0..5 {
        let answer = eta(&app, &request).await;
        assert_eq!(answer["degraded"].as_array().unwrap().len(), 3);
    }
    let five_answers = started.elapsed();
    assert_eq!((weather.hits(), traffic.hits(), routing.hits()), before);
    assert!(
        five_answers < Duration::from_secs(2),
        "{five_answers:?} for five answers with every circuit open"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for (feed, outcome) in [
        ("weather", "error"),
        ("traffic", "timeout"),
        ("routing", "malformed"),
    ] {
        assert!(
            metrics.contains(&format!(
                "etape_feed_requests_total{{feed=\"{feed}\",outcome=\"{outcome}\"}}"
            )),
            "{feed} {outcome}: {metrics}"
        );
    }
    assert!(metrics.contains("etape_feed_circuit_open{feed=\"weather\"} 1"));
    // An open circuit starts no call at all while it cools down.
    assert!(
        !metrics.contains("outcome=\"short_circuited\""),
        "{metrics}"
    );

    // A tracked shipment's estimate says the same.
    let departure = Utc::now() + TimeDelta::hours(1);
    let (status, shipment) = app
        .post_json(
            "/v1/shipments",
            &json!({"reference": "FEEDS-DOWN", "vehicle_id": "FR-1", "vehicle_class": "rigid",
                    "origin": {"lat": 50.63, "lon": 3.06},
                    "stops": [{"id": "lyon", "lat": 45.76, "lon": 4.84}],
                    "planned_departure": departure.to_rfc3339()}),
        )
        .await;
    assert_eq!(status, 201, "{shipment}");
    let path = format!("/v1/shipments/{}/eta", shipment["id"].as_str().unwrap());
    let live: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(live["degraded"].as_array().map(Vec::len), Some(3), "{live}");
}

#[tokio::test]
async fn a_slow_feed_is_not_waited_for_and_serves_the_next_answers() {
    let weather =
        FakeFeed::start(|_| Reply::Slow(Duration::from_millis(800), open_meteo(HEAVY_SNOW))).await;
    let traffic = FakeFeed::start(|_| Reply::Json(tomtom(80.0, 90.0))).await;
    let app = app_with_feeds(&weather, &traffic, |settings| settings.feeds.wait_ms = 100).await;
    let request = leaving_now();
    let first = eta(&app, &request).await;
    assert_eq!(first["degraded"], json!(["weather_unavailable"]), "{first}");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let second = eta(&app, &request).await;
    assert_eq!(second["degraded"], json!([]), "{second}");
    assert_eq!(second["conditions"]["snowfall"], 5.0);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("etape_feed_data_age_seconds{feed=\"weather\"}"),
        "{metrics}"
    );
}

/// A real routing engine, killed with the test (Valhalla ignores SIGTERM: `kill` sends SIGKILL).
struct Engine(std::process::Child);

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The engines' directory, or `None` (said loudly) when the registry cannot be reached.
fn routing_engines(test: &str) -> Option<std::path::PathBuf> {
    let setup = std::process::Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/routing-engine"
        ))
        .output()
        .unwrap();
    if setup.status.code() == Some(3) {
        eprintln!(
            "\n!!!!!!!!!! SKIPPED {test}: {} !!!!!!!!!!\n",
            String::from_utf8_lossy(&setup.stderr).trim()
        );
        return None;
    }
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    Some(String::from_utf8(setup.stdout).unwrap().trim().into())
}

/// Central Helsinki, a stop north of it, then west: roads both engines connect in the extract.
const ROUTE: [(f64, f64); 3] = [(60.1699, 24.9384), (60.1760, 24.9410), (60.1690, 24.9320)];

/// An ETA through the route with the engine at `base`: its legs' road distance is the answer's.
async fn the_eta_takes_the_engines_distance(
    engine: etape::config::RoutingEngine,
    base: String,
    legs_km: Vec<f64>,
) {
    let app = spawn_app_with(move |settings| {
        settings.feeds.routing_engine = engine;
        settings.feeds.routing_url = base;
        settings.feeds.wait_ms = 5_000;
    })
    .await;
    let departure = Utc::now().duration_trunc(TimeDelta::minutes(1)).unwrap() + TimeDelta::hours(1);
    let [from, stop, to] = ROUTE;
    let request = json!({
        "origin": {"lat": from.0, "lon": from.1},
        "destination": {"lat": to.0, "lon": to.1},
        "stops": [{"lat": stop.0, "lon": stop.1, "dwell_minutes": 20}],
        "departure_time": departure.to_rfc3339(),
        "vehicle_class": "rigid",
    });
    let answer = eta(&app, &request).await;
    assert_eq!(answer["routed"], true, "{answer}");
    assert_eq!(answer["degraded"], json!([]));
    let road: f64 = legs_km.iter().sum();
    let distance = answer["distance_km"].as_f64().unwrap();
    assert!(
        (distance - road).abs() <= 0.06,
        "ETA {distance} km, {engine:?} {road:.2} km"
    );
    // The great circle times the circuity factor would have said otherwise.
    let crow = |a: (f64, f64), b: (f64, f64)| {
        let (la1, lo1, la2, lo2) = (
            a.0.to_radians(),
            a.1.to_radians(),
            b.0.to_radians(),
            b.1.to_radians(),
        );
        let h = ((la2 - la1) / 2.0).sin().powi(2)
            + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
        2.0 * 6_371.0 * h.sqrt().asin()
    };
    let guessed = 1.2 * (crow(from, stop) + crow(stop, to));
    assert!(
        (distance - guessed).abs() > 1.0,
        "routed {distance} km, guessed {guessed:.1} km"
    );
}

/// Valhalla itself, with truck costing, on the real roads of Helsinki's OpenStreetMap extract.
#[tokio::test]
async fn a_real_valhalla_route_gives_the_eta_its_road_distance() {
    let Some(dir) = routing_engines("a_real_valhalla_route_gives_the_eta_its_road_distance") else {
        return;
    };
    let dir = dir.join("valhalla");
    let port = free_port();
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(dir.join("valhalla.json")).unwrap()).unwrap();
    config["httpd"]["service"]["listen"] = json!(format!("tcp://127.0.0.1:{port}"));
    let scratch = tempfile::tempdir().unwrap();
    let config_path = scratch.path().join("valhalla.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let _engine = Engine(
        std::process::Command::new(dir.join("bin/valhalla_service"))
            .arg(&config_path)
            .arg("1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let locations: Vec<Value> = ROUTE
        .iter()
        .map(|(lat, lon)| json!({"lat": lat, "lon": lon}))
        .collect();
    let direct = json!({
        "locations": locations,
        "costing": "truck", "units": "kilometers", "directions_type": "none",
    });
    let client = etape::adapters::feeds::client();
    let mut route = Value::Null;
    for _ in 0..100 {
        if let Ok(response) = client
            .post(format!("{base}/route"))
            .json(&direct)
            .send()
            .await
        {
            route = response.json().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let legs: Vec<f64> = route["trip"]["legs"]
        .as_array()
        .unwrap_or_else(|| panic!("Valhalla answers a route: {route}"))
        .iter()
        .map(|leg| leg["summary"]["length"].as_f64().unwrap())
        .collect();
    the_eta_takes_the_engines_distance(etape::config::RoutingEngine::Valhalla, base, legs).await;
}

/// OSRM itself, with its car profile, on the same extract.
#[tokio::test]
async fn a_real_osrm_route_gives_the_eta_its_road_distance() {
    let Some(dir) = routing_engines("a_real_osrm_route_gives_the_eta_its_road_distance") else {
        return;
    };
    let dir = dir.join("osrm");
    let port = free_port();
    let _engine = Engine(
        std::process::Command::new(dir.join("bin/osrm-routed"))
            .args(["--ip", "127.0.0.1", "--port", &port.to_string()])
            .arg(dir.join("Helsinki.osrm"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let coordinates = ROUTE
        .iter()
        .map(|(lat, lon)| format!("{lon},{lat}"))
        .collect::<Vec<_>>()
        .join(";");
    let client = etape::adapters::feeds::client();
    let mut route = Value::Null;
    for _ in 0..100 {
        if let Ok(response) = client
            .get(format!(
                "{base}/route/v1/driving/{coordinates}?overview=false"
            ))
            .send()
            .await
        {
            route = response.json().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let legs: Vec<f64> = route["routes"][0]["legs"]
        .as_array()
        .unwrap_or_else(|| panic!("OSRM answers a route: {route}"))
        .iter()
        .map(|leg| leg["distance"].as_f64().unwrap() / 1_000.0)
        .collect();
    the_eta_takes_the_engines_distance(etape::config::RoutingEngine::Osrm, base, legs).await;
}

/// Open-Meteo's archive: the hours of the days asked, in the forecast's format.
fn archive_answer(request_line: &str) -> Reply {
    let date = |key: &str| {
        request_line
            .split(['?', '&', ' '])
            .find_map(|pair| pair.strip_prefix(key))
            .and_then(|value| chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").ok())
    };
    let (Some(start), Some(end)) = (date("start_date="), date("end_date=")) else {
        return Reply::Status(
            400,
            r#"{"error":true,"reason":"Parameter 'start_date' is required"}"#,
        );
    };
    let hours = ((end - start).num_days() + 1) * 24;
    let first = start.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let times: Vec<String> = (0..hours)
        .map(|hour| {
            (first + TimeDelta::hours(hour))
                .format("%Y-%m-%dT%H:%M")
                .to_string()
        })
        .collect();
    let series = |value: f64| vec![value; hours as usize];
    Reply::Json(json!({
        "latitude": 47.0, "longitude": 5.0, "generationtime_ms": 3.1, "utc_offset_seconds": 0,
        "timezone": "UTC", "timezone_abbreviation": "UTC", "elevation": 210.0,
        "hourly": {"time": times, "temperature_2m": series(4.0), "precipitation": series(0.4),
            "snowfall": series(0.0), "wind_speed_10m": series(12.0), "visibility": series(20_000.0)},
    }))
}

#[tokio::test]
async fn training_takes_the_weather_that_was_from_the_archive() {
    let archive = FakeFeed::start(archive_answer).await;
    let out = crate::helpers::artifact_path("archive-model");
    let _ = std::fs::remove_dir_all(&out);
    let history = format!(
        "eight={}/data/sample/carrier-08",
        env!("CARGO_MANIFEST_DIR")
    );
    let train = |base: String, out: std::path::PathBuf| {
        let history = history.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_etape"))
                .args([
                    "train",
                    "--weather-archive",
                    "--rounds",
                    "10",
                    "--history",
                    &history,
                    "--out",
                ])
                .arg(out)
                .env("ETAPE__FEEDS__WEATHER_ARCHIVE_URL", base)
                .env("ETAPE__FEEDS__BACKOFF_INITIAL_MS", "1")
                .output()
                .unwrap()
        })
    };
    let output = train(archive.base.clone(), out.clone()).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let cells: usize = stdout
        .split("weather from the archive: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(cells > 0);
    assert_eq!(archive.hits(), cells, "one request per cell");
    assert!(out.join("model.json").exists());

    // A broken archive stops the training, saying so.
    let broken = FakeFeed::start(|_| Reply::Status(502, "bad gateway")).await;
    let refused = crate::helpers::artifact_path("archive-refused");
    let output = train(broken.base.clone(), refused.clone()).await.unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("weather archive"));
    assert!(!refused.exists());
}
