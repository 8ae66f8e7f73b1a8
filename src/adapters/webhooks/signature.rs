//! Signatures of deliveries: Standard Webhooks 1.0, and the signature of earlier versions,
//! still sent for one version.
//!
//! A delivery carries `webhook-id`, `webhook-timestamp` (Unix seconds of the attempt) and
//! `webhook-signature`: `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`, one
//! such signature per secret, space-separated. The key is what the secret decodes to, as the
//! official libraries read it: the base64 after `whsec_`.
//!
//! Secrets used to be minted as `whsec_` and 64 hex digits. Hex digits are base64 digits too,
//! so such a secret decodes (to 48 bytes) here exactly as it does in the libraries, and keeps
//! working unchanged. A stored secret that is not base64 after `whsec_` (none is minted so)
//! signs with the raw bytes of the whole secret, the key the earlier signature used; its
//! receivers hand the libraries those bytes (`Webhook(secret.encode())` in Python).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// Deprecated: `sha256=<hex>` of the body alone, for receivers written before Standard
/// Webhooks. It goes in the next version.
pub const LEGACY_SIGNATURE_HEADER: &str = "X-Etape-Signature";

const PREFIX: &str = "whsec_";

/// A new secret: `whsec_` and the base64 of 32 random bytes, within the 24 to 64 bytes the
/// specification asks for.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{PREFIX}{}", STANDARD.encode(bytes))
}

/// The HMAC key `secret` stands for.
pub fn key(secret: &str) -> Vec<u8> {
    let encoded = secret.strip_prefix(PREFIX).unwrap_or(secret);
    match STANDARD.decode(encoded) {
        Ok(key) if !key.is_empty() => key,
        _ => secret.as_bytes().to_vec(),
    }
}

/// `v1,<base64>`: the signature of one message under `secret`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let digest = mac(&key(secret), id, timestamp, body)
        .finalize()
        .into_bytes();
    format!("v1,{}", STANDARD.encode(digest))
}

