//! The HTTP surface.
//!
//! Architecture invariant: only this module knows HTTP and the JSON wire format. Handlers parse
//! a DTO, turn it into a domain query (every check happens there, with the field's path), ask
//! an estimator through the domain's trait, and render the answer. Errors map to statuses in
//! `error.rs` alone.

pub mod access;
pub mod admin;
pub mod body;
pub mod contract;
pub mod docs;
pub mod dto;
pub mod error;
pub mod estimates;
pub mod eta;
pub mod events;
pub mod health;
pub mod history;
pub mod hooks;
pub mod limits;
pub mod models;
pub mod openapi;
pub mod operations;
pub mod phones;
pub mod reports;
pub mod sharing;
pub mod track_page;
pub mod tracking;

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse, Resource};
use chrono::{DateTime, Utc};

use crate::adapters::store::Store;
use crate::config::ApiSettings;
use crate::domain::clock::Clock;
use crate::domain::eta::EstimateEta;
use crate::domain::eta::RulesEta;
use crate::domain::forecast::Forecaster;
use crate::ml::model::serve::ModelEta;
use crate::partners::keys::Keyring;
use crate::telemetry::Metrics;
use crate::tracking::tracker::Tracker;
use crate::training::jobs::Jobs;
use error::ApiError;

/// What every handler may reach.
pub struct AppState {
    pub estimator: Arc<dyn EstimateEta>,
    /// The estimator with the feeds' conditions: how every ETA question is answered.
    pub forecaster: Forecaster,
    pub metrics: Metrics,
    pub settings: ApiSettings,
    pub clock: Clock,
    pub tracker: Arc<Tracker>,
    pub store: Arc<dyn Store>,
    pub keyring: Arc<Keyring>,
    /// The same estimator as `estimator`, for switching its model.
    pub model_eta: Arc<ModelEta>,
    pub jobs: Arc<Jobs>,
    pub feeds: Arc<crate::adapters::feeds::Feeds>,
    /// The dashboard offers the demo dispatcher's login: the demo fleet runs and the service
    /// listens on a loopback address only.
    pub demo_login: bool,
    pub dashboard: crate::config::DashboardSettings,
    /// Whether webhooks may point to private networks, checked at registration.
    pub webhooks: crate::config::WebhookSettings,
    /// The rules engine as configured: training takes its prior from it, as serving does.
    pub training_rules: Arc<RulesEta>,
    /// Where uploads live (`<data_dir>/uploads`).
    pub data_dir: std::path::PathBuf,
    /// The served model's directory, whose card says what it learnt from.
    pub model_dir: std::path::PathBuf,
    /// Requests a second per API key.
    pub rate_limits: limits::RateLimits,
}

/// Runs work that reads and writes the disk, or runs polars, on the blocking pool: off the
/// workers that serve other connections, and where polars may block.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    web::block(work).await.map_err(storage)?
}

/// Most handlers' last step: `work` on the blocking pool, handed the state, its value the JSON
/// answer with `status`.
pub(crate) async fn answer<T: serde::Serialize + Send + 'static>(
    state: web::Data<AppState>,
    status: StatusCode,
    work: impl FnOnce(&AppState) -> Result<T, ApiError> + Send + 'static,
) -> Result<HttpResponse, ApiError> {
    let value = blocking(move || work(state.get_ref())).await?;
    Ok(HttpResponse::build(status).json(value))
}

/// A listing read from the store, each item as its DTO.
pub(crate) fn listed<T, D>(
    items: Result<Vec<T>, impl std::fmt::Display + 'static>,
    dto: impl Fn(&T) -> D,
) -> Result<Vec<D>, ApiError> {
    Ok(items.map_err(storage)?.iter().map(dto).collect())
}

/// The one item of a listing read from the store that `wanted` picks; a 404 when none is.
pub(crate) fn found<T>(
    items: Result<Vec<T>, impl std::fmt::Display + 'static>,
    wanted: impl FnMut(&T) -> bool,
) -> Result<T, ApiError> {
    items
        .map_err(storage)?
        .into_iter()
        .find(wanted)
        .ok_or(ApiError::NotFound)
}

