//! `POST /v1/eta` and `POST /v1/eta/batch`.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, TimeDelta, Utc};

use crate::config::ApiSettings;
use crate::domain::bans::BanRules;
use crate::domain::clock::Clock;
use crate::domain::correction::Correction;
use crate::domain::eta::EtaQuery;
use crate::domain::explain::{self, Adjustment, Facts, Step};
use crate::domain::forecast::Answer;
use crate::http::api::access::FLEET;
use crate::http::api::body::{parse_json, read_json};
use crate::http::api::dto::{
    BatchItem, BatchRequest, BatchResponse, EtaRequest, EtaResponse, ReasonDto,
};
use crate::http::api::error::{ApiError, ErrorBody};
use crate::http::api::{blocking, AppState};
use crate::partners::keys::Caller;

/// One ETA.
#[utoipa::path(
    post,
    path = "/v1/eta",
    tag = "eta",
    request_body = EtaRequest,
    responses(
        (status = 200, description = "The estimate", body = EtaResponse),
        (status = 400, description = "Malformed or invalid request", body = ErrorBody),
        (status = 413, description = "Body over the size limit", body = ErrorBody),
    )
)]
#[tracing::instrument(name = "eta", skip_all)]
pub async fn eta(
    state: web::Data<AppState>,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(FLEET)?;
    let request: EtaRequest = read_json(payload, state.settings.max_body_bytes).await?;
    let response = estimate_one(&state, request, organisation, state.clock.now()).await?;
    count_prediction(&state, &response);
    Ok(HttpResponse::Ok().json(response))
}

/// Many ETAs at once; one bad request fails only its own item.
#[utoipa::path(
    post,
    path = "/v1/eta/batch",
    tag = "eta",
    request_body = BatchRequest,
    responses(
        (status = 200, description = "One result per request, in order", body = BatchResponse),
        (status = 400, description = "The envelope is malformed", body = ErrorBody),
        (status = 413, description = "Body over the size limit", body = ErrorBody),
        (status = 422, description = "More requests than a batch may hold", body = ErrorBody),
    )
)]
#[tracing::instrument(name = "eta_batch", skip_all, fields(n_requests))]
pub async fn eta_batch(
    state: web::Data<AppState>,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(FLEET)?;
    let batch: BatchRequest = read_json(payload, state.settings.max_batch_body_bytes).await?;
    let explain = batch.factors;
    let (parsed, queries) = check_batch(&state, batch).await?;
    prefetch(&state, &queries).await;
    let worker_state = state.clone();
    // Ten thousand estimates take long enough to stall the worker's other connections.
    let results = blocking(move || {
        Ok(estimate_all(
            &worker_state,
            &organisation,
            parsed,
            queries,
            explain,
        ))
    })
    .await?;
    for item in &results {
        if let BatchItem::Eta(response) = item {
            count_prediction(&state, response);
        }
    }
    Ok(HttpResponse::Ok().json(BatchResponse { results }))
}

/// The batch within its limit, each item checked on the blocking pool (a bad one fails only
/// itself); with the queries of those that passed, in order.
async fn check_batch(
    state: &web::Data<AppState>,
    batch: BatchRequest,
) -> Result<(Vec<Result<Parsed, ApiError>>, Vec<EtaQuery>), ApiError> {
    let n_requests = batch.requests.len();
    tracing::Span::current().record("n_requests", n_requests);
    if n_requests > state.settings.max_batch_requests {
        return Err(ApiError::BatchTooLarge {
            limit: state.settings.max_batch_requests,
            count: n_requests,
        });
    }
    state
        .metrics
        .batch_size
        .with_label_values(&[] as &[&str])
        .observe(n_requests as f64);
    let (now, settings) = (state.clock.now(), state.settings.clone());
    let parsed = blocking(move || {
        Ok(batch
            .requests
            .into_iter()
            .map(|item| check_item(&item, now, &settings))
            .collect::<Vec<_>>())
    })
    .await?;
    let queries = parsed
        .iter()
        .filter_map(|item| item.as_ref().ok().map(|(query, _)| query.clone()))
        .collect();
    Ok((parsed, queries))
}

