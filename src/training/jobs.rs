//! Pooled retraining as a background job: the histories of the partners that consent, each
//! organisation's uploads together as one partner, trained into a new model directory under
//! `<data_dir>/models`. The new model is listed but not served until an admin activates it.
//!
//! Jobs are kept in a [`JobStore`] as they begin, progress and end: a restart still answers
//! for them, and a job the process died in the middle of is marked failed at the next start
//! ([`fail_cut_short`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::domain::clock::Clock;
use crate::domain::eta::RulesEta;
use crate::domain::eta::RULES_MODEL_NAME;
use crate::domain::ids::new_id;
use crate::domain::storage::StoreResult;
use crate::ml::history::TripHistory;
use crate::ml::model::baselines::RequestLightGbm;
use crate::ml::model::dataset::PartnerHistory;
use crate::ml::model::evaluate::{
    evaluate, mae_on, rules_mae_on, Comparison, EvaluateOptions, Examples, Report,
};
use crate::ml::model::fit::{Fit, Predict};
use crate::ml::model::metrics::{figures, Figures};
use crate::ml::model::serve::{ModelEta, ServedModel};
use crate::ml::model::train::ValidParams;
use crate::ml::model::{Model, TrainParams};
use crate::partners::uploads::UploadArea;
use crate::partners::uploads::UploadStore;
use crate::training::judge::{self, Judged};
use crate::training::pipeline::{self, Inputs};
use crate::training::registry::Source;
use crate::training::screen;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Running,
    Succeeded,
    Failed,
}

impl JobStatus {
    /// As it is written in JSON and in the stores' `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    /// `running`, then `succeeded` or `failed`.
    pub status: JobStatus,
    /// Boosting rounds done and to do, over the three boosters of every model trained.
    pub rounds_done: usize,
    pub rounds_total: usize,
    /// Partners and uploads trained on (consenting ones only).
    pub partners: usize,
    pub uploads: usize,
    /// The pooled model's version, when there was a pool to train on.
    pub version: Option<String>,
    /// The pooled model against the served one on its holdout, and whether it now serves.
    pub holdout: Option<Holdout>,
    pub activated: bool,
    /// Models trained for partners that do not pool, on their rows alone: each serves its
    /// owner's trips if it is no worse on its holdout than what served them.
    pub own_models: Vec<OwnModel>,
    /// Uploads left out of every model, and why.
    pub screened_out: Vec<ScreenedOut>,
    /// What the job could not do, said plainly (no pool, a partner with too few trips).
    pub notes: Vec<String>,
    /// Why the job failed, when it did.
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Job {
    /// A job that has just begun: running, nothing done yet.
    pub fn begun(id: String, started_at: DateTime<Utc>) -> Self {
        Self {
            id,
            status: JobStatus::Running,
            rounds_done: 0,
            rounds_total: 0,
            partners: 0,
            uploads: 0,
            version: None,
            holdout: None,
            activated: false,
            own_models: Vec::new(),
            screened_out: Vec::new(),
            notes: Vec::new(),
            error: None,
            started_at,
            finished_at: None,
        }
    }
}

/// A new model judged against the one serving and against plain LightGBM, on each partner's
/// latest trips, which the new model did not learn from ([`judge`]). The MAEs are the pool's:
/// the mean of the partners' own.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Holdout {
    pub rows: usize,
    #[serde(deserialize_with = "judge::infinite_when_null")]
    pub new_mae: f64,
    /// The served model's version, or `rules` when the rules serve.
    pub served: String,
    #[serde(deserialize_with = "judge::infinite_when_null")]
    pub served_mae: f64,
    /// Plain LightGBM on the request's columns, fit on the new model's training rows.
    #[serde(deserialize_with = "judge::infinite_when_null")]
    pub baseline_mae: f64,
    pub partners: Vec<Judged>,
    /// Why the new model does not serve; empty when it does.
    pub refused: Vec<String>,
}

