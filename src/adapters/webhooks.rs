//! Webhook deliveries: each notice goes to every enabled webhook of its organisation that
//! asked for its event, signed, retried with exponential backoff and full jitter, logged, and
//! the webhook disabled after a run of failed deliveries or at once when its receiver answers
//! 410 Gone. Notices wait in the store's outbox ([`outbox`]), written in the transaction of
//! the change that causes them; the dispatcher drains it on tasks of its own, so that
//! ingestion never waits for a receiver and a restart loses nothing. A recorded delivery can
//! be sent again ([`Dispatcher::replay`]).
//!
//! Unless `webhooks.allow_private_networks`, a delivery goes to public addresses only
//! (`adapters::egress`): checked before each attempt for an IP literal, and by the client's
//! resolver for a name, whatever DNS answers by then. Redirects are not followed: one would
//! lead the delivery to an address nobody checked.
//!
//! # Signature
//! Standard Webhooks 1.0 ([`signature`]): `webhook-id` is the delivery's id, the same on every
//! retry and replay of it; `webhook-timestamp` the attempt's Unix time by the system clock,
//! which receivers compare with theirs; `webhook-signature` one `v1,` signature per secret:
//! the webhook's, then the one its last rotation replaced while the grace lasts. The headers of
//! earlier versions (`X-Etape-Signature`, `X-Etape-Event`, `X-Etape-Delivery`,
//! `X-Etape-Attempt`) still come with them, for one version.

pub mod outbox;
pub mod signature;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::adapters::egress::{self, Refused};
use crate::config::WebhookSettings;
use crate::domain::clock::Clock;
use crate::domain::storage::StoreResult;
use crate::telemetry::Metrics;
use crate::tracking::store::Fence;

pub use outbox::{Enqueued, Outgoing, Settled};
pub use signature::{new_secret, sign, sign_legacy, verify, verify_legacy};

pub const EVENTS: [&str; 5] = [
    "eta_changed",
    "late_risk_changed",
    "arrived",
    "departed",
    "delivered",
];

/// reqwest is built without a TLS provider of its own choosing: ring builds without CMake
/// or an assembler. Every HTTP client of the process needs it; installing twice is harmless.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The delay before retry `attempt` (1 for the first retry): full jitter over an
/// exponentially growing cap.
pub fn backoff(settings: &WebhookSettings, attempt: u32) -> Duration {
    crate::adapters::feeds::guard::full_jitter(
        settings.backoff_initial_ms,
        settings.backoff_max_ms,
        attempt,
    )
}

/// Stop medians by (webhook, shipment).
type LastSent = HashMap<(String, String), Vec<DateTime<Utc>>>;

#[derive(Clone)]
pub struct Dispatcher {
    store: Arc<dyn WebhookStore>,
    client: reqwest::Client,
    settings: WebhookSettings,
    metrics: Metrics,
    /// Per webhook and shipment, the stop medians last sent, for `min_change_minutes`.
    sent: Arc<Mutex<LastSent>>,
    /// Woken when a retry falls due before the next poll.
    wake: Arc<Notify>,
}

