//! Builds the running service from settings. `main` and the integration tests both use it.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context;

use std::time::Duration;

use tokio::sync::Notify;

use crate::adapters::feeds::{CachedFeeds, Feeds};
use crate::adapters::store::sealed::secrets_key;
use crate::adapters::store::segments::PingLog;
use crate::adapters::store::{Opened, Store};
use crate::adapters::webhooks::Dispatcher;
use crate::config::Settings;
use crate::domain::clock::Clock;
use crate::domain::correction::Corrections;
use crate::domain::eta::{EstimateEta, RulesEta, RulesEtaConfig};
use crate::domain::forecast::Forecaster;
use crate::http::api::{self, AppState};
use crate::ml::model::serve::{ModelEta, ServedModel};
use crate::partners::keys::{self, Keyring, Role, DEMO_KEYS_FILE, DEMO_ORGANISATION};
use crate::partners::uploads::UploadArea;
use crate::sim::demo;
use crate::telemetry::Metrics;
use crate::tracking::store::{leader_work, Fence};
use crate::tracking::tracker::{Tracker, TrackerParts};
use crate::training::jobs::{fail_cut_short, Jobs, TrainRequest};
use crate::training::registry::{self, RegistryError};

pub struct Application {
    port: u16,
    server: Server,
    estimator: Arc<ModelEta>,
    model_dir: PathBuf,
    tracker: Arc<Tracker>,
    store: Arc<dyn Store>,
    /// Woken by the tracker when it enqueues notices, for the dispatcher to drain the outbox.
    notices: Arc<Notify>,
    /// The fence the work done once is done under, for the loops that do it.
    leadership: Leadership,
    settings: Settings,
    state: web::Data<AppState>,
    /// Taken before the port listens: from then on a SIGHUP reloads the model and never ends
    /// the process, even before the server runs.
    #[cfg(unix)]
    hangup: Option<tokio::signal::unix::Signal>,
}