/// An upload the screen left out of training.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScreenedOut {
    pub organisation: String,
    pub upload: String,
    pub problems: Vec<String>,
}

/// A model a job trained: its version, the holdout it was judged on, whether it serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OwnModel {
    pub version: String,
    pub holdout: Holdout,
    pub activated: bool,
}

/// What a training job is asked.
#[derive(Debug, Clone, Default)]
pub struct TrainRequest {
    /// Boosting rounds; the default parameters' when absent.
    pub rounds: Option<usize>,
}

/// Where training jobs are kept beyond the process that runs them.
pub trait JobStore: Send + Sync + 'static {
    /// Keeps the job as it is now, replacing what was kept of it.
    fn save_job(&self, job: &Job) -> StoreResult<()>;

    fn job(&self, id: &str) -> StoreResult<Option<Job>>;

    /// The jobs kept as `running`, oldest first.
    fn running_jobs(&self) -> StoreResult<Vec<Job>>;
}

/// A running job's progress reaches the store at most this often; its start and its end
/// always do.
const KEEP_PROGRESS_EVERY: Duration = Duration::from_secs(3);

/// The error of a job that was still running when the process that ran it stopped.
pub const CUT_SHORT: &str = "the service stopped before the job finished";

/// The jobs of this process; one runs at a time. Without a store (the default) they live in
/// memory only.
#[derive(Default)]
pub struct Jobs {
    jobs: Mutex<HashMap<String, Job>>,
    store: Option<Arc<dyn JobStore>>,
    /// When each running job was last written to the store.
    kept_at: Mutex<HashMap<String, Instant>>,
}

