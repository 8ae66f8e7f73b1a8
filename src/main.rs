use std::process::ExitCode;

use clap::Parser;
use etape::cli::{Cli, Command, ServeArgs};
use etape::config::Settings;
use etape::startup::{shutdown_signal, Application};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(cli.config.as_deref(), &args),
        Command::Openapi => {
            println!("{}", etape::api::openapi::document());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("etape: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Option<&std::path::Path>, args: &ServeArgs) -> anyhow::Result<()> {
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
