//! The command line. Each flag that overrides a setting also reads an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{LogFormat, Settings};
use crate::ml::history::files::FileFormat;
use crate::ml::model::Target;
use crate::partners::keys::Role;

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
        /// The data directory holding the uploads and the models; the configured one by default.
        #[arg(long, env = "ETAPE_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Boosting rounds of each booster; the default training parameters' when absent.
        #[arg(long)]
        rounds: Option<usize>,
    },
    /// Seal every webhook secret under the key in NEW_KEY_FILE (the base64 of 32 bytes:
    /// `openssl rand -base64 32`), all of them or none. The embedded store's own key is then
    /// replaced by it (the old one kept as secrets.key.previous, for backups sealed under it);
    /// with webhooks.secrets_key_file set, point it at NEW_KEY_FILE and restart every replica:
    /// until then, a replica's deliveries to the webhooks it cannot open wait. Run it again
    /// after an interruption: it finishes the job.
    Rekey {
        /// The new key.
        #[arg(long)]
        new_key_file: PathBuf,
        /// The data directory of the embedded store; the configured one by default.
        #[arg(long, env = "ETAPE_DATA_DIR")]
        data_dir: Option<PathBuf>,
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
    /// Print a completion script for SHELL, such as `etape completions bash >
    /// /etc/bash_completion.d/etape`.
    Completions {
        /// The shell that will read the script.
        shell: clap_complete::aot::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Issue a key and print it (shown this once).
    Create {
        /// The id of the organisation the key acts for.
        #[arg(long)]
        organisation: String,
        /// What the key is for, such as "TMS integration".
        #[arg(long)]
        name: String,
        /// What the key may do; repeat for several. An operator key acts on every
        /// organisation (organisations, their keys, training, models); the API never issues
        /// one.
        #[arg(long = "role", value_name = "ROLE", required = true)]
        roles: Vec<RoleArg>,
        /// Create the organisation first, with this display name.
        #[arg(long)]
        new_organisation_name: Option<String>,
        /// The data directory holding the keys; the configured one by default.
        #[arg(long, env = "ETAPE_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// List keys (never the keys themselves), of one organisation or all.
    List {
        /// Only this organisation's keys.
        #[arg(long)]
        organisation: Option<String>,
        /// The data directory holding the keys; the configured one by default.
        #[arg(long, env = "ETAPE_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Revoke a key by its id.
    Revoke {
        /// The key's id, as `etape keys list` prints it (not the key itself).
        id: String,
        /// The data directory holding the keys; the configured one by default.
        #[arg(long, env = "ETAPE_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on, such as 127.0.0.1:8080 or 0.0.0.0:8080.
    #[arg(long, env = "ETAPE_BIND")]
    pub bind: Option<SocketAddr>,
    /// How log lines are written.
    #[arg(long)]
    pub log_format: Option<LogFormatArg>,
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
            settings.log.format = format.into();
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
    /// How many carriers, from a few large ones to many small ones.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u16).range(1..=500))]
    pub carriers: u16,
    /// Trips in all, shared among the carriers (each has at least 50).
    #[arg(long, default_value_t = 10_000)]
    pub trips: usize,
    /// Seed of every random draw: the same seed and flags write the same bytes.
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
    /// How the history files are written.
    #[arg(long, default_value = "parquet")]
    pub format: FileFormatArg,
    /// First day of the simulated period.
    #[arg(long, default_value = "2024-01-01")]
    pub start: NaiveDate,
    /// Length of the period in days.
    #[arg(long, default_value_t = 731, value_parser = clap::value_parser!(u32).range(1..=3660))]
    pub days: u32,
    /// Change the world's laws: multiply every lane's road circuity by this.
    #[arg(long, default_value_t = 1.0, value_parser = parse_factor)]
    pub circuity: f64,
    /// Change the world's laws: multiply every dwell at a stop by this.
    #[arg(long, default_value_t = 1.0, value_parser = parse_factor)]
    pub dwell_factor: f64,
    /// Change the world's laws: multiply every leg's driving time by this.
    #[arg(long, default_value_t = 1.0, value_parser = parse_factor)]
    pub driving_factor: f64,
    /// Change the world's laws: legs take this share longer by the period's last day than on
    /// its first, growing linearly (0.1: 10% slower at the end).
    #[arg(long, default_value_t = 0.0, value_parser = parse_share)]
    pub slowdown: f64,
}

fn parse_factor(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(factor) if (0.25..=4.0).contains(&factor) => Ok(factor),
        _ => Err(format!("`{text}` is not a factor between 0.25 and 4")),
    }
}

fn parse_share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!("`{text}` is not a share between 0 and 1")),
    }
}