impl Application {
    /// Binds the listener (port 0 picks a free one) and prepares the server without running it.
    pub fn build(settings: &Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Clock::System)
    }

    pub fn build_with_clock(settings: &Settings, clock: Clock) -> anyhow::Result<Self> {
        keep_files_private();
        // Read once: the operator's bans file stops the start here when it does not read.
        let rules_config = settings
            .checked_rules_eta_config()
            .context("invalid rules configuration")?;
        let model_eta = serving_models(settings, rules_config.clone());
        let estimator: Arc<dyn EstimateEta> = model_eta.clone();
        let metrics = Metrics::new();
        let data_dir = &settings.storage.data_dir;
        let (opened, keyring) = open_records(settings)?;
        let store = opened.store;
        let log = PingLog::open(&data_dir.join("pings")).context("cannot open the ping log")?;
        let feeds = Feeds::new(&settings.feeds, &metrics);
        let notices = Arc::new(Notify::new());
        // Nothing restored yet: the pings, corrections and estimates of the previous run come
        // back once the port listens (`spawn_restoration`), minutes with thousands of
        // shipments; `/readyz` says when.
        let tracker = Arc::new(Tracker::new(TrackerParts {
            store: store.clone(),
            log: Arc::new(log),
            forecaster: Forecaster::new(
                estimator.clone(),
                Some(Arc::new(CachedFeeds(feeds.clone()))),
            ),
            settings: settings.tracking.clone(),
            thresholds: rules_config.risk,
            metrics: metrics.clone(),
            clock,
            notices: Some(notices.clone()),
            shared: opened.pings,
            corrections: Arc::new(Corrections::new(settings.tracking.corrections())),
            live: Some(crate::tracking::live::channel()),
        }));
        let state = web::Data::new(AppState {
            forecaster: Forecaster::new(estimator.clone(), Some(feeds.clone()))
                .with_corrections(tracker.corrections(), rules_config.risk),
            estimator,
            metrics,
            settings: settings.api.clone(),
            clock,
            tracker: tracker.clone(),
            store: store.clone(),
            keyring,
            model_eta: model_eta.clone(),
            jobs: Arc::new(Jobs::kept_in(store.clone())),
            feeds: feeds.clone(),
            demo_login: demo_login(settings),
            dashboard: settings.dashboard.clone(),
            webhooks: settings.webhooks.clone(),
            training_rules: Arc::new(RulesEta::new(rules_config)),
            data_dir: data_dir.clone(),
            model_dir: settings.model.dir.clone(),
            rate_limits: api::limits::RateLimits::new(&settings.api),
        });
        let app_state = state.clone();
        #[cfg(unix)]
        let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot listen for SIGHUP")?;
        let listener = TcpListener::bind(settings.server.bind)
            .with_context(|| format!("cannot listen on {}", settings.server.bind))?;
        let port = listener
            .local_addr()
            .context("listener has no address")?
            .port();
        let server = http_server(settings, listener, state)?;
        // Alone on its store, the process leads from the start, under a fence nothing
        // supersedes; with replicas, once its lease loop takes the lease.
        let leadership =
            Leadership::new((!tracker.is_shared()).then(|| Fence::alone(LEADER_LEASE)));
        Ok(Self {
            port,
            server,
            estimator: model_eta,
            model_dir: settings.model.dir.clone(),
            tracker,
            store,
            notices,
            leadership,
            settings: settings.clone(),
            state: app_state,
            #[cfg(unix)]
            hangup: Some(hangup),
        })
    }

    /// The live-tracking service, for in-process callers such as the benchmarks.
    pub fn tracker(&self) -> Arc<Tracker> {
        self.tracker.clone()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Reads the model directory again and serves what it holds from the next request on. A
    /// directory that is gone means the rules answer; one that is refused leaves the current
    /// model in place.
    pub fn reload_model(&self) {
        reload(
            &self.estimator,
            &self.model_dir,
            &self.settings.storage.data_dir,
        );
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish. The live
    /// tracking is restored meanwhile; a restoration that fails stops the service with its
    /// error, as a start that could not restore did before it listened.
    pub async fn run_until_stopped(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let handle = self.server.handle();
        #[cfg(unix)]
        self.reload_on_hangup();
        let restoration = spawn_restoration(self.tracker.clone(), handle.clone());
        let background = self.spawn_background();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!(message = "Shutting down; finishing in-flight requests.");
            handle.stop(true).await;
        });
        let served = self.server.await;
        for task in background {
            task.abort();
        }
        // Stopped by a shutdown: a restoration still running ends at its next shipment
        // rather than hold the runtime's drop (it waits for every blocking task).
        self.tracker.abandon_restoration();
        if let Ok(Some(error)) = restoration.await {
            return Err(std::io::Error::other(format!(
                "cannot restore live tracking: {error}"
            )));
        }
        served
    }

    /// The loops that run beside the server: webhook deliveries, the lease and the models
    /// other replicas activate (on a shared store), recomputation, congestion learning, rate
    /// limit clean-up, scheduled retraining and the demo fleet, as the settings say.
    fn spawn_background(&mut self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut background = Vec::new();
        let dispatcher = Dispatcher::new(
            self.store.clone(),
            self.settings.webhooks.clone(),
            self.tracker_metrics(),
        );
        // With a shared store the lease holder alone delivers, as it alone recomputes.
        let leadership = self.leadership.clone();
        background.push(tokio::spawn(
            dispatcher.run(self.notices.clone(), move || leadership.fence()),
        ));
        if self.tracker.is_shared() {
            background.push(tokio::spawn(lease_loop(
                self.store.clone(),
                self.tracker.clone(),
                self.leadership.clone(),
            )));
            background.push(tokio::spawn(follow_models_loop(
                self.estimator.clone(),
                self.settings.model.dir.clone(),
                self.settings.storage.data_dir.clone(),
            )));
        }
        background.push(tokio::spawn(refresh_loop(
            self.tracker.clone(),
            self.leadership.clone(),
            Duration::from_millis(self.settings.tracking.debounce_ms.max(1)),
        )));
        background.push(tokio::spawn(learn_congestion_loop(
            self.tracker.clone(),
            self.state.feeds.clone(),
        )));
        let state = self.state.clone();
        background.push(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(60));
            loop {
                ticks.tick().await;
                state.rate_limits.clean_up();
            }
        }));
        if self.settings.model.retrain_every_secs > 0 {
            background.push(tokio::spawn(retrain_loop(
                self.state.clone().into_inner(),
                Duration::from_secs(self.settings.model.retrain_every_secs),
            )));
        }
        if self.settings.demo.enabled {
            background.push(tokio::spawn(demo::run(
                self.tracker.clone(),
                self.settings.demo.clone(),
            )));
        }
        background
    }

    /// SIGHUP reads the model directory again, as `reload_model` does.
    #[cfg(unix)]
    fn reload_on_hangup(&mut self) {
        let estimator = self.estimator.clone();
        let model_dir = self.model_dir.clone();
        let data_dir = self.settings.storage.data_dir.clone();
        let Some(mut hangup) = self.hangup.take() else {
            return;
        };
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                let (estimator, model_dir, data_dir) =
                    (estimator.clone(), model_dir.clone(), data_dir.clone());
                // Parsing a model's trees takes a moment; keep it off the runtime.
                let _ =
                    tokio::task::spawn_blocking(move || reload(&estimator, &model_dir, &data_dir))
                        .await;
            }
        });
    }

    fn tracker_metrics(&self) -> Metrics {
        self.tracker.metrics()
    }
}

