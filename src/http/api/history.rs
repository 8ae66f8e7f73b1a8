//! Partners' history: `/v1/history` uploads and `/v1/partners/me` consent.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::ids::new_id;
use crate::http::api::access::PARTNER;
use crate::http::api::body::{parse_query, read_json};
use crate::http::api::dto::stamp;
use crate::http::api::error::{ApiError, ErrorBody};
use crate::http::api::operations::CorrectionDto;
use crate::http::api::reports::PartnerReportResponse;
use crate::http::api::{answer, blocking, found, listed, storage, AppState};
use crate::ml::history::files::ReadLimits;
use crate::ml::history::ValidationReport;
use crate::partners::keys::Caller;
use crate::partners::uploads::Consent;
use crate::partners::uploads::{
    Committed, Incoming, Upload, UploadArea, UploadError, UploadFormat,
};
use crate::training::jobs::newest_partner_report;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UploadDto {
    pub id: String,
    /// `csv`, `csv_gz` or `parquet`, as it came in; the export gives it back so.
    pub format: String,
    /// Trips kept, and trips left out as invalid (only with `skip_bad_rows`).
    pub rows: usize,
    pub skipped_rows: usize,
    /// The span of the trips' departures.
    #[schema(format = DateTime)]
    pub first_departure: Option<String>,
    #[schema(format = DateTime)]
    pub last_departure: Option<String>,
    /// Of the bytes received: the same content twice is one upload.
    pub sha256: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProblemDto {
    /// The record, from 1 without the header; absent for a whole column.
    pub row: Option<usize>,
    pub column: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UploadResponse {
    pub upload: UploadDto,
    /// False when the same content was already uploaded: this is that upload.
    pub created: bool,
    /// With `on_error=skip`: the rows left out and why (the first 100).
    pub problems: Vec<ProblemDto>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErasedResponse {
    pub id: String,
    /// Models (served or listed) whose training data held this upload: they keep what they
    /// learnt until retrained; no later training reads it.
    pub trained_models: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// `reject` (default: any bad row refuses the whole file) or `skip` (keep the good rows).
    pub on_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    /// Whether the organisation's rows may train the pooled model.
    pub pool: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PartnerDto {
    pub organisation: String,
    /// False until the partner says otherwise: nothing pools without consent.
    pub pool: bool,
    pub consent_updated_at: Option<String>,
    pub uploads: usize,
    pub rows: usize,
}

impl From<&Upload> for UploadDto {
    fn from(upload: &Upload) -> Self {
        Self {
            id: upload.id.clone(),
            format: match upload.format {
                UploadFormat::Csv => "csv",
                UploadFormat::CsvGz => "csv_gz",
                UploadFormat::Parquet => "parquet",
            }
            .into(),
            rows: upload.rows,
            skipped_rows: upload.skipped_rows,
            first_departure: upload.first_departure.map(stamp),
            last_departure: upload.last_departure.map(stamp),
            sha256: upload.sha256.clone(),
            created_at: stamp(upload.created_at),
        }
    }
}

fn problems(report: &ValidationReport) -> Vec<ProblemDto> {
    report
        .problems
        .iter()
        .map(|problem| ProblemDto {
            row: problem.row,
            column: problem.column.clone(),
            reason: problem.reason.clone(),
        })
        .collect()
}

/// Upload a trips table (CSV, gzip CSV or Parquet) in the history format.
#[utoipa::path(
    post,
    path = "/v1/history",
    tag = "history",
    params(UploadQuery),
    request_body(content = Vec<u8>, description = "A trips table: CSV, gzip CSV or Parquet", content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Kept, whole (or its good rows with on_error=skip)", body = UploadResponse),
        (status = 200, description = "The same content was already uploaded", body = UploadResponse),
        (status = 400, description = "Unreadable file or bad parameter", body = ErrorBody),
        (status = 413, description = "Over the size limit, or decompressing past its own limit", body = ErrorBody),
        (status = 422, description = "Rows refused; nothing kept. The body lists the problems", body = ErrorBody),
    )
)]
pub async fn upload(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(PARTNER)?;
    let skip = parse_query::<UploadQuery>(&request)?.skip_bad_rows()?;
    let id = new_id("upl");
    let area = upload_area(&state);
    let mut incoming = area.begin(&organisation, &id).map_err(storage)?;
    let limit = state.settings.max_upload_bytes as u64;
    if let Err(error) = receive(&mut payload, &mut incoming, limit).await {
        incoming.abandon();
        return Err(error);
    }
    let store = state.store.clone();
    let now = state.clock.now();
    let committed =
        blocking(
            move || match area.commit(&*store, incoming, &id, &organisation, skip, now) {
                Ok(committed) => Ok(Ok(committed)),
                Err(UploadError::Invalid(report)) => Ok(Err(Refusal::Rows(report))),
                Err(UploadError::TooLarge(reason)) => Ok(Err(Refusal::TooLarge(reason))),
                Err(UploadError::Unreadable(reason)) => Err(ApiError::BadPayload(reason)),
                Err(error @ UploadError::Storage(_)) => Err(storage(error)),
            },
        )
        .await?;
    Ok(upload_answer(committed))
}

/// Where uploads are received, read within the configured bounds.
fn upload_area(state: &AppState) -> UploadArea {
    UploadArea::new(&state.data_dir).with_read_limits(ReadLimits {
        max_decompressed_bytes: state.settings.max_upload_decompressed_bytes,
        ..ReadLimits::default()
    })
}

/// Why an upload that arrived whole was not kept.
enum Refusal {
    Rows(ValidationReport),
    TooLarge(String),
}

/// The answer to an upload that arrived whole: kept, known, or refused and why.
fn upload_answer(committed: Result<Committed, Refusal>) -> HttpResponse {
    match committed {
        Ok(Committed::New(upload, report)) => {
            HttpResponse::Created().json(UploadResponse::of(&upload, true, &report))
        }
        Ok(Committed::Known(upload)) => HttpResponse::Ok().json(UploadResponse::of(
            &upload,
            false,
            &ValidationReport::default(),
        )),
        Err(Refusal::Rows(report)) => HttpResponse::UnprocessableEntity().json(refused(&report)),
        Err(Refusal::TooLarge(reason)) => HttpResponse::PayloadTooLarge().json(ErrorBody {
            code: "payload_too_large".into(),
            // The body's own limit has its message; this one says which bound the reading met.
            message: format!("{reason}, over the limit for an upload; nothing was kept"),
            field: None,
        }),
    }
}

impl UploadQuery {
    fn skip_bad_rows(&self) -> Result<bool, ApiError> {
        match self.on_error.as_deref() {
            None | Some("reject") => Ok(false),
            Some("skip") => Ok(true),
            Some(_) => Err(ApiError::invalid_value(
                "on_error",
                "on_error must be reject or skip",
            )),
        }
    }
}

impl UploadResponse {
    fn of(upload: &Upload, created: bool, report: &ValidationReport) -> Self {
        Self {
            upload: UploadDto::from(upload),
            created,
            problems: problems(report),
        }
    }
}

/// The answer to an upload whose rows were refused: what was wrong, row by row.
fn refused(report: &ValidationReport) -> serde_json::Value {
    serde_json::json!({
        "code": "invalid_history",
        "message": format!(
            "{} problem(s) in {} row(s); nothing was kept",
            report.total, report.trip_rows
        ),
        "field": null,
        "total": report.total,
        "problems": problems(report),
    })
}

/// The body, chunk by chunk to disk: it never sits whole in memory here. Over `limit`
/// bytes, or cut short, nothing is kept.
async fn receive(
    payload: &mut web::Payload,
    incoming: &mut Incoming,
    limit: u64,
) -> Result<(), ApiError> {
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| ApiError::BadPayload(error.to_string()))?;
        if incoming.bytes() + chunk.len() as u64 > limit {
            return Err(ApiError::PayloadTooLarge {
                limit: limit as usize,
            });
        }
        incoming.write(&chunk).map_err(storage)?;
    }
    Ok(())
}

