use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use etape::cli::{Cli, Command, ServeArgs, SimulateArgs};
use etape::config::Settings;
use etape::history::files::load_history;
use etape::history::ValidationOptions;
use etape::simulate::trips::Period;
use etape::simulate::SimulationConfig;
use etape::startup::{shutdown_signal, Application};
use indicatif::{ProgressBar, ProgressStyle};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = cli.config.as_deref();
    let result = match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(config, &args),
        Command::Openapi => {
            println!("{}", etape::api::openapi::document());
            Ok(())
        }
        Command::Config => print_config(config),
        Command::Simulate(args) => simulate(&args),
        Command::Validate { paths } => validate(&paths),
        Command::Healthcheck { address } => healthcheck(config, address),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("etape: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Option<&Path>, args: &ServeArgs) -> anyhow::Result<()> {
    let mut settings = Settings::load(config)?;
    args.apply(&mut settings);
    etape::telemetry::init_logging(&settings.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let application = Application::build(&settings)?;
        tracing::info!(
            message = "Listening.",
            address = %settings.server.bind.ip(),
            port = application.port(),
        );
        application.run_until_stopped(shutdown_signal()).await?;
        anyhow::Ok(())
    })
}

fn print_config(config: Option<&Path>) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    print!(
        "{}",
        toml::to_string(&settings).context("settings do not serialise as TOML")?
    );
    Ok(())
}

/// A plain HTTP/1.0 GET, so that the container image needs no curl.
fn healthcheck(config: Option<&Path>, address: Option<SocketAddr>) -> anyhow::Result<()> {
    let mut address = match address {
        Some(address) => address,
        None => Settings::load(config)?.server.bind,
    };
    if address.ip().is_unspecified() {
        address.set_ip([127, 0, 0, 1].into());
    }
    let timeout = Duration::from_secs(3);
    let mut stream = TcpStream::connect_timeout(&address, timeout)
        .with_context(|| format!("cannot connect to {address}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status_line = answer.lines().next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) != Some("200") {
        bail!("unhealthy: {status_line}");
    }
    Ok(())
}

fn simulate(args: &SimulateArgs) -> anyhow::Result<()> {
    let config = SimulationConfig {
        carriers: usize::from(args.carriers),
        trips: args.trips,
        seed: args.seed,
        ping_share: if args.pings { args.ping_share } else { 0.0 },
        period: Period {
            start: args.start,
            days: args.days,
        },
        format: args.format,
    };
    let planned: usize = etape::simulate::fleet(&config)
        .iter()
        .map(|carrier| carrier.n_trips)
        .sum();
    let bar = ProgressBar::new(planned as u64).with_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} trips ({per_sec}, {eta} left)",
        )
        .context("progress template")?
        .progress_chars("=> "),
    );
    let started = Instant::now();
    let summary = etape::simulate::write_world(&config, &args.out, &|n| bar.inc(n))?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    for (name, trips, pings) in &summary.carriers {
        println!("{name}: {trips} trips, {pings} pings");
    }
    println!(
        "{} trips and {} pings from {} carriers in {:.1} s ({:.0} trips/s), written to {}",
        summary.trips,
        summary.pings,
        summary.carriers.len(),
        seconds,
        summary.trips as f64 / seconds,
        args.out.display()
    );
    Ok(())
}

fn validate(paths: &[std::path::PathBuf]) -> anyhow::Result<()> {
    let mut failed = 0;
    for path in paths {
        match load_history(path, &ValidationOptions::default()) {
            Ok(history) => println!(
                "{}: ok, {} trips, {} pings",
                path.display(),
                history.trips.height(),
                history.pings.as_ref().map_or(0, |pings| pings.height())
            ),
            Err(error) => {
                failed += 1;
                println!("{}: {error}", path.display());
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} histories refused", paths.len());
    }
    Ok(())
}
