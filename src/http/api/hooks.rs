//! `/v1/webhooks`: where the service announces ETA changes, late-risk changes and stop events.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::adapters::egress::{self, Unacceptable};
use crate::adapters::store::Store;
use crate::adapters::webhooks::{new_secret, replay_of, EVENTS};
use crate::adapters::webhooks::{Delivery, Dispatcher, Webhook};
use crate::domain::clock::Clock;
use crate::domain::ids::new_id;
use crate::http::api::access::WEBHOOKS;
use crate::http::api::body::read_json;
use crate::http::api::dto::stamp;
use crate::http::api::error::{ApiError, ErrorBody};
use crate::http::api::{answer, blocking, found, listed, no_content, storage, AppState};
use crate::partners::keys::Caller;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// Where deliveries are POSTed, `http` or `https`, on a public address: loopback, private,
    /// link-local and cloud metadata addresses are refused, and so are names of one label.
    #[schema(example = "https://tms.example.com/etape")]
    pub url: String,
    /// Among `eta_changed`, `late_risk_changed`, `arrived`, `departed`, `delivered`.
    pub events: Vec<String>,
    /// `eta_changed` is sent when a stop's ETA moved at least this much since the last one
    /// this webhook was sent.
    #[serde(default = "default_min_change")]
    #[schema(example = 10, minimum = 0)]
    pub min_change_minutes: f64,
}

fn default_min_change() -> f64 {
    5.0
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookDto {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub min_change_minutes: f64,
    /// False once a run of deliveries failed, or the receiver answered 410 Gone; create it
    /// again to resume.
    pub enabled: bool,
    pub consecutive_failures: u32,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When deliveries stopped, if they did.
    #[schema(format = DateTime)]
    pub disabled_at: Option<String>,
    /// Why: `the receiver answered 410 Gone`, or how many deliveries in a row failed.
    pub disabled_reason: Option<String>,
    /// Until then deliveries are signed with the secret the last rotation replaced too.
    #[schema(format = DateTime)]
    pub previous_secret_expires_at: Option<String>,
    /// The signing secret, `whsec_` and base64, given once: in the answer to the creation
    /// and to each rotation only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryDto {
    /// The delivery's id, sent as `webhook-id`: every attempt and replay of it shares it.
    pub id: String,
    pub event: String,
    /// 1 for the first try, then each retry and replay.
    pub attempt: u32,
    #[schema(format = DateTime)]
    pub at: String,
    /// `delivered`, `retrying` or `failed`.
    pub outcome: String,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<u16>,
    /// Why no answer came, when none did; `refused: private address` when the receiver's
    /// address is not public, and then nothing was tried.
    pub error: Option<String>,
    pub duration_ms: u64,
    /// Sent by `POST .../replay` rather than by the retries.
    pub replayed: bool,
}

impl WebhookDto {
    fn of(webhook: &Webhook, with_secret: bool) -> Self {
        Self {
            id: webhook.id.clone(),
            url: webhook.url.clone(),
            events: webhook.events.clone(),
            min_change_minutes: webhook.min_change_minutes,
            enabled: webhook.enabled,
            consecutive_failures: webhook.consecutive_failures,
            created_at: stamp(webhook.created_at),
            disabled_at: webhook.disabled_at.map(stamp),
            disabled_reason: webhook.disabled_reason.clone(),
            previous_secret_expires_at: webhook
                .previous_secret
                .as_ref()
                .map(|previous| stamp(previous.until)),
            secret: with_secret.then(|| webhook.secret.clone()),
        }
    }
}

impl From<Delivery> for DeliveryDto {
    fn from(delivery: Delivery) -> Self {
        Self {
            id: delivery.id,
            event: delivery.event,
            attempt: delivery.attempt,
            at: delivery.at.to_rfc3339_opts(SecondsFormat::Millis, true),
            outcome: delivery.outcome,
            status_code: delivery.status_code,
            error: delivery.error,
            duration_ms: delivery.duration_ms,
            replayed: delivery.replayed,
        }
    }
}

impl WebhookRequest {
    /// The URL, parsed, once every field is checked.
    fn check(&self) -> Result<reqwest::Url, ApiError> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|error| ApiError::out_of_range("url", format!("url is not a URL: {error}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ApiError::out_of_range(
                "url",
                "url must be an http or https URL with a host",
            ));
        }
        if self.events.is_empty() {
            return Err(ApiError::out_of_range(
                "events",
                "events must name at least one event",
            ));
        }
        for (index, event) in self.events.iter().enumerate() {
            if !EVENTS.contains(&event.as_str()) {
                return Err(ApiError::out_of_range(
                    &format!("events[{index}]"),
                    format!("unknown event {event:?}; events are {}", EVENTS.join(", ")),
                ));
            }
        }
        if !(0.0..=24.0 * 60.0).contains(&self.min_change_minutes) {
            return Err(ApiError::out_of_range(
                "min_change_minutes",
                "min_change_minutes must be between 0 and 1440",
            ));
        }
        Ok(url)
    }

    /// A new, enabled webhook of the organisation's, with its first secret.
    fn into_webhook(self, organisation: String, now: DateTime<Utc>) -> Webhook {
        let mut events = self.events;
        events.dedup();
        Webhook {
            id: new_id("whk"),
            organisation,
            url: self.url,
            events,
            min_change_minutes: self.min_change_minutes,
            secret: new_secret(),
            previous_secret: None,
            enabled: true,
            consecutive_failures: 0,
            created_at: now,
            disabled_at: None,
            disabled_reason: None,
        }
    }
}

