//! The outbox: where notices wait until their webhooks have them.
//!
//! Each notice is written by the store in the transaction of the change that causes it (the
//! estimate kept, the shipment saved), one row per webhook subscribed to its event at that
//! moment ([`fan_out`]): a row carries its delivery id (the `webhook-id` of every attempt and
//! replay of it) and its body, both made once, so that a retry after a restart sends the same
//! delivery again rather than a new one. One dispatcher drains it, the process on the
//! embedded store and the lease holder on a shared one ([`Dispatcher::run`]): it claims the
//! rows that are due, attempts each once on a task of its own, logs the attempt in the
//! deliveries table as before, and either settles the row or puts its next attempt off by the
//! backoff. Delivery is at least once: a process killed between an attempt and its record
//! sends that attempt again.
//!
//! On a shared store, every write of the dispatcher's (claims, holds, retries, settlements,
//! releases) carries the fence of the lease it delivers under: a dispatcher stalled past its
//! lease claims and settles nothing once another replica has taken over, and an attempt it
//! claimed before the stall is held again under the fence before it is sent.
//!
//! Architecture invariant: nothing but the outbox keeps a notice. The wake-up the tracker
//! gives is a hint; without it the dispatcher still finds every row at its next poll.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::Notify;

use super::{backoff, Answer, Dispatcher, Health, Message, Webhook, WebhookStore};
use crate::domain::clock::Clock;
use crate::domain::ids::new_id;
use crate::domain::storage::StoreResult;
use crate::tracking::store::Fence;
use crate::tracking::tracker::Notice;

/// How often the dispatcher looks at the outbox when nothing wakes it: the wake-up of a notice
/// written by another replica never reaches this process.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Deliveries claimed in one go; a full claim is followed by another at once.
const CLAIM_LIMIT: usize = 100;
/// Deliveries that left the outbox are kept this long, for whoever looks into the database.
const KEEP_SETTLED: TimeDelta = TimeDelta::days(7);
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// An attempt that starts this long after its claim is held again under the fence first:
/// well within the lease's five seconds, so that a dispatcher stalled long enough for another
/// to take over cannot send what it claimed before.
const HOLD_AGAIN_AFTER: Duration = Duration::from_secs(1);

/// The claim a delivery was taken under: the lease's fence, and when.
#[derive(Debug, Clone)]
pub(super) struct Claim {
    pub fence: Fence,
    pub at: Instant,
}

/// One delivery waiting in the outbox, as the dispatcher claims it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// Its place in the outbox: deliveries are claimed oldest first.
    pub seq: i64,
    /// The `webhook-id` of every attempt of it, and its id in the deliveries log.
    pub delivery_id: String,
    pub webhook_id: String,
    pub organisation: String,
    pub event: String,
    pub shipment_id: String,
    /// The payload, exactly as every attempt sends it.
    pub body: String,
    /// For `eta_changed`: each stop's median, for the webhook's `min_change_minutes`.
    pub etas: Vec<DateTime<Utc>>,
    /// The attempts made so far.
    pub attempts: u32,
}

/// One row the store writes for a notice and a webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueued {
    pub delivery_id: String,
    pub webhook_id: String,
    pub organisation: String,
    pub event: String,
    pub shipment_id: String,
    pub body: String,
    /// The stop medians as a JSON array, as the store keeps them.
    pub etas: String,
}

/// How a delivery left the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Delivered,
    /// Every attempt spent, or the receiver gone (410).
    Failed,
    /// Never sent: its webhook was deleted or disabled meanwhile, or the estimate moved less
    /// than the webhook's `min_change_minutes` since the last one it was sent.
    Dropped,
}

impl Settled {
    /// As the outbox's `status` column has it (`pending` while it waits).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Dropped => "dropped",
        }
    }
}

/// The outbox rows of `notices` at `now`: one per notice and enabled webhook of its
/// organisation that asked for its event. `webhooks` are the store's, read in the
/// transaction that writes the rows.
pub fn fan_out(notices: &[Notice], webhooks: &[Webhook], now: DateTime<Utc>) -> Vec<Enqueued> {
    let mut rows = Vec::new();
    for notice in notices {
        let subscribed = webhooks.iter().filter(|webhook| {
            webhook.enabled
                && webhook.organisation == notice.organisation
                && webhook.events.iter().any(|event| event == notice.event)
        });
        for webhook in subscribed {
            let body = serde_json::json!({
                "id": new_id("evt"),
                "event": notice.event,
                "created_at": now,
                "shipment": {
                    "id": notice.shipment_id,
                    "reference": notice.reference,
                    "vehicle_id": notice.vehicle_id,
                },
                "data": notice.data,
            });
            rows.push(Enqueued {
                delivery_id: new_id("dlv"),
                webhook_id: webhook.id.clone(),
                organisation: notice.organisation.clone(),
                event: notice.event.to_owned(),
                shipment_id: notice.shipment_id.clone(),
                body: body.to_string(),
                etas: serde_json::to_string(&notice.etas).unwrap_or_else(|_| "[]".into()),
            });
        }
    }
    rows
}

