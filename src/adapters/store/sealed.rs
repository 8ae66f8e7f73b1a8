//! Webhook secrets at rest. Each is the HMAC key its deliveries are signed with, needed in
//! clear at every delivery, so a digest will not do: the stores seal them with AES-256-GCM
//! under a key kept outside the database, and a copy of the database (a dump, a backup) gives
//! no one the means to sign as the service.
//!
//! A sealed secret reads `sealed:v1:` and the base64 of a random 96-bit nonce, the ciphertext
//! and its tag. Anything else is a secret an earlier version (or a store without a key) kept
//! in clear: it is read as it is, and sealed at the next start with a key.
//!
//! The key is 32 random bytes, kept in a file as their base64 (`openssl rand -base64 32`
//! makes one): `webhooks.secrets_key_file`, which must exist, or else, for the embedded store,
//! `secrets.key` in the data directory, created at the first start. A key file that does not
//! read stops the start: a new key would open none of the secrets sealed under the old one.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::config::StorageSettings;

const PREFIX: &str = "sealed:v1:";
pub const KEY_LEN: usize = 32;
/// The embedded store's key in its data directory, when `webhooks.secrets_key_file` is unset.
pub const KEY_FILE: &str = "secrets.key";

/// Why a secret was not sealed or not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the system's random source failed: nothing was sealed")]
    CannotSeal,
    #[error("a sealed webhook secret that is not a nonce, a ciphertext and a tag in base64")]
    Malformed,
    #[error("a secret this key does not open: sealed under another key, or altered")]
    WrongKey,
    #[error("a sealed secret and no key to open it (webhooks.secrets_key_file)")]
    NoKey,
}

/// The key webhook secrets are sealed under.
#[derive(Clone)]
pub struct SecretBox {
    key: LessSafeKey,
    random: SystemRandom,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("SecretBox(AES-256-GCM)")
    }
}

impl SecretBox {
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        let key = UnboundKey::new(&AES_256_GCM, key).expect("AES-256-GCM takes 32-byte keys");
        Self {
            key: LessSafeKey::new(key),
            random: SystemRandom::new(),
        }
    }

    /// `clear`, sealed under a nonce of its own. Nonces are random, and NIST bounds random
    /// 96-bit nonces to 2^32 seals under one key: a store seals a secret when it is created
    /// or rotated, not each time its webhook is saved.
    pub fn seal(&self, clear: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| SealError::CannotSeal)?;
        let mut sealed = clear.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(PREFIX.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| SealError::CannotSeal)?;
        let mut packed = nonce.to_vec();
        packed.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", STANDARD.encode(packed)))
    }

    /// The secret `stored` holds: opened when sealed, as it is when kept in clear. The tag is
    /// checked first: another key, or a byte changed, is an error, never another secret.
    pub fn open(&self, stored: &str) -> Result<String, SealError> {
        let Some(encoded) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let mut packed = STANDARD.decode(encoded).map_err(|_| SealError::Malformed)?;
        if packed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(SealError::Malformed);
        }
        let (nonce, sealed) = packed.split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Malformed)?;
        let clear = self
            .key
            .open_in_place(nonce, Aad::from(PREFIX.as_bytes()), sealed)
            .map_err(|_| SealError::WrongKey)?;
        String::from_utf8(clear.to_vec()).map_err(|_| SealError::Malformed)
    }
}

/// Whether `stored` is a sealed secret rather than one kept in clear.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// `clear` as a store keeps it: sealed under its key, or as it is by a store without one.
pub fn seal_with(secrets: Option<&SecretBox>, clear: &str) -> Result<String, SealError> {
    match secrets {
        Some(secrets) => secrets.seal(clear),
        None => Ok(clear.to_owned()),
    }
}

/// The secret `stored` holds, as a store with `secrets` reads it: a store without a key
/// refuses a sealed one rather than sign with its ciphertext.
pub fn open_with(secrets: Option<&SecretBox>, stored: &str) -> Result<String, SealError> {
    match secrets {
        Some(secrets) => secrets.open(stored),
        None if is_sealed(stored) => Err(SealError::NoKey),
        None => Ok(stored.to_owned()),
    }
}