/// The organisation's uploads, oldest first.
#[utoipa::path(
    get,
    path = "/v1/history",
    tag = "history",
    responses((status = 200, description = "The uploads", body = Vec<UploadDto>))
)]
pub async fn list_uploads(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(PARTNER)?;
    answer(state, StatusCode::OK, move |state| {
        listed(state.store.uploads(Some(&organisation)), |upload| {
            UploadDto::from(upload)
        })
    })
    .await
}

/// The organisation's upload `id`: another organisation's is not found either.
async fn find(state: &AppState, organisation: String, id: String) -> Result<Upload, ApiError> {
    let store = state.store.clone();
    blocking(move || found(store.uploads(Some(&organisation)), |upload| upload.id == id)).await
}

/// An upload's kept rows, in the format it came in.
#[utoipa::path(
    get,
    path = "/v1/history/{id}/export",
    tag = "history",
    params(("id" = String, Path, description = "The upload")),
    responses(
        (status = 200, description = "The rows", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "No such upload", body = ErrorBody),
    )
)]
pub async fn export(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(PARTNER)?;
    let upload = find(&state, organisation, id.into_inner()).await?;
    let (area, kept) = (UploadArea::new(&state.data_dir), upload.clone());
    let bytes = blocking(move || area.export(&kept).map_err(storage)).await?;
    Ok(HttpResponse::Ok()
        .content_type(upload.format.content_type())
        .insert_header((
            "Content-Disposition",
            format!(
                "attachment; filename=\"{}.{}\"",
                upload.id,
                upload.format.extension()
            ),
        ))
        .body(bytes))
}

