//! Liveness, readiness and the metrics exposition.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::clock::Clock;
use crate::http::api::dto::ModelDto;
use crate::http::api::AppState;
use crate::tracking::restoration::Progress;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`, `restoring` while the state of the previous run comes back, `failed` when it
    /// could not (the process then stops).
    #[schema(example = "ready")]
    pub status: &'static str,
    pub ready: bool,
    /// What is not back yet, in the order it comes back: `pings`, `corrections`, `estimates`.
    pub waiting_for: Vec<&'static str>,
    /// Why the restoration stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The model that answers ETAs.
    pub model: ModelDto,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// The service can answer ETAs, and the live estimates of the previous run are back. Until
/// they are, 503 says what is missing: the port listens before the restoration is done.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, body = Readiness),
        (status = 503, description = "Still restoring, or the restoration failed", body = Readiness),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let progress = state.tracker.progress();
    let (status, error) = match &progress {
        Progress::At(_) if progress.is_ready() => ("ready", None),
        Progress::At(_) => ("restoring", None),
        Progress::Failed(error) => ("failed", Some(error.clone())),
    };
    let readiness = Readiness {
        status,
        ready: progress.is_ready(),
        waiting_for: progress.waiting_for(),
        error,
        model: state.estimator.model_info().into(),
    };
    if readiness.ready {
        HttpResponse::Ok().json(readiness)
    } else {
        HttpResponse::ServiceUnavailable().json(readiness)
    }
}

/// Prometheus text exposition.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain"))
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.feeds.publish_ages(Clock::System.now());
    HttpResponse::Ok()
        .content_type(prometheus::TEXT_FORMAT)
        .body(state.metrics.render())
}
