use std::net::TcpListener;
use std::thread::JoinHandle;

use super::*;
use crate::source::identity::ClientIdentityFiles;
use crate::testsuite::{tls_server_config, tls_test_file};

fn identity(cert: &str, key: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    ClientIdentityFiles {
        cert: tls_test_file(cert),
        key: tls_test_file(key),
    }
    .chain_and_key()
    .unwrap()
}

/// How the test server treats one connection.
enum Turn {
    /// Reads until the client is gone or the handshake fails, answering a goodbye with its
    /// own. After a failure it closes its sending side and drains what the client sends, so
    /// that its alert is not lost to a reset.
    Answer(Arc<rustls::ServerConfig>),
    /// Completes the handshake, then hangs up without a word: what the HTTP client sees when
    /// a refusal's alert is lost to the race the module describes.
    HangUp(Arc<rustls::ServerConfig>),
}

/// Serves one connection per turn, in order, on a port of its own.
fn serve(turns: Vec<Turn>) -> (Url, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        for turn in turns {
            let (mut socket, _) = listener.accept().unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            match turn {
                Turn::Answer(config) => answer(config, socket),
                Turn::HangUp(config) => {
                    let mut connection = rustls::ServerConnection::new(config).unwrap();
                    while connection.is_handshaking() {
                        connection.complete_io(&mut socket).unwrap();
                    }
                }
            }
        }
    });
    let url = Url::parse(&format!("https://localhost:{port}/feed")).unwrap();
    (url, server)
}

fn answer(config: Arc<rustls::ServerConfig>, mut socket: std::net::TcpStream) {
    let mut connection = rustls::ServerConnection::new(config).unwrap();
    let mut stream = rustls::Stream::new(&mut connection, &mut socket);
    let mut plaintext = [0u8; 512];
    let refused = loop {
        match stream.read(&mut plaintext) {
            Ok(0) => break false,
            Ok(_) => {}
            Err(_) => break true,
        }
    };
    if refused {
        let _ = socket.shutdown(std::net::Shutdown::Write);
        let mut rest = Vec::new();
        let _ = socket.read_to_end(&mut rest);
    } else {
        connection.send_close_notify();
        let _ = connection.complete_io(&mut socket);
    }
}

fn serve_one(config: Arc<rustls::ServerConfig>) -> (Url, JoinHandle<()>) {
    serve(vec![Turn::Answer(config)])
}

fn probe(
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> HandshakeProbe {
    HandshakeProbe::new(identity, Duration::from_secs(5)).unwrap()
}

#[test]
fn a_server_requiring_a_client_certificate_refuses_a_probe_without_one() {
    let (url, server) = serve_one(tls_server_config(true));
    assert_eq!(
        probe(None).refusal(&url),
        Some(AlertDescription::CertificateRequired)
    );
    server.join().unwrap();
}

#[test]
fn a_certificate_the_server_does_not_trust_is_refused_and_one_it_trusts_is_not() {
    // The server's own certificate: signed by a CA the server does not trust for clients.
    let (url, server) = serve_one(tls_server_config(true));
    let refusal = probe(Some(identity("server.pem", "server.key"))).refusal(&url);
    assert!(refusal.is_some(), "{refusal:?}");
    server.join().unwrap();

    for (cert, key) in [
        ("client.pem", "client.key"),
        ("client-rsa.pem", "client-rsa.key"),
    ] {
        let (url, server) = serve_one(tls_server_config(true));
        assert_eq!(
            probe(Some(identity(cert, key))).refusal(&url),
            None,
            "{cert}"
        );
        server.join().unwrap();
    }
}

#[test]
fn a_server_asking_for_no_certificate_and_no_server_at_all_are_no_refusal() {
    let (url, server) = serve_one(tls_server_config(false));
    assert_eq!(probe(None).refusal(&url), None);
    server.join().unwrap();

    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let nobody = Url::parse(&format!("https://127.0.0.1:{port}/feed")).unwrap();
    assert_eq!(probe(None).refusal(&nobody), None);
    // Plain HTTP has no handshake to refuse: nothing is even connected to.
    let plain = Url::parse("http://127.0.0.1:9/feed").unwrap();
    assert_eq!(probe(None).refusal(&plain), None);
}

#[tokio::test]
async fn a_feed_request_whose_connection_ended_unexplained_names_the_refusal_the_probe_heard() {
    // The request's connection completes its handshake and is dropped; the probe's, on the
    // same server, is refused for want of a client certificate.
    let (url, server) = serve(vec![
        Turn::HangUp(tls_server_config(false)),
        Turn::Answer(tls_server_config(true)),
    ]);
    let options = crate::source::http::HttpOptions {
        ssl_verify: true,
        ca_bundle: Some(tls_test_file("ca.pem")),
        authorization: None,
        headers: Vec::new(),
        client_identity: None,
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        deadline: Duration::from_secs(20),
        max_file_size: 1024,
        retry: crate::source::retry::RetryPolicy {
            retries: 0,
            ..Default::default()
        },
    };
    let source = crate::source::http::HttpSource::new(url.as_str(), options).unwrap();
    let err = crate::source::FeedSource::list(&source, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the server refused the TLS handshake (alert CertificateRequired)")
            && err.contains("it may require a client certificate"),
        "{err}"
    );
    server.join().unwrap();
}
