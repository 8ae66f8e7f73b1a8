//! Pooled retraining as a background job: the histories of the partners that consent, each
//! organisation's uploads together as one partner, trained into a new model directory under
//! `<data_dir>/models`. The new model is listed but not served until an admin activates it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use chrono::{DateTime, Utc};
use polars::prelude::*;
use serde::Serialize;

use crate::domain::eta::RulesEta;
use crate::history::TripHistory;
use crate::model::dataset::PartnerHistory;
use crate::model::evaluate::{EvaluateOptions, Report};
use crate::model::metrics::Figures;
use crate::model::TrainParams;
use crate::pipeline::{self, Inputs};
use crate::registry::Source;
use crate::store::{new_id, Store};
use crate::uploads::UploadArea;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Running,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: String,
    pub status: JobStatus,
    /// Boosting rounds done and to do, over the three boosters.
    pub rounds_done: usize,
    pub rounds_total: usize,
    /// Partners and uploads trained on (consenting ones only).
    pub partners: usize,
    pub uploads: usize,
    pub version: Option<String>,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The jobs of this process; one runs at a time.
#[derive(Default)]
pub struct Jobs {
    jobs: Mutex<HashMap<String, Job>>,
}

fn lock(jobs: &Jobs) -> std::sync::MutexGuard<'_, HashMap<String, Job>> {
    jobs.jobs
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Jobs {
    pub fn get(&self, id: &str) -> Option<Job> {
        lock(self).get(id).cloned()
    }

    /// Registers a new job unless one is running; returns it, or the running one's id.
    pub fn begin(&self, now: DateTime<Utc>) -> Result<Job, String> {
        let mut jobs = lock(self);
        if let Some(running) = jobs.values().find(|job| job.status == JobStatus::Running) {
            return Err(running.id.clone());
        }
        let job = Job {
            id: new_id("job"),
            status: JobStatus::Running,
            rounds_done: 0,
            rounds_total: 0,
            partners: 0,
            uploads: 0,
            version: None,
            error: None,
            started_at: now,
            finished_at: None,
        };
        jobs.insert(job.id.clone(), job.clone());
        Ok(job)
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut Job)) {
        if let Some(job) = lock(self).get_mut(id) {
            change(job);
        }
    }

    /// Trains, recording progress and the outcome in the job.
    pub fn run(&self, id: &str, store: &dyn Store, data_dir: &Path, rules: &RulesEta) {
        let outcome = self.train(id, store, data_dir, rules);
        self.update(id, |job| {
            job.finished_at = Some(Utc::now());
            match outcome {
                Ok(version) => {
                    job.status = JobStatus::Succeeded;
                    job.version = Some(version);
                }
                Err(error) => {
                    job.status = JobStatus::Failed;
                    job.error = Some(format!("{error:#}"));
                }
            }
        });
    }

    fn train(
        &self,
        id: &str,
        store: &dyn Store,
        data_dir: &Path,
        rules: &RulesEta,
    ) -> anyhow::Result<String> {
        let inputs = consenting_inputs(store, data_dir)?;
        let uploads = inputs.sources.len();
        self.update(id, |job| {
            job.partners = inputs.partners.len();
            job.uploads = uploads;
        });
        let params = TrainParams::default();
        let out = data_dir.join("models").join(id);
        std::fs::create_dir_all(data_dir.join("models"))?;
        let card = pipeline::train(&inputs, rules, &params, &out, |progress| {
            self.update(id, |job| {
                job.rounds_total = progress.rounds * 3;
                job.rounds_done = job
                    .rounds_done
                    .max(progress.quantile as usize * progress.rounds + progress.round);
            });
        })?;
        // What the pool gives each partner, on its own later trips. A pool too small to split
        // by time has no report; the model stands.
        let options = EvaluateOptions {
            baselines: false,
            partner_left_out: false,
            pooled_vs_own: true,
        };
        match pipeline::run_evaluation(&inputs, rules, &params, options, |_| {}) {
            Ok(report) => {
                let reports = PartnerReports::of(&card.version, &inputs, &report);
                let text = serde_json::to_vec_pretty(&reports)?;
                crate::auth::write_private(&out.join(PARTNER_REPORTS), &text)?;
            }
            Err(error) => {
                tracing::warn!(message = "No partner reports.", error = %format!("{error:#}"))
            }
        }
        Ok(card.version)
    }
}

/// Beside each trained model: every partner's report.
pub const PARTNER_REPORTS: &str = "partners.json";

/// The pool as each partner sees it: its own figures, and only counts about the others.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PartnerReports {
    pub model_version: String,
    pub partners: usize,
    pub trips: usize,
    pub by_partner: std::collections::BTreeMap<String, PartnerReport>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PartnerReport {
    /// The partner's own later trips (and mid-trip samples) the figures are measured on.
    pub test_rows: usize,
    /// The pooled model on them.
    pub pooled: Option<Figures>,
    /// A model trained with the same parameters on the partner's earlier trips alone.
    pub own_only_mae: Option<f64>,
    /// How much lower the pooled MAE is than the own-only one, in percent.
    pub gain_percent: Option<f64>,
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
                    own_only_mae: own.map(|own| own.own_mae),
                    gain_percent: own.map(|own| own.gain_percent),
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

/// Every consenting organisation's uploads, one partner each. A withdrawn consent or an erased
/// upload is simply absent: nothing of it reaches the training rows.
pub fn consenting_inputs(store: &dyn Store, data_dir: &Path) -> anyhow::Result<Inputs> {
    let area = UploadArea::new(data_dir);
    let mut by_organisation: HashMap<String, Vec<PathBuf>> = HashMap::new();
    let mut sources = Vec::new();
    for upload in store.uploads(None)? {
        let consents = store
            .consent(&upload.organisation)?
            .is_some_and(|consent| consent.pool);
        if !consents {
            continue;
        }
        let dir = area.dir(&upload.organisation, &upload.id);
        sources.push(Source {
            partner: upload.organisation.clone(),
            path: dir.display().to_string(),
            trips: upload.rows,
            pings: 0,
        });
        by_organisation
            .entry(upload.organisation)
            .or_default()
            .push(dir.join("trips.parquet"));
    }
    anyhow::ensure!(
        !by_organisation.is_empty(),
        "no consenting partner has uploaded a history"
    );
    let mut organisations: Vec<_> = by_organisation.into_iter().collect();
    organisations.sort_by(|a, b| a.0.cmp(&b.0));
    let mut partners = Vec::new();
    for (organisation, files) in organisations {
        let mut trips: Option<DataFrame> = None;
        for file in &files {
            let frame = ParquetReader::new(
                std::fs::File::open(file).with_context(|| file.display().to_string())?,
            )
            .finish()
            .map_err(|error| anyhow::anyhow!("{}: {error}", file.display()))?;
            trips = Some(match trips {
                None => frame,
                Some(mut all) => {
                    all.vstack_mut_owned(frame)?;
                    all
                }
            });
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
        sources,
        weather: None,
        traffic: None,
    })
}

/// Shared by the HTTP layer and the tests.
pub type SharedJobs = Arc<Jobs>;
