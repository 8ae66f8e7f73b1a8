//! The command line. Each flag that overrides a setting also reads an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{LogFormat, Settings};

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

fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text {
        "pretty" => Ok(LogFormat::Pretty),
        "json" => Ok(LogFormat::Json),
        other => Err(format!(
            "unknown log format `{other}`, expected pretty or json"
        )),
    }
}