/// A deletion's or a revocation's last step: `work` on the blocking pool, then 204 and no body.
pub(crate) async fn no_content(
    work: impl FnOnce() -> Result<(), ApiError> + Send + 'static,
) -> Result<HttpResponse, ApiError> {
    blocking(work).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Marks a device or a link revoked `now`, unless it already was: revoking again keeps the
/// first time. Whether it changed, and so is to be saved.
pub(crate) fn revoke(revoked_at: &mut Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    if revoked_at.is_some() {
        return false;
    }
    *revoked_at = Some(now);
    true
}

/// This service's address as the caller reached it, such as `https://etape.example.com`: the
/// links an answer gives out are built on it.
pub(crate) fn base_url(request: &HttpRequest) -> String {
    let connection = request.connection_info();
    format!("{}://{}", connection.scheme(), connection.host())
}

/// A storage failure: the detail goes to the log, the caller gets a 500, or a 503 when it is
/// a store's `StoreError::Unavailable` (mapped where every `StoreError` is, in `error.rs`).
pub(crate) fn storage<E: std::fmt::Display + 'static>(error: E) -> ApiError {
    let detail = error.to_string();
    let any: Box<dyn std::any::Any> = Box::new(error);
    match any.downcast::<crate::domain::storage::StoreError>() {
        Ok(store) => ApiError::from(*store),
        Err(_) => ApiError::Internal(detail),
    }
}

/// Registers every route, in groups by what they serve. The order counts: of two patterns that
/// match one path (`/v1/models/jobs/{id}` and `/v1/models/{version}/activate`), the first
/// registered takes it. The OpenAPI document lists the same routes but the reference drawn
/// from it (`/docs` and its scripts); a test holds them equal.
pub fn routes(config: &mut web::ServiceConfig) {
    eta_routes(config);
    shipment_routes(config);
    position_routes(config);
    webhook_routes(config);
    admin_routes(config);
    history_routes(config);
    model_routes(config);
    operation_routes(config);
}

fn eta_routes(config: &mut web::ServiceConfig) {
    config
        .service(resource("/v1/eta").route(web::post().to(eta::eta)))
        .service(resource("/v1/eta/batch").route(web::post().to(eta::eta_batch)));
}

/// Shipments, their live estimates and events, and the consignee's tracking links.
fn shipment_routes(config: &mut web::ServiceConfig) {
    config
        .service(
            resource("/v1/shipments")
                .route(web::post().to(tracking::create_shipment))
                .route(web::get().to(tracking::list_shipments)),
        )
        .service(resource("/v1/shipments/{id}").route(web::get().to(tracking::get_shipment)))
        .service(
            resource("/v1/shipments/{id}/cancel").route(web::post().to(tracking::cancel_shipment)),
        )
        .service(resource("/v1/shipments/{id}/events").route(web::post().to(tracking::post_event)))
        .service(resource("/v1/shipments/{id}/eta").route(web::get().to(tracking::get_eta)))
        .service(
            resource("/v1/shipments/{id}/eta/history")
                .route(web::get().to(tracking::get_eta_history)),
        )
        .service(resource("/v1/shipments/{id}/share").route(web::post().to(sharing::create_share)))
        .service(
            resource("/v1/shipments/{id}/share/{share_id}")
                .route(web::delete().to(sharing::revoke_share)),
        )
        .service(resource("/v1/events").route(web::get().to(events::events)))
        .service(resource("/track/{token}").route(web::get().to(sharing::public_page)))
        .service(resource("/track/{token}/eta.json").route(web::get().to(sharing::public_eta)));
}

/// Pings, from a fleet's systems or from phones.
fn position_routes(config: &mut web::ServiceConfig) {
    config
        .service(resource("/v1/positions").route(web::post().to(tracking::post_positions)))
        .service(
            resource("/v1/vehicles/{vehicle_id}/positions")
                .route(web::get().to(tracking::vehicle_positions)),
        )
        .service(
            resource("/v1/devices")
                .route(web::post().to(phones::create_device))
                .route(web::get().to(phones::list_devices)),
        )
        .service(resource("/v1/devices/{id}").route(web::delete().to(phones::revoke_device)))
        .service(
            resource("/v1/osmand/{token}")
                .route(web::get().to(phones::osmand_get))
                .route(web::post().to(phones::osmand_post)),
        );
}

