//! Settings, layered: compiled defaults, then an optional TOML file, then `ETAPE__SECTION__KEY`
//! environment variables, then command-line flags (applied by `main`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context};
use chrono::{NaiveDate, TimeDelta};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::domain::bans::BanRules;
use crate::domain::calendar::BanCalendar;
use crate::domain::eta::{BandHeuristic, RoadModel, RulesEtaConfig, SpeedLimits};
use crate::domain::risk::RiskThresholds;
use crate::domain::rules::{BorderWaits, RulesPolicy};

/// The file read when no `--config` is given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "etape.toml";
pub const ENV_PREFIX: &str = "ETAPE__";

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub log: LogSettings,
    pub api: ApiSettings,
    pub rules: RulesSettings,
    pub model: ModelSettings,
    pub storage: StorageSettings,
    pub tracking: TrackingSettings,
    pub webhooks: WebhookSettings,
    pub demo: DemoSettings,
    pub feeds: FeedSettings,
    pub dashboard: DashboardSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardSettings {
    /// A raster tile server for the dashboard's map when online, with `{z}`, `{x}` and `{y}`
    /// (e.g. `https://tile.openstreetmap.org/{z}/{x}/{y}.png`, whose usage policy applies).
    /// Empty: the offline outline only.
    pub tile_url: String,
    /// The alerts panel raises a shipment whose ETA moved later by more than this since the
    /// first estimate the page saw of it.
    pub slip_alert_minutes: u32,
    /// The alerts panel raises a truck on the road whose last ping is older than this.
    pub silent_alert_minutes: u32,
}

impl Default for DashboardSettings {
    fn default() -> Self {
        Self {
            tile_url: String::new(),
            slip_alert_minutes: 30,
            silent_alert_minutes: 30,
        }
    }
}

/// External feeds: weather (Open-Meteo's API), traffic (TomTom's Flow Segment Data) and a
/// routing engine (Valhalla or OSRM). Each is off while its URL is empty; the ETAs then do
/// without it, unflagged. A configured feed that fails or is stale flags the ETAs it could not
/// serve (`degraded`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedSettings {
    /// Open-Meteo forecast API, e.g. `https://api.open-meteo.com` (self-hosted works alike).
    pub weather_url: String,
    /// Open-Meteo archive API, e.g. `https://archive-api.open-meteo.com`: the weather that was,
    /// for training on histories (`etape train --weather-archive`).
    pub weather_archive_url: String,
    /// TomTom traffic API, e.g. `https://api.tomtom.com`, and its key. Without it, congestion
    /// is learnt from the pings.
    pub traffic_url: String,
    pub traffic_key: String,
    /// `valhalla` or `osrm`, at `routing_url`.
    pub routing_engine: RoutingEngine,
    pub routing_url: String,
    /// One HTTP attempt's limit, and retries after a failed one (timeouts, 5xx, refused
    /// connections), with full jitter over an exponentially growing cap.
    pub timeout_ms: u64,
    pub retries: u32,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// Failed calls in a row that open a feed's circuit; calls are then refused at once until
    /// the cool-down has passed and one trial call succeeds.
    pub breaker_failures: u32,
    pub breaker_cooldown_secs: u64,
    /// How long an ETA request waits for what the feeds do not have cached; the rest keeps
    /// being fetched and serves the next requests.
    pub wait_ms: u64,
    /// Data older than this is fetched again; kept and flagged stale while that fails, up to
    /// four times as old.
    pub weather_max_age_secs: u64,
    pub traffic_max_age_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RoutingEngine {
    #[default]
    Valhalla,
    Osrm,
}