/// The `webhook-signature` header: the message signed under each secret, in order,
/// space-separated.
pub fn signature_header(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| sign(secret, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether one of the `v1` signatures of `header` is `secret`'s for this message, each
/// compared in constant time. The timestamp's age is the receiver's to judge.
pub fn verify(secret: &str, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let key = key(secret);
    header
        .split(' ')
        .filter_map(|signature| signature.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .any(|digest| mac(&key, id, timestamp, body).verify_slice(&digest).is_ok())
}

/// Deprecated: `sha256=<hex>` of the body under the secret's bytes.
pub fn sign_legacy(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Deprecated: checks an `X-Etape-Signature` in constant time.
pub fn verify_legacy(secret: &str, body: &[u8], signature: &str) -> bool {
    let Some(hex_digest) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(digest) = hex::decode(hex_digest) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    mac.verify_slice(&digest).is_ok()
}

/// The MAC of `{id}.{timestamp}.{body}`, fed in parts so that the body is never copied.
fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector of the official Python and JavaScript libraries' `sign` tests
    /// (libraries/python/tests/test_webhooks.py, libraries/javascript/src/webhook.test.ts).
    const PYTHON_AND_JAVASCRIPT: Vector = Vector {
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp: 1_614_265_330,
        body: r#"{"test": 2432232314}"#,
        signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    };

    /// The vector of the official Rust library's `test_sign` (libraries/rust/src/lib.rs).
    const RUST: Vector = Vector {
        secret: "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        id: "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        timestamp: 1_649_367_553,
        body: r#"{"email":"test@example.com","username":"test_user"}"#,
        signature: "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
    };

    struct Vector {
        secret: &'static str,
        id: &'static str,
        timestamp: i64,
        body: &'static str,
        signature: &'static str,
    }

    #[test]
    fn the_libraries_test_vectors_sign_and_verify() {
        for vector in [PYTHON_AND_JAVASCRIPT, RUST] {
            let body = vector.body.as_bytes();
            assert_eq!(
                sign(vector.secret, vector.id, vector.timestamp, body),
                vector.signature
            );
            assert!(verify(
                vector.secret,
                vector.id,
                vector.timestamp,
                body,
                vector.signature
            ));
            // The libraries take the secret with or without its prefix.
            let bare = vector.secret.strip_prefix(PREFIX).unwrap();
            assert_eq!(
                sign(bare, vector.id, vector.timestamp, body),
                vector.signature
            );
            // The id, the timestamp and the body are all signed.
            let signature = vector.signature;
            assert!(!verify(
                vector.secret,
                "msg_other",
                vector.timestamp,
                body,
                signature
            ));
            assert!(!verify(
                vector.secret,
                vector.id,
                vector.timestamp + 1,
                body,
                signature
            ));
            assert!(!verify(
                vector.secret,
                vector.id,
                vector.timestamp,
                b"{}",
                signature
            ));
        }
    }

    #[test]
    fn one_matching_signature_among_several_verifies_and_none_does_not() {
        // The decoys and the refused signature of the Rust library's tests.
        let decoys = [
            "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ=",
            "v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q=",
            "v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE=",
        ];
        let body = RUST.body.as_bytes();
        let with_ours = format!(
            "{} {} {} {}",
            decoys[0], decoys[1], RUST.signature, decoys[2]
        );
        assert!(verify(
            RUST.secret,
            RUST.id,
            RUST.timestamp,
            body,
            &with_ours
        ));
        assert!(!verify(
            RUST.secret,
            RUST.id,
            RUST.timestamp,
            body,
            &decoys.join(" ")
        ));
        // Another scheme's identifier is not ours to check.
        let other_scheme = RUST.signature.replacen("v1,", "v1a,", 1);
        for refused in [
            "v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU=",
            "v1,",
            &RUST.signature[..8],
            other_scheme.as_str(),
        ] {
            assert!(
                !verify(RUST.secret, RUST.id, RUST.timestamp, body, refused),
                "{refused}"
            );
        }
    }

    #[test]
    fn a_header_carries_each_secret_s_signature_in_order() {
        let body = br#"{"event":"arrived"}"#;
        let (new, old) = (new_secret(), new_secret());
        let header = signature_header(&[new.as_str(), old.as_str()], "dlv_1", 1_700_000_000, body);
        let signatures: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            signatures,
            [
                sign(&new, "dlv_1", 1_700_000_000, body),
                sign(&old, "dlv_1", 1_700_000_000, body)
            ]
        );
        for secret in [&new, &old] {
            assert!(verify(secret, "dlv_1", 1_700_000_000, body, &header));
        }
        assert!(!verify(
            &new_secret(),
            "dlv_1",
            1_700_000_000,
            body,
            &header
        ));
    }

    #[test]
    fn a_new_secret_is_the_base64_of_32_random_bytes() {
        let secret = new_secret();
        let encoded = secret.strip_prefix("whsec_").unwrap();
        assert_eq!(STANDARD.decode(encoded).unwrap().len(), 32);
        assert_eq!(key(&secret).len(), 32);
        assert_ne!(secret, new_secret());
    }

    #[test]
    fn a_hex_secret_of_earlier_versions_decodes_as_the_libraries_decode_it() {
        // Python's `base64.b64decode("0123…" + "==")` gives 48 bytes; the signature below is
        // the one Python's hmac computes with them.
        let secret = format!("whsec_{}", "0123456789abcdef".repeat(4));
        assert_eq!(key(&secret).len(), 48);
        assert_eq!(
            sign(&secret, "dlv_1", 1_700_000_000, br#"{"event":"arrived"}"#),
            "v1,2Cxh8MpRvpTFF/CIf4vHLc9sTcky2kO1Y+apeGHDync="
        );
    }

    #[test]
    fn a_secret_that_is_not_base64_signs_with_its_raw_bytes() {
        let secret = "whsec_not base64!";
        assert_eq!(key(secret), secret.as_bytes());
        // Python: hmac.new(b"whsec_not base64!", b"msg_1.1700000000.{}", sha256), base64.
        assert_eq!(
            sign(secret, "msg_1", 1_700_000_000, b"{}"),
            "v1,zwbjBrnSLot/LeR7V+PYwCjC+g3XMbiIvHAKglYn178="
        );
        // An empty key is no key: the libraries refuse `whsec_` alone.
        assert_eq!(key("whsec_"), b"whsec_");
    }

    #[test]
    fn the_legacy_signature_verifies_with_its_secret_only() {
        let body = br#"{"event":"arrived"}"#;
        let signature = sign_legacy("whsec_a", body);
        assert!(verify_legacy("whsec_a", body, &signature));
        assert!(!verify_legacy("whsec_b", body, &signature));
        assert!(!verify_legacy(
            "whsec_a",
            br#"{"event":"departed"}"#,
            &signature
        ));
        assert!(!verify_legacy("whsec_a", body, "sha256=zz"));
    }

    #[test]
    fn the_legacy_signature_is_the_published_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign_legacy("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
