//! Webhook deliveries: each notice goes to every enabled webhook of its organisation that
//! asked for its event, signed, retried with exponential backoff and full jitter, logged, and
//! the webhook disabled after a run of failed deliveries. It all runs on its own tasks, fed by
//! an unbounded channel, so that ingestion never waits for a receiver.
//!
//! Unless `webhooks.allow_private_networks`, a delivery goes to public addresses only
//! (`adapters::egress`): checked before each attempt for an IP literal, and by the client's
//! resolver for a name, whatever DNS answers by then. Redirects are not followed: one would
//! lead the delivery to an address nobody checked.
//!
//! # Signature
//! `X-Etape-Signature: sha256=<hex>` is the HMAC-SHA256 of the raw request body under the
//! webhook's secret. `X-Etape-Event`, `X-Etape-Delivery` (the same on every retry of one
//! delivery) and `X-Etape-Attempt` come with it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::adapters::egress::{self, Refused};
use crate::config::WebhookSettings;
use crate::domain::clock::Clock;
use crate::domain::ids::new_id;
use crate::domain::storage::StoreResult;
use crate::telemetry::Metrics;
use crate::tracking::tracker::Notice;

pub const EVENTS: [&str; 5] = [
    "eta_changed",
    "late_risk_changed",
    "arrived",
    "departed",
    "delivered",
];

pub const SIGNATURE_HEADER: &str = "X-Etape-Signature";

/// `sha256=<hex>` of the body under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a signature in constant time, as a receiver would.
pub fn verify(secret: &str, body: &[u8], signature: &str) -> bool {
    let Some(hex_digest) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(digest) = hex::decode(hex_digest) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    mac.verify_slice(&digest).is_ok()
}

