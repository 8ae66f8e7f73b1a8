use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{CommandFactory, Parser};
use etape::app::cli::{
    Cli, Command, EvaluateArgs, HistoryArgs, KeysCommand, ServeArgs, SimulateArgs, TrainArgs,
};
use etape::app::startup::{shutdown_signal, Application};
use etape::config::Settings;
use etape::domain::clock::Clock;
use etape::domain::eta::RulesEta;
use etape::ml::history::files::load_history;
use etape::ml::history::ValidationOptions;
use etape::ml::model::evaluate::{EvaluateOptions, Step};
use etape::ml::model::train::ValidParams;
use etape::ml::model::TrainParams;
use etape::sim::trips::Period;
use etape::sim::SimulationConfig;
use etape::training::pipeline;
use indicatif::{ProgressBar, ProgressStyle};

// Freed memory goes back to the system soon after (see `mimalloc` in Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = cli.config.as_deref();
    let result = match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(config, &args),
        Command::Openapi => {
            println!("{}", etape::http::api::openapi::document());
            Ok(())
        }
        Command::Config => print_config(config),
        Command::Simulate(args) => simulate(&args),
        Command::Validate { paths } => validate(&paths),
        Command::Healthcheck { address } => healthcheck(config, address),
        Command::Train(args) => train(config, &args),
        Command::Evaluate(args) => evaluate(config, &args),
        Command::Keys(command) => keys(config, command),
        Command::Retrain { data_dir, rounds } => retrain(config, data_dir, rounds),
        Command::Rekey {
            new_key_file,
            data_dir,
        } => rekey(config, &new_key_file, data_dir),
        Command::Completions { shell } => {
            clap_complete::aot::generate(
                shell,
                &mut Cli::command(),
                "etape",
                &mut std::io::stdout(),
            );
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

/// The configured store, its webhook secrets sealed under the configured key, as `serve`
/// opens it.
fn open_store(
    settings: &Settings,
    data_dir: &Path,
) -> anyhow::Result<std::sync::Arc<dyn etape::adapters::store::Store>> {
    let secrets = etape::adapters::store::sealed::secrets_key(
        settings.webhooks.secrets_key_file.as_deref(),
        &settings.storage,
        data_dir,
    )?;
    Ok(etape::adapters::store::open(&settings.storage, data_dir, secrets)?.store)
}

fn retrain(
    config: Option<&Path>,
    data_dir: Option<PathBuf>,
    rounds: Option<usize>,
) -> anyhow::Result<()> {
    use etape::ml::model::serve::ModelEta;
    use etape::training::jobs::{
        remembered_active, JobStatus, Jobs, TrainRequest, TrainingContext,
    };
    let settings = Settings::load(config)?;
    let data_dir = data_dir.unwrap_or_else(|| settings.storage.data_dir.clone());
    let store = open_store(&settings, &data_dir)?;
    let rules = etape::domain::eta::RulesEta::new(settings.rules_eta_config());
    let served_dir =
        remembered_active(&settings.model.dir, &data_dir).unwrap_or(settings.model.dir.clone());
    // What the service serves, so that the new models are judged against it.
    let served = match etape::training::registry::load(&served_dir) {
        Ok((_, served)) => Some(served),
        Err(etape::training::registry::RegistryError::Missing(_)) => None,
        Err(error) => return Err(error.into()),
    };
    let serving = ModelEta::new(rules.clone(), served, 0);
    let jobs = Jobs::default();
    let job = jobs
        .begin(Clock::System.now())
        .map_err(|running| anyhow::anyhow!("training {running} is running"))?;
    let context = TrainingContext {
        store: store.as_ref(),
        data_dir: &data_dir,
        rules: &rules,
        serving: &serving,
    };
    jobs.run(&job.id, &context, &TrainRequest { rounds });
    let job = jobs.get(&job.id).expect("the job just run");
    println!("{}", serde_json::to_string_pretty(&job)?);
    match (job.status, &job.error) {
        (JobStatus::Failed, Some(error)) => bail!("{error}"),
        _ => Ok(()),
    }
}

fn rekey(
    config: Option<&Path>,
    new_key_file: &Path,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let data_dir = data_dir.unwrap_or_else(|| settings.storage.data_dir.clone());
    let rekeyed = etape::adapters::store::sealed::rekey(
        settings.webhooks.secrets_key_file.as_deref(),
        &settings.storage,
        &data_dir,
        new_key_file,
    )?;
    eprintln!(
        "the secrets of {} webhooks are sealed under {}",
        rekeyed.webhooks,
        new_key_file.display()
    );
    match rekeyed.embedded {
        Some((key, previous)) => eprintln!(
            "{} holds the new key; the one it replaced is kept in {}",
            key.display(),
            previous.display()
        ),
        None => eprintln!(
            "now set webhooks.secrets_key_file to {} and restart every replica",
            new_key_file.display()
        ),
    }
    Ok(())
}

fn keys(config: Option<&Path>, command: KeysCommand) -> anyhow::Result<()> {
    use etape::partners::keys::{AccessError, Keyring, Role};

    let settings = Settings::load(config)?;
    let data_dir = match &command {
        KeysCommand::Create { data_dir, .. }
        | KeysCommand::List { data_dir, .. }
        | KeysCommand::Revoke { data_dir, .. } => data_dir
            .clone()
            .unwrap_or_else(|| settings.storage.data_dir.clone()),
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let store = open_store(&settings, &data_dir)?;
    let keyring = Keyring::open(&data_dir, store.clone())?;
    match command {
        KeysCommand::Create {
            organisation,
            name,
            roles,
            new_organisation_name,
            ..
        } => {
            let roles: Vec<Role> = roles.into_iter().map(Role::from).collect();
            if let Some(display) = new_organisation_name {
                keyring.create_organisation(&organisation, &display, Clock::System.now())?;
            }
            let (record, key) = match keyring.create_key(&organisation, &name, &roles) {
                Err(AccessError::UnknownOrganisation(_)) => bail!(
                    "no organisation {organisation}; add --new-organisation-name to create it"
                ),
                issued => issued?,
            };
            println!("{key}");
            eprintln!("key {} for {organisation}: shown this once", record.id);
        }
        KeysCommand::List { organisation, .. } => {
            for key in store.keys(organisation.as_deref())? {
                let roles: Vec<&str> = key.roles.iter().map(|role| role.as_str()).collect();
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    key.id,
                    key.organisation,
                    roles.join(","),
                    key.name,
                    key.revoked_at
                        .map_or("active".to_owned(), |at| format!("revoked {at}"))
                );
            }
        }
        KeysCommand::Revoke { id, .. } => {
            if !store.revoke_key(&id, Clock::System.now())? {
                bail!("no key {id}");
            }
            eprintln!("key {id} revoked");
        }
    }
    Ok(())
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
        format: args.format.into(),
        laws: etape::sim::Laws {
            circuity: args.circuity,
            dwell: args.dwell_factor,
            driving: args.driving_factor,
            slowdown: args.slowdown,
        },
    };
    let planned: usize = etape::sim::fleet(&config)
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
    let summary = etape::sim::write_world(&config, &args.out, &|n| bar.inc(n))?;
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

fn progress_bar(length: u64, template: &str) -> anyhow::Result<ProgressBar> {
    Ok(ProgressBar::new(length).with_style(
        ProgressStyle::with_template(template)
            .context("progress template")?
            .progress_chars("=> "),
    ))
}

fn read_inputs(settings: &Settings, data: &HistoryArgs) -> anyhow::Result<pipeline::Inputs> {
    let mut inputs = pipeline::read_inputs(
        &data.histories,
        data.weather.as_deref(),
        data.traffic.as_deref(),
    )?;
    if data.weather_archive {
        anyhow::ensure!(
            !settings.feeds.weather_archive_url.is_empty(),
            "--weather-archive needs feeds.weather_archive_url (ETAPE__FEEDS__WEATHER_ARCHIVE_URL)"
        );
        let trips: Vec<&polars::prelude::DataFrame> = inputs
            .partners
            .iter()
            .map(|partner| &partner.history.trips)
            .collect();
        let spans = etape::adapters::feeds::weather::cells_and_days(&trips)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let weather = runtime
            .block_on(etape::adapters::feeds::archive_weather(
                &settings.feeds,
                &etape::telemetry::Metrics::new(),
                &spans,
            ))
            .context("the weather archive")?;
        println!(
            "weather from the archive: {} cells, {} hours",
            spans.len(),
            weather.height()
        );
        inputs.weather = Some(weather);
    }
    Ok(inputs)
}

fn read_params(path: &Path) -> anyhow::Result<TrainParams> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not valid", path.display()))
}

