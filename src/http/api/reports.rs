//! The wire forms of what training produces: a training job, a model's headline figures, and
//! what the pool gives a partner. The training layer keeps its own types on disk and knows no
//! OpenAPI; these follow them field for field, with a schema, and the tests below hold each
//! one's JSON equal to the JSON its training type has always serialised to.
//!
//! An MAE that could not be measured is infinite in training, which JSON writes as `null`:
//! here it is an `Option`, so that the schema says `null` may come.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::api::operations::CorrectionDto;
use crate::ml::model::evaluate::Comparison;
use crate::ml::model::metrics::Figures;
use crate::training::jobs::{
    Holdout, Job, JobStatus, OwnModel, OwnReport, PartnerReport, PoolSize, ScreenedOut,
};
use crate::training::judge::Judged;

/// A training job: progress, then the model's version or the error.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TrainingJob {
    pub id: String,
    pub status: TrainingStatus,
    /// Boosting rounds done and to do, over the three boosters of every model trained.
    pub rounds_done: usize,
    pub rounds_total: usize,
    /// Partners and uploads trained on (consenting ones only).
    pub partners: usize,
    pub uploads: usize,
    /// The pooled model's version, when there was a pool to train on.
    pub version: Option<String>,
    /// The pooled model against the served one on its holdout.
    pub holdout: Option<HoldoutDto>,
    /// Whether the pooled model now serves.
    pub activated: bool,
    /// Models trained for partners that do not pool, on their rows alone.
    pub own_models: Vec<OwnModelDto>,
    /// Uploads left out of every model, and why.
    pub screened_out: Vec<ScreenedOutDto>,
    /// What the job could not do, said plainly.
    pub notes: Vec<String>,
    /// Why the job failed, when it did.
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrainingStatus {
    Running,
    Succeeded,
    Failed,
}

/// A new model against the served one on the latest trips it did not learn from.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HoldoutDto {
    pub rows: usize,
    pub new_mae: Option<f64>,
    /// The served model's version, or `rules` when the rules serve.
    pub served: String,
    pub served_mae: Option<f64>,
    /// Plain LightGBM on the request's columns, fit on the new model's training rows.
    pub baseline_mae: Option<f64>,
    pub partners: Vec<JudgedDto>,
    /// Why the new model does not serve; empty when it does.
    pub refused: Vec<String>,
}

/// One partner's held-out rows, scored by the three estimators.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JudgedDto {
    pub partner: String,
    pub rows: usize,
    pub new_mae: Option<f64>,
    pub served_mae: Option<f64>,
    pub baseline_mae: Option<f64>,
}

/// A model a job trained for one partner: its version, its holdout, whether it serves.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OwnModelDto {
    pub version: String,
    pub holdout: HoldoutDto,
    pub activated: bool,
}

/// An upload the screen left out of training.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScreenedOutDto {
    pub organisation: String,
    pub upload: String,
    pub problems: Vec<String>,
}

/// Error figures of an estimator on a set of trips, in minutes unless said.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct FiguresDto {
    pub rows: usize,
    /// Mean of predicted minus true: positive when arrivals come earlier than said.
    pub bias: f64,
    pub mae: f64,
    pub rmse: f64,
    pub median_ae: f64,
    pub p95_ae: f64,
    /// Mean absolute error over the true duration, in percent.
    pub mape: f64,
    /// Shares of trips within 15, 30 and 60 minutes.
    pub within_15: f64,
    pub within_30: f64,
    pub within_60: f64,
    /// Share of true durations inside [P10, P90]; absent for a point estimate.
    pub coverage: Option<f64>,
    pub mean_width: Option<f64>,
}

/// The pooled model, a model of the partner's rows alone, and the rules, on the same rows.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ComparisonDto {
    pub pooled: FiguresDto,
    pub own: FiguresDto,
    pub rules: FiguresDto,
}

/// A model's headline figures, as training records them on its card.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModelFigures {
    pub holdout: HoldoutDto,
    /// The model on the pool's later trips; absent when the pool was too small to split.
    pub time_split: Option<FiguresDto>,
}

/// What the pool gives the partner, from the newest model that learnt from it, and what its
/// own arrivals have taught its live ETAs since.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PartnerReportResponse {
    pub organisation: String,
    pub model_version: String,
    /// Counts only: nothing of another partner's figures.
    pub pool: PoolSizeDto,
    pub own_trips: OwnTripsDto,
    pub live_corrections: Vec<CorrectionDto>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct PoolSizeDto {
    pub partners: usize,
    pub trips: usize,
}