impl Default for FeedSettings {
    fn default() -> Self {
        Self {
            weather_url: String::new(),
            weather_archive_url: String::new(),
            traffic_url: String::new(),
            traffic_key: String::new(),
            routing_engine: RoutingEngine::Valhalla,
            routing_url: String::new(),
            timeout_ms: 2_000,
            retries: 2,
            backoff_initial_ms: 100,
            backoff_max_ms: 1_000,
            breaker_failures: 3,
            breaker_cooldown_secs: 30,
            wait_ms: 300,
            weather_max_age_secs: 3_600,
            traffic_max_age_secs: 300,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Holds `etape.sqlite` (shipments, webhooks, ETA history) and `pings/` (Parquet segments).
    pub data_dir: PathBuf,
    /// A PostgreSQL server (`postgres://user:password@host:5432/database`) to keep shipments,
    /// webhooks, keys, uploads and consents in, shared by every replica; the embedded SQLite
    /// file in `data_dir` when absent. TLS as libpq's `sslmode` (`require`, `verify-ca`,
    /// `verify-full`) and `sslrootcert=/path/ca.pem` say in its query.
    pub url: Option<String>,
    /// The PEM file of the CA to verify the PostgreSQL server with, when `url` asks for
    /// `sslmode=verify-full` (or `verify-ca`, or `require`) without a `sslrootcert` of its own.
    pub ca_file: Option<PathBuf>,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data/live"),
            url: None,
            ca_file: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackingSettings {
    /// Largest number of pings in one `POST /v1/positions`.
    pub max_pings_per_request: usize,
    /// Largest body of `POST /v1/positions`.
    pub max_positions_body_bytes: usize,
    /// Pings stamped further than this in the future are refused (clock skew on trackers).
    pub future_tolerance_secs: i64,
    /// Pings older than this are refused: they cannot change a live estimate.
    pub max_age_hours: i64,
    /// Faster than this is a GPS or unit error, not a truck.
    pub max_speed_kmh: f64,
    /// Hours of pings kept in memory per vehicle.
    pub window_hours: i64,
    /// A vehicle's estimates are recomputed at most this often, however fast it pings.
    pub debounce_ms: u64,
    /// A truck within this distance of a stop is at the stop.
    pub stop_radius_m: f64,
    /// ...once it has stayed there this long: an arrival. Leaving the radius is a departure.
    pub arrival_minutes: f64,
    /// Pings this long before the planned departure already belong to the shipment.
    pub lead_minutes: i64,
    pub page_size: usize,
    /// The latest scored estimates each organisation's correction learns from, per horizon.
    pub correction_window: usize,
    /// Fewer scored estimates than this leave a horizon uncorrected.
    pub correction_min_estimates: usize,
    /// For tests only: the restoration after a start waits this long before it begins, so
    /// that a test sees the service listen while it is not ready. 0 in service.
    pub restore_delay_ms: u64,
}

impl TrackingSettings {
    pub fn corrections(&self) -> crate::domain::correction::CorrectionParams {
        crate::domain::correction::CorrectionParams {
            window: self.correction_window.max(1),
            min_estimates: self.correction_min_estimates,
            ..Default::default()
        }
    }
}

impl Default for TrackingSettings {
    fn default() -> Self {
        Self {
            max_pings_per_request: 100_000,
            max_positions_body_bytes: 32 * 1024 * 1024,
            future_tolerance_secs: 300,
            max_age_hours: 72,
            max_speed_kmh: 200.0,
            window_hours: 48,
            debounce_ms: 1_000,
            stop_radius_m: 500.0,
            arrival_minutes: 3.0,
            lead_minutes: 60,
            page_size: 50,
            correction_window: 400,
            correction_min_estimates: 50,
            restore_delay_ms: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Attempts per delivery, the first included.
    pub max_attempts: u32,
    /// First retry delay; each next one doubles, with full jitter.
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub timeout_secs: u64,
    /// A webhook is disabled after this many deliveries in a row failed every attempt.
    pub disable_after_failures: u32,
    /// Lets webhooks point to loopback, private, link-local and cloud metadata addresses. Off,
    /// a caller could otherwise make the service call its own network; turn it on only where
    /// every caller is trusted, or the receivers live on a closed network.
    pub allow_private_networks: bool,
    /// After a secret is rotated, deliveries carry a signature under the old secret beside
    /// the new one's for this long, so that receivers can switch without a refused delivery.
    pub rotation_grace_secs: u64,
    /// The key webhook secrets are sealed under in the database (AES-256-GCM): a file holding
    /// the base64 of 32 random bytes (`openssl rand -base64 32`), which must exist. Replicas
    /// on PostgreSQL share one. Unset, the embedded store creates `secrets.key` in the data
    /// directory, and PostgreSQL keeps the secrets in clear (a warning says so at start).
    pub secrets_key_file: Option<PathBuf>,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            backoff_initial_ms: 1_000,
            backoff_max_ms: 60_000,
            timeout_secs: 10,
            disable_after_failures: 5,
            allow_private_networks: false,
            rotation_grace_secs: 24 * 60 * 60,
            secrets_key_file: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoSettings {
    /// Runs a simulated fleet through the ingestion path. Turn off in production.
    pub enabled: bool,
    pub trucks: usize,
    pub seed: u64,
    /// How fast a truck's past is replayed when it joins (simulated minutes per real second);
    /// from the present on it pings in real time, so its ETAs are real clock times.
    pub catch_up_speed: f64,
}

impl Default for DemoSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            trucks: 12,
            seed: 7,
            catch_up_speed: 600.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSettings {
    /// The model directory to serve (see `etape train`). When it is missing or refused, the
    /// rules answer, flagged as a fallback. SIGHUP reloads it.
    pub dir: PathBuf,
    /// Threads for a batch's predictions; 0 means one per core.
    pub batch_threads: usize,
    /// Retrain on the partners' uploads this often, when uploads or consents changed since
    /// the last scheduled training (and once after start); 0: only on request.
    pub retrain_every_secs: u64,
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("data/models/bundled"),
            batch_threads: 0,
            retrain_every_secs: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Where to listen; port 0 picks a free port (the tests use it).
    pub bind: SocketAddr,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// How long in-flight requests get to finish after SIGTERM or SIGINT.
    pub shutdown_timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines for a terminal.
    Pretty,
    /// One JSON object per line, for a log collector.
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `etape=debug,actix_web=info`; `RUST_LOG` wins.
    pub filter: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// Largest body of a single-ETA request.
    pub max_body_bytes: usize,
    /// Largest body of a batch request.
    pub max_batch_body_bytes: usize,
    pub max_batch_requests: usize,
    /// Largest history upload; it streams to disk, so this bounds the disk, not the memory.
    pub max_upload_bytes: usize,
    /// Largest text a gzip upload may decompress to: a few kilobytes of gzip can hold
    /// gigabytes, and `max_upload_bytes` counts the compressed bytes only. Reading stops at
    /// this bound and the upload is refused (413). At least `max_upload_bytes`.
    pub max_upload_decompressed_bytes: u64,
    pub max_stops: usize,
    /// Departures further than this from now, either way, are refused as mistakes.
    pub max_departure_offset_days: i64,
    /// Requests a second per API key (a steady rate), and how many may come at once above it;
    /// over them the answer is 429 with `Retry-After`. 0 turns the limit off.
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    /// A request still running after this is answered 503 with `Retry-After`; history uploads,
    /// which stream up to `max_upload_bytes`, have their own limit.
    pub request_timeout_secs: u64,
    pub upload_timeout_secs: u64,
    /// Browser origins besides the service's own (where the dashboard is served) that may call
    /// the API, such as `https://tms.example.com`.
    pub cors_origins: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesSettings {
    pub circuity: f64,
    pub urban_km_per_end: f64,
    pub main_road_km_per_end: f64,
    pub territory_step_km: f64,
    pub heavy_goods: SpeedSettings,
    pub van: SpeedSettings,
    pub use_extended_days: bool,
    pub use_reduced_rests: bool,
    /// Saturdays of July and August on which the yearly decree bans heavy goods vehicles
    /// from 07:00 to 19:00, as `YYYY-MM-DD`: those of a year the shipped ban data does not
    /// list yet (2026's are shipped).
    pub summer_saturdays: Vec<NaiveDate>,
    /// An operator's own ban data, a TOML file of the schema of `data/bans/*.toml`, laid over
    /// the shipped rules at start (a rule of the same id replaces the shipped one). A file that
    /// does not read stops the start, naming the file and the line.
    pub bans_file: Option<PathBuf>,
    /// The expected wait at a customs border (Switzerland, the United Kingdom, Andorra), and
    /// at one inside the EU customs union (at most a Schengen police check), in minutes.
    pub border_wait_customs_minutes: f64,
    pub border_wait_schengen_minutes: f64,
    pub band_early_share_of_driving: f64,
    pub band_late_share_of_driving: f64,
    pub band_late_share_of_dwell: f64,
    pub at_risk_probability: f64,
    pub late_probability: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeedSettings {
    pub motorway_kmh: f64,
    pub main_road_kmh: f64,
    pub urban_kmh: f64,
    pub attainment: f64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: 0,
            shutdown_timeout_secs: 30,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            filter: "info".into(),
        }
    }
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 256 * 1024,
            max_batch_body_bytes: 32 * 1024 * 1024,
            max_upload_bytes: 1024 * 1024 * 1024,
            max_upload_decompressed_bytes: 4 * 1024 * 1024 * 1024,
            max_batch_requests: 10_000,
            max_stops: 100,
            max_departure_offset_days: 365,
            rate_limit_per_second: 500,
            rate_limit_burst: 1_000,
            request_timeout_secs: 30,
            upload_timeout_secs: 900,
            cors_origins: Vec::new(),
        }
    }
}

impl Default for RulesSettings {
    fn default() -> Self {
        let road = RoadModel::default();
        let band = BandHeuristic::default();
        let policy = RulesPolicy::default();
        let risk = RiskThresholds::default();
        Self {
            circuity: road.circuity,
            urban_km_per_end: road.urban_km_per_end,
            main_road_km_per_end: road.main_road_km_per_end,
            territory_step_km: road.territory_step_km,
            heavy_goods: road.heavy_goods.into(),
            van: road.van.into(),
            use_extended_days: policy.use_extended_days,
            use_reduced_rests: policy.use_reduced_rests,
            summer_saturdays: Vec::new(),
            bans_file: None,
            border_wait_customs_minutes: minutes_of(policy.border_waits.customs),
            border_wait_schengen_minutes: minutes_of(policy.border_waits.no_customs),
            band_early_share_of_driving: band.early_share_of_driving,
            band_late_share_of_driving: band.late_share_of_driving,
            band_late_share_of_dwell: band.late_share_of_dwell,
            at_risk_probability: risk.at_risk,
            late_probability: risk.late,
        }
    }
}

fn minutes_of(delta: TimeDelta) -> f64 {
    delta.num_milliseconds() as f64 / 60_000.0
}

fn delta_of(minutes: f64) -> TimeDelta {
    TimeDelta::milliseconds((minutes * 60_000.0).round() as i64)
}

/// Longest expected wait at one border: beyond a day it is a closed border, not a queue.
const MAX_BORDER_WAIT_MINUTES: f64 = 24.0 * 60.0;

impl From<SpeedLimits> for SpeedSettings {
    fn from(limits: SpeedLimits) -> Self {
        Self {
            motorway_kmh: limits.motorway_kmh,
            main_road_kmh: limits.main_road_kmh,
            urban_kmh: limits.urban_kmh,
            attainment: limits.attainment,
        }
    }
}

impl From<SpeedSettings> for SpeedLimits {
    fn from(speeds: SpeedSettings) -> Self {
        Self {
            motorway_kmh: speeds.motorway_kmh,
            main_road_kmh: speeds.main_road_kmh,
            urban_kmh: speeds.urban_kmh,
            attainment: speeds.attainment,
        }
    }
}

impl TrackingSettings {
    fn validate(&self) -> anyhow::Result<()> {
        let tracking = self;
        ensure!(
            tracking.max_pings_per_request > 0 && tracking.page_size > 0,
            "tracking.max_pings_per_request and tracking.page_size must be positive"
        );
        ensure!(
            tracking.stop_radius_m > 0.0 && tracking.arrival_minutes >= 0.0,
            "tracking.stop_radius_m must be positive and tracking.arrival_minutes not negative"
        );
        ensure!(
            tracking.window_hours > 0 && tracking.max_age_hours > 0,
            "tracking.window_hours and tracking.max_age_hours must be positive"
        );
        ensure!(
            tracking.max_speed_kmh > 0.0,
            "tracking.max_speed_kmh must be positive"
        );
        Ok(())
    }
}

impl RulesSettings {
    fn validate(&self) -> anyhow::Result<()> {
        let rules = self;
        ensure!(
            rules.circuity >= 1.0,
            "rules.circuity must be at least 1 (road is never shorter than the great circle)"
        );
        ensure!(
            rules.territory_step_km > 0.0,
            "rules.territory_step_km must be positive"
        );
        ensure!(
            rules.urban_km_per_end >= 0.0 && rules.main_road_km_per_end >= 0.0,
            "rules.urban_km_per_end and rules.main_road_km_per_end must not be negative"
        );
        for (name, speeds) in [("heavy_goods", rules.heavy_goods), ("van", rules.van)] {
            ensure!(
                speeds.motorway_kmh > 0.0 && speeds.main_road_kmh > 0.0 && speeds.urban_kmh > 0.0,
                "rules.{name}: every speed must be positive"
            );
            ensure!(
                speeds.attainment > 0.0 && speeds.attainment <= 1.0,
                "rules.{name}.attainment must be in (0, 1]"
            );
        }
        ensure!(
            [
                rules.band_early_share_of_driving,
                rules.band_late_share_of_driving,
                rules.band_late_share_of_dwell
            ]
            .iter()
            .all(|share| (0.0..=1.0).contains(share)),
            "rules.band_* shares must be between 0 and 1"
        );
        ensure!(
            0.0 < rules.at_risk_probability
                && rules.at_risk_probability <= rules.late_probability
                && rules.late_probability < 1.0,
            "rules: need 0 < at_risk_probability <= late_probability < 1"
        );
        for (name, minutes) in [
            (
                "border_wait_customs_minutes",
                rules.border_wait_customs_minutes,
            ),
            (
                "border_wait_schengen_minutes",
                rules.border_wait_schengen_minutes,
            ),
        ] {
            ensure!(
                (0.0..=MAX_BORDER_WAIT_MINUTES).contains(&minutes),
                "rules.{name} must be between 0 and {MAX_BORDER_WAIT_MINUTES}"
            );
        }
        if rules.bans_file.is_some() {
            rules.ban_calendar()?;
        }
        Ok(())
    }

    /// The shipped bans, with the configured summer Saturdays and the operator's
    /// `bans_file` laid over them.
    pub fn ban_calendar(&self) -> anyhow::Result<BanCalendar> {
        let configured = BanCalendar::new(self.summer_saturdays.iter().copied());
        let Some(path) = &self.bans_file else {
            return Ok(configured);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read rules.bans_file {}", path.display()))?;
        // The TOML reader's message gives the line and column, and the data's checks the
        // country and the rule.
        let operator = BanRules::parse(&text)
            .map_err(|error| anyhow::anyhow!("rules.bans_file {}: {error}", path.display()))?;
        let mut rules = configured.rules().clone();
        rules.merge(operator);
        Ok(BanCalendar::with_rules(rules))
    }
}

impl ApiSettings {
    fn validate(&self) -> anyhow::Result<()> {
        let api = self;
        ensure!(
            api.max_batch_requests > 0,
            "api.max_batch_requests must be positive"
        );
        ensure!(
            api.max_body_bytes > 0 && api.max_batch_body_bytes > 0,
            "api body limits must be positive"
        );
        ensure!(
            api.max_upload_decompressed_bytes >= api.max_upload_bytes as u64,
            "api.max_upload_decompressed_bytes must be at least api.max_upload_bytes"
        );
        ensure!(
            api.max_departure_offset_days > 0,
            "api.max_departure_offset_days must be positive"
        );
        ensure!(
            api.request_timeout_secs > 0 && api.upload_timeout_secs > 0,
            "api.request_timeout_secs and api.upload_timeout_secs must be positive"
        );
        for origin in &api.cors_origins {
            ensure!(
                origin.starts_with("http://") || origin.starts_with("https://"),
                "api.cors_origins: {origin:?} is not an origin such as https://tms.example.com"
            );
        }
        Ok(())
    }
}

impl Settings {
    /// Defaults, then `file` (required if given, else `etape.toml` if present), then the
    /// environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        match file {
            Some(path) => {
                ensure!(
                    path.is_file(),
                    "configuration file {} not found",
                    path.display()
                );
                figment = figment.merge(Toml::file_exact(path));
            }
            None => figment = figment.merge(Toml::file(DEFAULT_CONFIG_FILE)),
        }
        let settings: Settings = figment
            .merge(Env::prefixed(ENV_PREFIX).split("__"))
            .extract()
            .context("invalid configuration")?;
        settings.validate()?;
        Ok(settings)
    }

    /// Each section checks its own values; the first wrong one is named.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.tracking.validate()?;
        ensure!(
            self.webhooks.max_attempts > 0 && self.webhooks.disable_after_failures > 0,
            "webhooks.max_attempts and webhooks.disable_after_failures must be positive"
        );
        let key_file = self.webhooks.secrets_key_file.as_deref();
        ensure!(
            key_file.is_none_or(|path| !path.as_os_str().is_empty()),
            "webhooks.secrets_key_file is empty: name the key file, or leave the setting out"
        );
        ensure!(
            self.demo.catch_up_speed >= 1.0,
            "demo.catch_up_speed must be at least 1"
        );
        self.rules.validate()?;
        self.api.validate()
    }

    /// The rules baseline as configured, the operator's `rules.bans_file` included; an error
    /// names the file that does not read. The application starts with it.
    pub fn checked_rules_eta_config(&self) -> anyhow::Result<RulesEtaConfig> {
        Ok(RulesEtaConfig {
            bans: self.rules.ban_calendar()?,
            ..self.rules_eta_config_with(BanCalendar::default())
        })
    }

    /// As [`Settings::checked_rules_eta_config`], for a caller past the start, whose
    /// [`Settings::load`] has read the bans file once: should the file no longer read, the
    /// error is logged and the shipped bans (with the summer Saturdays) apply.
    pub fn rules_eta_config(&self) -> RulesEtaConfig {
        self.checked_rules_eta_config().unwrap_or_else(|error| {
            let error = format!("{error:#}");
            tracing::error!(
                message = "The bans file does not read; the shipped bans apply.",
                %error
            );
            self.rules_eta_config_with(BanCalendar::new(
                self.rules.summer_saturdays.iter().copied(),
            ))
        })
    }

    fn rules_eta_config_with(&self, bans: BanCalendar) -> RulesEtaConfig {
        let rules = &self.rules;
        RulesEtaConfig {
            road: RoadModel {
                circuity: rules.circuity,
                urban_km_per_end: rules.urban_km_per_end,
                main_road_km_per_end: rules.main_road_km_per_end,
                territory_step_km: rules.territory_step_km,
                heavy_goods: rules.heavy_goods.into(),
                van: rules.van.into(),
            },
            band: BandHeuristic {
                early_share_of_driving: rules.band_early_share_of_driving,
                late_share_of_driving: rules.band_late_share_of_driving,
                late_share_of_dwell: rules.band_late_share_of_dwell,
            },
            policy: RulesPolicy {
                use_extended_days: rules.use_extended_days,
                use_reduced_rests: rules.use_reduced_rests,
                border_waits: BorderWaits {
                    customs: delta_of(rules.border_wait_customs_minutes),
                    no_customs: delta_of(rules.border_wait_schengen_minutes),
                },
                ..RulesPolicy::default()
            },
            risk: RiskThresholds {
                at_risk: rules.at_risk_probability,
                late: rules.late_probability,
            },
            bans,
        }
    }
}

#[cfg(test)]
// figment's Jail returns its own large error type; boxing it would fight its API.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_match_the_domain() {
        let settings = Settings::default();
        settings.validate().unwrap();
        assert_eq!(settings.rules_eta_config().road, RoadModel::default());
    }