fn lock(jobs: &Jobs) -> std::sync::MutexGuard<'_, HashMap<String, Job>> {
    jobs.jobs
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Jobs {
    /// Jobs written to `store` as they begin, progress and end.
    pub fn kept_in(store: Arc<dyn JobStore>) -> Self {
        Self {
            store: Some(store),
            ..Self::default()
        }
    }

    /// A job of this process.
    pub fn get(&self, id: &str) -> Option<Job> {
        lock(self).get(id).cloned()
    }

    /// A job of this process, else the one the store keeps: run before a restart, or by
    /// another replica.
    pub fn find(&self, id: &str) -> StoreResult<Option<Job>> {
        if let Some(job) = self.get(id) {
            return Ok(Some(job));
        }
        match &self.store {
            Some(store) => store.job(id),
            None => Ok(None),
        }
    }

    /// Registers a new job unless one is running; returns it, or the running one's id.
    pub fn begin(&self, now: DateTime<Utc>) -> Result<Job, String> {
        let mut jobs = lock(self);
        if let Some(running) = jobs.values().find(|job| job.status == JobStatus::Running) {
            return Err(running.id.clone());
        }
        let job = Job::begun(new_id("job"), now);
        jobs.insert(job.id.clone(), job.clone());
        Ok(job)
    }

    /// Changes the job in memory, and in the store when its last write there is older than
    /// `KEEP_PROGRESS_EVERY`: a round of boosting takes milliseconds, a write to the store
    /// about as long.
    fn update(&self, id: &str, change: impl FnOnce(&mut Job)) {
        let due = {
            let mut jobs = lock(self);
            let Some(job) = jobs.get_mut(id) else {
                return;
            };
            change(job);
            self.keep_due(id).then(|| job.clone())
        };
        if let Some(job) = due {
            self.keep(&job);
        }
    }

    /// Whether the job is to be written to the store now; when it is, the time is noted.
    fn keep_due(&self, id: &str) -> bool {
        if self.store.is_none() {
            return false;
        }
        let mut kept_at = self
            .kept_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        match kept_at.get(id) {
            Some(at) if now.duration_since(*at) < KEEP_PROGRESS_EVERY => false,
            _ => {
                kept_at.insert(id.to_owned(), now);
                true
            }
        }
    }

    /// Writes the job to the store, if there is one. A store that fails does not stop the
    /// training: the job still answers from memory while this process lives.
    fn keep(&self, job: &Job) {
        let Some(store) = &self.store else {
            return;
        };
        if let Err(error) = store.save_job(job) {
            tracing::warn!(message = "Training job not kept in the store.", job = %job.id, %error);
        }
    }

    /// Trains, recording progress and the outcome in the job; a model that beats the one
    /// serving on its holdout is served at once.
    pub fn run(&self, id: &str, context: &TrainingContext<'_>, request: &TrainRequest) {
        // Kept before any work (a job's first write is always due): if the process dies from
        // here on, the next start finds the job running and marks it failed.
        self.update(id, |_| {});
        let outcome = self.train(id, context, request);
        let ended = lock(self).get_mut(id).map(|job| {
            job.finished_at = Some(Clock::System.now());
            match outcome {
                Ok(()) => job.status = JobStatus::Succeeded,
                Err(error) => {
                    job.status = JobStatus::Failed;
                    job.error = Some(format!("{error:#}"));
                }
            }
            job.clone()
        });
        if let Some(job) = ended {
            self.keep(&job);
        }
        self.kept_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(id);
    }

    fn train(
        &self,
        id: &str,
        context: &TrainingContext<'_>,
        request: &TrainRequest,
    ) -> anyhow::Result<()> {
        let PartnerInputs {
            pool,
            own,
            screened_out,
        } = partner_inputs(context.store, context.data_dir, Clock::System.now())?;
        for out in &screened_out {
            tracing::warn!(message = "Upload left out of training.", organisation = %out.organisation, upload = %out.upload, problems = ?out.problems);
        }
        self.update(id, |job| job.screened_out = screened_out);
        let params = TrainParams {
            rounds: request.rounds.unwrap_or(TrainParams::default().rounds),
            ..TrainParams::default()
        }
        .check()?;
        let models = usize::from(pool.is_some()) + own.len();
        self.update(id, |job| {
            job.partners = pool.as_ref().map_or(0, |inputs| inputs.partners.len());
            job.uploads = pool.as_ref().map_or(0, |inputs| inputs.sources.len());
            job.rounds_total = models * params.get().rounds * 3;
        });
        crate::partners::keys::create_private_dir(&context.data_dir.join("models"))?;
        // Models of partners' own first: each is judged against what serves its trips before
        // this job's pooled model does.
        for (done, inputs) in own.iter().enumerate() {
            let organisation = inputs.partners[0].partner.clone();
            let out = context
                .data_dir
                .join("models")
                .join(format!("{id}-own-{done}"));
            match self.train_one(
                id,
                context,
                inputs,
                &params,
                Some(&organisation),
                &out,
                done,
            ) {
                Ok(trained) => self.update(id, |job| job.own_models.push(trained)),
                Err(error) => self.update(id, |job| {
                    job.notes.push(format!(
                        "a partner that does not pool has no model of its own: {error:#}"
                    ))
                }),
            }
        }
        match &pool {
            Some(inputs) => {
                let out = context.data_dir.join("models").join(id);
                let trained =
                    self.train_one(id, context, inputs, &params, None, &out, own.len())?;
                self.update(id, |job| {
                    job.version = Some(trained.version);
                    job.holdout = Some(trained.holdout);
                    job.activated = trained.activated;
                });
            }
            None => self.update(id, |job| {
                job.notes.push(
                    "no consenting partner has a history that passed the screen: no pooled \
                     model"
                        .into(),
                )
            }),
        }
        Ok(())
    }

    /// One model into `out`, learnt from all but each partner's latest trips, judged on those
    /// against what serves them now and against plain LightGBM, and served if the judge finds
    /// no reason against it. Pooled models also get their partners' reports.
    #[allow(clippy::too_many_arguments)]
    fn train_one(
        &self,
        id: &str,
        context: &TrainingContext<'_>,
        inputs: &Inputs,
        params: &ValidParams,
        owner: Option<&str>,
        out: &Path,
        models_done: usize,
    ) -> anyhow::Result<OwnModel> {
        let examples = inputs.examples(context.rules)?;
        let (learn_rows, judge_rows) =
            judge::latest_of_each_partner(&examples, params.get().calibration_share);
        let learn = examples.select(&learn_rows);
        let (mut card, model) = pipeline::train_on(inputs, &learn, params, owner, |progress| {
            self.update(id, |job| {
                let this = progress.quantile as usize * progress.rounds + progress.round;
                job.rounds_done = job
                    .rounds_done
                    .max(models_done * 3 * progress.rounds + this);
            });
        })?;
        let baseline = RequestLightGbm {
            rounds: params.get().rounds,
            seed: params.get().seed,
            threads: params.get().threads,
        }
        .fit(&learn, &mut |_| {})?;
        let holdout = judge(
            &model,
            &baseline,
            &examples,
            &judge_rows,
            context.serving.serving(owner),
        )?;
        let (new_mae, served_mae) = (holdout.new_mae, holdout.served_mae);
        // What the pool gives each partner, on its own later trips: a time split with a model
        // of each partner's rows alone. A pool too small to split by time has no report.
        let report = if owner.is_none() {
            let options = EvaluateOptions {
                baselines: false,
                anchor: false,
                partner_left_out: false,
                pooled_vs_own: true,
                feeds: false,
                candidates: false,
            };
            evaluate(&examples, params, options, |_| {})
                .map_err(|error| tracing::warn!(message = "No partner reports.", %error))
                .ok()
        } else {
            None
        };
        card.figures = Some(serde_json::json!({
            "holdout": holdout,
            "time_split": report.as_ref().map(|report| report.model),
        }));
        crate::training::registry::save(out, &model, &card)?;
        if let Some(report) = &report {
            let reports = PartnerReports::of(&card.version, inputs, report);
            let text = serde_json::to_vec_pretty(&reports)?;
            crate::partners::keys::write_private(&out.join(PARTNER_REPORTS), &text)?;
        }
        let version = card.version.clone();
        let activated = holdout.refused.is_empty();
        if activated {
            activate(context, owner, out, model, &version)?;
            tracing::info!(message = "Trained model activated.", %version, owner = ?owner, new_mae, served_mae);
        } else {
            tracing::warn!(message = "Trained model not activated.", %version, new_mae, served_mae, refused = ?holdout.refused);
        }
        Ok(OwnModel {
            version,
            holdout,
            activated,
        })
    }
}

