//! Settings, layered: compiled defaults, then an optional TOML file, then `ETAPE__SECTION__KEY`
//! environment variables, then command-line flags (applied by `main`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context};
use chrono::NaiveDate;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::domain::calendar::BanCalendar;
use crate::domain::eta::{BandHeuristic, RoadModel, RulesEtaConfig, SpeedLimits};
use crate::domain::risk::RiskThresholds;
use crate::domain::rules::RulesPolicy;

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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSettings {
    /// The model directory to serve (see `etape train`). When it is missing or refused, the
    /// rules answer, flagged as a fallback. SIGHUP reloads it.
    pub dir: PathBuf,
    /// Threads for a batch's predictions; 0 means one per core.
    pub batch_threads: usize,
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("data/models/bundled"),
            batch_threads: 0,
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
    pub max_stops: usize,
    /// Departures further than this from now, either way, are refused as mistakes.
    pub max_departure_offset_days: i64,
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
    /// from 07:00 to 19:00, as `YYYY-MM-DD`.
    pub summer_saturdays: Vec<NaiveDate>,
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
            max_batch_requests: 10_000,
            max_stops: 100,
            max_departure_offset_days: 365,
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
            band_early_share_of_driving: band.early_share_of_driving,
            band_late_share_of_driving: band.late_share_of_driving,
            band_late_share_of_dwell: band.late_share_of_dwell,
            at_risk_probability: risk.at_risk,
            late_probability: risk.late,
        }
    }
}

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

    pub fn validate(&self) -> anyhow::Result<()> {
        let rules = &self.rules;
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
        let api = &self.api;
        ensure!(
            api.max_batch_requests > 0,
            "api.max_batch_requests must be positive"
        );
        ensure!(
            api.max_body_bytes > 0 && api.max_batch_body_bytes > 0,
            "api body limits must be positive"
        );
        ensure!(
            api.max_departure_offset_days > 0,
            "api.max_departure_offset_days must be positive"
        );
        Ok(())
    }

    pub fn rules_eta_config(&self) -> RulesEtaConfig {
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
                ..RulesPolicy::default()
            },
            risk: RiskThresholds {
                at_risk: rules.at_risk_probability,
                late: rules.late_probability,
            },
            bans: BanCalendar::new(rules.summer_saturdays.iter().copied()),
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
    fn a_missing_explicit_file_is_an_error() {
        let error = Settings::load(Some(Path::new("/nonexistent/etape.toml"))).unwrap_err();
        assert!(error.to_string().contains("not found"));
    }
}
