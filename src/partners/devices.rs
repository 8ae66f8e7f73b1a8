//! Phones that report a vehicle's positions (Traccar Client, OsmAnd), each behind a device
//! token of its own.
//!
//! A phone app cannot send an `Authorization` header, so its token travels in the URL it is
//! configured with; that is why it is never an organisation's key. A token reaches one thing
//! only: the positions of the one vehicle it was made for, in its organisation. It is 32
//! random bytes in URL-safe base64, shown once; the store keeps its keyed digest alone
//! ([`crate::partners::keys::Keyring::token_digest`]), as it keeps keys, so that neither a
//! copy of the database nor its backups open a device.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::storage::StoreResult;

/// A phone as the store keeps it, without its token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub id: String,
    pub organisation: String,
    /// Whose positions the phone reports: every ping it sends is this vehicle's.
    pub vehicle_id: String,
    /// What the organisation calls the phone, such as the driver's name.
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The length of the tokens [`new_token`] makes: 32 bytes in unpadded base64.
pub const TOKEN_LEN: usize = 43;

/// A new device token, to be shown once.
pub fn new_token() -> String {
    // `rand::random` draws from the thread's CSPRNG, seeded by the operating system.
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// Whether `text` could be a token this service issued. Anything else is refused before the
/// store is asked, so that a mistyped URL costs no query.
pub fn looks_like_token(text: &str) -> bool {
    text.len() == TOKEN_LEN
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// Where the phones are kept.
pub trait DeviceStore: Send + Sync + 'static {
    /// Keeps a new device under the digest of its token; a digest is kept once.
    fn insert_device(&self, device: &Device, token_digest: &str) -> StoreResult<()>;

    /// The device whose token has this digest, revoked or not.
    fn device_by_token(&self, token_digest: &str) -> StoreResult<Option<Device>>;

    /// One organisation's devices, revoked ones included, oldest first.
    fn devices(&self, organisation: &str) -> StoreResult<Vec<Device>>;

    /// One organisation's device: another organisation's answers nothing.
    fn device(&self, organisation: &str, id: &str) -> StoreResult<Option<Device>>;

    /// Saves a device's record over the one kept; its token's digest never changes.
    fn save_device(&self, device: &Device) -> StoreResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_43_url_safe_characters_and_never_twice_the_same() {
        let first = new_token();
        let second = new_token();
        assert_eq!(first.len(), TOKEN_LEN);
        assert!(looks_like_token(&first), "{first}");
        assert_ne!(first, second);
        assert!(!looks_like_token(&first[1..]));
        assert!(!looks_like_token(&format!("{}=", &first[1..])));
        assert!(!looks_like_token(&format!("{}/", &first[1..])));
    }
}
