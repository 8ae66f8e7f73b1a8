//! The outbox and the shipments' versions, held to one contract on SQLite and PostgreSQL: a
//! notice is enqueued with the change that causes it or not at all, once per subscribed
//! webhook; claims take each due delivery once; a retry waits for its time; a restart resumes
//! what was held.

use serde_json::Value;

// The contract's fixtures, and the store traits in scope as the contract has them.
use super::*;
use crate::adapters::webhooks::{Outgoing, Settled};
use crate::domain::clock::Clock;
use crate::domain::storage::StoreError;
use crate::tracking::shipment::{EventSource, Status};
use crate::tracking::tracker::{EventData, Notice};

/// A webhook of `organisation` asking for `events`.
fn subscribed(id: &str, organisation: &str, events: &[&str]) -> crate::adapters::webhooks::Webhook {
    let mut webhook = webhook(id, organisation);
    webhook.events = events.iter().map(|event| (*event).to_owned()).collect();
    webhook
}

pub(super) fn arrived(shipment_id: &str, stop_index: usize) -> Notice {
    Notice {
        organisation: "org".into(),
        event: "arrived",
        shipment_id: shipment_id.into(),
        reference: "REF-O".into(),
        vehicle_id: "AB-123-CD".into(),
        data: EventData::Stop {
            stop_index,
            stop_id: "lyon".into(),
            at: at("2026-11-30T15:05:00Z"),
            source: EventSource::Gps,
        },
        etas: Vec::new(),
    }
}

fn eta_changed(shipment_id: &str, minutes: i64) -> Notice {
    let moved = snapshot(shipment_id, minutes);
    Notice {
        event: "eta_changed",
        etas: moved.stops.iter().map(|stop| stop.eta).collect(),
        data: EventData::EtaChanged {
            stops: moved.stops,
            as_of: moved.as_of,
        },
        ..arrived(shipment_id, 0)
    }
}

fn now_ms() -> i64 {
    Clock::System.now().timestamp_millis()
}

/// Every pending delivery, due or not, held or not, releasing what it takes: what a restart
/// a day later would find.
pub(super) fn everything_pending(store: &dyn Store) -> Vec<Outgoing> {
    let later = now_ms() + 86_400_000;
    let pending = store.claim_outbox(later, 0, 1_000, None).unwrap();
    store.release_outbox(None).unwrap();
    pending
}

fn body_of(row: &Outgoing) -> Value {
    serde_json::from_str(&row.body).unwrap()
}

/// The shipment `shp_o` of `org` and four webhooks, of which one alone (`whk_arr`) takes its
/// arrivals: one asks for its estimates, one is another organisation's, one is disabled.
fn a_shipment_and_its_webhooks(store: &dyn Store) {
    store
        .insert_shipment(&shipment("shp_o", "org", "REF-O", Status::Planned))
        .unwrap();
    store
        .insert_webhook(&subscribed("whk_arr", "org", &["arrived", "departed"]))
        .unwrap();
    store
        .insert_webhook(&subscribed("whk_eta", "org", &["eta_changed"]))
        .unwrap();
    store
        .insert_webhook(&subscribed("whk_other", "other", &["arrived"]))
        .unwrap();
    let mut off = subscribed("whk_off", "org", &["arrived"]);
    off.disable(at("2026-11-29T07:00:00Z"), "the receiver answered 410 Gone");
    store.insert_webhook(&off).unwrap();
}

fn notices_come_with_their_change_or_not_at_all(store: &dyn Store) {
    a_shipment_and_its_webhooks(store);

    // Saved with its notice: one delivery, to the one enabled webhook of the organisation
    // that asked for the event.
    let read = store.shipment("org", "shp_o").unwrap().unwrap();
    assert_eq!(read.version, 0);
    let mut moving = read.clone();
    moving.status = Status::InTransit;
    store
        .save_shipment(&mut moving, &[arrived("shp_o", 0)])
        .unwrap();
    assert_eq!(moving.version, 1);
    assert_eq!(
        store.shipment("org", "shp_o").unwrap(),
        Some(moving.clone())
    );
    let pending = everything_pending(store);
    assert_eq!(pending.len(), 1, "{pending:?}");
    let delivery = &pending[0];
    assert_eq!(
        (
            delivery.webhook_id.as_str(),
            delivery.event.as_str(),
            delivery.attempts
        ),
        ("whk_arr", "arrived", 0)
    );
    assert!(delivery.delivery_id.starts_with("dlv_"), "{delivery:?}");
    let body = body_of(delivery);
    assert_eq!(body["event"], "arrived");
    assert_eq!(body["shipment"]["id"], "shp_o");
    assert_eq!(body["data"]["stop_index"], 0);

    // A writer that read the shipment before that save loses: nothing of it is written, its
    // notice included.
    let mut stale = read;
    stale.status = Status::Cancelled;
    let refused = store.save_shipment(&mut stale, &[arrived("shp_o", 1)]);
    assert!(matches!(refused, Err(StoreError::Conflict)), "{refused:?}");
    assert_eq!(stale.version, 0);
    assert_eq!(
        store.shipment("org", "shp_o").unwrap(),
        Some(moving.clone())
    );
    assert_eq!(everything_pending(store).len(), 1);
    // Read again, it saves.
    let mut again = store.shipment("org", "shp_o").unwrap().unwrap();
    again.status = Status::Cancelled;
    store.save_shipment(&mut again, &[]).unwrap();
    assert_eq!(again.version, 2);

    an_estimate_comes_with_its_notices(store);
}

