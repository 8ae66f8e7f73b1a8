//! The consignee's tracking link: `POST /v1/shipments/{id}/share` makes one, `DELETE
//! /v1/shipments/{id}/share/{share_id}` revokes it, and `GET /track/{token}` (a page, in French
//! or English) and `GET /track/{token}/eta.json` (its refresh) answer anyone holding the token,
//! without a key.
//!
//! What the public side shows is the consignee's view alone: each stop's ETA, its P10 to P90
//! band, its window and risk, and the shipment's status; the truck's position only when the
//! link was made with `"position": true` (EU practice: not without the carrier's agreement).
//! Never the reference, the vehicle, the organisation or the factors. A token names its link,
//! and its link one shipment: nothing in the URL can point it at another.

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::ids::new_id;
use crate::http::api::access::FLEET;
use crate::http::api::body::{parse_json, parse_query, read_limited};
use crate::http::api::dto::{stamp, WindowDto};
use crate::http::api::error::{ApiError, ErrorBody};
use crate::http::api::estimates::{LivePosition, LiveRisk, LiveStopState};
use crate::http::api::track_page;
use crate::http::api::{answer, base_url, blocking, no_content, revoke, storage, AppState};
use crate::partners::keys::Caller;
use crate::tracking::eta::Snapshot;
use crate::tracking::sharing::{token_sha256, Access, Language, NewToken, ShareLink};
use crate::tracking::shipment::Shipment;
use crate::tracking::tracker::TrackError;

const DEFAULT_HOURS: i64 = 72;
const MAX_HOURS: i64 = 720;
/// The length of the tokens this service issues: anything else is not looked up.
const TOKEN_LEN: usize = 64;

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// How long the link opens the page, 1 to 720 hours; 72 when absent.
    #[schema(example = 72, minimum = 1, maximum = 720)]
    pub expires_in_hours: Option<i64>,
    /// Whether the page shows the truck's last position; false when absent.
    #[serde(default)]
    pub position: bool,
    /// The page's language, `fr` or `en`; `fr` when absent. A visitor may ask `?lang=`.
    #[schema(example = "fr")]
    pub language: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ShareResponse {
    /// Revoke the link with it.
    pub id: String,
    /// The public page; its token is shown this once, the service keeps only a digest.
    pub url: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// What the public page and its refresh show.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PublicTracking {
    /// `planned`, `in_transit`, `delivered` or `cancelled`.
    pub status: String,
    /// When the estimate shown was computed; absent before the first.
    pub updated_at: Option<DateTime<Utc>>,
    pub stops: Vec<PublicStop>,
    /// The truck's last position: only on a link made with `"position": true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<LivePosition>,
    /// `fr` or `en`.
    pub language: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PublicStop {
    pub index: usize,
    pub id: String,
    pub state: LiveStopState,
    /// The predicted arrival, or the actual one once the truck is there.
    pub eta: Option<DateTime<Utc>>,
    pub eta_p10: Option<DateTime<Utc>>,
    pub eta_p90: Option<DateTime<Utc>>,
    pub window: Option<WindowDto>,
    pub severity: Option<LiveRisk>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// `fr` or `en`: the page in this language rather than the link's.
    pub lang: Option<String>,
}

/// Make a tracking link for the shipment's consignee.
#[utoipa::path(
    post,
    path = "/v1/shipments/{id}/share",
    tag = "shipments",
    request_body = ShareRequest,
    params(("id" = String, Path, description = "The shipment's id")),
    responses(
        (status = 201, description = "The link; its URL is shown this once", body = ShareResponse),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "No such shipment", body = ErrorBody),
    )
)]
pub async fn create_share(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(FLEET)?;
    let body = read_limited(payload, state.settings.max_body_bytes).await?;
    let terms = ShareRequest::of_body(&body)?.terms()?;
    let base = base_url(&request);
    answer(state, StatusCode::CREATED, move |state| {
        share(state, organisation, &id, terms, &base)
    })
    .await
}

/// What a link is made with, checked.
struct ShareTerms {
    hours: i64,
    position: bool,
    language: Language,
}