/// Histories and the observations joined onto them.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Partners' histories, each a file or a directory of trips.* and pings.*. Written
    /// NAME=PATH to name the partner, or PATH to name it after the file or directory; one
    /// flag takes several (`--history a=X b=Y`) and may be repeated.
    #[arg(
        long = "history",
        required = true,
        num_args = 1..,
        value_name = "[NAME=]PATH",
        value_parser = parse_partner_path
    )]
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
    #[arg(long, required_unless_present = "boosters_input")]
    pub out: Option<PathBuf>,
    /// Instead of training, write what the three boosters would learn from (features,
    /// labels, weights, LightGBM's parameters) to this directory, for another LightGBM to
    /// train on: `benches/train.sh` has Python's.
    #[arg(long, conflicts_with = "out")]
    pub boosters_input: Option<PathBuf>,
    /// Training parameters as TOML (see `TrainParams`); flags below override them.
    #[arg(long)]
    pub params: Option<PathBuf>,
    /// Boosting rounds of each booster.
    #[arg(long)]
    pub rounds: Option<usize>,
    /// What the model learns.
    #[arg(long)]
    pub target: Option<TargetArg>,
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
    /// Boosting rounds of each booster, instead of the parameters' own.
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Only the time split (no baselines, no partner left out, no own-only models).
    #[arg(long)]
    pub quick: bool,
    /// Also train a model for each suspected cause of a loss, one change at a time (refit on
    /// the calibration slice, recency weights, no partner weighting, no partner dropout, no
    /// rules prior, no time of year, exact coordinates) and report them side by side.
    #[arg(long)]
    pub candidates: bool,
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

// The choices are the command line's own types, so that clap stays out of the settings, the
// key store and the model, and each spelling is written once, here.

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines for a terminal.
    Pretty,
    /// One JSON object per line, for a log collector.
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(choice: LogFormatArg) -> Self {
        match choice {
            LogFormatArg::Pretty => Self::Pretty,
            LogFormatArg::Json => Self::Json,
        }
    }
}

/// `simulate --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FileFormatArg {
    /// Apache Parquet.
    Parquet,
    /// Gzip-compressed CSV, timestamps in RFC 3339.
    Csv,
}

impl From<FileFormatArg> for FileFormat {
    fn from(choice: FileFormatArg) -> Self {
        match choice {
            FileFormatArg::Parquet => Self::Parquet,
            FileFormatArg::Csv => Self::CsvGz,
        }
    }
}

/// `train --target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetArg {
    /// The whole trip's duration.
    Total,
    /// What the rules engine's estimate misses.
    Residual,
}

impl From<TargetArg> for Target {
    fn from(choice: TargetArg) -> Self {
        match choice {
            TargetArg::Total => Self::Total,
            TargetArg::Residual => Self::Residual,
        }
    }
}

/// `keys create --role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// ETAs, shipments, positions and webhooks of its organisation.
    Carrier,
    /// Reads its organisation's shipments, ETAs and positions; the dashboard.
    Dispatcher,
    /// Uploads its organisation's history and reads its reports.
    Partner,
    /// Manages its organisation's keys and webhooks.
    Admin,
    /// Runs the installation: every organisation, training and the served model.
    Operator,
}

impl From<RoleArg> for Role {
    fn from(choice: RoleArg) -> Self {
        match choice {
            RoleArg::Carrier => Self::Carrier,
            RoleArg::Dispatcher => Self::Dispatcher,
            RoleArg::Partner => Self::Partner,
            RoleArg::Admin => Self::Admin,
            RoleArg::Operator => Self::Operator,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_definition_is_consistent_and_every_argument_says_what_it_is_for() {
        fn undocumented(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", command.get_name());
            if command.get_about().is_none() {
                missing.push(path.clone());
            }
            for arg in command.get_arguments() {
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                undocumented(sub, &path, missing);
            }
        }
        let command = Cli::command();
        command.clone().debug_assert();
        let mut missing = Vec::new();
        undocumented(&command, "", &mut missing);
        assert!(missing.is_empty(), "without a help text: {missing:?}");
    }

    #[test]
    fn each_spelling_of_a_choice_maps_to_its_own_value() {
        let roles: Vec<Role> = RoleArg::value_variants()
            .iter()
            .map(|choice| Role::from(*choice))
            .collect();
        assert_eq!(roles, Role::ALL);
        for role in Role::ALL {
            let choice = RoleArg::from_str(role.as_str(), false).unwrap();
            assert_eq!(Role::from(choice), role);
        }
        let cli = Cli::try_parse_from([
            "etape",
            "train",
            "--history",
            "a=x",
            "b=y",
            "--out",
            "m",
            "--history",
            "z",
        ])
        .unwrap();
        let Some(Command::Train(train)) = cli.command else {
            panic!("not train");
        };
        let names: Vec<&str> = train
            .data
            .histories
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(names, ["a", "b", "z"]);
    }
}
