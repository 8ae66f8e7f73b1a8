//! The command line. Each flag that overrides a setting also reads an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Parser, Subcommand};

use crate::config::{LogFormat, Settings};
use crate::ml::history::files::FileFormat;
use crate::ml::model::Target;

#[derive(Debug, Parser)]
#[command(name = "etape", version, about = "Truck arrival-time predictions.")]
pub struct Cli {
    /// A TOML settings file; without it, ./etape.toml is read if present.
    #[arg(long, short, global = true, env = "ETAPE_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (the default).
    Serve(ServeArgs),
    /// Print the OpenAPI 3.1 document.
    Openapi,
    /// Simulate a multi-carrier world: trips, pings, weather and traffic, in the history format.
    Simulate(SimulateArgs),
    /// Check history files or directories against the history format; report every problem.
    Validate {
        /// A trips file, or a directory with trips.* and pings.*.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Train the pooled model on partners' histories and write a model directory.
    Train(TrainArgs),
    /// Measure a model's parameters on histories: time split, partner left out, pooled
    /// against own-only, baselines; print a table, write JSON and Markdown reports.
    Evaluate(EvaluateArgs),
    /// Retrain on the partners' uploads in the data directory, as `POST /v1/models/train`
    /// does: the pooled model on consenting partners, one of its own for each partner that
    /// does not pool. A model that beats the one serving on its holdout is marked active (a
    /// running service serves it from its next start, or at once through the API). Prints the
    /// job as JSON; exits non-zero if it failed.
    Retrain {
        #[arg(long, env = "ETAPE_DATA_DIR")]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        rounds: Option<usize>,
    },
    /// Organisations and API keys in the data directory. A running service sees new and
    /// revoked keys within a second.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the effective settings (defaults, file and environment merged) as TOML.
    Config,
    /// Exit 0 if the service at ADDRESS answers /healthz with 200 (for container health checks).
    Healthcheck {
        /// Defaults to the configured bind address, with 0.0.0.0 read as 127.0.0.1.
        #[arg(long)]
        address: Option<SocketAddr>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Issue a key and print it (shown this once).
    Create {
        #[arg(long)]
        organisation: String,
        /// What the key is for, such as "TMS integration".
        #[arg(long)]
        name: String,
        /// carrier, dispatcher, partner, admin or operator; repeat for several. An operator
        /// key acts on every organisation (organisations, their keys, training, models); the
        /// API never issues one.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Create the organisation first, with this display name.
        #[arg(long)]
        new_organisation_name: Option<String>,
        #[arg(long, env = "ETAPE_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// List keys (never the keys themselves), of one organisation or all.
    List {
        #[arg(long)]
        organisation: Option<String>,
        #[arg(long, env = "ETAPE_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Revoke a key by its id.
    Revoke {
        id: String,
        #[arg(long, env = "ETAPE_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on, such as 127.0.0.1:8080 or 0.0.0.0:8080.
    #[arg(long, env = "ETAPE_BIND")]
    pub bind: Option<SocketAddr>,
    /// Log format: pretty or json.
    #[arg(long, value_parser = parse_log_format)]
    pub log_format: Option<LogFormat>,
    /// The model directory to serve.
    #[arg(long, env = "ETAPE_MODEL")]
    pub model: Option<PathBuf>,
    /// Where shipments, webhooks, ETA history and pings are kept.
    #[arg(long, env = "ETAPE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Run without the simulated demo fleet (production).
    #[arg(long)]
    pub no_demo: bool,
}

impl ServeArgs {
    /// Flags come last in the layering: they override the file and the environment.
    pub fn apply(&self, settings: &mut Settings) {
        if let Some(bind) = self.bind {
            settings.server.bind = bind;
        }
        if let Some(format) = self.log_format {
            settings.log.format = format;
        }
        if let Some(model) = &self.model {
            settings.model.dir = model.clone();
        }
        if let Some(data_dir) = &self.data_dir {
            settings.storage.data_dir = data_dir.clone();
        }
        if self.no_demo {
            settings.demo.enabled = false;
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u16).range(1..=500))]
    pub carriers: u16,
    #[arg(long, default_value_t = 10_000)]
    pub trips: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Directory to write into; created if missing.
    #[arg(long)]
    pub out: PathBuf,
    /// Also write GPS pings.
    #[arg(long)]
    pub pings: bool,
    /// With --pings, the share of trips that carry pings.
    #[arg(long, default_value_t = 1.0, value_parser = parse_share)]
    pub ping_share: f64,
    /// parquet, or csv (gzip-compressed, timestamps in RFC 3339).
    #[arg(long, default_value = "parquet", value_parser = parse_format)]
    pub format: FileFormat,
    /// First day of the simulated period.
    #[arg(long, default_value = "2024-01-01")]
    pub start: NaiveDate,
    /// Length of the period in days.
    #[arg(long, default_value_t = 731, value_parser = clap::value_parser!(u32).range(1..=3660))]
    pub days: u32,
}

fn parse_share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!("`{text}` is not a share between 0 and 1")),
    }
}

fn parse_format(text: &str) -> Result<FileFormat, String> {
    match text {
        "parquet" => Ok(FileFormat::Parquet),
        "csv" => Ok(FileFormat::CsvGz),
        other => Err(format!("unknown format `{other}`, expected parquet or csv")),
    }
}

fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text {
        "pretty" => Ok(LogFormat::Pretty),
        "json" => Ok(LogFormat::Json),
        other => Err(format!(
            "unknown log format `{other}`, expected pretty or json"
        )),
    }
}