/// The key the settings name: `key_file` when set, which must exist (replicas share one
/// key, so none makes its own); else, for the embedded store, `secrets.key` in `data_dir`,
/// read, or created with mode 0600 at the first start; else none, and the shared store keeps
/// webhook secrets in clear (the caller says so).
pub fn secrets_key(
    key_file: Option<&Path>,
    storage: &StorageSettings,
    data_dir: &Path,
) -> anyhow::Result<Option<SecretBox>> {
    if let Some(path) = key_file {
        let Some(secrets) = read_key(path)? else {
            bail!(
                "webhooks.secrets_key_file {} does not exist: make it once \
                 (`openssl rand -base64 32 > {}`, mode 0600) and give every replica the same file",
                path.display(),
                path.display()
            );
        };
        return Ok(Some(secrets));
    }
    if super::shared_url(storage).is_some() {
        return Ok(None);
    }
    let path = data_dir.join(KEY_FILE);
    if let Some(secrets) = read_key(&path)? {
        return Ok(Some(secrets));
    }
    let mut key = [0u8; KEY_LEN];
    if SystemRandom::new().fill(&mut key).is_err() {
        bail!(
            "cannot create the webhook secrets key {}: the system's random source failed",
            path.display()
        );
    }
    let text = format!("{}\n", STANDARD.encode(key));
    crate::partners::keys::write_private(&path, text.as_bytes())
        .with_context(|| format!("cannot create the webhook secrets key {}", path.display()))?;
    tracing::info!(message = "Webhook secrets key created.", file = %path.display());
    Ok(Some(SecretBox::new(&key)))
}

/// The key in `path` (the base64 of 32 bytes, white space around it ignored), or none when
/// nothing is there at all. A link to a file that is gone is there: a new key written in its
/// place would stand in for the one it leads to.
fn read_key(path: &Path) -> anyhow::Result<Option<SecretBox>> {
    Ok(key_bytes(path)?.map(|key| SecretBox::new(&key)))
}

fn key_bytes(path: &Path) -> anyhow::Result<Option<[u8; KEY_LEN]>> {
    if std::fs::symlink_metadata(path).is_err_and(|error| error.kind() == ErrorKind::NotFound) {
        return Ok(None);
    }
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the webhook secrets key {}", path.display()))?;
    let key = std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| STANDARD.decode(text.trim()).ok())
        .and_then(|decoded| <[u8; KEY_LEN]>::try_from(decoded.as_slice()).ok());
    let Some(key) = key else {
        bail!(
            "the webhook secrets key {} is not the base64 of 32 bytes: restore it; a new key \
             would open none of the secrets sealed under it",
            path.display()
        );
    };
    Ok(Some(key))
}

/// Where the embedded store's key is kept once `etape rekey` has replaced it, for the backups
/// sealed under it.
pub const PREVIOUS_KEY_FILE: &str = "secrets.key.previous";

/// What `etape rekey` did.
#[derive(Debug)]
pub struct Rekeyed {
    /// Webhooks whose secrets are sealed under the new key now.
    pub webhooks: usize,
    /// The embedded store's key file, which holds the new key now, and the file that keeps
    /// the key it replaced; `None` when the key is `webhooks.secrets_key_file`'s, which the
    /// operator points at the new key.
    pub embedded: Option<(PathBuf, PathBuf)>,
}