/// The partner's own later trips, scored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OwnTripsDto {
    /// The trips (and mid-trip samples) the figures are measured on.
    pub test_rows: usize,
    /// The pooled model on them.
    pub pooled: Option<FiguresDto>,
    /// Trips of the partner's earlier history the own-only model learnt from.
    pub own_training_trips: Option<usize>,
    /// How much lower the pooled MAE is than the own-only one, in percent.
    pub gain_percent: Option<f64>,
    /// Overall; absent when the partner has too few trips for a model of its own.
    pub compared: Option<ComparisonDto>,
    pub by_vehicle_class: BTreeMap<String, ComparisonDto>,
    pub by_horizon: BTreeMap<String, ComparisonDto>,
}

impl PartnerReportResponse {
    pub fn of(report: &OwnReport, live_corrections: Vec<CorrectionDto>) -> Self {
        Self {
            organisation: report.organisation.clone(),
            model_version: report.model_version.clone(),
            pool: PoolSizeDto::from(&report.pool),
            own_trips: OwnTripsDto::from(&report.own_trips),
            live_corrections,
        }
    }
}

impl ModelFigures {
    /// The figures a card holds, when they have the shape training writes; a card written
    /// otherwise (by hand, by another build) has none the API can vouch for.
    pub fn of_card(figures: &serde_json::Value) -> Option<Self> {
        serde_json::from_value(figures.clone())
            .map_err(|error| tracing::warn!(message = "Model figures of another shape.", %error))
            .ok()
    }
}