fn webhook_routes(config: &mut web::ServiceConfig) {
    config
        .service(
            resource("/v1/webhooks")
                .route(web::post().to(hooks::create_webhook))
                .route(web::get().to(hooks::list_webhooks)),
        )
        .service(
            resource("/v1/webhooks/{id}")
                .route(web::get().to(hooks::get_webhook))
                .route(web::delete().to(hooks::delete_webhook)),
        )
        .service(
            resource("/v1/webhooks/{id}/rotate-secret").route(web::post().to(hooks::rotate_secret)),
        )
        .service(
            resource("/v1/webhooks/{id}/deliveries").route(web::get().to(hooks::list_deliveries)),
        )
        .service(
            resource("/v1/webhooks/{id}/deliveries/{delivery}/replay")
                .route(web::post().to(hooks::replay_delivery)),
        );
}

/// Organisations and their keys.
fn admin_routes(config: &mut web::ServiceConfig) {
    config
        .service(
            resource("/v1/organisations")
                .route(web::post().to(admin::create_organisation))
                .route(web::get().to(admin::list_organisations)),
        )
        .service(
            resource("/v1/organisations/{id}/keys")
                .route(web::post().to(admin::create_key))
                .route(web::get().to(admin::list_keys)),
        )
        .service(resource("/v1/keys/{id}").route(web::delete().to(admin::revoke_key)));
}

/// Partners' uploads, consent and report.
fn history_routes(config: &mut web::ServiceConfig) {
    config
        .service(
            resource("/v1/history")
                .route(web::post().to(history::upload))
                .route(web::get().to(history::list_uploads)),
        )
        .service(resource("/v1/history/{id}").route(web::delete().to(history::erase)))
        .service(resource("/v1/history/{id}/export").route(web::get().to(history::export)))
        .service(resource("/v1/partners/me").route(web::get().to(history::me)))
        .service(resource("/v1/partners/me/report").route(web::get().to(history::report)))
        .service(resource("/v1/partners/me/consent").route(web::put().to(history::set_consent)));
}

/// The served model and training.
fn model_routes(config: &mut web::ServiceConfig) {
    config
        .service(resource("/v1/models").route(web::get().to(models::list_models)))
        .service(resource("/v1/models/train").route(web::post().to(models::train)))
        .service(resource("/v1/models/jobs/{id}").route(web::get().to(models::job)))
        .service(resource("/v1/models/{version}/activate").route(web::post().to(models::activate)));
}

/// The operations panel, health, metrics and the API's own document.
fn operation_routes(config: &mut web::ServiceConfig) {
    config
        .service(resource("/v1/operations").route(web::get().to(operations::operations)))
        .service(resource("/healthz").route(web::get().to(health::healthz)))
        .service(resource("/readyz").route(web::get().to(health::readyz)))
        .service(resource("/metrics").route(web::get().to(health::metrics)))
        .service(resource("/openapi.json").route(web::get().to(openapi::openapi)))
        .service(resource("/docs").route(web::get().to(docs::page)))
        .service(resource("/docs/docs.js").route(web::get().to(docs::start)))
        .service(resource("/docs/redoc.js").route(web::get().to(docs::redoc)));
}

/// A resource that answers a wrong method with the JSON error body, not an empty 405.
fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(|| async {
        Err::<String, _>(ApiError::MethodNotAllowed)
    }))
}

/// For paths no route matches.
pub async fn not_found() -> Result<String, ApiError> {
    Err(ApiError::NotFound)
}

/// Counts and times every request by route template, so labels stay bounded.
pub async fn track_requests(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = request
        .app_data::<web::Data<AppState>>()
        .map(|state| state.metrics.clone());
    let method = bounded_method(request.method());
    let route = route_template(&request);
    let started = Instant::now();
    let response = next.call(request).await;
    if let Some(metrics) = metrics {
        // A request cut short by its deadline arrives here as an error, not a response.
        let status = match &response {
            Ok(response) => response.status(),
            Err(error) => error.as_response_error().status_code(),
        };
        let status = status.as_u16().to_string();
        metrics
            .http_requests
            .with_label_values(&[method, route.as_str(), status.as_str()])
            .inc();
        metrics
            .http_request_duration
            .with_label_values(&[method, route.as_str()])
            .observe(started.elapsed().as_secs_f64());
    }
    response
}

/// The template of the route a request matched (`/v1/shipments/{id}`), never its path: metric
/// labels stay bounded, and the tokens some paths carry stay out of the logs.
pub(crate) fn route_template(request: &ServiceRequest) -> String {
    request
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned())
}

/// HTTP allows any token as a method; only the standard ones become label values.
fn bounded_method(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