/// Seals every webhook secret under the key in `new_key_file`, all of them or none, then,
/// for the embedded store's own key, puts the new key in its place (the one it replaces kept
/// in [`PREVIOUS_KEY_FILE`] first). A run cut short anywhere leaves both keys on disk, and
/// running it again finishes it.
pub fn rekey(
    key_file: Option<&Path>,
    storage: &StorageSettings,
    data_dir: &Path,
    new_key_file: &Path,
) -> anyhow::Result<Rekeyed> {
    let new = key_bytes(new_key_file)?.with_context(|| {
        format!(
            "no key file {}: make one with `openssl rand -base64 32 > {}` (mode 0600)",
            new_key_file.display(),
            new_key_file.display()
        )
    })?;
    let current = secrets_key(key_file, storage, data_dir)?;
    let embedded = (key_file.is_none() && super::shared_url(storage).is_none())
        .then(|| (data_dir.join(KEY_FILE), data_dir.join(PREVIOUS_KEY_FILE)));
    if let Some((path, previous)) = &embedded {
        if key_bytes(path)? != Some(new) {
            let kept = std::fs::read(path)
                .with_context(|| format!("cannot read the key {}", path.display()))?;
            crate::partners::keys::write_private(previous, &kept)
                .with_context(|| format!("cannot keep the key in {}", previous.display()))?;
        }
    }
    let webhooks = super::reseal_secrets(storage, data_dir, current, &SecretBox::new(&new))?;
    if let Some((path, _)) = &embedded {
        let text = format!("{}\n", STANDARD.encode(new));
        crate::partners::keys::write_private(path, text.as_bytes())
            .with_context(|| format!("cannot write the new key to {}", path.display()))?;
    }
    Ok(Rekeyed { webhooks, embedded })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_under_its_key_only_and_a_clear_one_reads_as_it_is() {
        let secrets = SecretBox::new(&[7u8; KEY_LEN]);
        let clear = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let sealed = secrets.seal(clear).unwrap();
        assert!(is_sealed(&sealed) && !sealed.contains(clear), "{sealed}");
        // A nonce of its own each time.
        assert_ne!(secrets.seal(clear).unwrap(), sealed);
        assert_eq!(secrets.open(&sealed).unwrap(), clear);
        // What an earlier version kept in clear.
        assert_eq!(secrets.open(clear).unwrap(), clear);

        let another = SecretBox::new(&[8u8; KEY_LEN]);
        assert_eq!(another.open(&sealed), Err(SealError::WrongKey));
        let mut packed = STANDARD.decode(&sealed[PREFIX.len()..]).unwrap();
        packed[NONCE_LEN] ^= 1;
        let altered = format!("{PREFIX}{}", STANDARD.encode(&packed));
        assert_eq!(secrets.open(&altered), Err(SealError::WrongKey));
        for malformed in ["sealed:v1:AAAA", "sealed:v1:not base64"] {
            assert_eq!(secrets.open(malformed), Err(SealError::Malformed));
        }
        assert_eq!(open_with(None, &sealed), Err(SealError::NoKey));
        assert_eq!(open_with(None, clear).unwrap(), clear);
    }

    #[test]
    fn the_embedded_key_is_created_private_then_read_and_a_bad_key_file_stops_the_start() {
        let data = tempfile::tempdir().unwrap();
        let embedded = StorageSettings::default();
        let first = secrets_key(None, &embedded, data.path()).unwrap().unwrap();
        let path = data.path().join(KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{mode:o}");
        }
        let sealed = first.seal("whsec_a").unwrap();
        let again = secrets_key(None, &embedded, data.path()).unwrap().unwrap();
        assert_eq!(again.open(&sealed).unwrap(), "whsec_a");

        // A key file that does not read is never replaced.
        std::fs::write(&path, "c2hvcnQ=\n").unwrap();
        let error = secrets_key(None, &embedded, data.path()).unwrap_err();
        let error = format!("{error:#}");
        assert!(error.contains("not the base64 of 32 bytes"), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "c2hvcnQ=\n");

        // A shared store: the operator's file, which must exist, or none.
        let shared = StorageSettings {
            url: Some("postgres://etape@db.internal/etape".into()),
            ..StorageSettings::default()
        };
        assert!(secrets_key(None, &shared, data.path()).unwrap().is_none());
        let missing = data.path().join("mounted.key");
        let error = secrets_key(Some(missing.as_path()), &shared, data.path()).unwrap_err();
        let error = format!("{error:#}");
        assert!(error.contains("webhooks.secrets_key_file"), "{error}");
        std::fs::write(&missing, format!("{}\n", STANDARD.encode([7u8; KEY_LEN]))).unwrap();
        let mounted = secrets_key(Some(missing.as_path()), &shared, data.path())
            .unwrap()
            .unwrap();
        let under_mounted = SecretBox::new(&[7u8; KEY_LEN]).seal("whsec_b").unwrap();
        assert_eq!(mounted.open(&under_mounted).unwrap(), "whsec_b");
    }
}