/// The new model, the one serving its trips now (the rules when none) and plain LightGBM, on
/// each partner's held-out rows, and the judge's reasons against serving the new one.
fn judge(
    model: &Model,
    baseline: &impl Predict,
    examples: &Examples,
    judge_rows: &[usize],
    serving: Option<Arc<ServedModel>>,
) -> anyhow::Result<Holdout> {
    let served = serving
        .as_ref()
        .map_or(RULES_MODEL_NAME.to_owned(), |served| served.version.clone());
    let mut partners = Vec::new();
    for (partner, rows) in judge::by_partner(examples, judge_rows) {
        let served_mae = match &serving {
            Some(served) => mae_on(&served.model, examples, &rows)?,
            None => rules_mae_on(examples, &rows).unwrap_or(f64::INFINITY),
        };
        let set = examples.select(&rows);
        let baseline_mae = figures(&baseline.predict(&set)?.medians, &set.minutes, None)
            .map_or(f64::INFINITY, |figures| figures.mae);
        partners.push(Judged {
            partner,
            rows: rows.len(),
            new_mae: mae_on(model, examples, &rows)?,
            served_mae,
            baseline_mae,
        });
    }
    Ok(Holdout {
        rows: judge_rows.len(),
        new_mae: judge::pool_mae(&partners, |partner| partner.new_mae),
        served_mae: judge::pool_mae(&partners, |partner| partner.served_mae),
        baseline_mae: judge::pool_mae(&partners, |partner| partner.baseline_mae),
        refused: judge::refusals(&partners, &served),
        served,
        partners,
    })
}

