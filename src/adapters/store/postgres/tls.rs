//! TLS to PostgreSQL, as libpq's `sslmode` means it, through rustls and its ring provider.
//!
//! tokio-postgres reads `sslmode` itself but knows only `disable`, `prefer` and `require`, and
//! not `sslrootcert` at all: both are taken out of the URL here, before tokio-postgres parses
//! it, and become a rustls configuration.
//!
//! - no `sslmode`: plain TCP, as etape always did (libpq would try `prefer`; name it to get it);
//! - `disable`: plain TCP;
//! - `prefer`: TLS when the server offers it, plain otherwise, the certificate not checked;
//! - `require`: TLS or no connection, the certificate not checked (encrypted, but anyone on the
//!   path can stand in for the server), unless a CA is given, when it means `verify-ca`, as in
//!   libpq;
//! - `verify-ca`: the certificate must chain to the CA, whatever host name it is for;
//! - `verify-full`: the certificate must chain to the CA and name the host of the URL.
//!
//! The CA is the PEM file of `sslrootcert=/path` in the URL, else `storage.ca_file`. Unlike
//! libpq, there is no default `~/.postgresql/root.crt`: a verifying mode without a CA fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::domain::storage::{StoreError, StoreResult};

/// What `sslmode` asks for; see the module's documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SslMode {
    Unset,
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A URL with `sslmode` and `sslrootcert` taken out, and what they said.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct SplitUrl {
    pub url: String,
    pub mode: SslMode,
    pub root_cert: Option<PathBuf>,
}

/// How the pool connects.
pub(super) enum Connector {
    Plain,
    Tls {
        connector: MakeRustlsConnect,
        /// tokio-postgres' own mode: `Prefer` may fall back to plain TCP, `Require` may not.
        fallback: bool,
    },
}

const NO_CA: &str =
    "a verifying sslmode needs a CA: sslrootcert=/path in the URL, or storage.ca_file";

fn invalid(message: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("invalid PostgreSQL URL: {message}"))
}

/// Takes `sslmode` and `sslrootcert` out of a `postgres://` URL's query. A key=value
/// connection string is left as it is: tokio-postgres then refuses the modes it lacks.
pub(super) fn split(url: &str) -> StoreResult<SplitUrl> {
    let mut split = SplitUrl {
        url: url.to_owned(),
        mode: SslMode::Unset,
        root_cert: None,
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Ok(split);
    }
    let Some((base, query)) = url.split_once('?') else {
        return Ok(split);
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => {
                split.mode = match percent_decoded(value)?.as_str() {
                    "disable" => SslMode::Disable,
                    "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(invalid(format!(
                            "sslmode `{other}` is not one of disable, prefer, require, \
                             verify-ca, verify-full"
                        )))
                    }
                }
            }
            "sslrootcert" => split.root_cert = Some(PathBuf::from(percent_decoded(value)?)),
            _ => kept.push(pair),
        }
    }
    split.url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(split)
}

fn percent_decoded(value: &str) -> StoreResult<String> {
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let byte = value
                .get(index + 1..index + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| invalid(format!("bad percent-encoding in `{value}`")))?;
            decoded.push(byte);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).map_err(|_| invalid(format!("`{value}` is not UTF-8")))
}

/// The connector for `mode`, the CA read from `root_cert` (the URL's) or `ca_file` (the
/// setting's). Reads the CA file now, so that a missing or empty one stops the start.
pub(super) fn connector(
    mode: SslMode,
    root_cert: Option<&Path>,
    ca_file: Option<&Path>,
) -> StoreResult<Connector> {
    let ca = root_cert.or(ca_file);
    let verification = match (mode, ca) {
        (SslMode::Unset | SslMode::Disable, _) => return Ok(Connector::Plain),
        (SslMode::Prefer, _) | (SslMode::Require, None) => Verification::Nothing,
        (SslMode::Require | SslMode::VerifyCa, Some(ca)) => Verification::Chain(roots(ca)?),
        (SslMode::VerifyFull, Some(ca)) => Verification::ChainAndHost(roots(ca)?),
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => return Err(invalid(NO_CA)),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| StoreError::Backend(format!("TLS configuration: {error}")))?;
    let config = match verification {
        Verification::ChainAndHost(roots) => builder.with_root_certificates(roots),
        Verification::Chain(roots) => {
            let chain = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|error| StoreError::Backend(format!("TLS configuration: {error}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Lenient {
                    chain: Some(chain),
                    provider,
                }))
        }
        Verification::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Lenient {
                chain: None,
                provider,
            })),
    }
    .with_no_client_auth();
    Ok(Connector::Tls {
        connector: MakeRustlsConnect::new(config),
        fallback: mode == SslMode::Prefer,
    })
}

enum Verification {
    Nothing,
    Chain(Arc<RootCertStore>),
    ChainAndHost(Arc<RootCertStore>),
}

fn roots(path: &Path) -> StoreResult<Arc<RootCertStore>> {
    let unreadable = |reason: &dyn std::fmt::Display| {
        StoreError::Backend(format!("PostgreSQL CA file {}: {reason}", path.display()))
    };
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(path).map_err(|error| unreadable(&error))? {
        let certificate = certificate.map_err(|error| unreadable(&error))?;
        roots.add(certificate).map_err(|error| unreadable(&error))?;
    }
    if roots.is_empty() {
        return Err(unreadable(&"no PEM certificate in it"));
    }
    Ok(Arc::new(roots))
}

/// The verifier of the modes that check less than rustls would: `verify-ca` checks the chain
/// as `verify-full` does, only not the host name; `require` and `prefer` without a CA take any
/// certificate. The handshake's signature is checked against the certificate in every mode,
/// so the session is with whoever holds that certificate's key.
#[derive(Debug)]
struct Lenient {
    /// `verify-ca`'s check of the chain; without it, any certificate.
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            // webpki checks the name last, once the chain is known good.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    // The signatures as webpki's verifier checks them, with the same provider's algorithms.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_parameters_leave_the_url_and_the_rest_stays() {
        let split = split(
            "postgres://etape@db:5432/etape?sslmode=verify-full&application_name=etape&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(
            split,
            SplitUrl {
                url: "postgres://etape@db:5432/etape?application_name=etape".into(),
                mode: SslMode::VerifyFull,
                root_cert: Some(PathBuf::from("/etc/ca.pem")),
            }
        );
        assert_eq!(
            super::split("postgres://db/etape?sslmode=require").unwrap(),
            SplitUrl {
                url: "postgres://db/etape".into(),
                mode: SslMode::Require,
                root_cert: None,
            }
        );
        assert_eq!(
            super::split("postgres://db/etape").unwrap().mode,
            SslMode::Unset
        );
    }

    #[test]
    fn an_unknown_mode_and_a_verifying_mode_without_a_ca_are_refused() {
        let error = split("postgres://db/etape?sslmode=allow").unwrap_err();
        assert!(error.to_string().contains("sslmode `allow`"), "{error}");
        let error = connector(SslMode::VerifyFull, None, None).err().unwrap();
        assert!(error.to_string().contains("needs a CA"), "{error}");
        let error = connector(
            SslMode::VerifyFull,
            None,
            Some(Path::new("/nonexistent/ca.pem")),
        )
        .err()
        .unwrap();
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }

    #[test]
    fn plain_tcp_unless_asked() {
        assert!(matches!(
            connector(SslMode::Unset, None, None),
            Ok(Connector::Plain)
        ));
        assert!(matches!(
            connector(SslMode::Require, None, None),
            Ok(Connector::Tls {
                fallback: false,
                ..
            })
        ));
    }
}
