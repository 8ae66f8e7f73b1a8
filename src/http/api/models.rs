//! `/v1/models`: the model directories the service can serve, and switching between them.
//!
//! A model is looked for in the configured `model.dir` and in every directory under
//! `<data_dir>/models` (where `etape train --out` can write); one whose card does not fit this
//! build (format, features) is not listed. Activation swaps the served model
//! atomically: requests in flight finish with the model they started with.

use std::path::Path;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::api::access::OPERATOR;
use crate::http::api::body::parse_query;
use crate::http::api::dto::stamp;
use crate::http::api::error::{ApiError, ErrorBody};
use crate::http::api::reports::{ModelFigures, TrainingJob};
use crate::http::api::{answer, blocking, storage, AppState};
use crate::ml::model::serve::ServedModel;
use crate::partners::keys::Caller;
use crate::training::jobs::{Job, TrainRequest, TrainingContext};
use crate::training::registry::{self, known_models, ModelCard};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModelSummary {
    pub version: String,
    pub created_at: String,
    /// `total` or `residual`.
    pub target: String,
    /// Training rows and the SHA-256 fingerprint of the training matrix.
    pub rows: usize,
    pub fingerprint: String,
    /// How many partners, and each one's trip count, largest first: never whose rows.
    pub partners: usize,
    pub trips_per_partner: Vec<usize>,
    /// The evaluation's headline figures, when the model was evaluated.
    pub figures: Option<ModelFigures>,
    pub active: bool,
    /// For a model trained on one organisation's rows alone: that organisation, whose trips
    /// it serves.
    pub owner: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ActivatedResponse {
    pub version: String,
    pub previous: Option<String>,
}

fn summary(card: &ModelCard, active: Option<&str>) -> ModelSummary {
    let mut trips: Vec<usize> = card
        .training
        .sources
        .iter()
        .map(|source| source.trips)
        .collect();
    trips.sort_unstable_by(|a, b| b.cmp(a));
    ModelSummary {
        version: card.version.clone(),
        created_at: stamp(card.created_at),
        target: format!("{:?}", card.target).to_ascii_lowercase(),
        rows: card.training.rows,
        fingerprint: card.training.fingerprint.clone(),
        partners: card.partners.len(),
        trips_per_partner: trips,
        figures: card.figures.as_ref().and_then(ModelFigures::of_card),
        active: active == Some(card.version.as_str()),
        owner: card.owner.clone(),
    }
}

/// The models the service can serve, the active one flagged.
#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "admin",
    responses(
        (status = 200, description = "The models", body = Vec<ModelSummary>),
        (status = 403, description = "Not an operator key", body = ErrorBody),
    )
)]
pub async fn list_models(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    caller.allow(OPERATOR)?;
    let active = state
        .model_eta
        .active()
        .map(|served| served.version.clone());
    answer(state, StatusCode::OK, move |state| {
        Ok(known_models(&state.model_dir, &state.data_dir)
            .iter()
            .map(|(_, card)| summary(card, active.as_deref()))
            .collect::<Vec<_>>())
    })
    .await
}

/// Serve a model from the next request on.
#[utoipa::path(
    post,
    path = "/v1/models/{version}/activate",
    tag = "admin",
    params(("version" = String, Path, description = "The model's version")),
    responses(
        (status = 200, description = "Now serving", body = ActivatedResponse),
        (status = 403, description = "Not an operator key", body = ErrorBody),
        (status = 404, description = "No such model", body = ErrorBody),
        (status = 409, description = "The model does not fit this build", body = ErrorBody),
    )
)]
pub async fn activate(
    state: web::Data<AppState>,
    caller: Caller,
    version: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.allow(OPERATOR)?;
    let (model_dir, data_dir) = (state.model_dir.clone(), state.data_dir.clone());
    // Parsing the trees takes a moment: on the blocking pool, not on the request path of others.
    let served = blocking(move || servable(&model_dir, &data_dir, &version)).await?;
    let previous = state
        .model_eta
        .active()
        .map(|served| served.version.clone());
    let version = served.version.clone();
    crate::training::jobs::remember_active(&state.data_dir, &version).map_err(storage)?;
    state.model_eta.swap(Some(served));
    tracing::info!(message = "Model activated.", %version, previous = ?previous);
    Ok(HttpResponse::Ok().json(ActivatedResponse { version, previous }))
}