/// Files and directories the service creates are its user's alone (0600 and 0700): the
/// database holds partners' shipments, `secrets.key` the key its webhook secrets are sealed
/// under, the uploads partners' trips, the models what was learnt from them. The umask covers
/// every file, whoever writes it (SQLite, the Parquet writer); the files renamed into place
/// also ask for their mode themselves.
pub fn keep_files_private() {
    #[cfg(unix)]
    {
        use rustix::fs::Mode;
        rustix::process::umask(Mode::RWXG | Mode::RWXO);
    }
}

/// The demo dispatcher's one-click login: only while the demo fleet runs and the service
/// listens on a loopback address. Listening beyond this machine, it would hand a key to
/// anyone who reaches the port.
fn demo_login(settings: &Settings) -> bool {
    if !settings.demo.enabled {
        return false;
    }
    let local = settings.server.bind.ip().to_canonical().is_loopback();
    if !local {
        tracing::warn!(
            message = "Demo fleet without its login: the service listens beyond this machine.",
            address = %settings.server.bind,
        );
    }
    local
}

/// A data directory made before the service ran (an earlier version's, an image's) is brought
/// to 0700 as well.
#[cfg(unix)]
fn keep_dir_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(metadata) = std::fs::metadata(dir) else {
        return;
    };
    if metadata.permissions().mode() & 0o077 == 0 {
        return;
    }
    match std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
        Ok(()) => {
            tracing::info!(message = "Data directory made private (0700).", dir = %dir.display())
        }
        Err(error) => tracing::warn!(
            message = "Data directory left readable by others.",
            dir = %dir.display(),
            %error,
        ),
    }
}

/// The records' store as the settings name it, its webhook secrets sealed under the key they
/// name, and the keyring on it; at the first start the demo organisation and its keys; uploads
/// cut short by a crash swept away, and training jobs cut short marked failed.
fn open_records(settings: &Settings) -> anyhow::Result<(Opened, Arc<Keyring>)> {
    let data_dir = &settings.storage.data_dir;
    crate::partners::keys::create_private_dir(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    #[cfg(unix)]
    keep_dir_private(data_dir);
    let secrets = secrets_key(
        settings.webhooks.secrets_key_file.as_deref(),
        &settings.storage,
        data_dir,
    )?;
    if secrets.is_none() {
        tracing::warn!(
            message = "Webhook secrets kept in clear in PostgreSQL: set \
                       webhooks.secrets_key_file, one key file for every replica, to seal them."
        );
    }
    let opened = crate::adapters::store::open(&settings.storage, data_dir, secrets).context(
        match settings.storage.url {
            Some(_) => "cannot open the PostgreSQL store (storage.url)",
            None => "cannot open the database",
        },
    )?;
    let keyring =
        Arc::new(Keyring::open(data_dir, opened.store.clone()).context("cannot open the keyring")?);
    if let Some(issued) =
        keys::bootstrap(data_dir, &keyring).context("cannot create the demo organisation")?
    {
        print_demo_keys(&issued, data_dir);
    }
    let swept = UploadArea::new(data_dir)
        .sweep(&opened.store.uploads(None)?)
        .context("cannot tidy the uploads")?;
    if swept > 0 {
        tracing::warn!(message = "Unfinished uploads removed.", directories = swept);
    }
    let cut_short = fail_cut_short(opened.store.as_ref(), data_dir, Clock::System.now())
        .context("cannot mark the training jobs cut short")?;
    if !cut_short.is_empty() {
        tracing::warn!(
            message = "Training jobs cut short by a stop marked failed.",
            jobs = ?cut_short,
        );
    }
    Ok((opened, keyring))
}

/// The pooled model and each organisation's own, as the model directories hold them.
fn serving_models(settings: &Settings, rules_config: RulesEtaConfig) -> Arc<ModelEta> {
    let (pooled, own) = named_models(&settings.model.dir, &settings.storage.data_dir);
    let model_eta = Arc::new(ModelEta::new(
        RulesEta::new(rules_config),
        load_model(&pooled),
        settings.model.batch_threads,
    ));
    for (owner, dir) in own {
        if let Some(served) = load_model(&dir) {
            model_eta.set_own(&owner, Some(served));
        }
    }
    model_eta
}

/// The HTTP server on its listener: the API, the dashboard, the middleware around them.
fn http_server(
    settings: &Settings,
    listener: TcpListener,
    state: web::Data<AppState>,
) -> anyhow::Result<Server> {
    let api_settings = settings.api.clone();
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(api::limits::deadline))
            .wrap(from_fn(api::track_requests))
            .wrap(api::limits::cors(&api_settings))
            .app_data(state.clone())
            .configure(api::routes)
            .configure(crate::http::dashboard::routes)
            .default_service(web::to(api::not_found))
    })
    .disable_signals()
    .shutdown_timeout(settings.server.shutdown_timeout_secs);
    if settings.server.workers > 0 {
        server = server.workers(settings.server.workers);
    }
    Ok(server
        .listen(listener)
        .context("cannot start the HTTP server")?
        .run())
}

