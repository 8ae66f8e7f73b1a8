//! Fencing, held to one contract on SQLite and PostgreSQL: a lease's token is the same on a
//! renewal and grows each time the lease changes holder, and every write of the leader's made
//! under a token a newer holder has superseded is refused with nothing of it written, its
//! notices included, while the new holder's writes and the writes no lease governs pass; and
//! takeovers racing the old holder's writes, round after round, land none of them after.

use std::time::Duration;

// The contract's fixtures, and the store traits in scope as the contract has them.
use super::outbox::{arrived, everything_pending, under_way_with_a_webhook};
use super::*;
use crate::adapters::webhooks::Settled;
use crate::domain::clock::Clock;
use crate::domain::storage::StoreError;
use crate::tracking::shipment::Status;
use crate::tracking::store::{leader_work, Fence};

/// Leader `a`'s token, superseded by the one `b` takes the lease over with once it expired.
fn a_then_b(store: &dyn Store) -> (Fence, Fence) {
    let first = store
        .acquire_lease("tracking", "a", 200)
        .unwrap()
        .expect("a takes the lease");
    let renewed = store.acquire_lease("tracking", "a", 200).unwrap();
    assert_eq!(renewed.as_ref(), Some(&first), "a renewal keeps the token");
    std::thread::sleep(Duration::from_millis(300));
    let second = store
        .acquire_lease("tracking", "b", 60_000)
        .unwrap()
        .expect("b takes the expired lease over");
    assert!(second.token > first.token, "{first:?}, then {second:?}");
    (first, second)
}

fn assert_fenced<T: std::fmt::Debug>(outcome: StoreResult<T>) {
    assert!(matches!(outcome, Err(StoreError::Fenced)), "{outcome:?}");
}

fn stale_shipment_writes_are_refused(store: &dyn Store) {
    let (first, second) = a_then_b(store);
    under_way_with_a_webhook(store, "shp_f", "REF-F", "whk_f");

    // The stalled leader's save, estimate and current estimate: none of them, nor the notices.
    let mut stale = store.shipment("org", "shp_f").unwrap().unwrap();
    stale.status = Status::Cancelled;
    assert_fenced(store.save_shipment_under(&mut stale, &[arrived("shp_f", 0)], Some(&first)));
    assert_eq!(stale.version, 0);
    let kept = store.shipment("org", "shp_f").unwrap().unwrap();
    assert_eq!((kept.version, kept.status), (0, Status::InTransit));
    assert_fenced(store.append_snapshot_under(
        &snapshot("shp_f", 5),
        &[arrived("shp_f", 0)],
        Some(&first),
    ));
    assert!(store.snapshots("shp_f").unwrap().is_empty());
    assert_fenced(store.save_current_under(&snapshot("shp_f", 5), Some(&first)));
    assert_eq!(store.current("shp_f").unwrap(), None);
    assert!(everything_pending(store).is_empty());

    // The leader's work on a thread carries its fence through the plain methods: the new
    // holder's passes, the stalled one's does not.
    leader_work(&second, || {
        let mut moving = store.shipment("org", "shp_f").unwrap().unwrap();
        store
            .save_shipment(&mut moving, &[arrived("shp_f", 0)])
            .unwrap();
        store.append_snapshot(&snapshot("shp_f", 5), &[]).unwrap();
        store.save_current(&snapshot("shp_f", 6)).unwrap();
    });
    assert_eq!(store.shipment("org", "shp_f").unwrap().unwrap().version, 1);
    assert_eq!(store.snapshots("shp_f").unwrap().len(), 1);
    assert_fenced(leader_work(&first, || {
        store.save_current(&snapshot("shp_f", 7))
    }));
    assert_eq!(store.current("shp_f").unwrap(), Some(snapshot("shp_f", 6)));
    // Outside the leader's work, a write no lease governs: a request's.
    store.save_current(&snapshot("shp_f", 8)).unwrap();
    // A process alone on its store, under a lease never taken: nothing supersedes it.
    store
        .save_current_under(&snapshot("shp_f", 9), Some(&Fence::alone("retraining")))
        .unwrap();
    assert_eq!(store.current("shp_f").unwrap(), Some(snapshot("shp_f", 9)));

    // Given up and taken back: a new token again, the lease kept rather than started over.
    store.release_lease("tracking", "b").unwrap();
    let third = store
        .acquire_lease("tracking", "a", 60_000)
        .unwrap()
        .expect("a takes the given-up lease");
    assert!(third.token > second.token, "{second:?}, then {third:?}");
    assert_fenced(store.save_current_under(&snapshot("shp_f", 10), Some(&second)));
    store
        .save_current_under(&snapshot("shp_f", 10), Some(&third))
        .unwrap();
}

