//! Webhook secrets sealed at rest, on SQLite and PostgreSQL: the database holds none in clear,
//! the store gives each back as it was, a secret an earlier version kept in clear is sealed at
//! the next start with a key, and another key, or none, opens nothing.

use std::path::Path;
use std::time::Duration;

// The contract's fixtures, and the store traits in scope as the contract has them.
use super::*;
use crate::adapters::store::records::{reseal_secrets, Bodies, Database};
use crate::adapters::store::sealed::{is_sealed, SecretBox, KEY_LEN};
use crate::adapters::store::sql;
use crate::adapters::webhooks::{new_secret, Webhook, WebhookStore};

/// The secrets of the organisation's webhook `id` as the database holds them: the current
/// one, then the one its last rotation replaced.
fn stored<S: Database>(store: &S, id: &str) -> (String, Option<String>) {
    let stored: Webhook = store
        .body(sql::webhooks::OWNED, &[&"org", &id])
        .unwrap()
        .expect("the webhook is kept");
    let previous = stored.previous_secret.map(|previous| previous.secret);
    (stored.secret, previous)
}

/// Through stores that `open` opens on one database, each with the key it is given.
fn secrets_are_sealed_at_rest<S: Database>(
    open: impl Fn(Option<SecretBox>) -> S,
    database_file: Option<&Path>,
) {
    let key = SecretBox::new(&[7u8; KEY_LEN]);
    // A webhook as an earlier version kept it, its secret in clear.
    let mut earlier = webhook("whk_earlier", "org");
    earlier.secret = new_secret();
    let before = open(None);
    before.insert_webhook(&earlier).unwrap();
    assert_eq!(stored(&before, "whk_earlier").0, earlier.secret);
    drop(before);

    // The first start with a key seals it, and reads it as it was.
    let store = open(Some(key.clone()));
    let (sealed_earlier, _) = stored(&store, "whk_earlier");
    assert!(is_sealed(&sealed_earlier), "{sealed_earlier}");
    assert_eq!(store.webhooks(Some("org")).unwrap(), vec![earlier.clone()]);

    // A new webhook, then a rotation: each secret sealed, and read in clear.
    let mut created = webhook("whk_created", "org");
    created.secret = new_secret();
    store.insert_webhook(&created).unwrap();
    let replacement = new_secret();
    let rotated = store
        .update_webhook("org", "whk_created", &mut |webhook: &mut Webhook| {
            webhook.rotate(
                replacement.clone(),
                at("2026-11-29T08:00:00Z"),
                Duration::from_secs(3_600),
            );
        })
        .unwrap()
        .unwrap();
    assert_eq!(rotated.secret, replacement);
    let replaced = rotated.previous_secret.as_ref().map(|p| p.secret.as_str());
    assert_eq!(replaced, Some(created.secret.as_str()));
    let (current, previous) = stored(&store, "whk_created");
    assert!(
        is_sealed(&current) && previous.as_deref().is_some_and(is_sealed),
        "{current} {previous:?}"
    );
    // A delivery's save of the failure count leaves the secrets as they were sealed.
    let failed = store
        .update_webhook("org", "whk_created", &mut |webhook: &mut Webhook| {
            webhook.consecutive_failures += 1;
        })
        .unwrap()
        .unwrap();
    assert_eq!(stored(&store, "whk_created"), (current, previous));
    assert_eq!(
        store.webhooks(Some("org")).unwrap(),
        vec![failed.clone(), earlier.clone()]
    );
    if let Some(file) = database_file {
        let mut bytes = std::fs::read(file).unwrap();
        let mut wal = file.as_os_str().to_owned();
        wal.push("-wal");
        bytes.extend(std::fs::read(wal).unwrap_or_default());
        for secret in [&earlier.secret, &created.secret, &replacement] {
            let secret = secret.as_bytes();
            assert!(
                !bytes.windows(secret.len()).any(|window| window == secret),
                "a secret in clear in {}",
                file.display()
            );
        }
    }
    drop(store);

    // Another key opens none of them and changes nothing; a store without a key refuses
    // them: an error each time, never a ciphertext to sign with.
    let other = open(Some(SecretBox::new(&[8u8; KEY_LEN])));
    let error = other.webhooks(Some("org")).unwrap_err().to_string();
    assert!(error.contains("does not open"), "{error}");
    let mut reset = |webhook: &mut Webhook| webhook.consecutive_failures = 0;
    let changed = other.update_webhook("org", "whk_created", &mut reset);
    assert!(changed.is_err(), "{changed:?}");
    drop(other);
    assert!(open(None).webhooks(Some("org")).is_err());
    let expected = vec![failed, earlier];
    assert_eq!(
        open(Some(key.clone())).webhooks(Some("org")).unwrap(),
        expected
    );

    // `etape rekey`: every secret sealed under a new key, or, when one opens under neither the
    // store's key nor the new one, none.
    let new = SecretBox::new(&[9u8; KEY_LEN]);
    let wrong = open(Some(SecretBox::new(&[8u8; KEY_LEN])));
    assert!(reseal_secrets(&wrong, &SecretBox::new(&[10u8; KEY_LEN])).is_err());
    drop(wrong);
    assert_eq!(
        open(Some(key.clone())).webhooks(Some("org")).unwrap(),
        expected
    );
    assert_eq!(reseal_secrets(&open(Some(key.clone())), &new).unwrap(), 2);
    assert_eq!(
        open(Some(new.clone())).webhooks(Some("org")).unwrap(),
        expected
    );
    assert!(open(Some(key.clone())).webhooks(Some("org")).is_err());
    // Run again, as after an interruption: finished, not refused.
    assert_eq!(reseal_secrets(&open(Some(key)), &new).unwrap(), 2);
    assert_eq!(open(Some(new)).webhooks(Some("org")).unwrap(), expected);
}

#[test]
fn sqlite_keeps_webhook_secrets_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("etape.sqlite");
    secrets_are_sealed_at_rest(
        |secrets| {
            SqliteStore::open(&path)
                .unwrap()
                .with_secrets(secrets)
                .unwrap()
        },
        Some(&path),
    );
}

#[test]
fn postgres_keeps_webhook_secrets_sealed() {
    let Some(url) = postgres_url() else {
        return;
    };
    let database = PostgresStore::scratch_database(&url, "sealed_secrets").unwrap();
    secrets_are_sealed_at_rest(
        |secrets| {
            PostgresStore::connect(&database)
                .unwrap()
                .with_secrets(secrets)
                .unwrap()
        },
        None,
    );
}