/// The first start's keys go to a file readable by the service's user alone, never to the
/// output: a container's output is kept by its log collector.
fn print_demo_keys(issued: &[(Role, String)], data_dir: &Path) {
    let roles: Vec<&str> = issued.iter().map(|(role, _)| role.as_str()).collect();
    println!(
        "First start: the organisation `{DEMO_ORGANISATION}` and one API key per role ({}) are \
         in {} (readable by this user only; `source` it). Use: Authorization: Bearer <key>",
        roles.join(", "),
        data_dir.join(DEMO_KEYS_FILE).display()
    );
}

/// Restores the live tracking on the blocking pool while the server answers. A failure stops
/// the server and is the task's outcome, for `run_until_stopped` to return.
fn spawn_restoration(
    tracker: Arc<Tracker>,
    server: ServerHandle,
) -> tokio::task::JoinHandle<Option<String>> {
    tokio::spawn(async move {
        let failure = match tokio::task::spawn_blocking(move || tracker.restore()).await {
            Ok(Ok(())) => return None,
            // Already logged by `restore`, and kept for `/readyz` until the server stops.
            Ok(Err(error)) => error.to_string(),
            Err(panicked) => format!("the restoration panicked: {panicked}"),
        };
        server.stop(false).await;
        Some(failure)
    })
}

/// The lease under which one replica of several recomputes the estimates, announces them,
/// compacts the pings and retrains on schedule.
const LEADER_LEASE: &str = "tracking";
/// A replica that stops renewing loses the lease this long after its last renewal.
const LEASE_TTL: Duration = Duration::from_secs(5);
const LEASE_RENEW_EVERY: Duration = Duration::from_secs(1);

/// The fence under which this process does the work done once, as its lease loop last learnt
/// it; none while another replica leads. One value, so that no loop sees the process leading
/// without the fence its writes must carry.
#[derive(Clone)]
struct Leadership(Arc<std::sync::Mutex<Option<Fence>>>);

impl Leadership {
    fn new(fence: Option<Fence>) -> Self {
        Self(Arc::new(std::sync::Mutex::new(fence)))
    }

    fn fence(&self) -> Option<Fence> {
        self.lock().clone()
    }

    fn set(&self, fence: Option<Fence>) {
        *self.lock() = fence;
    }

    /// A poisoned lock is taken all the same: it only ever holds a whole value.
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Fence>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Takes and renews the lease while this process lives (replicas on a shared store); another
/// takes it over within `LEASE_TTL` when this one dies.
async fn lease_loop(store: Arc<dyn Store>, tracker: Arc<Tracker>, leadership: Leadership) {
    let holder = format!(
        "{}-{}-{:08x}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "etape".into()),
        std::process::id(),
        rand::random::<u32>()
    );
    let mut ticks = tokio::time::interval(LEASE_RENEW_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let (leasing, deciding, holder) = (store.clone(), tracker.clone(), holder.clone());
        let learning = leadership.clone();
        let outcome = tokio::task::spawn_blocking(move || -> anyhow::Result<(bool, bool)> {
            let was = learning.fence();
            let holds =
                leasing.acquire_lease(LEADER_LEASE, &holder, LEASE_TTL.as_millis() as i64)?;
            // Held again under a new token: another replica led between two renewals (this
            // one stalled past its lease), so this takes over what that one left, as any
            // takeover does.
            let retaken = was.is_some() && holds.is_some() && was != holds;
            if retaken {
                deciding.set_leading(false)?;
            }
            let leads = holds.is_some();
            learning.set(holds);
            deciding.set_leading(leads)?;
            Ok((was.is_some() && !retaken, leads))
        })
        .await;
        match outcome {
            Ok(Ok((false, true))) => tracing::info!(message = "This replica leads."),
            Ok(Ok((true, false))) => tracing::warn!(message = "This replica no longer leads."),
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(error)) => {
                // Unable to renew: stop leading before the lease can pass to another.
                leadership.set(None);
                let _ = tracker.set_leading(false);
                tracing::error!(message = "Lease not renewed.", error = %format!("{error:#}"));
            }
        }
    }
}