/// Refuses a receiver on the service's own networks, every address its name resolves to
/// included: a caller could otherwise have the service call what only the service can reach.
async fn check_receiver(url: &reqwest::Url, timeout: Duration) -> Result<(), ApiError> {
    egress::check_destination(url, timeout)
        .await
        .map_err(|refusal| match refusal {
            Unacceptable::Private => ApiError::out_of_range(
                "url",
                "url must lead to a public address, not a private, loopback or metadata one",
            ),
            Unacceptable::Unresolved(reason) => {
                ApiError::out_of_range("url", format!("url's host does not resolve: {reason}"))
            }
        })
}

/// Subscribe a URL to events. The answer holds the signing secret, once.
#[utoipa::path(
    post,
    path = "/v1/webhooks",
    tag = "webhooks",
    request_body = WebhookRequest,
    responses(
        (status = 201, description = "Created, with its secret", body = WebhookDto),
        (status = 400, description = "Invalid request", body = ErrorBody),
    )
)]
pub async fn create_webhook(
    state: web::Data<AppState>,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(WEBHOOKS)?;
    let request: WebhookRequest = read_json(payload, state.settings.max_body_bytes).await?;
    let url = request.check()?;
    if !state.webhooks.allow_private_networks {
        check_receiver(&url, Duration::from_secs(state.webhooks.timeout_secs)).await?;
    }
    let webhook = request.into_webhook(organisation, state.clock.now());
    answer(state, StatusCode::CREATED, move |state| {
        state.store.insert_webhook(&webhook).map_err(storage)?;
        Ok(WebhookDto::of(&webhook, true))
    })
    .await
}

/// The organisation's webhooks, without their secrets.
#[utoipa::path(
    get,
    path = "/v1/webhooks",
    tag = "webhooks",
    responses((status = 200, description = "The webhooks", body = Vec<WebhookDto>))
)]
pub async fn list_webhooks(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(WEBHOOKS)?;
    answer(state, StatusCode::OK, move |state| {
        listed(state.store.webhooks(Some(&organisation)), |webhook| {
            WebhookDto::of(webhook, false)
        })
    })
    .await
}

/// Stop deliveries to a webhook.
#[utoipa::path(
    delete,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such webhook", body = ErrorBody),
    )
)]
pub async fn delete_webhook(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(WEBHOOKS)?;
    let store = state.store.clone();
    no_content(move || {
        let deleted = store.delete_webhook(&organisation, &id).map_err(storage)?;
        deleted.then_some(()).ok_or(ApiError::NotFound)
    })
    .await
}