impl ShareRequest {
    /// The request a body holds; an empty body takes every default.
    fn of_body(body: &[u8]) -> Result<Self, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        parse_json(body)
    }

    fn terms(self) -> Result<ShareTerms, ApiError> {
        let hours = self.expires_in_hours.unwrap_or(DEFAULT_HOURS);
        if !(1..=MAX_HOURS).contains(&hours) {
            return Err(ApiError::out_of_range(
                "expires_in_hours",
                format!("expires_in_hours must be between 1 and {MAX_HOURS}"),
            ));
        }
        let language = match self.language.as_deref() {
            None => Language::Fr,
            Some(text) => Language::parse(text)
                .ok_or_else(|| ApiError::invalid_value("language", "language must be fr or en"))?,
        };
        Ok(ShareTerms {
            hours,
            position: self.position,
            language,
        })
    }
}

/// Makes and keeps a link to the organisation's shipment `shipment_id`. The store keeps the
/// token's digest; the token itself is in the answer's URL, on `base`, alone.
fn share(
    state: &AppState,
    organisation: String,
    shipment_id: &str,
    terms: ShareTerms,
    base: &str,
) -> Result<ShareResponse, ApiError> {
    let shipment = state.tracker.shipment(&organisation, shipment_id)?;
    let now = state.tracker.now();
    let token = NewToken::generate();
    let link = ShareLink {
        id: new_id("shr"),
        organisation,
        shipment_id: shipment.id,
        position: terms.position,
        language: terms.language,
        created_at: now,
        expires_at: now + TimeDelta::hours(terms.hours),
        revoked_at: None,
    };
    state
        .store
        .insert_share_link(&link, &token.sha256)
        .map_err(storage)?;
    Ok(ShareResponse {
        url: format!("{base}/track/{}", token.token),
        expires_at: stamp(link.expires_at),
        id: link.id,
    })
}

/// Revoke a tracking link: its page answers 410 from now on.
#[utoipa::path(
    delete,
    path = "/v1/shipments/{id}/share/{share_id}",
    tag = "shipments",
    params(
        ("id" = String, Path, description = "The shipment's id"),
        ("share_id" = String, Path, description = "The link's id"),
    ),
    responses(
        (status = 204, description = "Revoked (again, if it already was)"),
        (status = 404, description = "No such link of this shipment", body = ErrorBody),
    )
)]
pub async fn revoke_share(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(FLEET)?;
    let (shipment_id, share_id) = path.into_inner();
    let store = state.store.clone();
    let now = state.tracker.now();
    no_content(move || {
        let mut link = store
            .share_link(&organisation, &shipment_id, &share_id)
            .map_err(storage)?
            .ok_or(ApiError::NotFound)?;
        if revoke(&mut link.revoked_at, now) {
            store.save_share_link(&link).map_err(storage)?;
        }
        Ok(())
    })
    .await
}

/// The consignee's page (no key): the stops' ETAs, bands, windows and the status.
#[utoipa::path(
    get,
    path = "/track/{token}",
    tag = "shipments",
    params(("token" = String, Path, description = "The link's token"), PageQuery),
    responses(
        (status = 200, description = "The page", body = String, content_type = "text/html"),
        (status = 404, description = "No such link", body = String, content_type = "text/html"),
        (status = 410, description = "The link expired or was revoked", body = String, content_type = "text/html"),
    )
)]
pub async fn public_page(
    state: web::Data<AppState>,
    token: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let asked = parse_query::<PageQuery>(&request)
        .ok()
        .and_then(|query| query.lang)
        .and_then(|text| Language::parse(&text));
    let token = token.into_inner();
    let visited = blocking(move || visit(&state, &token)).await?;
    let (status, html) = match &visited {
        Visit::Unknown => (
            StatusCode::NOT_FOUND,
            track_page::unknown(asked.unwrap_or(Language::Fr)),
        ),
        Visit::Closed(link, access) => (
            StatusCode::GONE,
            track_page::closed(asked.unwrap_or(link.language), *access),
        ),
        Visit::Open(link, tracking) => (
            StatusCode::OK,
            track_page::open(asked.unwrap_or(link.language), tracking),
        ),
    };
    Ok(public(HttpResponse::build(status))
        .content_type("text/html; charset=utf-8")
        .body(html))
}

