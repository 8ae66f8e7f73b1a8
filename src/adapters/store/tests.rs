//! One contract for every [`Store`]: the same checks run against SQLite and PostgreSQL.
//!
//! PostgreSQL runs when `ETAPE_TEST_POSTGRES_URL` names a server (scripts/test starts one on
//! 127.0.0.1); each test takes a database of its own there. `ETAPE_REQUIRE_POSTGRES=1` turns a
//! missing server into a failure instead of a skip.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::*;
use crate::adapters::webhooks::{Delivery, Webhook};
use crate::partners::keys::{ApiKey, Organisation};
use crate::partners::uploads::{Consent, Upload};
use crate::tracking::eta::Snapshot;
use crate::tracking::shipment::{Shipment, Status};
use crate::training::jobs::{Holdout, Job, JobStatus};
use crate::training::judge::Judged;

/// Phones' device tokens, on both stores.
mod devices;
/// Lease tokens and the leader's fenced writes, on both stores.
mod fencing;
/// The outbox and the shipments' versions, on both stores.
mod outbox;
/// Webhook secrets sealed at rest, on both stores.
mod secrets;
/// Share links and a listed page's estimates, on both stores.
mod sharing;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn shipment(id: &str, organisation: &str, reference: &str, status: Status) -> Shipment {
    serde_json::from_value(json!({
        "id": id, "organisation": organisation, "reference": reference,
        "vehicle_id": "AB-123-CD", "vehicle": "articulated", "origin": [50.63, 3.06],
        "stops": [{"id": "lyon", "lat": 45.76, "lon": 4.84,
                   "window": ["2026-11-30T14:30:00Z", "2026-11-30T17:30:00Z"],
                   "planned_dwell_minutes": 30.0, "arrived": null, "departed": null}],
        "planned_departure": "2026-11-30T06:00:00Z", "driven_today_minutes": 0.0,
        "driven_since_break_minutes": 0.0, "status": status,
        "created_at": "2026-11-29T06:00:00Z", "updated_at": "2026-11-29T06:00:00Z",
        "delivered_at": null, "cancelled_at": null, "accuracy": []
    }))
    .unwrap()
}

fn snapshot(shipment_id: &str, minutes: i64) -> Snapshot {
    let eta = at("2026-11-30T15:00:00Z") + TimeDelta::minutes(minutes);
    serde_json::from_value(json!({
        "shipment_id": shipment_id, "computed_at": "2026-11-30T08:00:00Z",
        "as_of": "2026-11-30T08:00:00Z", "position": null, "driven_today_minutes": 120.0,
        "driven_since_break_minutes": 120.0,
        "stops": [{"index": 0, "id": "lyon", "state": "pending", "eta": eta,
                   "eta_p10": eta, "eta_p90": eta, "late_probability": 0.1,
                   "severity": "on_time"}],
        "timeline": [], "factors": [], "model": "rules", "model_version": "rules",
        "fallback": false, "degraded": []
    }))
    .unwrap()
}

fn webhook(id: &str, organisation: &str) -> Webhook {
    Webhook {
        id: id.into(),
        organisation: organisation.into(),
        url: "http://127.0.0.1:9/hook".into(),
        events: vec!["eta.changed".into()],
        min_change_minutes: 15.0,
        secret: "whsec_test".into(),
        previous_secret: None,
        enabled: true,
        consecutive_failures: 0,
        created_at: at("2026-11-29T06:00:00Z"),
        disabled_at: None,
        disabled_reason: None,
    }
}