/// The model `version`, read and ready to serve: one the service knows, that fits this build,
/// and that is not an organisation's own.
fn servable(model_dir: &Path, data_dir: &Path, version: &str) -> Result<ServedModel, ApiError> {
    let (dir, _) = known_models(model_dir, data_dir)
        .into_iter()
        .find(|(_, card)| card.version == version)
        .ok_or(ApiError::NotFound)?;
    if let Some(owner) = registry::read_card(&dir).ok().and_then(|card| card.owner) {
        return Err(ApiError::Conflict {
            message: format!("this model serves the trips of {owner} only"),
        });
    }
    match registry::load(&dir) {
        Ok((_, served)) => Ok(served),
        Err(
            error @ (registry::RegistryError::Schema { .. }
            | registry::RegistryError::Format { .. }),
        ) => Err(ApiError::Conflict {
            message: error.to_string(),
        }),
        Err(error) => Err(storage(error)),
    }
}

/// Retrain the pooled model on the consenting partners' uploads, and a model of its own for
/// each partner that does not pool, in the background. A new model that is no worse than the
/// one serving on its holdout (the latest trips it held out) serves at once; a worse one is
/// listed, and only an operator can activate it.
#[utoipa::path(
    post,
    path = "/v1/models/train",
    tag = "admin",
    params(("rounds" = Option<usize>, Query, description = "Boosting rounds (1 to 5000); the default parameters' when absent")),
    responses(
        (status = 202, description = "Started; follow it at /v1/models/jobs/{id}", body = TrainingJob),
        (status = 400, description = "`rounds` out of range", body = ErrorBody),
        (status = 403, description = "Not an operator key", body = ErrorBody),
        (status = 409, description = "A training is already running", body = ErrorBody),
    )
)]
pub async fn train(
    state: web::Data<AppState>,
    caller: Caller,
    request: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    caller.allow(OPERATOR)?;
    let query = parse_query::<TrainQuery>(&request)?;
    if let Some(rounds) = query.rounds {
        if !(1..=5_000).contains(&rounds) {
            return Err(ApiError::out_of_range("rounds", "between 1 and 5000"));
        }
    }
    let job = start_training(
        state.into_inner(),
        TrainRequest {
            rounds: query.rounds,
        },
    )
    .map_err(|running| ApiError::Conflict {
        message: format!("training {running} is still running"),
    })?;
    Ok(HttpResponse::Accepted().json(TrainingJob::from(&job.0)))
}

/// Starts a training job in the background unless one is running (its id is the error); the
/// job as it starts, and a handle that completes with it.
pub fn start_training(
    state: Arc<AppState>,
    request: TrainRequest,
) -> Result<(Job, tokio::task::JoinHandle<()>), String> {
    let job = state.jobs.begin(state.clock.now())?;
    let id = job.id.clone();
    // Minutes of CPU: a thread of its own, not a worker's.
    let handle = tokio::task::spawn_blocking(move || {
        let context = TrainingContext {
            store: &*state.store,
            data_dir: &state.data_dir,
            rules: &state.training_rules,
            serving: &state.model_eta,
        };
        state.jobs.run(&id, &context, &request)
    });
    Ok((job, handle))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainQuery {
    rounds: Option<usize>,
}

/// A training job: progress, then the model's version or the error. Jobs are kept: one that
/// ran before a restart answers too, and one the service stopped in the middle of is
/// `failed`.
#[utoipa::path(
    get,
    path = "/v1/models/jobs/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The job")),
    responses(
        (status = 200, description = "The job", body = TrainingJob),
        (status = 403, description = "Not an operator key", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    )
)]
pub async fn job(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.allow(OPERATOR)?;
    // This process's jobs answer from memory; the store is read only for the others.
    if let Some(job) = state.jobs.get(&id) {
        return Ok(HttpResponse::Ok().json(TrainingJob::from(&job)));
    }
    let jobs = state.jobs.clone();
    let job: Job = blocking(move || jobs.find(&id).map_err(storage))
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(TrainingJob::from(&job)))
}