impl Dispatcher {
    pub fn new(store: Arc<dyn WebhookStore>, settings: WebhookSettings, metrics: Metrics) -> Self {
        install_tls_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.timeout_secs))
            .user_agent(concat!("etape/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none());
        if !settings.allow_private_networks {
            // A proxy would resolve the receiver's name itself, out of the resolver's sight.
            builder = builder
                .no_proxy()
                .dns_resolver(Arc::new(egress::PublicOnly));
        }
        let client = builder.build().expect("a client with a TLS provider");
        Self {
            store,
            client,
            settings,
            metrics,
            sent: Arc::new(Mutex::new(HashMap::new())),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Sends a recorded delivery once more, as its next attempt: the same `webhook-id` and
    /// body, a new timestamp and new signatures. One attempt and no retry, so that the caller
    /// sees how it went; a 410 disables the webhook, a success clears its failures.
    pub async fn replay(&self, webhook: &Webhook, replay: Replay) -> Delivery {
        let message = Message {
            id: &replay.id,
            event: &replay.event,
            attempt: replay.attempt,
            body: &replay.body,
        };
        let answer = self.attempt(webhook, &message).await;
        let outcome = if answer.delivered() {
            "delivered"
        } else {
            "failed"
        };
        let record = self.record(webhook, &message, &answer, outcome, true).await;
        match answer.health() {
            // One failed attempt is not a delivery that spent all of its attempts.
            Health::Failed => {}
            health => self.keep_health(webhook, health).await,
        }
        record
    }

    /// Whether the stop medians `etas` of a shipment moved by the webhook's
    /// `min_change_minutes` since the last `eta_changed` it was sent. Kept in memory: after a
    /// restart, the first one goes out whatever it moved.
    fn moved_enough(&self, webhook: &Webhook, shipment_id: &str, etas: &[DateTime<Utc>]) -> bool {
        let mut sent = self
            .sent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (webhook.id.clone(), shipment_id.to_owned());
        let moved = match sent.get(&key) {
            None => true,
            Some(before) => {
                before.len() != etas.len()
                    || before.iter().zip(etas).any(|(before, now)| {
                        (*now - *before).num_seconds().abs() as f64 / 60.0
                            >= webhook.min_change_minutes
                    })
            }
        };
        if moved {
            sent.insert(key, etas.to_vec());
        }
        moved
    }

    /// One attempt, timed.
    async fn attempt(&self, webhook: &Webhook, message: &Message<'_>) -> Answer {
        let started = Instant::now();
        let (status_code, error) = self.send(webhook, message).await;
        Answer {
            status_code,
            error,
            duration_ms: started.elapsed().as_millis() as u64,
        }
    }

    /// One attempt's status and error. A refused destination is not tried: its error says so
    /// and nothing else, the same whether or not anything listens there.
    async fn send(
        &self,
        webhook: &Webhook,
        message: &Message<'_>,
    ) -> (Option<u16>, Option<String>) {
        let refused = || -> (Option<u16>, Option<String>) { (None, Some(Refused.to_string())) };
        if !self.settings.allow_private_networks {
            let checked = reqwest::Url::parse(&webhook.url).map(|url| egress::check_host(&url));
            if let Ok(Err(Refused)) = checked {
                return refused();
            }
        }
        // Receivers compare the timestamp with their own clock: it is the system's, whatever
        // clock the rest of the service runs on.
        let now = Clock::System.now();
        let timestamp = now.timestamp();
        let signatures = signature::signature_header(
            &webhook.signing_secrets(now),
            message.id,
            timestamp,
            message.body,
        );
        let response = self
            .client
            .post(webhook.url.as_str())
            .header("Content-Type", "application/json")
            .header(signature::ID_HEADER, message.id)
            .header(signature::TIMESTAMP_HEADER, timestamp.to_string())
            .header(signature::SIGNATURE_HEADER, signatures)
            .header(
                signature::LEGACY_SIGNATURE_HEADER,
                sign_legacy(&webhook.secret, message.body),
            )
            .header("X-Etape-Event", message.event)
            .header("X-Etape-Delivery", message.id)
            .header("X-Etape-Attempt", message.attempt.to_string())
            .body(message.body.to_vec())
            .send()
            .await;
        match response {
            Ok(response) if response.status().is_success() => {
                (Some(response.status().as_u16()), None)
            }
            Ok(response) => (
                Some(response.status().as_u16()),
                Some(format!("the receiver answered {}", response.status())),
            ),
            Err(error) if egress::is_refusal(&error) => refused(),
            Err(error) => (None, Some(error.to_string())),
        }
    }

    /// Counts the attempt and logs it, its body kept for a replay.
    async fn record(
        &self,
        webhook: &Webhook,
        message: &Message<'_>,
        answer: &Answer,
        outcome: &str,
        replayed: bool,
    ) -> Delivery {
        self.metrics
            .webhook_deliveries
            .with_label_values(&[outcome])
            .inc();
        let record = Delivery {
            id: message.id.to_owned(),
            webhook_id: webhook.id.clone(),
            event: message.event.to_owned(),
            attempt: message.attempt,
            at: Clock::System.now(),
            outcome: outcome.to_owned(),
            status_code: answer.status_code,
            error: answer.error.clone(),
            duration_ms: answer.duration_ms,
            body: Some(String::from_utf8_lossy(message.body).into_owned()),
            replayed,
        };
        let store = self.store.clone();
        let kept = record.clone();
        let _ = tokio::task::spawn_blocking(move || store.record_delivery(&kept)).await;
        record
    }

    /// A delivery's outcome on its webhook's health: failures in a row counted, the webhook
    /// disabled once they reach the setting or at once on a 410, the count cleared by a
    /// success. Read and written in one step: other deliveries, a rotation, may run meanwhile.
    async fn keep_health(&self, webhook: &Webhook, health: Health) {
        let store = self.store.clone();
        let disable_after = self.settings.disable_after_failures;
        let (organisation, id) = (webhook.organisation.clone(), webhook.id.clone());
        let now = Clock::System.now();
        let _ = tokio::task::spawn_blocking(move || {
            store.update_webhook(&organisation, &id, &mut |current: &mut Webhook| {
                let reason = match health {
                    Health::Delivered => {
                        current.consecutive_failures = 0;
                        return;
                    }
                    Health::Failed => {
                        current.consecutive_failures += 1;
                        if current.consecutive_failures < disable_after {
                            return;
                        }
                        format!(
                            "failed deliveries in a row, every attempt spent: {}",
                            current.consecutive_failures
                        )
                    }
                    Health::Gone => {
                        current.consecutive_failures += 1;
                        "the receiver answered 410 Gone".to_owned()
                    }
                };
                if current.disable(now, &reason) {
                    tracing::warn!(message = "Webhook disabled.", webhook = %current.id, %reason);
                }
            })
        })
        .await;
    }
}

/// Why a recorded delivery cannot be sent again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreplayable {
    #[error("the webhook is disabled: {0}")]
    Disabled(String),
    #[error("this delivery was recorded without its body, by an earlier version")]
    NoBody,
}

/// A recorded delivery, ready to be sent again.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    pub id: String,
    pub event: String,
    /// The attempt after the last one recorded.
    pub attempt: u32,
    pub body: Vec<u8>,
}

