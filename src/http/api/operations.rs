//! `GET /v1/operations`: what a dispatcher's operations panel shows, for the caller's
//! organisation only: the model serving its trips, how its pings come in, how accurate its
//! live ETAs were, and the state of the external feeds.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::clock::Clock;
use crate::domain::eta::RULES_MODEL_NAME;
use crate::http::api::access::PANEL;
use crate::http::api::dto::stamp;
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
    /// What the organisation's arrivals taught, applied to each of its ETAs at that horizon:
    /// only horizons with enough scored estimates are listed.
    pub corrections: Vec<CorrectionDto>,
    /// Each configured external feed.
    pub feeds: Vec<FeedDto>,
}

/// A correction of the organisation's answers at one horizon, and what it does on the scored
/// estimates it learnt from.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CorrectionDto {
    /// `0-1h`, `1-4h`, `4-12h` or `12h+` before the predicted arrival.
    pub horizon: String,
    /// Scored estimates it learnt from.
    pub estimates: usize,
    /// The time still to go is multiplied by this (1.1: trips run 10% longer than the model
    /// says).
    pub factor: f64,
    /// The band's half-widths are multiplied by this after the factor.
    pub widen: f64,
    /// Mean of arrival minus median, in minutes, on those estimates: as the model gave them,
    /// then corrected.
    pub bias_minutes_before: f64,
    pub bias_minutes_after: f64,
    /// The share of those arrivals inside the P10 to P90 band, before and after.
    pub coverage_before: f64,
    pub coverage_after: f64,
}

impl From<&crate::domain::correction::GroupCorrection> for CorrectionDto {
    fn from(group: &crate::domain::correction::GroupCorrection) -> Self {
        let round = |value: f64, places: i32| {
            let scale = 10f64.powi(places);
            (value * scale).round() / scale
        };
        Self {
            horizon: group.horizon.to_owned(),
            estimates: group.correction.estimates,
            factor: round(group.correction.factor, 4),
            widen: round(group.correction.widen, 4),
            bias_minutes_before: round(group.bias_minutes.0, 1),
            bias_minutes_after: round(group.bias_minutes.1, 1),
            coverage_before: round(group.coverage.0, 3),
            coverage_after: round(group.coverage.1, 3),
        }
    }
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
            as_of: stamp(now),
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
            corrections: state
                .tracker
                .corrections()
                .of(&organisation)
                .iter()
                .map(CorrectionDto::from)
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