fn a_stale_dispatcher_claims_and_settles_nothing(store: &dyn Store) {
    let (first, second) = a_then_b(store);
    under_way_with_a_webhook(store, "shp_d", "REF-D", "whk_d");
    store
        .append_snapshot(&snapshot("shp_d", 0), &[arrived("shp_d", 0)])
        .unwrap();
    let now = Clock::System.now().timestamp_millis() + 1_000;
    let hold = 60_000;

    assert_fenced(store.claim_outbox(now, hold, 10, Some(&first)));
    let claimed = store.claim_outbox(now, hold, 10, Some(&second)).unwrap();
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    let seq = claimed[0].seq;
    assert_fenced(store.hold_outbox(seq, now + hold, Some(&first)));
    assert_fenced(store.retry_outbox(seq, 1, now, Some(&first)));
    assert_fenced(store.settle_outbox(seq, 1, Settled::Delivered, now, Some(&first)));
    assert_fenced(store.release_outbox(Some(&first)));
    // The new holder's claim still holds it, pending.
    assert!(store
        .claim_outbox(now, hold, 10, Some(&second))
        .unwrap()
        .is_empty());
    assert!(store.hold_outbox(seq, now + hold, Some(&second)).unwrap());
    store
        .settle_outbox(seq, 1, Settled::Delivered, now, Some(&second))
        .unwrap();
    // Settled, it is no one's to attempt again.
    assert!(!store.hold_outbox(seq, now + hold, Some(&second)).unwrap());
}

/// Rounds of the races below: `ETAPE_RACE_ROUNDS`, or `default` (`benches/race.sh` runs
/// 1,000).
fn race_rounds(default: usize) -> usize {
    std::env::var("ETAPE_RACE_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(default)
}

/// Takeovers racing the old holder's writes: the old holder saves the current estimate over
/// and over while its lease runs out and another takes it. What the store held when the
/// takeover returned is what it holds once the old holder's writes are refused: a write
/// checked against the old token but kept after the takeover would have replaced it.
fn a_takeover_racing_the_old_holders_writes_lands_none_after_it(store: &dyn Store) {
    under_way_with_a_webhook(store, "shp_r", "REF-R", "whk_r");
    for round in 0..race_rounds(50) {
        let old = store
            .acquire_lease("tracking", "a", 20)
            .unwrap()
            .expect("a takes the free lease");
        std::thread::scope(|scope| {
            let writer = scope.spawn(|| {
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                let mut written = 0;
                loop {
                    match store.save_current_under(&snapshot("shp_r", written), Some(&old)) {
                        Ok(()) => written += 1,
                        Err(StoreError::Fenced) => return written,
                        Err(error) => panic!("round {round}: {error}"),
                    }
                    assert!(
                        std::time::Instant::now() < deadline,
                        "round {round}: the old holder's writes are never refused"
                    );
                }
            });
            let new = loop {
                if let Some(new) = store.acquire_lease("tracking", "b", 60_000).unwrap() {
                    break new;
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            let held = store.current("shp_r").unwrap();
            let written = writer.join().unwrap();
            assert!(
                new.token > old.token,
                "round {round}: {old:?}, then {new:?}"
            );
            assert_eq!(
                store.current("shp_r").unwrap(),
                held,
                "round {round}: a write of the old holder's kept after the takeover \
                 ({written} written before the refusal)"
            );
        });
        store.release_lease("tracking", "b").unwrap();
    }
}

/// The fencing checks, by name (the name of its PostgreSQL database).
const FENCING_CONTRACT: [super::Check; 3] = [
    ("fenced_shipments", stale_shipment_writes_are_refused),
    (
        "fenced_outbox",
        a_stale_dispatcher_claims_and_settles_nothing,
    ),
    (
        "fenced_takeovers",
        a_takeover_racing_the_old_holders_writes_lands_none_after_it,
    ),
];

#[test]
fn sqlite_refuses_a_stale_leaders_writes() {
    on_sqlite(&FENCING_CONTRACT);
}

#[test]
fn postgres_refuses_a_stale_leaders_writes() {
    on_postgres(&FENCING_CONTRACT);
}

#[test]
fn postgres_leaves_the_moved_vehicles_to_the_new_leader() {
    use crate::tracking::pings::Ping;
    use crate::tracking::store::SharedPings;

    let Some(url) = postgres_url() else {
        return;
    };
    let database = PostgresStore::scratch_database(&url, "fenced_moved_vehicles").unwrap();
    let store = PostgresStore::connect(&database).unwrap();
    let (first, second) = a_then_b(&store);
    let ping = Ping {
        vehicle: 0,
        timestamp_ms: at("2026-11-28T08:00:00Z").timestamp_millis(),
        lat: 45.76,
        lon: 4.84,
        speed_kmh: f64::NAN,
        heading: f64::NAN,
    };
    let vehicles = ["A".to_owned()];
    assert_eq!(
        store.append_pings("org", &vehicles, &[ping]).unwrap().len(),
        1
    );
    assert_fenced(store.take_moved_vehicles_under(Some(&first)));
    assert_eq!(
        store.take_moved_vehicles_under(Some(&second)).unwrap(),
        [("org".to_owned(), "A".to_owned())]
    );
}