/// Serves the model from the next request on: for its owner alone (marked in its directory,
/// so that a restart serves it again), or as the pooled model (remembered as active).
fn activate(
    context: &TrainingContext<'_>,
    owner: Option<&str>,
    out: &Path,
    model: Model,
    version: &str,
) -> anyhow::Result<()> {
    let served = ServedModel {
        model,
        version: version.to_owned(),
    };
    match owner {
        Some(organisation) => {
            crate::partners::keys::write_private(&out.join(ACTIVATED), version.as_bytes())?;
            context.serving.set_own(organisation, Some(served));
        }
        None => {
            remember_active(context.data_dir, version)?;
            context.serving.swap(Some(served));
        }
    }
    Ok(())
}

/// At start-up, before any job runs: each job the store still has as `running` was cut short
/// when the process running it stopped. It is marked failed, and the staging directories it
/// left beside its model directories in `<data_dir>/models` are removed (a model directory
/// is renamed in whole, so none of its own exists half-written). The ids of the jobs marked.
pub fn fail_cut_short(
    store: &dyn JobStore,
    data_dir: &Path,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<String>> {
    let models = data_dir.join("models");
    let mut failed = Vec::new();
    for mut job in store.running_jobs()? {
        // Swept before the job is marked: if this fails, the next start tries again.
        crate::training::registry::remove_staging(&models, &job.id)
            .with_context(|| format!("cannot sweep {}", models.display()))?;
        job.status = JobStatus::Failed;
        job.error = Some(CUT_SHORT.to_owned());
        job.finished_at = Some(now);
        store.save_job(&job)?;
        failed.push(job.id);
    }
    Ok(failed)
}

/// What a training job works with.
pub struct TrainingContext<'a> {
    pub store: &'a dyn UploadStore,
    pub data_dir: &'a Path,
    pub rules: &'a RulesEta,
    /// Where new models are judged against and served from.
    pub serving: &'a ModelEta,
}

/// In `<data_dir>/models`: the version of the pooled model last activated (by a training job
/// or an admin), served again after a restart. A SIGHUP, which asks for `model.dir`, removes it.
pub const ACTIVE: &str = "active";

pub fn remember_active(data_dir: &Path, version: &str) -> std::io::Result<()> {
    crate::partners::keys::create_private_dir(&data_dir.join("models"))?;
    crate::partners::keys::write_private(&data_dir.join("models").join(ACTIVE), version.as_bytes())
}

pub fn forget_active(data_dir: &Path) {
    let _ = std::fs::remove_file(data_dir.join("models").join(ACTIVE));
}

/// The directory of the pooled model last activated, if it is still known.
pub fn remembered_active(model_dir: &Path, data_dir: &Path) -> Option<PathBuf> {
    let version = std::fs::read_to_string(data_dir.join("models").join(ACTIVE)).ok()?;
    crate::training::registry::known_models(model_dir, data_dir)
        .into_iter()
        .find(|(_, card)| card.version == version.trim() && card.owner.is_none())
        .map(|(dir, _)| dir)
}

/// Beside a model of an organisation's own that was judged better than what served it.
pub const ACTIVATED: &str = "activated";

/// Beside each trained model: every partner's report.
pub const PARTNER_REPORTS: &str = "partners.json";

/// What the newest model that learnt from `organisation` says the pool gives it: the pool's
/// size and the partner's own figures, never another's.
pub fn newest_partner_report(
    model_dir: &Path,
    data_dir: &Path,
    organisation: &str,
) -> anyhow::Result<Option<OwnReport>> {
    let mut newest: Option<(DateTime<Utc>, OwnReport)> = None;
    for (dir, card) in crate::training::registry::known_models(model_dir, data_dir) {
        let Ok(text) = std::fs::read(dir.join(PARTNER_REPORTS)) else {
            continue;
        };
        let reports: PartnerReports = serde_json::from_slice(&text)?;
        let Some(own) = reports.by_partner.get(organisation) else {
            continue;
        };
        if newest
            .as_ref()
            .is_some_and(|(at, _)| *at >= card.created_at)
        {
            continue;
        }
        let report = OwnReport {
            organisation: organisation.to_owned(),
            model_version: reports.model_version,
            pool: PoolSize {
                partners: reports.partners,
                trips: reports.trips,
            },
            own_trips: own.clone(),
        };
        newest = Some((card.created_at, report));
    }
    Ok(newest.map(|(_, report)| report))
}