/// Infinite or not a number is what JSON cannot write: `null`, as serde_json writes it.
fn measured(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

impl From<&Job> for TrainingJob {
    fn from(job: &Job) -> Self {
        Self {
            id: job.id.clone(),
            status: TrainingStatus::from(job.status),
            rounds_done: job.rounds_done,
            rounds_total: job.rounds_total,
            partners: job.partners,
            uploads: job.uploads,
            version: job.version.clone(),
            holdout: job.holdout.as_ref().map(HoldoutDto::from),
            activated: job.activated,
            own_models: job.own_models.iter().map(OwnModelDto::from).collect(),
            screened_out: job.screened_out.iter().map(ScreenedOutDto::from).collect(),
            notes: job.notes.clone(),
            error: job.error.clone(),
            started_at: job.started_at,
            finished_at: job.finished_at,
        }
    }
}

impl From<JobStatus> for TrainingStatus {
    fn from(status: JobStatus) -> Self {
        match status {
            JobStatus::Running => Self::Running,
            JobStatus::Succeeded => Self::Succeeded,
            JobStatus::Failed => Self::Failed,
        }
    }
}

impl From<&Holdout> for HoldoutDto {
    fn from(holdout: &Holdout) -> Self {
        Self {
            rows: holdout.rows,
            new_mae: measured(holdout.new_mae),
            served: holdout.served.clone(),
            served_mae: measured(holdout.served_mae),
            baseline_mae: measured(holdout.baseline_mae),
            partners: holdout.partners.iter().map(JudgedDto::from).collect(),
            refused: holdout.refused.clone(),
        }
    }
}

impl From<&Judged> for JudgedDto {
    fn from(judged: &Judged) -> Self {
        Self {
            partner: judged.partner.clone(),
            rows: judged.rows,
            new_mae: measured(judged.new_mae),
            served_mae: measured(judged.served_mae),
            baseline_mae: measured(judged.baseline_mae),
        }
    }
}

impl From<&OwnModel> for OwnModelDto {
    fn from(model: &OwnModel) -> Self {
        Self {
            version: model.version.clone(),
            holdout: HoldoutDto::from(&model.holdout),
            activated: model.activated,
        }
    }
}

impl From<&ScreenedOut> for ScreenedOutDto {
    fn from(screened: &ScreenedOut) -> Self {
        Self {
            organisation: screened.organisation.clone(),
            upload: screened.upload.clone(),
            problems: screened.problems.clone(),
        }
    }
}

impl From<&Figures> for FiguresDto {
    fn from(figures: &Figures) -> Self {
        Self {
            rows: figures.rows,
            bias: figures.bias,
            mae: figures.mae,
            rmse: figures.rmse,
            median_ae: figures.median_ae,
            p95_ae: figures.p95_ae,
            mape: figures.mape,
            within_15: figures.within_15,
            within_30: figures.within_30,
            within_60: figures.within_60,
            coverage: figures.coverage,
            mean_width: figures.mean_width,
        }
    }
}

impl From<&Comparison> for ComparisonDto {
    fn from(comparison: &Comparison) -> Self {
        Self {
            pooled: FiguresDto::from(&comparison.pooled),
            own: FiguresDto::from(&comparison.own),
            rules: FiguresDto::from(&comparison.rules),
        }
    }
}

impl From<&PoolSize> for PoolSizeDto {
    fn from(pool: &PoolSize) -> Self {
        Self {
            partners: pool.partners,
            trips: pool.trips,
        }
    }
}

impl From<&PartnerReport> for OwnTripsDto {
    fn from(report: &PartnerReport) -> Self {
        let by_key = |by: &BTreeMap<String, Comparison>| {
            by.iter()
                .map(|(key, comparison)| (key.clone(), ComparisonDto::from(comparison)))
                .collect()
        };
        Self {
            test_rows: report.test_rows,
            pooled: report.pooled.as_ref().map(FiguresDto::from),
            own_training_trips: report.own_training_trips,
            gain_percent: report.gain_percent,
            compared: report.compared.as_ref().map(ComparisonDto::from),
            by_vehicle_class: by_key(&report.by_vehicle_class),
            by_horizon: by_key(&report.by_horizon),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(mae: f64) -> Figures {
        Figures {
            rows: 12,
            bias: -1.5,
            mae,
            rmse: 9.0,
            median_ae: 6.0,
            p95_ae: 20.0,
            mape: 4.5,
            within_15: 0.8,
            within_30: 0.9,
            within_60: 1.0,
            coverage: Some(0.8),
            mean_width: None,
        }
    }

    fn holdout() -> Holdout {
        Holdout {
            rows: 40,
            new_mae: 10.0,
            served: "rules".into(),
            // Not measured: training keeps it infinite, JSON writes null.
            served_mae: f64::INFINITY,
            baseline_mae: 12.0,
            partners: vec![Judged {
                partner: "a".into(),
                rows: 40,
                new_mae: 10.0,
                served_mae: f64::INFINITY,
                baseline_mae: 12.0,
            }],
            refused: vec!["worse than the served model".into()],
        }
    }

    /// The schema'd forms must stay the JSON clients have always read.
    #[test]
    fn a_job_serialises_as_training_writes_it() {
        let at = DateTime::parse_from_rfc3339("2026-11-28T09:00:00.5Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut job = Job::begun("job_1".into(), at);
        job.status = JobStatus::Succeeded;
        job.holdout = Some(holdout());
        job.own_models = vec![OwnModel {
            version: "v2".into(),
            holdout: holdout(),
            activated: true,
        }];
        job.screened_out = vec![ScreenedOut {
            organisation: "b".into(),
            upload: "upl_1".into(),
            problems: vec!["too few trips".into()],
        }];
        job.notes = vec!["no pool".into()];
        job.finished_at = Some(at);
        for job in [Job::begun("job_0".into(), at), job] {
            assert_eq!(
                serde_json::to_value(TrainingJob::from(&job)).unwrap(),
                serde_json::to_value(&job).unwrap()
            );
        }
    }

    #[test]
    fn a_partner_report_serialises_as_training_writes_it() {
        let comparison = Comparison {
            pooled: figures(8.0),
            own: figures(9.0),
            rules: figures(15.0),
        };
        let report = OwnReport {
            organisation: "a".into(),
            model_version: "v1".into(),
            pool: PoolSize {
                partners: 3,
                trips: 300,
            },
            own_trips: PartnerReport {
                test_rows: 12,
                pooled: Some(figures(8.0)),
                own_training_trips: Some(80),
                gain_percent: Some(11.1),
                compared: Some(comparison.clone()),
                by_vehicle_class: BTreeMap::from([("van".into(), comparison.clone())]),
                by_horizon: BTreeMap::from([("0-1h".into(), comparison)]),
            },
        };
        let mut expected = serde_json::to_value(&report).unwrap();
        expected["live_corrections"] = serde_json::json!([]);
        assert_eq!(
            serde_json::to_value(PartnerReportResponse::of(&report, Vec::new())).unwrap(),
            expected
        );
    }

    #[test]
    fn card_figures_as_training_writes_them_are_read() {
        let written = serde_json::json!({
            "holdout": holdout(),
            "time_split": Some(figures(7.0)),
        });
        let read = ModelFigures::of_card(&written).expect("training's shape");
        assert_eq!(serde_json::to_value(read).unwrap(), written);
        assert!(ModelFigures::of_card(&serde_json::json!({"mae": 3})).is_none());
    }
}