fn delivery(id: &str, webhook_id: &str, attempt: u32, outcome: &str) -> Delivery {
    Delivery {
        id: id.into(),
        webhook_id: webhook_id.into(),
        event: "eta.changed".into(),
        attempt,
        at: at("2026-11-29T06:00:00Z") + TimeDelta::seconds(attempt.into()),
        outcome: outcome.into(),
        status_code: Some(500),
        error: None,
        duration_ms: 12,
        body: Some(format!(r#"{{"delivery":"{id}"}}"#)),
        replayed: false,
    }
}

fn upload(id: &str, organisation: &str, sha256: &str) -> Upload {
    serde_json::from_value(json!({
        "id": id, "organisation": organisation, "sha256": sha256, "format": "csv",
        "rows": 120, "skipped_rows": 0, "first_departure": "2026-01-05T06:00:00Z",
        "last_departure": "2026-03-05T06:00:00Z", "created_at": "2026-11-29T06:00:00Z"
    }))
    .unwrap()
}

fn organisation(id: &str) -> Organisation {
    Organisation {
        id: id.into(),
        name: format!("{id} transports"),
        created_at: at("2026-11-29T06:00:00Z"),
    }
}

fn key(id: &str, organisation: &str) -> ApiKey {
    serde_json::from_value(json!({
        "id": id, "organisation": organisation, "name": "tms", "roles": ["carrier"],
        "hash": "00ff", "created_at": "2026-11-29T06:00:00Z", "revoked_at": null
    }))
    .unwrap()
}

fn shipments_page_and_refuse_a_reference_twice(store: &dyn Store) {
    let mut ids = Vec::new();
    for n in 0..5 {
        let status = if n % 2 == 0 {
            Status::InTransit
        } else {
            Status::Planned
        };
        let shipment = shipment(&format!("shp_{n}"), "org", &format!("REF-{n}"), status);
        store.insert_shipment(&shipment).unwrap();
        ids.push(shipment.id);
    }
    let again = shipment("shp_9", "org", "REF-3", Status::Planned);
    assert!(matches!(
        store.insert_shipment(&again),
        Err(StoreError::DuplicateReference(id)) if id == "shp_3"
    ));
    // Another organisation may use the same reference.
    let other = shipment("shp_9", "other", "REF-3", Status::Planned);
    store.insert_shipment(&other).unwrap();
    let first = store.list_shipments("org", None, None, 2).unwrap();
    let second = store
        .list_shipments("org", None, Some(&first[1].id), 10)
        .unwrap();
    let listed: Vec<&str> = first.iter().chain(&second).map(|s| s.id.as_str()).collect();
    assert_eq!(listed, ids);
    let moving = store
        .list_shipments("org", Some(Status::InTransit), None, 10)
        .unwrap();
    assert_eq!(moving.len(), 3);
    // No limit at all, as the operations page counts.
    assert_eq!(
        store
            .list_shipments("org", None, None, usize::MAX)
            .unwrap()
            .len(),
        5
    );
    assert!(store.shipment("other", "shp_1").unwrap().is_none());
    assert_eq!(store.shipment("other", "shp_9").unwrap(), Some(other));

    let of_vehicle = |organisation| -> Vec<String> {
        store
            .active_shipments_of(organisation, "AB-123-CD")
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect()
    };
    assert_eq!(
        of_vehicle("org"),
        ["shp_0", "shp_1", "shp_2", "shp_3", "shp_4"]
    );
    assert_eq!(of_vehicle("other"), ["shp_9"]);
    assert!(store
        .active_shipments_of("org", "ZZ-999-ZZ")
        .unwrap()
        .is_empty());
    let mut delivered = store.shipment("org", "shp_0").unwrap().unwrap();
    delivered.status = Status::Delivered;
    delivered.delivered_at = Some(at("2026-11-30T15:10:00Z"));
    store.save_shipment(&mut delivered, &[]).unwrap();
    assert_eq!(store.shipment("org", "shp_0").unwrap(), Some(delivered));
    let active: Vec<String> = store
        .active_shipments()
        .unwrap()
        .into_iter()
        .map(|s| format!("{}/{}", s.organisation, s.id))
        .collect();
    assert_eq!(
        active,
        [
            "org/shp_1",
            "org/shp_2",
            "org/shp_3",
            "org/shp_4",
            "other/shp_9"
        ]
    );
    assert_eq!(of_vehicle("org"), ["shp_1", "shp_2", "shp_3", "shp_4"]);
}

fn snapshots_keep_their_order(store: &dyn Store) {
    store
        .insert_shipment(&shipment("shp_a", "org", "A", Status::InTransit))
        .unwrap();
    store
        .insert_shipment(&shipment("shp_b", "org", "B", Status::InTransit))
        .unwrap();
    for minutes in [0, 12, -3, 40] {
        store
            .append_snapshot(&snapshot("shp_a", minutes), &[])
            .unwrap();
        store
            .append_snapshot(&snapshot("shp_b", -minutes), &[])
            .unwrap();
    }
    let etas: Vec<i64> = store
        .snapshots("shp_a")
        .unwrap()
        .iter()
        .map(|s| (s.stops[0].eta - at("2026-11-30T15:00:00Z")).num_minutes())
        .collect();
    assert_eq!(etas, [0, 12, -3, 40]);
    assert_eq!(store.current("shp_a").unwrap(), None);
    store.save_current(&snapshot("shp_a", 5)).unwrap();
    store.save_current(&snapshot("shp_a", 7)).unwrap();
    store.save_current(&snapshot("shp_b", 9)).unwrap();
    assert_eq!(store.current("shp_a").unwrap(), Some(snapshot("shp_a", 7)));
    assert_eq!(store.current("shp_b").unwrap(), Some(snapshot("shp_b", 9)));
    assert_eq!(store.snapshots("shp_b").unwrap().len(), 4);
    assert!(store.snapshots("shp_none").unwrap().is_empty());
}

fn webhooks_and_their_deliveries(store: &dyn Store) {
    store.insert_webhook(&webhook("whk_1", "org")).unwrap();
    store.insert_webhook(&webhook("whk_2", "other")).unwrap();
    assert_eq!(store.webhooks(None).unwrap().len(), 2);
    assert_eq!(
        store.webhooks(Some("org")).unwrap(),
        vec![webhook("whk_1", "org")]
    );
    let sick = store
        .update_webhook("org", "whk_1", &mut |webhook: &mut Webhook| {
            webhook.consecutive_failures = 7;
            webhook.disable(at("2026-11-29T07:00:00Z"), "the receiver answered 410 Gone");
        })
        .unwrap()
        .unwrap();
    assert_eq!(store.webhooks(Some("org")).unwrap(), vec![sick.clone()]);
    assert!(!sick.enabled);
    assert_eq!(sick.consecutive_failures, 7);
    assert_eq!(
        sick.disabled_reason.as_deref(),
        Some("the receiver answered 410 Gone")
    );
    // Another organisation's webhook, or a deleted one, is not changed.
    let mut called = false;
    let mut change = |_: &mut Webhook| called = true;
    assert_eq!(
        store.update_webhook("other", "whk_1", &mut change).unwrap(),
        None
    );
    assert_eq!(
        store
            .update_webhook("org", "whk_gone", &mut change)
            .unwrap(),
        None
    );
    assert!(!called);
    assert_eq!(
        store.webhooks(Some("other")).unwrap(),
        vec![webhook("whk_2", "other")]
    );

    // The last records an attempt again: it replaces it and lists as the latest.
    for (id, attempt, outcome) in [
        ("dlv_1", 1, "retrying"),
        ("dlv_2", 1, "delivered"),
        ("dlv_1", 2, "retrying"),
        ("dlv_1", 2, "failed"),
    ] {
        store
            .record_delivery(&delivery(id, "whk_1", attempt, outcome))
            .unwrap();
    }
    let listed: Vec<(String, u32, String)> = store
        .deliveries("whk_1", 10)
        .unwrap()
        .into_iter()
        .map(|d| (d.id, d.attempt, d.outcome))
        .collect();
    assert_eq!(
        listed,
        [
            ("dlv_1".into(), 2, "failed".into()),
            ("dlv_2".into(), 1, "delivered".into()),
            ("dlv_1".into(), 1, "retrying".into()),
        ]
    );
    assert_eq!(store.deliveries("whk_1", 1).unwrap().len(), 1);
    assert_eq!(store.deliveries("whk_1", usize::MAX).unwrap().len(), 3);
    assert!(store.deliveries("whk_2", 10).unwrap().is_empty());
    // One delivery's attempts, by attempt, with the body sent.
    let attempts = store.delivery_attempts("whk_1", "dlv_1").unwrap();
    let numbers: Vec<(u32, &str)> = attempts
        .iter()
        .map(|attempt| (attempt.attempt, attempt.outcome.as_str()))
        .collect();
    assert_eq!(numbers, [(1, "retrying"), (2, "failed")]);
    assert_eq!(attempts[0].body.as_deref(), Some(r#"{"delivery":"dlv_1"}"#));
    assert!(store
        .delivery_attempts("whk_2", "dlv_1")
        .unwrap()
        .is_empty());

    assert!(!store.delete_webhook("other", "whk_1").unwrap());
    assert!(store.delete_webhook("org", "whk_1").unwrap());
    assert!(store.webhooks(Some("org")).unwrap().is_empty());
}

fn organisations_and_keys(store: &dyn Store) {
    store.insert_organisation(&organisation("org_b")).unwrap();
    store.insert_organisation(&organisation("org_a")).unwrap();
    assert!(store.insert_organisation(&organisation("org_a")).is_err());
    let ids: Vec<String> = store
        .organisations()
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(ids, ["org_a", "org_b"]);
    store.insert_key(&key("key_1", "org_a")).unwrap();
    store.insert_key(&key("key_2", "org_b")).unwrap();
    // A key belongs to an organisation that exists.
    assert!(store.insert_key(&key("key_3", "org_none")).is_err());
    assert_eq!(store.keys(None).unwrap().len(), 2);
    assert_eq!(
        store.keys(Some("org_a")).unwrap(),
        vec![key("key_1", "org_a")]
    );
    let first = at("2026-11-29T08:00:00Z");
    assert!(store.revoke_key("key_1", first).unwrap());
    // Revoking again keeps the first moment.
    assert!(store
        .revoke_key("key_1", first + TimeDelta::hours(1))
        .unwrap());
    assert_eq!(
        store.keys(Some("org_a")).unwrap()[0].revoked_at,
        Some(first)
    );
    assert!(!store.revoke_key("key_none", first).unwrap());
}

fn uploads_and_consent(store: &dyn Store) {
    store.insert_upload(&upload("upl_1", "org", "aa")).unwrap();
    store
        .insert_upload(&upload("upl_2", "other", "aa"))
        .unwrap();
    store.insert_upload(&upload("upl_3", "org", "bb")).unwrap();
    // The same content twice is one upload of an organisation.
    assert!(store.insert_upload(&upload("upl_4", "org", "aa")).is_err());
    let ids = |organisation| -> Vec<String> {
        store
            .uploads(organisation)
            .unwrap()
            .into_iter()
            .map(|u| u.id)
            .collect()
    };
    assert_eq!(ids(None), ["upl_1", "upl_2", "upl_3"]);
    assert_eq!(ids(Some("org")), ["upl_1", "upl_3"]);
    assert!(!store.delete_upload("other", "upl_1").unwrap());
    assert!(store.delete_upload("org", "upl_1").unwrap());
    assert_eq!(ids(Some("org")), ["upl_3"]);

    assert_eq!(store.consent("org").unwrap(), None);
    let mut consent = Consent {
        organisation: "org".into(),
        pool: true,
        updated_at: at("2026-11-29T06:00:00Z"),
    };
    store.set_consent(&consent).unwrap();
    consent.pool = false;
    consent.updated_at += TimeDelta::days(1);
    store.set_consent(&consent).unwrap();
    assert_eq!(store.consent("org").unwrap(), Some(consent));
    assert_eq!(store.consent("other").unwrap(), None);
}

fn leases_pass_on_when_they_expire_or_are_given_up(store: &dyn Store) {
    let holds = |name: &str, holder: &str, ttl_ms: i64| {
        store.acquire_lease(name, holder, ttl_ms).unwrap().is_some()
    };
    assert!(holds("leader", "a", 200));
    assert!(!holds("leader", "b", 200));
    // Its holder renews it; another lease is another name.
    assert!(holds("leader", "a", 200));
    assert!(holds("retraining", "b", 60_000));
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Expired: the next one to ask takes it, and the first holder has lost it.
    assert!(holds("leader", "b", 60_000));
    assert!(!holds("leader", "a", 60_000));
    // Only the holder gives it up.
    store.release_lease("leader", "a").unwrap();
    assert!(!holds("leader", "a", 60_000));
    store.release_lease("leader", "b").unwrap();
    assert!(holds("leader", "a", 60_000));
    assert!(!holds("retraining", "a", 60_000));
}

fn job(id: &str, started_at: &str) -> Job {
    Job {
        rounds_done: 10,
        rounds_total: 30,
        partners: 1,
        uploads: 1,
        ..Job::begun(id.into(), at(started_at))
    }
}

fn training_jobs_are_kept_and_replaced(store: &dyn Store) {
    let ids = |jobs: Vec<Job>| -> Vec<String> { jobs.into_iter().map(|job| job.id).collect() };
    store
        .save_job(&job("job_b", "2026-11-29T07:00:00Z"))
        .unwrap();
    store
        .save_job(&job("job_a", "2026-11-29T06:00:00Z"))
        .unwrap();
    assert_eq!(ids(store.running_jobs().unwrap()), ["job_a", "job_b"]);

    let mut ended = job("job_b", "2026-11-29T07:00:00Z");
    ended.status = JobStatus::Succeeded;
    ended.rounds_done = 30;
    ended.finished_at = Some(at("2026-11-29T07:05:00Z"));
    // With the rules serving and no rows of theirs to measure, an MAE is infinite: JSON's
    // `null`, infinite again when read back.
    ended.holdout = Some(Holdout {
        rows: 12,
        new_mae: 20.5,
        served: "rules".into(),
        served_mae: f64::INFINITY,
        baseline_mae: 25.25,
        partners: vec![Judged {
            partner: "org".into(),
            rows: 12,
            new_mae: 20.5,
            served_mae: f64::INFINITY,
            baseline_mae: 25.25,
        }],
        refused: Vec::new(),
    });
    store.save_job(&ended).unwrap();
    assert_eq!(ids(store.running_jobs().unwrap()), ["job_a"]);
    let kept = store.job("job_b").unwrap().expect("the job is kept");
    assert_eq!(
        serde_json::to_value(&kept).unwrap(),
        serde_json::to_value(&ended).unwrap()
    );
    let holdout = kept.holdout.unwrap();
    assert_eq!(holdout.served_mae, f64::INFINITY);
    assert_eq!(holdout.partners[0].served_mae, f64::INFINITY);
    assert!(store.job("job_none").unwrap().is_none());
}

/// A contract check, by name (the name of its PostgreSQL database).
type Check = (&'static str, fn(&dyn Store));

/// Every contract check, each on a store of its own.
const CONTRACT: [Check; 7] = [
    (
        "shipments_page_and_refuse_a_reference_twice",
        shipments_page_and_refuse_a_reference_twice,
    ),
    ("snapshots_keep_their_order", snapshots_keep_their_order),
    (
        "webhooks_and_their_deliveries",
        webhooks_and_their_deliveries,
    ),
    ("organisations_and_keys", organisations_and_keys),
    ("uploads_and_consent", uploads_and_consent),
    (
        "leases_pass_on_when_they_expire_or_are_given_up",
        leases_pass_on_when_they_expire_or_are_given_up,
    ),
    (
        "training_jobs_are_kept_and_replaced",
        training_jobs_are_kept_and_replaced,
    ),
];

/// Runs each check of `contract` on an in-memory SQLite store of its own.
fn on_sqlite(contract: &[Check]) {
    for (_, check) in contract {
        check(&SqliteStore::in_memory().unwrap());
    }
}

/// Runs each check of `contract` on a PostgreSQL database of its own, named after the check,
/// when there is a server to test against.
fn on_postgres(contract: &[Check]) {
    let Some(url) = postgres_url() else {
        return;
    };
    for (name, check) in contract {
        let database = PostgresStore::scratch_database(&url, name).unwrap();
        check(&PostgresStore::connect(&database).unwrap());
    }
}

#[test]
fn sqlite_keeps_the_contract() {
    on_sqlite(&CONTRACT);
}

/// The server to test against, if any.
pub(crate) fn postgres_url() -> Option<String> {
    PostgresStore::test_server()
}

#[test]
fn postgres_keeps_the_contract() {
    on_postgres(&CONTRACT);
}

#[test]
fn postgres_replicas_migrate_once_and_refuse_a_reference_twice_together() {
    let Some(url) = postgres_url() else {
        return;
    };
    let database = PostgresStore::scratch_database(&url, "replicas_together").unwrap();
    // Four processes starting at once: one migrates, the others find the schema ready.
    let stores: Vec<PostgresStore> = std::thread::scope(|scope| {
        let starting: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| PostgresStore::connect(&database).unwrap()))
            .collect();
        starting.into_iter().map(|s| s.join().unwrap()).collect()
    });
    // Each registers the same reference: exactly one wins, the others learn its id.
    let outcomes: Vec<StoreResult<()>> = std::thread::scope(|scope| {
        let racing: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(n, store)| {
                scope.spawn(move || {
                    store.insert_shipment(&shipment(
                        &format!("shp_{n}"),
                        "org",
                        "SAME",
                        Status::Planned,
                    ))
                })
            })
            .collect();
        racing.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let winners = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(winners, 1, "{outcomes:?}");
    let stored = stores[3].list_shipments("org", None, None, 10).unwrap();
    assert_eq!(stored.len(), 1);
    for outcome in outcomes.into_iter().filter_map(Result::err) {
        assert!(
            matches!(&outcome, StoreError::DuplicateReference(id) if *id == stored[0].id),
            "{outcome}"
        );
    }
}

#[test]
fn postgres_store_is_usable_inside_an_async_runtime() {
    let Some(url) = postgres_url() else {
        return;
    };
    let database = PostgresStore::scratch_database(&url, "inside_a_runtime").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Startup and tests call the store from async code, as they may with SQLite.
    runtime.block_on(async {
        let store = PostgresStore::connect(&database).unwrap();
        store.insert_organisation(&organisation("org")).unwrap();
        assert_eq!(store.organisations().unwrap().len(), 1);
        drop(store);
    });
}

#[test]
fn a_bad_postgres_url_is_a_clear_error() {
    let error = PostgresStore::connect("postgres://127.0.0.1:notaport/x")
        .err()
        .unwrap();
    assert!(
        error.to_string().contains("invalid PostgreSQL URL"),
        "{error}"
    );
    // Nothing listens on port 9 of loopback: a server that is not there (yet) is one to retry,
    // and the error says why.
    let error = PostgresStore::connect("postgres://etape@127.0.0.1:9/etape")
        .err()
        .unwrap();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(error.to_string().contains("Connection refused"), "{error}");
}

#[test]
fn postgres_shares_pings_between_replicas_once_each() {
    use super::SharedPings;
    use crate::tracking::pings::Ping;

    let Some(url) = postgres_url() else {
        return;
    };
    let database = PostgresStore::scratch_database(&url, "shared_pings").unwrap();
    let (one, two) = (
        PostgresStore::connect(&database).unwrap(),
        PostgresStore::connect(&database).unwrap(),
    );
    let start = at("2026-11-28T08:00:00Z").timestamp_millis();
    let ping = |vehicle: u32, minute: i64| Ping {
        vehicle,
        timestamp_ms: start + minute * 60_000,
        lat: 45.0 + minute as f64 * 0.01,
        lon: 4.0,
        speed_kmh: if minute % 2 == 0 { 80.0 } else { f64::NAN },
        heading: f64::NAN,
    };
    let vehicles = ["A".to_owned(), "B".to_owned()];
    let first = [ping(0, 0), ping(0, 1), ping(1, 0), ping(0, 1)];
    // The copy within the batch is kept once; the first copy is the new one.
    assert_eq!(one.append_pings("org", &vehicles, &first).unwrap().len(), 3);
    // The same pings through another replica: nothing new, a later one new.
    let second = [ping(0, 1), ping(0, 2)];
    let new = two.append_pings("org", &vehicles, &second).unwrap();
    assert_eq!(new.len(), 1);
    assert_eq!(new[0].timestamp_ms, start + 120_000);
    // Another organisation's vehicle of the same name is another vehicle.
    assert_eq!(
        two.append_pings("other", &vehicles, &second).unwrap().len(),
        2
    );

    let seen = one.vehicle_pings("org", "A", start + 60_000).unwrap();
    let minutes: Vec<i64> = seen
        .iter()
        .map(|ping| (ping.timestamp_ms - start) / 60_000)
        .collect();
    assert_eq!(minutes, [1, 2]);
    assert!(seen[0].speed_kmh.is_nan() && seen[1].speed_kmh == 80.0);
    // Every vehicle that moved, once, to whoever asks first.
    let mut moved = two.take_moved_vehicles().unwrap();
    moved.sort();
    let expected: Vec<(String, String)> = [("org", "A"), ("org", "B"), ("other", "A")]
        .iter()
        .map(|(o, v)| (o.to_string(), v.to_string()))
        .collect();
    assert_eq!(moved, expected);
    assert!(one.take_moved_vehicles().unwrap().is_empty());

    assert_eq!(one.pings_sample(1_000).unwrap().len(), 6);
    assert!(one.pings_sample(2).unwrap().len() <= 2);
    assert_eq!(two.delete_pings_before(start + 60_000).unwrap(), 2);
    assert_eq!(one.vehicle_pings("org", "B", 0).unwrap().len(), 0);
    assert_eq!(one.pings_sample(1_000).unwrap().len(), 4);
}

#[test]
fn a_full_disk_or_a_locked_database_is_unavailable_and_a_bad_query_is_not() {
    let full = rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
        Some("database or disk is full".into()),
    );
    assert!(matches!(backend(full), StoreError::Unavailable(_)));
    let busy =
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None);
    assert!(matches!(backend(busy), StoreError::Unavailable(_)));
    let enospc = std::io::Error::from_raw_os_error(28);
    assert!(matches!(backend(enospc), StoreError::Unavailable(_)));
    let syntax = rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
        Some("near \"SELEC\": syntax error".into()),
    );
    assert!(matches!(backend(syntax), StoreError::Backend(_)));
    assert!(matches!(
        backend(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
        StoreError::Backend(_)
    ));
}
