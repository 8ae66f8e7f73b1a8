//! The command line. Each flag that overrides a setting also reads an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Parser, Subcommand};

use crate::config::{LogFormat, Settings};
use crate::history::files::FileFormat;

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
    /// Print the effective settings (defaults, file and environment merged) as TOML.
    Config,
    /// Exit 0 if the service at ADDRESS answers /healthz with 200 (for container health checks).
    Healthcheck {
        /// Defaults to the configured bind address, with 0.0.0.0 read as 127.0.0.1.
        #[arg(long)]
        address: Option<SocketAddr>,
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
