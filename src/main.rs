use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use etape::cli::{Cli, Command, ServeArgs};
use etape::config::Settings;
use etape::startup::{shutdown_signal, Application};

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