/// The organisations of `notices`, each once: whose webhooks the store reads to fan them out.
pub fn organisations(notices: &[Notice]) -> BTreeSet<&str> {
    notices
        .iter()
        .map(|notice| notice.organisation.as_str())
        .collect()
}

/// The stop medians of an outbox row, as [`Enqueued::etas`] wrote them.
pub fn etas_of(text: &str) -> Vec<DateTime<Utc>> {
    serde_json::from_str(text).unwrap_or_default()
}

impl Dispatcher {
    /// Drains the outbox while the process lives and `lead` gives the fence it delivers under
    /// (always with the embedded store; while it holds the lease with a shared one): at once
    /// when `wake` is notified, else every second. On starting, and on taking the lease over,
    /// it first releases every claim, so that what a stopped process held is resumed at once.
    pub async fn run(self, wake: Arc<Notify>, lead: impl Fn() -> Option<Fence> + Send + 'static) {
        let dispatcher = Self { wake, ..self };
        // A fence other than the one the claims were last released under is a takeover.
        let mut delivering: Option<Fence> = None;
        let mut purged: Option<Instant> = None;
        loop {
            tokio::select! {
                () = dispatcher.wake.notified() => {}
                () = tokio::time::sleep(POLL_EVERY) => {}
            }
            let Some(fence) = lead() else {
                delivering = None;
                continue;
            };
            if delivering.as_ref() != Some(&fence) {
                let releasing = fence.clone();
                let released = dispatcher
                    .blocking(move |store| store.release_outbox(Some(&releasing)))
                    .await;
                let Some(released) = released else {
                    continue;
                };
                tracing::info!(message = "Delivering the outbox.", resumed = released);
                delivering = Some(fence.clone());
            }
            loop {
                let claim = Claim {
                    fence: fence.clone(),
                    at: Instant::now(),
                };
                let claimed = dispatcher.claim(&claim).await;
                let full = claimed.len() == CLAIM_LIMIT;
                dispatcher.dispatch(claimed, &claim).await;
                if !full {
                    break;
                }
            }
            if purged.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
                purged = Some(Instant::now());
                let before = (Clock::System.now() - KEEP_SETTLED).timestamp_millis();
                dispatcher
                    .blocking(move |store| store.purge_outbox(before))
                    .await;
            }
        }
    }

    /// How long a claim holds a delivery: as long as an attempt may take, and some.
    fn hold_ms(&self) -> i64 {
        i64::try_from(self.settings.timeout_secs.saturating_mul(3_000))
            .unwrap_or(i64::MAX / 4)
            .saturating_add(30_000)
    }

    /// The deliveries due now, held under `claim`'s fence.
    async fn claim(&self, claim: &Claim) -> Vec<Outgoing> {
        let now_ms = Clock::System.now().timestamp_millis();
        let hold_ms = self.hold_ms();
        let fence = claim.fence.clone();
        self.blocking(move |store| store.claim_outbox(now_ms, hold_ms, CLAIM_LIMIT, Some(&fence)))
            .await
            .unwrap_or_default()
    }

    /// Starts an attempt of each claimed delivery, in the outbox's order, or settles those
    /// that are to go nowhere.
    async fn dispatch(&self, claimed: Vec<Outgoing>, claim: &Claim) {
        if claimed.is_empty() {
            return;
        }
        let Some(signers) = self.blocking(|store| store.signers()).await else {
            // Tried again once their claims run out.
            return;
        };
        let webhooks: HashMap<String, Webhook> = signers
            .opened
            .into_iter()
            .map(|webhook| (webhook.id.clone(), webhook))
            .collect();
        let mut held_back: BTreeSet<&str> = BTreeSet::new();
        for row in claimed {
            if let Some(id) = signers.unopened.iter().find(|id| **id == row.webhook_id) {
                // Left claimed, not attempted: taken again when the claim runs out, or at once
                // by a dispatcher that starts or takes the lease over, with the right key.
                held_back.insert(id);
                continue;
            }
            let webhook = webhooks
                .get(&row.webhook_id)
                .filter(|webhook| webhook.enabled && webhook.organisation == row.organisation);
            let Some(webhook) = webhook else {
                self.settle(&row, row.attempts, Settled::Dropped, &claim.fence)
                    .await;
                continue;
            };
            // Decided in the outbox's order, once per delivery: its retries were decided.
            let too_small = row.attempts == 0
                && row.event == "eta_changed"
                && !self.moved_enough(webhook, &row.shipment_id, &row.etas);
            if too_small {
                self.settle(&row, row.attempts, Settled::Dropped, &claim.fence)
                    .await;
                continue;
            }
            tokio::spawn(self.clone().deliver(webhook.clone(), row, claim.clone()));
        }
        if !held_back.is_empty() {
            tracing::error!(
                message = "Deliveries held back: their webhooks' secrets do not open under this \
                           process's key (webhooks.secrets_key_file).",
                webhooks = ?held_back,
            );
        }
    }

    /// One attempt of a claimed delivery, logged; then the delivery settled, or its next
    /// attempt put off by the backoff.
    pub(super) async fn deliver(self, webhook: Webhook, row: Outgoing, claim: Claim) {
        if claim.at.elapsed() >= HOLD_AGAIN_AFTER && !self.hold_again(&row, &claim.fence).await {
            return;
        }
        let attempt = row.attempts + 1;
        let message = Message {
            id: &row.delivery_id,
            event: &row.event,
            attempt,
            body: row.body.as_bytes(),
        };
        let answer: Answer = self.attempt(&webhook, &message).await;
        let health = answer.health();
        let last = attempt >= self.settings.max_attempts || health == Health::Gone;
        let outcome = match (answer.delivered(), last) {
            (true, _) => "delivered",
            (false, false) => "retrying",
            (false, true) => "failed",
        };
        self.record(&webhook, &message, &answer, outcome, false)
            .await;
        if !answer.delivered() && !last {
            self.put_off(&row, attempt, &claim.fence).await;
            return;
        }
        let settled = if answer.delivered() {
            Settled::Delivered
        } else {
            Settled::Failed
        };
        self.settle(&row, attempt, settled, &claim.fence).await;
        self.keep_health(&webhook, health).await;
    }

    /// Whether a delivery claimed a while ago is still this dispatcher's to attempt: held
    /// again under `fence`, it is, unless the lease has passed to another holder (or the
    /// delivery left the outbox) meanwhile.
    async fn hold_again(&self, row: &Outgoing, fence: &Fence) -> bool {
        let seq = row.seq;
        let until_ms = Clock::System
            .now()
            .timestamp_millis()
            .saturating_add(self.hold_ms());
        let fence = fence.clone();
        self.blocking(move |store| store.hold_outbox(seq, until_ms, Some(&fence)))
            .await
            .unwrap_or(false)
    }

    /// The delivery's attempt `attempts + 1` waits for the backoff; the dispatcher is woken
    /// for it when it falls due before the next poll.
    async fn put_off(&self, row: &Outgoing, attempts: u32, fence: &Fence) {
        let delay = backoff(&self.settings, attempts);
        let due_ms = Clock::System
            .now()
            .timestamp_millis()
            .saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
        let seq = row.seq;
        let fence = fence.clone();
        let kept = self
            .blocking(move |store| store.retry_outbox(seq, attempts, due_ms, Some(&fence)))
            .await;
        if kept.is_some() && delay < POLL_EVERY {
            let wake = self.wake.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                wake.notify_one();
            });
        }
    }

    async fn settle(&self, row: &Outgoing, attempts: u32, settled: Settled, fence: &Fence) {
        let seq = row.seq;
        let at_ms = Clock::System.now().timestamp_millis();
        let fence = fence.clone();
        self.blocking(move |store| {
            store.settle_outbox(seq, attempts, settled, at_ms, Some(&fence))
        })
        .await;
    }

    /// Runs `work` on the store off the async workers; `None`, logged, when it fails: the
    /// delivery it was about stays in the outbox, taken again once its claim runs out.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn WebhookStore) -> StoreResult<T> + Send + 'static,
    ) -> Option<T> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || work(store.as_ref())).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                tracing::error!(message = "Webhook outbox not read or written.", %error);
                None
            }
            Err(_) => None,
        }
    }
}
