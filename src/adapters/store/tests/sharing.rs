//! Share links and a listed page's estimates, held to one contract on SQLite and PostgreSQL.

// The contract's fixtures, and the store traits in scope as the contract has them.
use super::*;
use crate::tracking::sharing::{Language, ShareLink};

fn link(id: &str, organisation: &str, shipment_id: &str) -> ShareLink {
    ShareLink {
        id: id.into(),
        organisation: organisation.into(),
        shipment_id: shipment_id.into(),
        position: false,
        language: Language::Fr,
        created_at: at("2026-11-30T08:00:00Z"),
        expires_at: at("2026-12-03T08:00:00Z"),
        revoked_at: None,
    }
}

fn share_links_are_found_by_their_token_digest_and_revoked(store: &dyn Store) {
    store
        .insert_shipment(&shipment("shp_s", "org", "S", Status::InTransit))
        .unwrap();
    let kept = link("shr_1", "org", "shp_s");
    store.insert_share_link(&kept, "digest-1").unwrap();
    assert_eq!(
        store.share_link_by_token("digest-1").unwrap(),
        Some(kept.clone())
    );
    assert_eq!(store.share_link_by_token("digest-2").unwrap(), None);
    // Another organisation, or another shipment, finds nothing under the link's id.
    assert_eq!(store.share_link("other", "shp_s", "shr_1").unwrap(), None);
    assert_eq!(store.share_link("org", "shp_t", "shr_1").unwrap(), None);
    let mut revoked = store.share_link("org", "shp_s", "shr_1").unwrap().unwrap();
    revoked.revoked_at = Some(at("2026-11-30T09:00:00Z"));
    store.save_share_link(&revoked).unwrap();
    assert_eq!(
        store.share_link_by_token("digest-1").unwrap(),
        Some(revoked)
    );
    // A digest is kept once.
    assert!(store
        .insert_share_link(&link("shr_2", "org", "shp_s"), "digest-1")
        .is_err());
}

fn a_page_of_estimates_is_read_at_once(store: &dyn Store) {
    for (id, status) in [
        ("shp_1", Status::InTransit),
        ("shp_2", Status::Planned),
        ("shp_3", Status::InTransit),
        ("shp_4", Status::Delivered),
    ] {
        store
            .insert_shipment(&shipment(id, "org", id, status))
            .unwrap();
        store.save_current(&snapshot(id, 1)).unwrap();
        store.append_snapshot(&snapshot(id, 2), &[]).unwrap();
        store.append_snapshot(&snapshot(id, 3), &[]).unwrap();
    }
    store
        .insert_shipment(&shipment("shp_5", "other", "shp_5", Status::InTransit))
        .unwrap();
    store.save_current(&snapshot("shp_5", 1)).unwrap();
    let ids = |snapshots: Vec<Snapshot>| -> Vec<String> {
        let mut ids: Vec<String> = snapshots.into_iter().map(|s| s.shipment_id).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(store.current_page("org", None, "shp_1", "shp_3").unwrap()),
        ["shp_1", "shp_2", "shp_3"]
    );
    assert_eq!(
        ids(store
            .current_page("org", Some(Status::InTransit), "shp_1", "shp_9")
            .unwrap()),
        ["shp_1", "shp_3"]
    );
    let latest = store.latest_page("org", None, "shp_2", "shp_4").unwrap();
    assert_eq!(
        ids(latest.clone()),
        ["shp_2", "shp_3", "shp_4"],
        "one each, the last kept"
    );
    assert!(latest.iter().all(|s| s == &snapshot(&s.shipment_id, 3)));
    assert!(store
        .current_page("other", None, "shp_1", "shp_4")
        .unwrap()
        .is_empty());
}

const SHARING_CONTRACT: &[super::Check] = &[
    // Database names: PostgreSQL keeps 63 bytes of an identifier.
    (
        "share_links",
        share_links_are_found_by_their_token_digest_and_revoked,
    ),
    ("page_estimates", a_page_of_estimates_is_read_at_once),
];

#[test]
fn sqlite_keeps_the_sharing_contract() {
    on_sqlite(SHARING_CONTRACT);
}

#[test]
fn postgres_keeps_the_sharing_contract() {
    on_postgres(SHARING_CONTRACT);
}
