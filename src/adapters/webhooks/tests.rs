//! The dispatcher against a store in memory, and the rules of rotation, disabling and replay.

use super::*;

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

    fn signers(&self) -> StoreResult<Signers> {
        Ok(Signers::default())
    }

    fn delete_webhook(&self, _: &str, _: &str) -> StoreResult<bool> {
        Ok(false)
    }

    fn update_webhook(
        &self,
        _: &str,
        _: &str,
        _: &mut dyn FnMut(&mut Webhook),
    ) -> StoreResult<Option<Webhook>> {
        Ok(None)
    }

    fn record_delivery(&self, delivery: &Delivery) -> StoreResult<()> {
        self.deliveries.lock().unwrap().push(delivery.clone());
        Ok(())
    }

    fn deliveries(&self, _: &str, _: usize) -> StoreResult<Vec<Delivery>> {
        Ok(self.deliveries.lock().unwrap().clone())
    }

    fn delivery_attempts(&self, _: &str, _: &str) -> StoreResult<Vec<Delivery>> {
        Ok(self.deliveries.lock().unwrap().clone())
    }

    fn claim_outbox(
        &self,
        _: i64,
        _: i64,
        _: usize,
        _: Option<&Fence>,
    ) -> StoreResult<Vec<Outgoing>> {
        Ok(Vec::new())
    }

    fn hold_outbox(&self, _: i64, _: i64, _: Option<&Fence>) -> StoreResult<bool> {
        Ok(true)
    }

    fn retry_outbox(&self, _: i64, _: u32, _: i64, _: Option<&Fence>) -> StoreResult<()> {
        Ok(())
    }

    fn settle_outbox(
        &self,
        _: i64,
        _: u32,
        _: Settled,
        _: i64,
        _: Option<&Fence>,
    ) -> StoreResult<()> {
        Ok(())
    }

    fn release_outbox(&self, _: Option<&Fence>) -> StoreResult<u64> {
        Ok(0)
    }

    fn purge_outbox(&self, _: i64) -> StoreResult<u64> {
        Ok(0)
    }
}

