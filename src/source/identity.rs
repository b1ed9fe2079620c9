//! The client certificate and key shown to a feed server that requires one (mutual TLS),
//! read from the PEM files of `MISP_FEED_CLIENT_CERT` and `MISP_FEED_CLIENT_KEY`.
//!
//! reqwest (with rustls) wants the chain and the key in one PEM buffer. Each file gives only
//! what it is named for (the certificates of the one, the first private key of the other), so
//! a file holding both may be named for both. The key must belong to the certificate: a
//! mismatch is found here, at start, not at the first handshake. Every error names the option
//! and the file; none quotes the key file's content.

use std::path::{Path, PathBuf};

use base64::Engine;
use rustls::pki_types::pem::{self, PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::SourceError;

/// The two files of a client identity. Built only with both: one without the other is a
/// configuration error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentityFiles {
    /// PEM: the client certificate first, then any intermediates.
    pub cert: PathBuf,
    /// PEM: an unencrypted PKCS#8, RSA (PKCS#1) or EC (SEC1) private key.
    pub key: PathBuf,
}

const KEY_KINDS: &str =
    "\"PRIVATE KEY\" (PKCS#8), \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\", unencrypted";

impl ClientIdentityFiles {
    fn cert_label(&self) -> String {
        format!("MISP_FEED_CLIENT_CERT {}", self.cert.display())
    }

    fn key_label(&self) -> String {
        format!("MISP_FEED_CLIENT_KEY {}", self.key.display())
    }

    /// Reads and checks both files: the certificate chain, and the key that belongs to its
    /// first certificate.
    pub(crate) fn chain_and_key(
        &self,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), SourceError> {
        let chain = self.certificates()?;
        let key = self.private_key()?;
        self.check_pair(&chain, &key)?;
        Ok((chain, key))
    }

    /// The identity in the form reqwest takes, from what [`Self::chain_and_key`] read.
    pub(crate) fn for_reqwest(
        &self,
        chain: &[CertificateDer<'static>],
        key: &PrivateKeyDer<'static>,
    ) -> Result<reqwest::Identity, SourceError> {
        let mut buffer = String::new();
        for certificate in chain {
            push_pem(&mut buffer, "CERTIFICATE", certificate);
        }
        let key_label = match key {
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            _ => "PRIVATE KEY",
        };
        push_pem(&mut buffer, key_label, key.secret_der());
        reqwest::Identity::from_pem(buffer.as_bytes()).map_err(|err| SourceError::Invalid {
            what: format!("{} and {}", self.cert_label(), self.key_label()),
            message: format!("cannot be used as a client identity: {err}"),
        })
    }

    fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, SourceError> {
        let what = self.cert_label();
        let chain: Vec<CertificateDer<'static>> = sections(&self.cert, &what)?
            .into_iter()
            .filter(|(kind, _)| *kind == SectionKind::Certificate)
            .map(|(_, der)| CertificateDer::from(der))
            .collect();
        if chain.is_empty() {
            return Err(SourceError::Invalid {
                what,
                message: "holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")".into(),
            });
        }
        Ok(chain)
    }

    fn private_key(&self) -> Result<PrivateKeyDer<'static>, SourceError> {
        let what = self.key_label();
        let found = sections(&self.key, &what)?
            .into_iter()
            .find_map(|(kind, der)| match kind {
                SectionKind::PrivateKey => Some(PrivateKeyDer::Pkcs8(der.into())),
                SectionKind::RsaPrivateKey => Some(PrivateKeyDer::Pkcs1(der.into())),
                SectionKind::EcPrivateKey => Some(PrivateKeyDer::Sec1(der.into())),
                _ => None,
            });
        found.ok_or_else(|| {
            let message = if holds_encrypted_key(&self.key) {
                format!(
                    "holds an encrypted private key, which cannot be unlocked here: give it \
                     decrypted ({KEY_KINDS}; e.g. `openssl pkey -in KEY -out PLAIN`) in a file \
                     only the connector can read"
                )
            } else {
                format!("holds no PEM private key ({KEY_KINDS})")
            };
            SourceError::Invalid { what, message }
        })
    }

    /// The key must be usable and belong to the first (the client's own) certificate.
    fn check_pair(
        &self,
        chain: &[CertificateDer<'static>],
        key: &PrivateKeyDer<'static>,
    ) -> Result<(), SourceError> {
        let provider = rustls::crypto::ring::default_provider();
        let Err(err) =
            rustls::sign::CertifiedKey::from_der(chain.to_vec(), key.clone_key(), &provider)
        else {
            return Ok(());
        };
        Err(match err {
            rustls::Error::InconsistentKeys(_) => SourceError::Invalid {
                what: format!("{} and {}", self.cert_label(), self.key_label()),
                message: "the private key does not belong to the certificate".into(),
            },
            rustls::Error::InvalidCertificate(reason) => SourceError::Invalid {
                what: self.cert_label(),
                message: format!(
                    "the first certificate is not a valid X.509 certificate: {reason:?}"
                ),
            },
            // rustls says only which key types it tried; the key's bytes are never in it.
            other => SourceError::Invalid {
                what: self.key_label(),
                message: format!("not a usable private key ({KEY_KINDS}): {other}"),
            },
        })
    }
}

/// The PEM sections rustls knows, from the file at `path`.
fn sections(path: &Path, what: &str) -> Result<Vec<(SectionKind, Vec<u8>)>, SourceError> {
    let invalid = |message: String| SourceError::Invalid {
        what: what.to_string(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|err| invalid(format!("cannot be read: {err}")))?;
    <(SectionKind, Vec<u8>)>::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| invalid(format!("is not valid PEM: {}", pem_problem(&err))))
}

/// What is wrong with a PEM file, in words that never quote it (it may be a key).
fn pem_problem(err: &pem::Error) -> &'static str {
    match err {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line",
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a section is not valid base64",
        pem::Error::SectionTooLarge => "a section is over 256 MB",
        _ => "it cannot be parsed",
    }
}

/// PKCS#8 encrypted keys, and OpenSSL's older encrypted RSA/EC keys (a `Proc-Type` header).
fn holds_encrypted_key(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|bytes| {
        let text = String::from_utf8_lossy(&bytes);
        text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
            || text.contains("Proc-Type: 4,ENCRYPTED")
    })
}

fn push_pem(buffer: &mut String, label: &str, der: &[u8]) {
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    buffer.push_str(&format!("-----BEGIN {label}-----\n"));
    for line in encoded.as_bytes().chunks(64) {
        buffer.push_str(&String::from_utf8_lossy(line));
        buffer.push('\n');
    }
    buffer.push_str(&format!("-----END {label}-----\n"));
}