/// One of the organisation's webhooks, without its secret: whether it is enabled, and why
/// not.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id")),
    responses(
        (status = 200, description = "The webhook", body = WebhookDto),
        (status = 404, description = "No such webhook", body = ErrorBody),
    )
)]
pub async fn get_webhook(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(WEBHOOKS)?;
    answer(state, StatusCode::OK, move |state| {
        let webhook = owned(state.store.as_ref(), &organisation, &id)?;
        Ok(WebhookDto::of(&webhook, false))
    })
    .await
}

/// The latest delivery attempts of a webhook, newest first.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}/deliveries",
    tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id")),
    responses(
        (status = 200, description = "Delivery attempts", body = Vec<DeliveryDto>),
        (status = 404, description = "No such webhook", body = ErrorBody),
    )
)]
pub async fn list_deliveries(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(WEBHOOKS)?;
    answer(state, StatusCode::OK, move |state| {
        owned(state.store.as_ref(), &organisation, &id)?;
        let deliveries = state.store.deliveries(&id, 200).map_err(storage)?;
        Ok(deliveries
            .into_iter()
            .map(DeliveryDto::from)
            .collect::<Vec<_>>())
    })
    .await
}

/// A new signing secret, given in the answer, once. For `webhooks.rotation_grace_secs`
/// (24 h) each delivery is signed with the new and the old secret, space-separated in
/// `webhook-signature`, so that the receiver can switch at its own pace.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/rotate-secret",
    tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id")),
    responses(
        (status = 200, description = "Rotated, with the new secret", body = WebhookDto),
        (status = 404, description = "No such webhook", body = ErrorBody),
    )
)]
pub async fn rotate_secret(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(WEBHOOKS)?;
    let grace = Duration::from_secs(state.webhooks.rotation_grace_secs);
    answer(state, StatusCode::OK, move |state| {
        let secret = new_secret();
        // The grace is judged when a delivery is signed, by the clock its timestamp comes
        // from: the system's.
        let now = Clock::System.now();
        let rotated = state
            .store
            .update_webhook(&organisation, &id, &mut |webhook: &mut Webhook| {
                webhook.rotate(secret.clone(), now, grace);
            })
            .map_err(storage)?
            .ok_or(ApiError::NotFound)?;
        tracing::info!(message = "Webhook secret rotated.", webhook = %rotated.id);
        Ok(WebhookDto::of(&rotated, true))
    })
    .await
}

/// Sends a recorded delivery again, now, as its next attempt: the same `webhook-id` and
/// body, a new `webhook-timestamp` and signatures. One attempt, no retry; the answer is that
/// attempt, whatever the receiver said. A 410 Gone disables the webhook.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/deliveries/{delivery}/replay",
    tag = "webhooks",
    params(
        ("id" = String, Path, description = "The webhook's id"),
        ("delivery" = String, Path, description = "The delivery's id, its `webhook-id`"),
    ),
    responses(
        (status = 200, description = "The attempt made", body = DeliveryDto),
        (status = 404, description = "No such webhook, or no such delivery of it", body = ErrorBody),
        (status = 409, description = "The webhook is disabled, or the delivery was recorded without its body", body = ErrorBody),
    )
)]
pub async fn replay_delivery(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let organisation = caller.allow(WEBHOOKS)?;
    let (id, delivery_id) = path.into_inner();
    let store = state.store.clone();
    let (webhook, replay) = blocking(move || {
        let webhook = owned(store.as_ref(), &organisation, &id)?;
        let attempts = store
            .delivery_attempts(&webhook.id, &delivery_id)
            .map_err(storage)?;
        if attempts.is_empty() {
            return Err(ApiError::NotFound);
        }
        let replay = replay_of(&webhook, &attempts).map_err(|refusal| ApiError::Conflict {
            message: refusal.to_string(),
        })?;
        Ok((webhook, replay))
    })
    .await?;
    let dispatcher = Dispatcher::new(
        state.store.clone(),
        state.webhooks.clone(),
        state.metrics.clone(),
    );
    let attempt = dispatcher.replay(&webhook, replay).await;
    Ok(HttpResponse::Ok().json(DeliveryDto::from(attempt)))
}

/// The organisation's webhook `id`: another organisation's is not found either.
fn owned(store: &dyn Store, organisation: &str, id: &str) -> Result<Webhook, ApiError> {
    found(store.webhooks(Some(organisation)), |webhook| {
        webhook.id == id
    })
}