/// reqwest is built without a TLS provider of its own choosing: ring builds without CMake
/// or an assembler. Every HTTP client of the process needs it; installing twice is harmless.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A new secret: 32 random bytes, hex.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("whsec_{}", hex::encode(bytes))
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
        }
    }

    /// Delivers notices until the channel closes.
    pub async fn run(self, mut notices: UnboundedReceiver<Notice>) {
        while let Some(notice) = notices.recv().await {
            let store = self.store.clone();
            let organisation = notice.organisation.clone();
            let webhooks = tokio::task::spawn_blocking(move || store.webhooks(Some(&organisation)))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            for webhook in webhooks {
                if !webhook.enabled || !webhook.events.iter().any(|event| event == notice.event) {
                    continue;
                }
                if notice.event == "eta_changed" && !self.moved_enough(&webhook, &notice) {
                    continue;
                }
                let body = serde_json::to_vec(&serde_json::json!({
                    "id": new_id("evt"),
                    "event": notice.event,
                    "created_at": Clock::System.now(),
                    "shipment": {
                        "id": notice.shipment_id,
                        "reference": notice.reference,
                        "vehicle_id": notice.vehicle_id,
                    },
                    "data": notice.data,
                }))
                .expect("JSON values serialise");
                tokio::spawn(self.clone().deliver(webhook, notice.event, body));
            }
        }
    }

    fn moved_enough(&self, webhook: &Webhook, notice: &Notice) -> bool {
        let mut sent = self
            .sent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (webhook.id.clone(), notice.shipment_id.clone());
        let moved = match sent.get(&key) {
            None => true,
            Some(before) => {
                before.len() != notice.etas.len()
                    || before.iter().zip(&notice.etas).any(|(before, now)| {
                        (*now - *before).num_seconds().abs() as f64 / 60.0
                            >= webhook.min_change_minutes
                    })
            }
        };
        if moved {
            sent.insert(key, notice.etas.clone());
        }
        moved
    }

    async fn deliver(self, webhook: Webhook, event: &'static str, body: Vec<u8>) {
        let delivery_id = new_id("dlv");
        let signature = sign(&webhook.secret, &body);
        let mut delivered = false;
        for attempt in 1..=self.settings.max_attempts {
            let started = Instant::now();
            let request = Attempt {
                url: &webhook.url,
                event,
                delivery_id: &delivery_id,
                signature: &signature,
                attempt,
                body: &body,
            };
            let (status_code, error) = self.attempt(request).await;
            delivered = error.is_none();
            let last = attempt == self.settings.max_attempts;
            let outcome = match (delivered, last) {
                (true, _) => "delivered",
                (false, false) => "retrying",
                (false, true) => "failed",
            };
            self.metrics
                .webhook_deliveries
                .with_label_values(&[outcome])
                .inc();
            let record = Delivery {
                id: delivery_id.clone(),
                webhook_id: webhook.id.clone(),
                event: event.to_owned(),
                attempt,
                at: Clock::System.now(),
                outcome: outcome.to_owned(),
                status_code,
                error,
                duration_ms: started.elapsed().as_millis() as u64,
            };
            let store = self.store.clone();
            let _ = tokio::task::spawn_blocking(move || store.record_delivery(&record)).await;
            if delivered || last {
                break;
            }
            tokio::time::sleep(backoff(&self.settings, attempt)).await;
        }
        self.keep_health(webhook, delivered).await;
    }

    /// One attempt's status and error. A refused destination is not tried: its error says so
    /// and nothing else, the same whether or not anything listens there.
    async fn attempt(&self, request: Attempt<'_>) -> (Option<u16>, Option<String>) {
        let refused = || -> (Option<u16>, Option<String>) { (None, Some(Refused.to_string())) };
        if !self.settings.allow_private_networks {
            let checked = reqwest::Url::parse(request.url).map(|url| egress::check_host(&url));
            if let Ok(Err(Refused)) = checked {
                return refused();
            }
        }
        let response = self
            .client
            .post(request.url)
            .header("Content-Type", "application/json")
            .header(SIGNATURE_HEADER, request.signature)
            .header("X-Etape-Event", request.event)
            .header("X-Etape-Delivery", request.delivery_id)
            .header("X-Etape-Attempt", request.attempt.to_string())
            .body(request.body.to_vec())
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

    /// A delivery's outcome on its webhook's health: failures in a row counted, the webhook
    /// disabled once they reach the setting, the count cleared by a success.
    async fn keep_health(&self, webhook: Webhook, delivered: bool) {
        let store = self.store.clone();
        let disable_after = self.settings.disable_after_failures;
        let id = webhook.id.clone();
        let _ = tokio::task::spawn_blocking(move || {
            // Read again: other deliveries of this webhook may have run meanwhile.
            let current = store
                .webhooks(Some(&webhook.organisation))?
                .into_iter()
                .find(|candidate| candidate.id == id);
            let Some(current) = current else {
                return Ok(());
            };
            let failures = if delivered {
                0
            } else {
                current.consecutive_failures + 1
            };
            let enabled = current.enabled && failures < disable_after;
            if !enabled && current.enabled {
                tracing::warn!(message = "Webhook disabled after failed deliveries.", webhook = %id, failures);
            }
            store.set_webhook_health(&id, enabled, failures)
        })
        .await;
    }
}

/// What one attempt of a delivery sends, and where.
struct Attempt<'a> {
    url: &'a str,
    event: &'static str,
    delivery_id: &'a str,
    signature: &'a str,
    attempt: u32,
    body: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub organisation: String,
    pub url: String,
    pub events: Vec<String>,
    pub min_change_minutes: f64,
    /// Needed in clear to sign each delivery; shown to the caller once, at creation.
    pub secret: String,
    pub enabled: bool,
    pub consecutive_failures: u32,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub webhook_id: String,
    pub event: String,
    pub attempt: u32,
    pub at: DateTime<Utc>,
    /// `delivered`, `retrying` or `failed` (every attempt spent).
    pub outcome: String,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// Where webhooks and the log of their deliveries are kept.