/// A claimed delivery of `body`, not attempted yet.
fn outgoing(event: &str, body: &[u8]) -> Outgoing {
    Outgoing {
        seq: 1,
        delivery_id: "dlv_test".into(),
        webhook_id: "whk_test".into(),
        organisation: "org".into(),
        event: event.into(),
        shipment_id: "shp_test".into(),
        body: String::from_utf8(body.to_vec()).unwrap(),
        etas: Vec::new(),
        attempts: 0,
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
        previous_secret: None,
        enabled: true,
        consecutive_failures: 0,
        created_at: Clock::System.now(),
        disabled_at: None,
        disabled_reason: None,
    }
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn attempt(number: u32, body: Option<&str>) -> Delivery {
    Delivery {
        id: "dlv_1".into(),
        webhook_id: "whk_test".into(),
        event: "arrived".into(),
        attempt: number,
        at: at("2026-11-28T09:00:00Z"),
        outcome: "failed".into(),
        status_code: Some(503),
        error: Some("the receiver answered 503 Service Unavailable".into()),
        duration_ms: 3,
        body: body.map(str::to_owned),
        replayed: false,
    }
}

#[test]
fn a_rotated_secret_signs_beside_the_new_one_until_its_grace_ends() {
    let mut webhook = webhook_to("https://tms.example/hook");
    let now = at("2026-11-28T09:00:00Z");
    assert_eq!(webhook.signing_secrets(now), ["whsec_test"]);
    webhook.rotate("whsec_new".into(), now, Duration::from_secs(3_600));
    assert_eq!(webhook.secret, "whsec_new");
    let within = now + TimeDelta::minutes(59);
    assert_eq!(webhook.signing_secrets(within), ["whsec_new", "whsec_test"]);
    let after = now + TimeDelta::hours(1);
    assert_eq!(webhook.signing_secrets(after), ["whsec_new"]);
    // Rotated again within the grace: the oldest secret is dropped.
    webhook.rotate("whsec_newer".into(), within, Duration::from_secs(3_600));
    assert_eq!(
        webhook.signing_secrets(within),
        ["whsec_newer", "whsec_new"]
    );
    // A grace too long for the calendar lasts as long as the calendar does.
    webhook.rotate("whsec_last".into(), now, Duration::MAX);
    assert_eq!(webhook.signing_secrets(now).len(), 2);
}

#[test]
fn disabling_keeps_the_first_reason() {
    let mut webhook = webhook_to("https://tms.example/hook");
    let now = at("2026-11-28T09:00:00Z");
    assert!(webhook.disable(now, "the receiver answered 410 Gone"));
    assert!(!webhook.disable(now + TimeDelta::hours(1), "later"));
    assert_eq!(
        (
            webhook.enabled,
            webhook.disabled_at,
            webhook.disabled_reason.as_deref()
        ),
        (false, Some(now), Some("the receiver answered 410 Gone"))
    );
}

#[test]
fn a_replay_is_the_next_attempt_of_the_same_delivery_and_body() {
    let webhook = webhook_to("https://tms.example/hook");
    let attempts = [
        attempt(1, Some(r#"{"event":"arrived"}"#)),
        attempt(2, Some(r#"{"event":"arrived"}"#)),
    ];
    assert_eq!(
        replay_of(&webhook, &attempts),
        Ok(Replay {
            id: "dlv_1".into(),
            event: "arrived".into(),
            attempt: 3,
            body: br#"{"event":"arrived"}"#.to_vec(),
        })
    );
    assert_eq!(
        replay_of(&webhook, &[attempt(1, None)]),
        Err(Unreplayable::NoBody)
    );
    let mut gone = webhook.clone();
    gone.disable(at("2026-11-28T09:00:00Z"), "the receiver answered 410 Gone");
    assert_eq!(
        replay_of(&gone, &attempts),
        Err(Unreplayable::Disabled(
            "the receiver answered 410 Gone".into()
        ))
    );
}

#[test]
fn a_410_is_gone_any_other_failure_is_a_failure() {
    let answer = |status_code: Option<u16>, error: Option<&str>| Answer {
        status_code,
        error: error.map(str::to_owned),
        duration_ms: 1,
    };
    assert_eq!(answer(Some(200), None).health(), Health::Delivered);
    assert_eq!(answer(Some(410), Some("gone")).health(), Health::Gone);
    assert_eq!(
        answer(Some(404), Some("not found")).health(),
        Health::Failed
    );
    assert_eq!(answer(None, Some("timed out")).health(), Health::Failed);
}

#[test]
fn records_of_earlier_versions_still_read() {
    let webhook: Webhook = serde_json::from_value(serde_json::json!({
        "id": "whk_1", "organisation": "org", "url": "https://tms.example/hook",
        "events": ["arrived"], "min_change_minutes": 5.0,
        "secret": format!("whsec_{}", "ab".repeat(32)), "enabled": true,
        "consecutive_failures": 0, "created_at": "2026-11-28T09:00:00Z"
    }))
    .unwrap();
    assert_eq!(
        (webhook.previous_secret, webhook.disabled_reason),
        (None, None)
    );
    let delivery: Delivery = serde_json::from_value(serde_json::json!({
        "id": "dlv_1", "webhook_id": "whk_1", "event": "arrived", "attempt": 1,
        "at": "2026-11-28T09:00:00Z", "outcome": "delivered", "status_code": 200,
        "error": null, "duration_ms": 4
    }))
    .unwrap();
    assert_eq!((delivery.body, delivery.replayed), (None, false));
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
        let body = br#"{"event":"arrived"}"#;
        let claim = outbox::Claim {
            fence: Fence::alone("tracking"),
            at: std::time::Instant::now(),
        };
        dispatcher
            .clone()
            .deliver(webhook_to(url), outgoing("arrived", body), claim)
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

#[test]
fn a_notice_fans_out_to_each_enabled_webhook_of_its_organisation_that_asked_for_it() {
    use crate::tracking::shipment::EventSource;
    use crate::tracking::tracker::{EventData, Notice};

    let notice = Notice {
        organisation: "org".into(),
        event: "arrived",
        shipment_id: "shp_1".into(),
        reference: "R-1".into(),
        vehicle_id: "V-1".into(),
        data: EventData::Stop {
            stop_index: 0,
            stop_id: "a".into(),
            at: at("2026-11-28T08:00:00Z"),
            source: EventSource::Manual,
        },
        etas: Vec::new(),
    };
    let named = |id: &str, change: &dyn Fn(&mut Webhook)| {
        let mut webhook = webhook_to("http://receiver.example/");
        webhook.id = id.into();
        change(&mut webhook);
        webhook
    };
    let webhooks = [
        named("whk_1", &|_| {}),
        named("whk_off", &|webhook| webhook.enabled = false),
        named("whk_departures", &|webhook| {
            webhook.events = vec!["departed".into()]
        }),
        named("whk_elsewhere", &|webhook| {
            webhook.organisation = "other".into()
        }),
        named("whk_2", &|_| {}),
    ];
    let rows = outbox::fan_out(
        std::slice::from_ref(&notice),
        &webhooks,
        at("2026-11-28T09:00:00Z"),
    );
    let to: Vec<&str> = rows.iter().map(|row| row.webhook_id.as_str()).collect();
    assert_eq!(to, ["whk_1", "whk_2"]);
    assert_ne!(rows[0].delivery_id, rows[1].delivery_id);
    assert!(rows[0].delivery_id.starts_with("dlv_"));
    let body: serde_json::Value = serde_json::from_str(&rows[0].body).unwrap();
    assert_eq!(body["event"], "arrived");
    assert_eq!(body["created_at"], "2026-11-28T09:00:00Z");
    assert_eq!(body["shipment"]["reference"], "R-1");
    assert_eq!(body["data"]["source"], "manual");
    assert_eq!(
        outbox::etas_of(&rows[0].etas),
        Vec::<chrono::DateTime<chrono::Utc>>::new()
    );
}