/// Recomputes the estimates of the vehicles that pinged, at most once per `every`: a truck
/// that sends ten pings a second costs one estimate a period. With replicas, only the one
/// holding the lease does, each pass under the fence it began under.
async fn refresh_loop(tracker: Arc<Tracker>, leadership: Leadership, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut since_compaction = std::time::Instant::now();
    loop {
        ticks.tick().await;
        // The restoration recomputes first, from the pings and corrections it brings back.
        if !tracker.leading() || !tracker.may_recompute() {
            continue;
        }
        // Read before the pass, not at each write: a pass that a stall carries past the
        // lease keeps the fence it was decided under, and the store refuses what is left of it.
        let Some(fence) = leadership.fence() else {
            continue;
        };
        let working = tracker.clone();
        let compact = since_compaction.elapsed() > COMPACTION_EVERY;
        if compact {
            since_compaction = std::time::Instant::now();
        }
        let _ = tokio::task::spawn_blocking(move || {
            leader_work(&fence, || {
                working.refresh_dirty();
                if compact {
                    if let Err(error) = working.compact() {
                        tracing::error!(message = "Ping compaction failed.", %error);
                    }
                }
            })
        })
        .await;
    }
}

/// Congestion is learnt again from the pings in memory this often (the window moves).
const CONGESTION_EVERY: Duration = Duration::from_secs(600);

/// Congestion is learnt from at most this many pings, a uniform sample of each vehicle's:
/// medians and percentiles of an area's speeds hold, and memory stays bounded (the whole of a
/// day of ten thousand trucks, 14.4 million pings, took 2.7 GiB more to learn from).
const CONGESTION_SAMPLE_ROWS: usize = 2_000_000;

/// Learns congestion by area and hour of the week from every vehicle's pings: a minute after
/// start (the pings of the window restored, the demo's replayed), then every ten minutes.
async fn learn_congestion_loop(tracker: Arc<Tracker>, feeds: Arc<crate::adapters::feeds::Feeds>) {
    tokio::time::sleep(Duration::from_secs(60)).await;
    let mut ticker = tokio::time::interval(CONGESTION_EVERY);
    loop {
        ticker.tick().await;
        let (tracker, feeds) = (tracker.clone(), feeds.clone());
        let learnt = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
            Ok(feeds.learn_congestion(&tracker.pings_sample(CONGESTION_SAMPLE_ROWS)?)?)
        })
        .await;
        match learnt {
            Ok(Ok(cells)) => tracing::info!(
                message = "Congestion learnt from the pings.",
                areas_and_hours = cells
            ),
            Ok(Err(error)) => {
                tracing::error!(message = "Congestion not learnt.", error = %format!("{error:#}"))
            }
            Err(_) => {}
        }
    }
}

/// Retrains every `every` when the uploads or the consents changed since the last scheduled
/// training; a training asked for meanwhile (one runs at a time) postpones it to the next tick.
async fn retrain_loop(state: Arc<AppState>, every: Duration) {
    let mut trained_on: Option<Vec<(String, String, bool)>> = None;
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        // Replicas on a shared store: the one holding the lease trains.
        if !state.tracker.leading() {
            continue;
        }
        let store = state.store.clone();
        let signature = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let mut signature = Vec::new();
            for upload in store.uploads(None)? {
                let pool = store
                    .consent(&upload.organisation)?
                    .is_some_and(|consent| consent.pool);
                signature.push((upload.organisation, upload.id, pool));
            }
            signature.sort();
            Ok(signature)
        })
        .await;
        let signature = match signature {
            Ok(Ok(signature)) => signature,
            Ok(Err(error)) => {
                tracing::error!(message = "Scheduled training skipped.", error = %format!("{error:#}"));
                continue;
            }
            Err(_) => continue,
        };
        if signature.is_empty() || trained_on.as_ref() == Some(&signature) {
            continue;
        }
        match crate::http::api::models::start_training(state.clone(), TrainRequest::default()) {
            Ok((job, handle)) => {
                tracing::info!(message = "Scheduled training started.", job = %job.id);
                let _ = handle.await;
                trained_on = Some(signature);
            }
            Err(running) => {
                tracing::info!(message = "Scheduled training postponed.", %running);
            }
        }
    }
}