fn train_params(args: &TrainArgs) -> anyhow::Result<ValidParams> {
    let mut params = match &args.params {
        Some(path) => read_params(path)?,
        None => TrainParams::default(),
    };
    if let Some(rounds) = args.rounds {
        params.rounds = rounds;
    }
    if let Some(target) = args.target {
        params.target = target.into();
    }
    if let Some(threads) = args.threads {
        params.threads = threads;
    }
    Ok(params.check()?)
}

fn train(config: Option<&Path>, args: &TrainArgs) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let params = train_params(args)?;
    let rules = RulesEta::new(settings.rules_eta_config());
    let started = Instant::now();
    let inputs = read_inputs(&settings, &args.data)?;
    let Some(out) = &args.out else {
        let dir = args
            .boosters_input
            .as_deref()
            .expect("--out or --boosters-input");
        let input = pipeline::boosters_input(&inputs, &rules, &params)?;
        write_boosters_input(dir, &input)?;
        println!(
            "{} rows of {} features written to {} in {:.1} s",
            input.labels.len(),
            etape::ml::features::FEATURES.len(),
            dir.display(),
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    };
    let bar = progress_bar(
        3 * params.get().rounds as u64,
        "{elapsed_precise} [{bar:40}] {pos}/{len} rounds {msg}",
    )?;
    bar.set_message("building features");
    let card = pipeline::train(&inputs, &rules, &params, out, |progress| {
        bar.set_message(format!("{} booster", progress.quantile.name()));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    println!(
        "model {} trained on {} rows from {} partners in {:.1} s, written to {}",
        card.version,
        card.training.rows,
        card.partners.len(),
        started.elapsed().as_secs_f64(),
        out.display()
    );
    let own_cells = card
        .calibration
        .cells
        .iter()
        .filter(|cell| cell.rows > 0)
        .count();
    println!(
        "interval calibrated on {} held-out rows, asked by their partner and as an unseen \
         caller, in {} cells ({own_cells} with rows enough for a widening of their own)",
        card.calibration.rows,
        card.calibration.cells.len()
    );
    Ok(())
}

/// The boosters' input as raw little-endian arrays beside a JSON description of them: what
/// numpy reads without a copy (`benches/train_lightgbm.py`).
fn write_boosters_input(
    dir: &Path,
    input: &etape::ml::model::train::BoostersInput,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |name: &str, bytes: Vec<u8>| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))
    };
    write(
        "features.f64",
        input
            .matrix
            .iter()
            .flat_map(|value| value.to_le_bytes())
            .collect(),
    )?;
    write(
        "labels.f32",
        input
            .labels
            .iter()
            .flat_map(|value| value.to_le_bytes())
            .collect(),
    )?;
    write(
        "weights.f32",
        input
            .weights
            .iter()
            .flat_map(|value| value.to_le_bytes())
            .collect(),
    )?;
    let description = serde_json::json!({
        "rows": input.labels.len(),
        "features": etape::ml::features::FEATURES.as_slice(),
        "categorical": [etape::ml::features::PARTNER_FEATURE],
        "dataset_params": input.dataset_params,
        "boosters": input.boosters.iter()
            .map(|(name, params)| serde_json::json!({"name": name, "params": params}))
            .collect::<Vec<_>>(),
        "rounds": input.rounds,
    });
    write("input.json", serde_json::to_vec_pretty(&description)?)
}