/// What replaying a delivery of `webhook`, of which `attempts` are recorded, sends.
pub fn replay_of(webhook: &Webhook, attempts: &[Delivery]) -> Result<Replay, Unreplayable> {
    if !webhook.enabled {
        let reason = webhook
            .disabled_reason
            .as_deref()
            .unwrap_or("no reason kept");
        return Err(Unreplayable::Disabled(reason.to_owned()));
    }
    let with_body = attempts.iter().find(|attempt| attempt.body.is_some());
    let (Some(recorded), Some(last)) = (with_body, attempts.iter().map(|a| a.attempt).max()) else {
        return Err(Unreplayable::NoBody);
    };
    Ok(Replay {
        id: recorded.id.clone(),
        event: recorded.event.clone(),
        attempt: last + 1,
        body: recorded.body.clone().unwrap_or_default().into_bytes(),
    })
}

/// What one attempt sends.
struct Message<'a> {
    id: &'a str,
    event: &'a str,
    attempt: u32,
    body: &'a [u8],
}

/// What one attempt came to.
struct Answer {
    status_code: Option<u16>,
    error: Option<String>,
    duration_ms: u64,
}

impl Answer {
    fn delivered(&self) -> bool {
        self.error.is_none()
    }

    fn health(&self) -> Health {
        match (self.delivered(), self.status_code) {
            (true, _) => Health::Delivered,
            // The receiver wants no more deliveries (Standard Webhooks, "Delivery success and
            // failure"): retrying would only ask again.
            (false, Some(410)) => Health::Gone,
            (false, _) => Health::Failed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Delivered,
    Failed,
    Gone,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub organisation: String,
    pub url: String,
    pub events: Vec<String>,
    pub min_change_minutes: f64,
    /// Needed in clear to sign each delivery; shown to the caller once, at creation or
    /// rotation.
    pub secret: String,
    /// The secret the last rotation replaced, still signing until its grace ends.
    #[serde(default)]
    pub previous_secret: Option<PreviousSecret>,
    pub enabled: bool,
    pub consecutive_failures: u32,
    pub created_at: DateTime<Utc>,
    /// When and why `enabled` turned false.
    #[serde(default)]
    pub disabled_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub disabled_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviousSecret {
    pub secret: String,
    pub until: DateTime<Utc>,
}

impl Webhook {
    /// The secrets a delivery at `now` is signed with: the webhook's, then the one its last
    /// rotation replaced while the grace lasts, so that a receiver may switch at its own pace.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        let previous = self.previous_secret.as_ref();
        if let Some(previous) = previous.filter(|previous| now < previous.until) {
            secrets.push(&previous.secret);
        }
        secrets
    }

    /// `secret` signs from now on; the current one goes on signing beside it for `grace`. A
    /// secret two rotations old signs no more: the header carries two signatures at most.
    pub fn rotate(&mut self, secret: String, now: DateTime<Utc>, grace: Duration) {
        let grace = TimeDelta::from_std(grace).unwrap_or(TimeDelta::MAX);
        let until = now
            .checked_add_signed(grace)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let replaced = std::mem::replace(&mut self.secret, secret);
        self.previous_secret = Some(PreviousSecret {
            secret: replaced,
            until,
        });
    }

    /// Stops deliveries, saying why; true if it was enabled until now.
    pub fn disable(&mut self, at: DateTime<Utc>, reason: &str) -> bool {
        if !self.enabled {
            return false;
        }
        self.enabled = false;
        self.disabled_at = Some(at);
        self.disabled_reason = Some(reason.to_owned());
        true
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub webhook_id: String,
    pub event: String,
    pub attempt: u32,
    pub at: DateTime<Utc>,
    /// `delivered`, `retrying` or `failed` (every attempt spent, or the receiver gone).
    pub outcome: String,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
    /// The body sent, for a replay; absent from the records of earlier versions.
    #[serde(default)]
    pub body: Option<String>,
    /// Sent by a replay rather than by the retries.
    #[serde(default)]
    pub replayed: bool,
}

/// Everyone's webhooks, for the dispatcher: see [`WebhookStore::signers`].
#[derive(Debug, Default)]
pub struct Signers {
    pub opened: Vec<Webhook>,
    pub unopened: Vec<String>,
}

/// Where webhooks and the log of their deliveries are kept.
pub trait WebhookStore: Send + Sync + 'static {
    fn insert_webhook(&self, webhook: &Webhook) -> StoreResult<()>;

    /// One organisation's webhooks, or everyone's.
    fn webhooks(&self, organisation: Option<&str>) -> StoreResult<Vec<Webhook>>;

    /// Everyone's webhooks as the dispatcher signs with them: those whose secrets open, and
    /// the ids of those whose secrets do not (sealed under a key this process was not given),
    /// so that one webhook that cannot sign holds back its own deliveries and no one else's.
    fn signers(&self) -> StoreResult<Signers>;

    fn delete_webhook(&self, organisation: &str, id: &str) -> StoreResult<bool>;

    /// Applies `change` to one of an organisation's webhooks and saves it, read and written
    /// as one step: deliveries recording their outcome and a rotation never undo each other.
    /// The webhook as saved, or `None` if the organisation has no such webhook.
    fn update_webhook(
        &self,
        organisation: &str,
        id: &str,
        change: &mut dyn FnMut(&mut Webhook),
    ) -> StoreResult<Option<Webhook>>;

    fn record_delivery(&self, delivery: &Delivery) -> StoreResult<()>;

    /// The latest deliveries first.
    fn deliveries(&self, webhook_id: &str, limit: usize) -> StoreResult<Vec<Delivery>>;

    /// Every recorded attempt of one delivery of a webhook, by attempt.
    fn delivery_attempts(&self, webhook_id: &str, delivery_id: &str) -> StoreResult<Vec<Delivery>>;

    /// Takes up to `limit` pending deliveries of the outbox that are due at `now_ms` and that
    /// no one holds, oldest first, and holds them until `now_ms + hold_ms`: long enough for an
    /// attempt, short enough that one cut short by a crash is taken again. (The notices are
    /// enqueued by [`ShipmentStore`](crate::tracking::store::ShipmentStore), with the change
    /// that causes them.)
    ///
    /// The dispatcher's writes below carry the `fence` of the lease it delivers under, and
    /// are refused (`StoreError::Fenced`, nothing written) once a newer holder has the lease.
    fn claim_outbox(
        &self,
        now_ms: i64,
        hold_ms: i64,
        limit: usize,
        fence: Option<&Fence>,
    ) -> StoreResult<Vec<Outgoing>>;

    /// Holds a claimed delivery again until `until_ms`, before an attempt that comes late;
    /// false when it is no longer pending.
    fn hold_outbox(&self, seq: i64, until_ms: i64, fence: Option<&Fence>) -> StoreResult<bool>;

    /// A held delivery waits for its attempt `attempts + 1` until `next_attempt_ms`.
    fn retry_outbox(
        &self,
        seq: i64,
        attempts: u32,
        next_attempt_ms: i64,
        fence: Option<&Fence>,
    ) -> StoreResult<()>;

    /// A held delivery leaves the outbox as `settled` at `at_ms`, after `attempts` attempts.
    fn settle_outbox(
        &self,
        seq: i64,
        attempts: u32,
        settled: Settled,
        at_ms: i64,
        fence: Option<&Fence>,
    ) -> StoreResult<()>;

    /// Releases every held delivery, so that the one dispatcher, starting or taking the lease
    /// over, resumes at once what a process that stopped held; returns how many.
    fn release_outbox(&self, fence: Option<&Fence>) -> StoreResult<u64>;

    /// Forgets the deliveries that left the outbox before `before_ms`; returns how many.
    fn purge_outbox(&self, before_ms: i64) -> StoreResult<u64>;
}

#[cfg(test)]
mod tests;