/// The rest of `notices_come_with_their_change_or_not_at_all`, one arrival pending.
fn an_estimate_comes_with_its_notices(store: &dyn Store) {
    // An estimate kept with its notice: the stop medians travel with it.
    let notice = eta_changed("shp_o", 20);
    store
        .append_snapshot(&snapshot("shp_o", 20), std::slice::from_ref(&notice))
        .unwrap();
    assert_eq!(store.snapshots("shp_o").unwrap().len(), 1);
    let pending = everything_pending(store);
    assert_eq!(pending.len(), 2, "{pending:?}");
    let moved = &pending[1];
    assert_eq!(
        (moved.webhook_id.as_str(), moved.event.as_str()),
        ("whk_eta", "eta_changed")
    );
    assert_eq!(moved.etas, notice.etas);
    assert_ne!(moved.delivery_id, pending[0].delivery_id);
    // No webhook asked for it: nothing waits.
    let mut departed = arrived("shp_o", 0);
    departed.organisation = "nobody".into();
    store
        .append_snapshot(&snapshot("shp_o", 21), &[departed])
        .unwrap();
    assert_eq!(everything_pending(store).len(), 2);
}

/// The shipment `id` of `org` under way, and `webhook`, of `org`, taking its arrivals.
pub(super) fn under_way_with_a_webhook(
    store: &dyn Store,
    id: &str,
    reference: &str,
    webhook: &str,
) {
    store
        .insert_shipment(&shipment(id, "org", reference, Status::InTransit))
        .unwrap();
    store
        .insert_webhook(&subscribed(webhook, "org", &["arrived"]))
        .unwrap();
}

fn deliveries_are_claimed_once_retried_in_time_and_resumed(store: &dyn Store) {
    under_way_with_a_webhook(store, "shp_r", "REF-R", "whk_r");
    let notices: Vec<Notice> = (0..3).map(|index| arrived("shp_r", index)).collect();
    store
        .append_snapshot(&snapshot("shp_r", 0), &notices)
        .unwrap();
    let now = now_ms() + 1_000;
    let hold = 60_000;

    // Oldest first, each once while held.
    let first = store.claim_outbox(now, hold, 2, None).unwrap();
    let stops: Vec<Value> = first
        .iter()
        .map(|row| body_of(row)["data"]["stop_index"].clone())
        .collect();
    assert_eq!(stops, [0, 1]);
    let rest = store.claim_outbox(now, hold, 10, None).unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(body_of(&rest[0])["data"]["stop_index"], 2);
    assert!(store.claim_outbox(now, hold, 10, None).unwrap().is_empty());

    // A retry waits for its time, then comes back as the same delivery, its attempt counted.
    store
        .retry_outbox(first[0].seq, 1, now + 5_000, None)
        .unwrap();
    assert!(store
        .claim_outbox(now + 4_000, hold, 10, None)
        .unwrap()
        .is_empty());
    let retried = store.claim_outbox(now + 5_000, hold, 10, None).unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(
        (
            retried[0].delivery_id.as_str(),
            retried[0].attempts,
            retried[0].body.as_str()
        ),
        (first[0].delivery_id.as_str(), 1, first[0].body.as_str())
    );

    // Settled, it is never claimed again; the others come back once their hold runs out.
    store
        .settle_outbox(first[0].seq, 2, Settled::Delivered, now, None)
        .unwrap();
    store
        .settle_outbox(rest[0].seq, 1, Settled::Failed, now, None)
        .unwrap();
    let expired = store.claim_outbox(now + hold + 1, hold, 10, None).unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].delivery_id, first[1].delivery_id);

    // A restart releases what the stopped process held: at once, not after the hold.
    assert!(store
        .claim_outbox(now + hold + 2, hold, 10, None)
        .unwrap()
        .is_empty());
    assert_eq!(store.release_outbox(None).unwrap(), 1);
    let resumed = store.claim_outbox(now + hold + 2, hold, 10, None).unwrap();
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].delivery_id, first[1].delivery_id);
    assert_eq!(resumed[0].attempts, 0);

    // The settled ones are forgotten after a while; the pending one stays.
    assert_eq!(store.purge_outbox(now - 1).unwrap(), 0);
    assert_eq!(store.purge_outbox(now + 1).unwrap(), 2);
    assert_eq!(everything_pending(store).len(), 1);
}

/// The outbox's checks, by name (the name of its PostgreSQL database).
const OUTBOX_CONTRACT: [super::Check; 2] = [
    (
        "outbox_with_the_change",
        notices_come_with_their_change_or_not_at_all,
    ),
    (
        "outbox_claims_and_resumes",
        deliveries_are_claimed_once_retried_in_time_and_resumed,
    ),
];

#[test]
fn sqlite_keeps_the_outbox_contract() {
    on_sqlite(&OUTBOX_CONTRACT);
}

#[test]
fn postgres_keeps_the_outbox_contract() {
    on_postgres(&OUTBOX_CONTRACT);
}