pub trait WebhookStore: Send + Sync + 'static {
    fn insert_webhook(&self, webhook: &Webhook) -> StoreResult<()>;

    /// One organisation's webhooks, or everyone's.
    fn webhooks(&self, organisation: Option<&str>) -> StoreResult<Vec<Webhook>>;

    fn delete_webhook(&self, organisation: &str, id: &str) -> StoreResult<bool>;

    fn set_webhook_health(&self, id: &str, enabled: bool, failures: u32) -> StoreResult<()>;

    fn record_delivery(&self, delivery: &Delivery) -> StoreResult<()>;

    /// The latest deliveries first.
    fn deliveries(&self, webhook_id: &str, limit: usize) -> StoreResult<Vec<Delivery>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_its_secret_only() {
        let body = br#"{"event":"arrived"}"#;
        let signature = sign("whsec_a", body);
        assert!(verify("whsec_a", body, &signature));
        assert!(!verify("whsec_b", body, &signature));
        assert!(!verify("whsec_a", br#"{"event":"departed"}"#, &signature));
        assert!(!verify("whsec_a", body, "sha256=zz"));
    }

    #[test]
    fn the_signature_is_the_published_hmac_sha256() {
        // RFC 4231, test case 2.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    /// Webhooks and deliveries in memory.
    #[derive(Default)]
    struct Kept {
        deliveries: Mutex<Vec<Delivery>>,
    }

    impl WebhookStore for Kept {
        fn insert_webhook(&self, _: &Webhook) -> StoreResult<()> {
            Ok(())
        }

        fn webhooks(&self, _: Option<&str>) -> StoreResult<Vec<Webhook>> {
            Ok(Vec::new())
        }

        fn delete_webhook(&self, _: &str, _: &str) -> StoreResult<bool> {
            Ok(false)
        }

        fn set_webhook_health(&self, _: &str, _: bool, _: u32) -> StoreResult<()> {
            Ok(())
        }

        fn record_delivery(&self, delivery: &Delivery) -> StoreResult<()> {
            self.deliveries.lock().unwrap().push(delivery.clone());
            Ok(())
        }

        fn deliveries(&self, _: &str, _: usize) -> StoreResult<Vec<Delivery>> {
            Ok(self.deliveries.lock().unwrap().clone())
        }
    }

    fn webhook_to(url: &str) -> Webhook {
        Webhook {
            id: "whk_test".into(),
            organisation: "org".into(),
            url: url.into(),
            events: vec!["arrived".into()],
            min_change_minutes: 0.0,
            secret: "whsec_test".into(),
            enabled: true,
            consecutive_failures: 0,
            created_at: Clock::System.now(),
        }
    }

    #[tokio::test]
    async fn a_private_receiver_is_refused_alike_whether_its_port_is_open_or_closed() {
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open_port = open.local_addr().unwrap().port();
        let closed_port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let store = Arc::new(Kept::default());
        let settings = WebhookSettings {
            max_attempts: 1,
            ..WebhookSettings::default()
        };
        let dispatcher = Dispatcher::new(store.clone(), settings, Metrics::new());
        let urls = [
            format!("http://127.0.0.1:{open_port}/"),
            format!("http://127.0.0.1:{closed_port}/"),
            format!("http://[::ffff:127.0.0.1]:{open_port}/"),
            format!("http://localhost:{open_port}/"),
        ];
        for url in &urls {
            let body = br#"{"event":"arrived"}"#.to_vec();
            dispatcher
                .clone()
                .deliver(webhook_to(url), "arrived", body)
                .await;
        }
        let deliveries = store.deliveries.lock().unwrap().clone();
        assert_eq!(deliveries.len(), urls.len());
        for delivery in &deliveries {
            assert_eq!(delivery.error.as_deref(), Some("refused: private address"));
            assert_eq!(
                (delivery.status_code, delivery.outcome.as_str()),
                (None, "failed")
            );
        }
        open.set_nonblocking(true).unwrap();
        let connected = open.accept();
        assert!(
            matches!(&connected, Err(error) if error.kind() == std::io::ErrorKind::WouldBlock),
            "nothing may connect to a refused receiver: {connected:?}"
        );
    }

    #[test]
    fn backoff_grows_to_its_cap_and_never_beyond() {
        let settings = WebhookSettings {
            backoff_initial_ms: 100,
            backoff_max_ms: 1_000,
            ..WebhookSettings::default()
        };
        for attempt in 1..40 {
            let cap = (100u64 << (attempt - 1).min(30)).min(1_000);
            for _ in 0..20 {
                assert!(backoff(&settings, attempt) <= Duration::from_millis(cap));
            }
        }
    }
}
