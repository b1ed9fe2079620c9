//! Why an HTTPS feed server refused a connection: the alert in the HTTP client's error, or,
//! when a connection ended before its request went out with no TLS error to say why, the
//! server's answer to a probe.
//!
//! A server that requires a client certificate refuses a missing or untrusted one with an
//! alert. Under TLS 1.2 the alert ends the handshake and reaches the HTTP client as its error.
//! Under TLS 1.3 the client has finished its side of the handshake before the server judges
//! the certificate, so the alert races the request: when the connection's reader sees it
//! first, hyper reports only "connection was not ready" and the alert is lost. The probe opens
//! a connection of its own, completes the handshake showing the same identity, says goodbye
//! (close_notify) and reads the server's answer: an alert if it refused, its own goodbye or
//! the end of the stream if it did not.
//!
//! The probe sends no HTTP request, so no header and no credential goes over it: only what a
//! handshake carries, the client certificate (public) and a signature that binds this one
//! handshake and is worth nothing elsewhere. So it does not verify the server's certificate:
//! the one question it asks (does the server end the handshake?) does not depend on who the
//! server is, and it runs only after a failure that raised no TLS error of its own (a
//! certificate the real client rejected is reported as such, never probed).

use std::io::Read;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{AlertDescription, ClientConfig, ClientConnection, DigitallySignedStruct};
use url::{Host, Url};

/// How long the probe waits to connect and for each read, at most: a refusal follows the
/// handshake at once.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The alert a server sent to end the TLS handshake, if that is why the request failed.
pub(crate) fn received_alert(err: &reqwest::Error) -> Option<AlertDescription> {
    tls_errors(err).find_map(|tls| match tls {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    })
}

/// Whether TLS said anything about the failure (an alert, a certificate it rejected ...).
pub(crate) fn has_tls_error(err: &reqwest::Error) -> bool {
    tls_errors(err).next().is_some()
}

/// The rustls errors in `err`'s chain. rustls' error travels inside an `io::Error`, whose
/// `source` skips it.
fn tls_errors(err: &reqwest::Error) -> impl Iterator<Item = &rustls::Error> {
    let first: &(dyn std::error::Error + 'static) = err;
    std::iter::successors(Some(first), |current| current.source()).filter_map(|current| {
        current.downcast_ref::<rustls::Error>().or_else(|| {
            current
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        })
    })
}

/// Whether reqwest sends HTTPS requests through a proxy (it reads these variables); the
/// probe, which connects directly, is then left out.
pub(crate) fn proxy_configured() -> bool {
    ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
}

/// The rustls configuration a probe connects with, built once per feed. Not `Debug`: the
/// configuration holds the client's private key.
#[derive(Clone)]
pub(crate) struct HandshakeProbe {
    config: Arc<ClientConfig>,
    /// For connecting and for each read; the server's verdict follows the handshake at once.
    timeout: Duration,
}

impl HandshakeProbe {
    /// `identity` is the client certificate chain and key the HTTP client shows, if any;
    /// `connect_timeout` the feed's, which bounds the probe's waits too.
    /// `None` when rustls cannot be configured with them (the HTTP client would have refused
    /// them first).
    pub(crate) fn new(
        identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
        connect_timeout: Duration,
    ) -> Option<HandshakeProbe> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .ok()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCertificate(provider)));
        let config = match identity {
            Some((chain, key)) => builder.with_client_auth_cert(chain, key).ok()?,
            None => builder.with_no_client_auth(),
        };
        Some(HandshakeProbe {
            config: Arc::new(config),
            timeout: connect_timeout.min(PROBE_TIMEOUT),
        })
    }

    /// The alert with which the server at `url` ends a handshake, if it does. Blocking: run
    /// it off the async workers. Anything else (no answer, a refused connection, an accepted
    /// handshake) is `None`: the probe only ever adds a diagnosis.
    pub(crate) fn refusal(&self, url: &Url) -> Option<AlertDescription> {
        if url.scheme() != "https" {
            return None;
        }
        let server_name = match url.host()? {
            Host::Domain(domain) => ServerName::try_from(domain.to_string()).ok()?,
            Host::Ipv4(ip) => ServerName::from(std::net::IpAddr::V4(ip)),
            Host::Ipv6(ip) => ServerName::from(std::net::IpAddr::V6(ip)),
        };
        let addresses = url.socket_addrs(|| Some(443)).ok()?;
        let mut socket = addresses
            .iter()
            .find_map(|address| TcpStream::connect_timeout(address, self.timeout).ok())?;
        socket.set_read_timeout(Some(self.timeout)).ok()?;
        socket.set_write_timeout(Some(self.timeout)).ok()?;
        let mut connection = ClientConnection::new(self.config.clone(), server_name).ok()?;
        while connection.is_handshaking() {
            if let Err(err) = connection.complete_io(&mut socket) {
                return alert_in(&err);
            }
        }
        // Said at once, the goodbye lets a server that accepted answer with its own instead
        // of waiting for a request; one that refused has sent its alert before reading it.
        connection.send_close_notify();
        while connection.wants_write() {
            if let Err(err) = connection.write_tls(&mut socket) {
                return alert_in(&err);
            }
        }
        let mut stream = rustls::Stream::new(&mut connection, &mut socket);
        let mut plaintext = [0u8; 512];
        // Bounded: a server that talks without end is not refusing anything.
        for _ in 0..64 {
            match stream.read(&mut plaintext) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(err) => return alert_in(&err),
            }
        }
        None
    }
}

/// The alert rustls received, if that is what `err` carries.
fn alert_in(err: &std::io::Error) -> Option<AlertDescription> {
    match err.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}

/// Accepts the server's certificate unseen (see the module's comment for why that is safe
/// here) but still checks the handshake's signatures, so the handshake itself is sound.
#[derive(Debug)]
struct AnyServerCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
#[path = "tls_refusal_tests.rs"]
mod tests;
