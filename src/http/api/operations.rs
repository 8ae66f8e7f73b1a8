//! `GET /v1/operations`: what a dispatcher's operations panel shows, for the caller's
//! organisation only: the model serving its trips, how its pings come in, how accurate its
//! live ETAs were, and the state of the external feeds.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::SecondsFormat;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::clock::Clock;
use crate::domain::eta::RULES_MODEL_NAME;
use crate::http::api::access::PANEL;
use crate::http::api::error::{ApiError, ErrorBody};
use crate::http::api::tracking::HorizonAccuracyDto;
use crate::http::api::{answer, AppState};
use crate::partners::keys::Caller;

/// Delivered shipments the accuracy is measured on, newest first.
const ACCURACY_SHIPMENTS: usize = 500;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OperationsResponse {
    #[schema(format = DateTime)]
    pub as_of: String,
    /// The model answering the organisation's ETAs (`rules` when none is loaded).
    pub model_version: String,
    pub fallback: bool,
    /// Pings accepted from the organisation since the service started: two readings give
    /// the ingestion rate.
    pub pings_received: u64,
    pub shipments_in_transit: usize,
    pub shipments_planned: usize,
    /// Mean absolute error of the live ETAs of its delivered shipments, by how long before
    /// the arrival they were given.
    pub accuracy: Vec<HorizonAccuracyDto>,
    /// Each configured external feed.
    pub feeds: Vec<FeedDto>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeedDto {
    /// `weather`, `traffic` or `routing`.
    pub feed: String,
    pub circuit_open: bool,
    pub data_age_seconds: Option<f64>,
}

/// The organisation's operations at a glance.
#[utoipa::path(
    get,
    path = "/v1/operations",
    tag = "shipments",
    responses(
        (status = 200, description = "The figures", body = OperationsResponse),
        (status = 401, description = "No or unknown key", body = ErrorBody),
    )
)]
pub async fn operations(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(PANEL)?;
    let now = state.clock.now();
    answer(state, StatusCode::OK, move |state| {
        let (model_version, fallback) = match state.model_eta.serving(Some(&organisation)) {
            Some(served) => (served.version.clone(), false),
            None => (RULES_MODEL_NAME.to_owned(), true),
        };
        let pings_received = state.tracker.received(&organisation);
        let overview = state.tracker.overview(&organisation, ACCURACY_SHIPMENTS)?;
        Ok(OperationsResponse {
            as_of: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            model_version,
            fallback,
            pings_received,
            shipments_in_transit: overview.in_transit,
            shipments_planned: overview.planned,
            accuracy: overview
                .accuracy
                .iter()
                .map(HorizonAccuracyDto::from)
                .collect(),
            feeds: feeds(state),
        })
    })
    .await
}

/// Each feed's circuit and the age of its data.
fn feeds(state: &AppState) -> Vec<FeedDto> {
    state
        .feeds
        .status(Clock::System.now())
        .into_iter()
        .map(|status| FeedDto {
            feed: status.feed.to_owned(),
            circuit_open: status.circuit_open,
            data_age_seconds: status.data_age_seconds,
        })
        .collect()
}