/// The page's refresh (no key).
#[utoipa::path(
    get,
    path = "/track/{token}/eta.json",
    tag = "shipments",
    params(("token" = String, Path, description = "The link's token")),
    responses(
        (status = 200, description = "What the page shows", body = PublicTracking),
        (status = 404, description = "No such link", body = ErrorBody),
        (status = 410, description = "The link expired or was revoked", body = ErrorBody),
    )
)]
pub async fn public_eta(
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let token = token.into_inner();
    match blocking(move || visit(&state, &token)).await? {
        Visit::Unknown => Err(ApiError::NotFound),
        Visit::Closed(_, access) => Ok(public(HttpResponse::Gone()).json(ErrorBody {
            code: "gone".into(),
            message: match access {
                Access::Revoked => "this tracking link was revoked".into(),
                Access::Expired | Access::Open => "this tracking link has expired".into(),
            },
            field: None,
        })),
        Visit::Open(_, tracking) => Ok(public(HttpResponse::Ok()).json(tracking)),
    }
}

/// A public answer: never cached, never indexed, and the token in its URL never sent on as a
/// referrer.
fn public(mut response: HttpResponseBuilder) -> HttpResponseBuilder {
    response
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("X-Robots-Tag", "noindex"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; connect-src 'self'; \
             style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'",
        ));
    response
}

enum Visit {
    Unknown,
    Closed(ShareLink, Access),
    Open(ShareLink, Box<PublicTracking>),
}

fn visit(state: &AppState, token: &str) -> Result<Visit, ApiError> {
    if token.len() != TOKEN_LEN || !token.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Ok(Visit::Unknown);
    }
    let Some(link) = state
        .store
        .share_link_by_token(&token_sha256(token))
        .map_err(storage)?
    else {
        return Ok(Visit::Unknown);
    };
    let access = link.access(state.tracker.now());
    if access != Access::Open {
        return Ok(Visit::Closed(link, access));
    }
    let shipment = match state
        .tracker
        .shipment(&link.organisation, &link.shipment_id)
    {
        Ok(shipment) => shipment,
        Err(TrackError::NotFound) => return Ok(Visit::Unknown),
        Err(error) => return Err(error.into()),
    };
    let snapshot = match state.tracker.current(&link.organisation, &link.shipment_id) {
        Ok(snapshot) => Some(snapshot),
        Err(TrackError::NotFound) => None,
        Err(error) => return Err(error.into()),
    };
    let tracking = public_tracking(&link, &shipment, snapshot.as_ref());
    Ok(Visit::Open(link, Box::new(tracking)))
}

/// The consignee's view, built field by field so that nothing else can slip in.
fn public_tracking(
    link: &ShareLink,
    shipment: &Shipment,
    snapshot: Option<&Snapshot>,
) -> PublicTracking {
    let stops = shipment
        .stops
        .iter()
        .enumerate()
        .map(|(index, stop)| {
            let estimate = snapshot
                .and_then(|snapshot| snapshot.stops.iter().find(|stop| stop.index == index));
            PublicStop {
                index,
                id: stop.id.clone(),
                state: estimate.map_or(LiveStopState::Pending, |estimate| estimate.state.into()),
                eta: estimate.map(|estimate| estimate.eta),
                eta_p10: estimate.map(|estimate| estimate.eta_p10),
                eta_p90: estimate.map(|estimate| estimate.eta_p90),
                window: stop.window.map(WindowDto::from),
                severity: estimate.and_then(|estimate| estimate.severity.map(LiveRisk::from)),
            }
        })
        .collect();
    let position = if link.position {
        snapshot.and_then(|snapshot| snapshot.position.map(LivePosition::from))
    } else {
        None
    };
    PublicTracking {
        status: shipment.status.as_str().into(),
        updated_at: snapshot.map(|snapshot| snapshot.computed_at),
        stops,
        position,
        language: link.language.as_str().into(),
        expires_at: link.expires_at,
    }
}