fn evaluate(config: Option<&Path>, args: &EvaluateArgs) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let mut params = match (&args.model, &args.params) {
        (Some(dir), _) => etape::training::registry::read_card(dir)?.params,
        (None, Some(path)) => read_params(path)?,
        (None, None) => TrainParams::default(),
    };
    if let Some(rounds) = args.rounds {
        params.rounds = rounds;
    }
    let params = params.check()?;
    let report_dir = args
        .report
        .clone()
        .or_else(|| args.model.clone())
        .context("say where the report goes: --report DIR (or --model DIR)")?;
    let rules = RulesEta::new(settings.rules_eta_config());
    let started = Instant::now();
    let inputs = read_inputs(&settings, &args.data)?;
    let options = EvaluateOptions {
        baselines: !args.quick,
        anchor: true,
        partner_left_out: !args.quick,
        pooled_vs_own: !args.quick,
        feeds: !args.quick,
        candidates: args.candidates,
    };
    let bar = progress_bar(0, "{elapsed_precise} {spinner} {msg}")?;
    let report = pipeline::run_evaluation(&inputs, &rules, &params, options, |step| {
        match step {
            Step::Training { what, progress } => bar.set_message(format!(
                "training {what}: {} round {}/{}",
                progress.quantile.name(),
                progress.round,
                progress.rounds
            )),
            Step::Baseline(name) => bar.set_message(format!("baseline: {name}")),
        }
        bar.tick();
    })?;
    bar.finish_and_clear();
    let markdown = report.markdown();
    print!("{markdown}");
    std::fs::create_dir_all(&report_dir)
        .with_context(|| format!("cannot create {}", report_dir.display()))?;
    let json = serde_json::to_string_pretty(&report).context("the report serialises")?;
    std::fs::write(report_dir.join("evaluation.json"), json)?;
    std::fs::write(report_dir.join("evaluation.md"), markdown)?;
    println!(
        "\nevaluated in {:.1} s; reports in {}",
        started.elapsed().as_secs_f64(),
        report_dir.display()
    );
    Ok(())
}