/// What a partner is shown of the newest model that learnt from it.
#[derive(Debug, Clone, Serialize)]
pub struct OwnReport {
    pub organisation: String,
    pub model_version: String,
    /// Counts only: nothing of another partner's figures.
    pub pool: PoolSize,
    pub own_trips: PartnerReport,
}

#[derive(Debug, Clone, Serialize)]
pub struct PoolSize {
    pub partners: usize,
    pub trips: usize,
}

/// The pool as each partner sees it: its own figures, and only counts about the others.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PartnerReports {
    pub model_version: String,
    pub partners: usize,
    pub trips: usize,
    pub by_partner: BTreeMap<String, PartnerReport>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PartnerReport {
    /// The partner's own later trips (and mid-trip samples) the figures are measured on.
    pub test_rows: usize,
    /// The pooled model on them.
    pub pooled: Option<Figures>,
    /// Trips of the partner's earlier history the own-only model learnt from.
    pub own_training_trips: Option<usize>,
    /// How much lower the pooled MAE is than the own-only one, in percent.
    pub gain_percent: Option<f64>,
    /// The pooled model, a model trained with the same parameters on the partner's earlier
    /// trips alone, and the rules, on the same rows: overall, by vehicle class, by horizon.
    /// Absent when the partner has too few trips for a model of its own.
    pub compared: Option<Comparison>,
    pub by_vehicle_class: BTreeMap<String, Comparison>,
    pub by_horizon: BTreeMap<String, Comparison>,
}

impl PartnerReports {
    fn of(version: &str, inputs: &Inputs, report: &Report) -> Self {
        let by_partner = inputs
            .partners
            .iter()
            .map(|partner| {
                let name = partner.partner.clone();
                let own = report
                    .pooled_vs_own
                    .iter()
                    .find(|entry| entry.partner == name);
                let pooled = report.by_partner.get(&name).cloned();
                let entry = PartnerReport {
                    test_rows: pooled.as_ref().map_or(0, |figures| figures.rows),
                    pooled,
                    own_training_trips: own.map(|own| own.own_training_trips),
                    gain_percent: own.map(|own| own.gain_percent),
                    compared: own.map(|own| own.overall.clone()),
                    by_vehicle_class: own.map(|own| own.by_vehicle.clone()).unwrap_or_default(),
                    by_horizon: own.map(|own| own.by_horizon.clone()).unwrap_or_default(),
                };
                (name, entry)
            })
            .collect();
        Self {
            model_version: version.to_owned(),
            partners: inputs.partners.len(),
            trips: inputs.sources.iter().map(|source| source.trips).sum(),
            by_partner,
        }
    }
}

/// What trains: the pool, the histories of organisations that do not pool, and the uploads
/// the screen left out of both.
pub struct PartnerInputs {
    pub pool: Option<Inputs>,
    pub own: Vec<Inputs>,
    pub screened_out: Vec<ScreenedOut>,
}

/// One upload read back for training.
struct Read {
    source: Source,
    organisation: String,
    upload: String,
    pools: bool,
    trips: DataFrame,
    facts: screen::TripFacts,
}