/// Erase an upload: its rows leave the store and every later training.
#[utoipa::path(
    delete,
    path = "/v1/history/{id}",
    tag = "history",
    params(("id" = String, Path, description = "The upload")),
    responses(
        (status = 200, description = "Erased; the models that had learnt from it", body = ErasedResponse),
        (status = 404, description = "No such upload", body = ErrorBody),
    )
)]
pub async fn erase(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(PARTNER)?;
    let id = find(&state, organisation.clone(), id.into_inner())
        .await?
        .id;
    answer(state, StatusCode::OK, move |state| {
        // The record goes first: from then on nothing can read the rows, and a crash before
        // the files go leaves a directory the next start sweeps away.
        state
            .store
            .delete_upload(&organisation, &id)
            .map_err(storage)?;
        UploadArea::new(&state.data_dir)
            .remove(&organisation, &id)
            .map_err(storage)?;
        Ok(ErasedResponse {
            trained_models: trained_on(state, &id),
            id,
        })
    })
    .await
}

/// The models whose training data held the upload `id`.
fn trained_on(state: &AppState, id: &str) -> Vec<String> {
    crate::training::registry::known_models(&state.model_dir, &state.data_dir)
        .into_iter()
        .filter(|(_, card)| {
            card.training
                .sources
                .iter()
                .any(|source| source.path.contains(id))
        })
        .map(|(_, card)| card.version)
        .collect()
}

/// The partner's own standing: consent and what it uploaded.
#[utoipa::path(
    get,
    path = "/v1/partners/me",
    tag = "history",
    responses((status = 200, description = "Consent and uploads", body = PartnerDto))
)]
pub async fn me(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(PARTNER)?;
    answer(state, StatusCode::OK, move |state| {
        partner(state, organisation)
    })
    .await
}

/// The partner's standing, read from the store: only on the blocking pool.
fn partner(state: &AppState, organisation: String) -> Result<PartnerDto, ApiError> {
    let consent = state.store.consent(&organisation).map_err(storage)?;
    let uploads = state.store.uploads(Some(&organisation)).map_err(storage)?;
    Ok(PartnerDto {
        pool: consent.as_ref().is_some_and(|consent| consent.pool),
        consent_updated_at: consent.map(|consent| stamp(consent.updated_at)),
        uploads: uploads.len(),
        rows: uploads.iter().map(|upload| upload.rows).sum(),
        organisation,
    })
}

/// Give or withdraw consent to pool: only consenting partners' rows train the pooled model.
#[utoipa::path(
    put,
    path = "/v1/partners/me/consent",
    tag = "history",
    request_body = ConsentRequest,
    responses(
        (status = 200, description = "Recorded", body = PartnerDto),
        (status = 400, description = "Invalid request", body = ErrorBody),
    )
)]
pub async fn set_consent(
    state: web::Data<AppState>,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(PARTNER)?;
    let request: ConsentRequest = read_json(payload, state.settings.max_body_bytes).await?;
    let consent = Consent {
        organisation: organisation.clone(),
        pool: request.pool,
        updated_at: state.clock.now(),
    };
    answer(state, StatusCode::OK, move |state| {
        state.store.set_consent(&consent).map_err(storage)?;
        partner(state, organisation)
    })
    .await
}

/// What the pool gives the partner: on its own later trips, the pooled model against a model
/// trained on its rows alone, from the latest trained model that learnt from it. About the
/// other partners, only how many there are and how many trips they brought.
#[utoipa::path(
    get,
    path = "/v1/partners/me/report",
    tag = "history",
    responses(
        (status = 200, description = "The report", body = PartnerReportResponse),
        (status = 404, description = "No trained model has learnt from this partner yet", body = ErrorBody),
    )
)]
pub async fn report(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(PARTNER)?;
    answer(state, StatusCode::OK, move |state| {
        let report = newest_partner_report(&state.model_dir, &state.data_dir, &organisation)
            .map_err(storage)?
            .ok_or(ApiError::NotFound)?;
        let corrections = state.tracker.corrections().of(&organisation);
        Ok(PartnerReportResponse::of(
            &report,
            corrections.iter().map(CorrectionDto::from).collect(),
        ))
    })
    .await
}