/// One batch item, read and checked into a query.
fn check_item(
    item: &serde_json::value::RawValue,
    now: DateTime<Utc>,
    settings: &ApiSettings,
) -> Result<Parsed, ApiError> {
    let request = parse_json::<EtaRequest>(item.get().as_bytes())?;
    if request.factors {
        return Err(ApiError::invalid_value(
            "factors",
            "a batch lists factors for all its requests or none: set \"factors\" on the batch",
        ));
    }
    let stop_ids = request.stops.iter().map(|stop| stop.id.clone()).collect();
    Ok((request.into_query(now, settings)?, stop_ids))
}

/// The estimates of the items that passed their checks, in one batch call, each in its
/// item's place; the others keep their error.
fn estimate_all(
    state: &AppState,
    organisation: &str,
    parsed: Vec<Result<Parsed, ApiError>>,
    queries: Vec<EtaQuery>,
    explain: bool,
) -> Vec<BatchItem> {
    let mut answers = state
        .forecaster
        .answer_batch(organisation, queries, explain)
        .into_iter();
    let bans = state.training_rules.bans().rules();
    parsed
        .into_iter()
        .map(|item| match item {
            Ok((_, stop_ids)) => {
                let answer = answers.next().expect("one answer per query");
                BatchItem::Eta(Box::new(on_the_wire(answer, stop_ids, bans)))
            }
            Err(error) => BatchItem::Error {
                error: error.body(),
            },
        })
        .collect()
}

fn count_prediction(state: &AppState, response: &EtaResponse) {
    state
        .metrics
        .predictions
        .with_label_values(&[response.model.name.as_str()])
        .inc();
}

/// A batch item that passed its checks: the query and the caller's stop ids.
type Parsed = (EtaQuery, Vec<Option<String>>);

/// The answer on the wire, with its reasons in words.
fn on_the_wire(answer: Answer, stop_ids: Vec<Option<String>>, bans: &BanRules) -> EtaResponse {
    let explanation = explanation(&answer, bans);
    let mut response = EtaResponse::new(&answer.query, stop_ids, answer.estimate, &answer.degraded);
    response.explanation = explanation;
    response
}

/// The reasons of an answer: its plan's steps, the model's factors and what the arrivals
/// taught about the caller's estimates.
fn explanation(answer: &Answer, bans: &BanRules) -> Vec<ReasonDto> {
    let estimate = &answer.estimate;
    let steps: Vec<Step> = estimate.timeline.segments.iter().map(Step::from).collect();
    let factors: Vec<(&str, f64)> = estimate
        .factors
        .iter()
        .map(|factor| (factor.feature, factor.minutes))
        .collect();
    let correction = (answer.correction != Correction::NONE).then(|| Adjustment {
        share: answer.correction.factor - 1.0,
        minutes: (estimate.band.p50 - answer.model_band.p50).num_seconds() as f64 / 60.0,
    });
    explain::explain(&Facts {
        steps: &steps,
        factors: &factors,
        correction,
        bans,
    })
    .into_iter()
    .map(ReasonDto::from)
    .collect()
}

/// Waits for what the feeds lack for these queries, as long as the settings allow.
async fn prefetch(state: &AppState, queries: &[EtaQuery]) {
    if state.feeds.active() {
        state
            .feeds
            .prefetch(queries, Clock::System.now(), state.feeds.wait())
            .await;
    }
}

/// One request's estimate, once the feeds have what it needs.
async fn estimate_one(
    state: &web::Data<AppState>,
    request: EtaRequest,
    organisation: String,
    now: DateTime<Utc>,
) -> Result<EtaResponse, ApiError> {
    let stop_ids = request.stops.iter().map(|stop| stop.id.clone()).collect();
    let explain = request.factors;
    let query = request.into_query(now, &state.settings)?;
    prefetch(state, std::slice::from_ref(&query)).await;
    let forecaster = state.forecaster.clone();
    let rules = state.training_rules.clone();
    let respond = move || {
        let answer = forecaster.answer(&organisation, query, TimeDelta::zero(), explain);
        on_the_wire(answer, stop_ids, rules.bans().rules())
    };
    if !explain {
        // Some 60 µs: cheaper on this worker than a hop to the blocking pool.
        return Ok(respond());
    }
    // The factors take milliseconds: off the worker that serves other connections.
    blocking(move || Ok(respond())).await
}