    #[test]
    fn file_then_environment_override_the_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "custom.toml",
                "[server]\nbind = \"0.0.0.0:9000\"\n[rules]\ncircuity = 1.3\nsummer_saturdays = [\"2027-07-31\"]\n",
            )?;
            jail.set_env("ETAPE__RULES__CIRCUITY", "1.4");
            let settings =
                Settings::load(Some(Path::new("custom.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(settings.server.bind.port(), 9000);
            assert_eq!(settings.rules.circuity, 1.4);
            assert_eq!(
                settings.rules.summer_saturdays,
                vec![NaiveDate::from_ymd_opt(2027, 7, 31).unwrap()]
            );
            Ok(())
        });
    }

    #[test]
    fn bad_values_and_unknown_keys_are_refused_with_their_name() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("etape.toml", "[rules]\ncircuity = 0.5\n")?;
            let error = Settings::load(None).unwrap_err().to_string();
            assert!(error.contains("rules.circuity"), "{error}");
            jail.create_file("etape.toml", "[rules]\ncircuitee = 1.5\n")?;
            let error = format!("{:#}", Settings::load(None).unwrap_err());
            assert!(error.contains("circuitee"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn a_decompression_bound_below_the_upload_bound_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ETAPE__API__MAX_UPLOAD_BYTES", "2048");
            jail.set_env("ETAPE__API__MAX_UPLOAD_DECOMPRESSED_BYTES", "1024");
            let error = Settings::load(None).unwrap_err().to_string();
            assert!(
                error.contains("api.max_upload_decompressed_bytes"),
                "{error}"
            );
            jail.set_env("ETAPE__API__MAX_UPLOAD_DECOMPRESSED_BYTES", "2048");
            Settings::load(None).map_err(|e| e.to_string())?;
            Ok(())
        });
    }

    #[test]
    fn a_bans_file_is_laid_over_the_shipped_rules_and_a_bad_one_is_named() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "bans.toml",
                "[[countries]]\ncountry = \"LU\"\ntime_zone = \"Europe/Luxembourg\"\n\
                 [[countries.rules]]\nid = \"lu-sunday\"\ntitle = \"Sunday ban\"\n\
                 source = \"The operator's own\"\nover_tonnes = 7.5\n\
                 when = { kind = \"weekly\", from_day = \"sun\", from = \"00:00\", to_day = \"sun\", to = \"22:00\" }\n",
            )?;
            jail.create_file(
                "etape.toml",
                "[rules]\nbans_file = \"bans.toml\"\nborder_wait_customs_minutes = 45.0\n",
            )?;
            let settings = Settings::load(None).map_err(|e| format!("{e:#}"))?;
            let config = settings
                .checked_rules_eta_config()
                .map_err(|e| format!("{e:#}"))?;
            assert!(config.bans.rules().rule("lu-sunday").is_some());
            assert!(config.bans.rules().rule("de-sunday").is_some());
            assert_eq!(config.policy.border_waits.customs, TimeDelta::minutes(45));
            assert_eq!(config.policy.border_waits.no_customs, TimeDelta::zero());
            jail.create_file(
                "bans.toml",
                "[[countries]]\ncountry = \"LU\"\ntime_zone = Luxembourg\n",
            )?;
            let error = format!("{:#}", Settings::load(None).unwrap_err());
            assert!(
                error.contains("rules.bans_file bans.toml") && error.contains("line 3"),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn a_border_wait_beyond_a_day_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ETAPE__RULES__BORDER_WAIT_SCHENGEN_MINUTES", "-5");
            let error = Settings::load(None).unwrap_err().to_string();
            assert!(
                error.contains("rules.border_wait_schengen_minutes"),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn a_missing_explicit_file_is_an_error() {
        let error = Settings::load(Some(Path::new("/nonexistent/etape.toml"))).unwrap_err();
        assert!(error.to_string().contains("not found"));
    }
}