/// How often small ping segments are merged.
const COMPACTION_EVERY: Duration = Duration::from_secs(600);

/// The models the model directory and the data directory name: the pooled model last
/// activated (else `model.dir`), and each organisation's newest activated model of its own.
fn named_models(model_dir: &Path, data_dir: &Path) -> (PathBuf, Vec<(String, PathBuf)>) {
    let pooled = crate::training::jobs::remembered_active(model_dir, data_dir)
        .unwrap_or_else(|| model_dir.to_owned());
    // Partners that do not pool are served by the newest model of their own.
    let mut own: Vec<_> = crate::training::registry::known_models(model_dir, data_dir)
        .into_iter()
        .filter(|(dir, card)| {
            card.owner.is_some() && dir.join(crate::training::jobs::ACTIVATED).exists()
        })
        .collect();
    own.sort_by_key(|(_, card)| card.created_at);
    let newest: std::collections::BTreeMap<String, PathBuf> = own
        .into_iter()
        .filter_map(|(dir, card)| Some((card.owner?, dir)))
        .collect();
    (pooled, newest.into_iter().collect())
}

/// How soon a replica serves a model another replica activated.
const FOLLOW_MODELS_EVERY: Duration = Duration::from_secs(3);

/// Replicas share the data directory: a model activated through one (or trained and judged
/// better by the one that leads) is served by every other within `FOLLOW_MODELS_EVERY`.
async fn follow_models_loop(estimator: Arc<ModelEta>, model_dir: PathBuf, data_dir: PathBuf) {
    let mut ticks = tokio::time::interval(FOLLOW_MODELS_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let (estimator, model_dir, data_dir) =
            (estimator.clone(), model_dir.clone(), data_dir.clone());
        let _ =
            tokio::task::spawn_blocking(move || follow_models(&estimator, &model_dir, &data_dir))
                .await;
    }
}

fn follow_models(estimator: &ModelEta, model_dir: &Path, data_dir: &Path) {
    let version = |dir: &Path| registry::read_card(dir).ok().map(|card| card.version);
    let (pooled, own) = named_models(model_dir, data_dir);
    let serving = estimator.active().map(|served| served.version.clone());
    if version(&pooled) != serving {
        tracing::info!(message = "Following the model activated elsewhere.", dir = %pooled.display());
        estimator.swap(load_model(&pooled));
    }
    let mut serving_own = estimator.own_versions();
    for (owner, dir) in own {
        if serving_own.remove(&owner) != version(&dir) {
            estimator.set_own(&owner, load_model(&dir));
        }
    }
    // Own models no longer named (their owner's data erased) serve no more.
    for owner in serving_own.keys() {
        estimator.set_own(owner, None);
    }
}

fn load_model(dir: &Path) -> Option<ServedModel> {
    match registry::load(dir) {
        Ok((card, served)) => {
            tracing::info!(
                message = "Serving a model.",
                version = %card.version,
                dir = %dir.display(),
                target = ?card.target,
            );
            Some(served)
        }
        Err(RegistryError::Missing(_)) => {
            tracing::warn!(
                message = "No model; the rules answer, flagged as a fallback.",
                dir = %dir.display(),
            );
            None
        }
        Err(error) => {
            tracing::error!(
                message = "Model refused; the rules answer, flagged as a fallback.",
                %error,
            );
            None
        }
    }
}

/// `model.dir` again, as the operator asks by a SIGHUP: it replaces the last activated model,
/// now and after a restart.
fn reload(estimator: &ModelEta, dir: &Path, data_dir: &Path) {
    crate::training::jobs::forget_active(data_dir);
    match registry::load(dir) {
        Ok((card, served)) => {
            tracing::info!(message = "Model reloaded.", version = %card.version);
            estimator.swap(Some(served));
        }
        Err(RegistryError::Missing(_)) => {
            tracing::warn!(message = "Model directory gone; the rules answer.", dir = %dir.display());
            estimator.swap(None);
        }
        Err(error) => {
            tracing::error!(message = "Reload refused; the current model stays.", %error);
        }
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler can be installed");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
