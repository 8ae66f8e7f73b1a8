//! Phones' device tokens, held to one contract on SQLite and PostgreSQL.

// The contract's fixtures, and the store traits in scope as the contract has them.
use super::*;
use crate::partners::devices::Device;

fn device(id: &str, organisation: &str, vehicle_id: &str) -> Device {
    Device {
        id: id.into(),
        organisation: organisation.into(),
        vehicle_id: vehicle_id.into(),
        name: format!("{vehicle_id}'s phone"),
        created_at: at("2026-11-30T08:00:00Z"),
        revoked_at: None,
    }
}

fn devices_are_found_by_their_token_digest_listed_and_revoked(store: &dyn Store) {
    store.insert_organisation(&organisation("org")).unwrap();
    store.insert_organisation(&organisation("other")).unwrap();
    let kept = device("dev_1", "org", "AB-123-CD");
    store.insert_device(&kept, "digest-1").unwrap();
    store
        .insert_device(&device("dev_2", "org", "EF-456-GH"), "digest-2")
        .unwrap();
    store
        .insert_device(&device("dev_3", "other", "AB-123-CD"), "digest-3")
        .unwrap();
    assert_eq!(
        store.device_by_token("digest-1").unwrap(),
        Some(kept.clone())
    );
    assert_eq!(store.device_by_token("digest-9").unwrap(), None);
    let listed: Vec<String> = store
        .devices("org")
        .unwrap()
        .into_iter()
        .map(|device| device.id)
        .collect();
    assert_eq!(listed, ["dev_1", "dev_2"]);
    // Another organisation finds nothing under the device's id.
    assert_eq!(store.device("other", "dev_1").unwrap(), None);
    let mut revoked = store.device("org", "dev_1").unwrap().unwrap();
    revoked.revoked_at = Some(at("2026-11-30T09:00:00Z"));
    store.save_device(&revoked).unwrap();
    // Revoked, it is still found by its token, so that the phone is told why it is refused.
    assert_eq!(
        store.device_by_token("digest-1").unwrap(),
        Some(revoked.clone())
    );
    assert_eq!(store.devices("org").unwrap()[0], revoked);
    // A digest is kept once, and a device belongs to an organisation that exists.
    assert!(store
        .insert_device(&device("dev_4", "org", "IJ-789-KL"), "digest-1")
        .is_err());
    assert!(store
        .insert_device(&device("dev_5", "nobody", "IJ-789-KL"), "digest-5")
        .is_err());
}

const DEVICES_CONTRACT: &[super::Check] = &[
    // Database names: PostgreSQL keeps 63 bytes of an identifier.
    (
        "devices",
        devices_are_found_by_their_token_digest_listed_and_revoked,
    ),
];

#[test]
fn sqlite_keeps_the_devices_contract() {
    on_sqlite(DEVICES_CONTRACT);
}

#[test]
fn postgres_keeps_the_devices_contract() {
    on_postgres(DEVICES_CONTRACT);
}