/// Histories and the observations joined onto them.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// One partner's history: a file, or a directory of trips.* and pings.*. Written
    /// NAME=PATH to name the partner, or PATH to name it after the file or directory.
    #[arg(long = "history", required = true, value_parser = parse_partner_path)]
    pub histories: Vec<(String, PathBuf)>,
    /// Hourly weather in the simulator's weather.parquet layout.
    #[arg(long, conflicts_with = "weather_archive")]
    pub weather: Option<PathBuf>,
    /// Fetch the weather that was from Open-Meteo's archive (`feeds.weather_archive_url`),
    /// for every cell and day the histories' routes cross.
    #[arg(long)]
    pub weather_archive: bool,
    /// Hourly congestion in the simulator's traffic.parquet layout.
    #[arg(long)]
    pub traffic: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: HistoryArgs,
    /// The new model directory; it must not exist.
    #[arg(long)]
    pub out: PathBuf,
    /// Training parameters as TOML (see `TrainParams`); flags below override them.
    #[arg(long)]
    pub params: Option<PathBuf>,
    #[arg(long)]
    pub rounds: Option<usize>,
    /// total or residual (over the rules engine's estimate).
    #[arg(long, value_parser = parse_target)]
    pub target: Option<Target>,
    /// 0: every core.
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub data: HistoryArgs,
    /// A model directory whose parameters are evaluated; defaults when absent.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Training parameters as TOML, instead of the model's.
    #[arg(long, conflicts_with = "model")]
    pub params: Option<PathBuf>,
    /// Where to write evaluation.json and evaluation.md; the model directory by default.
    #[arg(long)]
    pub report: Option<PathBuf>,
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Only the time split (no baselines, no partner left out, no own-only models).
    #[arg(long)]
    pub quick: bool,
}

fn parse_partner_path(text: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = match text.split_once('=') {
        Some((name, path)) => (name.trim().to_owned(), PathBuf::from(path)),
        None => {
            let path = PathBuf::from(text);
            let stem = path
                .file_stem()
                .map(|stem| stem.to_string_lossy().trim_end_matches(".csv").to_owned())
                .unwrap_or_default();
            (stem, path)
        }
    };
    if name.is_empty() || path.as_os_str().is_empty() {
        return Err(format!("`{text}` is not NAME=PATH or PATH"));
    }
    Ok((name, path))
}

fn parse_target(text: &str) -> Result<Target, String> {
    match text {
        "total" => Ok(Target::Total),
        "residual" => Ok(Target::Residual),
        other => Err(format!(
            "unknown target `{other}`, expected total or residual"
        )),
    }
}