/// The pool (every consenting organisation's uploads, one partner each) and, for each
/// organisation that does not pool, its uploads alone, each upload screened first. A withdrawn
/// consent or an erased upload is simply absent from the pool: nothing of it reaches the
/// pooled rows.
pub fn partner_inputs(
    store: &dyn UploadStore,
    data_dir: &Path,
    now: DateTime<Utc>,
) -> anyhow::Result<PartnerInputs> {
    let read = read_uploads(store, data_dir, now)?;
    anyhow::ensure!(!read.is_empty(), "no partner has uploaded a history");
    let mut pooled: BTreeMap<String, Vec<(Source, DataFrame)>> = BTreeMap::new();
    let mut alone: BTreeMap<String, Vec<(Source, DataFrame)>> = BTreeMap::new();
    let mut screened_out = Vec::new();
    for upload in &read {
        let others = upload
            .pools
            .then(|| others_paces(&read, &upload.organisation));
        let problems = screen::problems(&upload.facts, others.as_deref());
        if !problems.is_empty() {
            screened_out.push(ScreenedOut {
                organisation: upload.organisation.clone(),
                upload: upload.upload.clone(),
                problems,
            });
            continue;
        }
        let side = if upload.pools {
            &mut pooled
        } else {
            &mut alone
        };
        side.entry(upload.organisation.clone())
            .or_default()
            .push((upload.source.clone(), upload.trips.clone()));
    }
    let pool = if pooled.is_empty() {
        None
    } else {
        Some(inputs_of(pooled)?)
    };
    let own = alone
        .into_iter()
        .map(|(organisation, sources)| inputs_of(BTreeMap::from([(organisation, sources)])))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(PartnerInputs {
        pool,
        own,
        screened_out,
    })
}

/// Every upload's trips and what the screen reads of them.
fn read_uploads(
    store: &dyn UploadStore,
    data_dir: &Path,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Read>> {
    let area = UploadArea::new(data_dir);
    let mut read = Vec::new();
    for upload in store.uploads(None)? {
        let pools = store
            .consent(&upload.organisation)?
            .is_some_and(|consent| consent.pool);
        let dir = area.dir(&upload.organisation, &upload.id);
        let file = dir.join("trips.parquet");
        let trips = ParquetReader::new(
            std::fs::File::open(&file).with_context(|| file.display().to_string())?,
        )
        .finish()
        .map_err(|error| anyhow::anyhow!("{}: {error}", file.display()))?;
        let facts = screen::facts(&trips, now.timestamp_millis())
            .map_err(|error| anyhow::anyhow!("{}: {error}", file.display()))?;
        read.push(Read {
            source: Source {
                partner: upload.organisation.clone(),
                path: dir.display().to_string(),
                trips: upload.rows,
                pings: 0,
            },
            organisation: upload.organisation,
            upload: upload.id,
            pools,
            trips,
            facts,
        });
    }
    Ok(read)
}

/// The median pace of each other organisation that pools: an upload is judged against them,
/// never against its own organisation's other uploads, which agree with it whatever they are.
fn others_paces(read: &[Read], organisation: &str) -> Vec<f64> {
    let mut others: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for them in read
        .iter()
        .filter(|them| them.pools && them.organisation != organisation)
    {
        others
            .entry(&them.organisation)
            .or_default()
            .extend(&them.facts.paces);
    }
    others
        .values()
        .filter_map(|paces| screen::median_pace(paces))
        .collect()
}

/// Each organisation's uploads stacked as one partner, in organisation order.
fn inputs_of(
    by_organisation: BTreeMap<String, Vec<(Source, DataFrame)>>,
) -> anyhow::Result<Inputs> {
    let mut partners = Vec::new();
    let mut all_sources = Vec::new();
    for (organisation, uploads) in by_organisation {
        let mut trips: Option<DataFrame> = None;
        for (source, frame) in uploads {
            trips = Some(match trips {
                None => frame,
                Some(mut all) => {
                    all.vstack_mut_owned(frame)?;
                    all
                }
            });
            all_sources.push(source);
        }
        partners.push(PartnerHistory {
            partner: organisation,
            history: TripHistory {
                trips: trips.expect("at least one upload"),
                pings: None,
            },
        });
    }
    Ok(Inputs {
        partners,
        sources: all_sources,
        weather: None,
        traffic: None,
    })
}

/// Shared by the HTTP layer and the tests.
pub type SharedJobs = Arc<Jobs>;
