//! Share links: the consignee's view of one shipment behind a token that expires and can be
//! revoked. The token is 32 random bytes, shown once when the link is made; the store keeps
//! only its SHA-256, so that a copy of the database opens no page. The token is looked up on
//! every visit (revocation needs that anyway), so it carries no signature of its own: a guess
//! has 2^-256 odds.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::storage::StoreResult;

/// The languages the public page speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    Fr,
    En,
}

impl Language {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "fr" => Some(Self::Fr),
            "en" => Some(Self::En),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fr => "fr",
            Self::En => "en",
        }
    }
}

/// A link as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareLink {
    pub id: String,
    pub organisation: String,
    pub shipment_id: String,
    /// Whether the page shows where the truck is: only when the carrier agreed to it.
    pub position: bool,
    pub language: Language,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Whether a link still opens its page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Open,
    Expired,
    Revoked,
}

impl ShareLink {
    pub fn access(&self, now: DateTime<Utc>) -> Access {
        if self.revoked_at.is_some() {
            return Access::Revoked;
        }
        if now >= self.expires_at {
            return Access::Expired;
        }
        Access::Open
    }
}

/// A new link's token, for the caller once, and the digest the store keeps instead.
pub struct NewToken {
    pub token: String,
    pub sha256: String,
}

impl NewToken {
    pub fn generate() -> Self {
        // `rand::random` draws from the thread's CSPRNG, seeded by the operating system.
        let token = hex::encode(rand::random::<[u8; 32]>());
        Self {
            sha256: token_sha256(&token),
            token,
        }
    }
}

/// What the store looks a visited token up by.
pub fn token_sha256(token: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(token.as_bytes());
    hex::encode(hasher.finalize())
}

/// Where the links live.
pub trait ShareStore: Send + Sync + 'static {
    fn insert_share_link(&self, link: &ShareLink, token_sha256: &str) -> StoreResult<()>;

    fn share_link_by_token(&self, token_sha256: &str) -> StoreResult<Option<ShareLink>>;

    /// One organisation's link of one shipment: another's answers nothing.
    fn share_link(
        &self,
        organisation: &str,
        shipment_id: &str,
        id: &str,
    ) -> StoreResult<Option<ShareLink>>;

    fn save_share_link(&self, link: &ShareLink) -> StoreResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_64_hex_characters_and_its_digest_is_not_itself() {
        let first = NewToken::generate();
        let second = NewToken::generate();
        assert_eq!(first.token.len(), 64);
        assert_ne!(first.token, second.token);
        assert_ne!(first.token, first.sha256);
        assert_eq!(token_sha256(&first.token), first.sha256);
    }
}
