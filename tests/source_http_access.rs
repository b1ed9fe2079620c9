//! Access to an HTTP(S) feed: extra headers on every request (retries and redirects
//! included), and mutual TLS against a feed server that requires a client certificate
//! signed by the test client CA (tests/support/tls/).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::feed_server::{Fault, FeedServer};
use crate::support::{fixture_feed, fixture_uuids};
use misp_feed::secret::Secret;
use misp_feed::source::http::{ClientIdentityFiles, HttpOptions, HttpSource};
use misp_feed::source::retry::RetryPolicy;
use misp_feed::source::{FeedSource, Listing, SourceError};

const TENANT: &str = "tenant-blue-7c1e";
const API_KEY: &str = "api-key-value-93ad";

fn options() -> HttpOptions {
    HttpOptions {
        ssl_verify: true,
        ca_bundle: None,
        authorization: None,
        headers: Vec::new(),
        client_identity: None,
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(2),
        deadline: Duration::from_secs(30),
        max_file_size: 16 * 1024 * 1024,
        retry: RetryPolicy {
            retries: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_retry_after: Duration::from_millis(20),
        },
    }
}

fn extra_headers() -> Vec<(String, Secret)> {
    vec![
        ("X-Tenant".to_string(), Secret::new(TENANT)),
        ("X-Api-Key".to_string(), Secret::new(API_KEY)),
    ]
}

fn identity(cert: &str, key: &str) -> Option<ClientIdentityFiles> {
    Some(ClientIdentityFiles {
        cert: FeedServer::tls_file(cert),
        key: FeedServer::tls_file(key),
    })
}

/// Options for the mutual-TLS server: its CA trusted, and this client identity.
fn mutual(client_identity: Option<ClientIdentityFiles>) -> HttpOptions {
    HttpOptions {
        ca_bundle: Some(FeedServer::tls_ca_bundle()),
        client_identity,
        ..options()
    }
}

fn entry_count(listing: Listing) -> usize {
    match listing {
        Listing::Manifest { entries, .. } => entries.len(),
        other => panic!("expected a manifest listing, got {other:?}"),
    }
}

fn construction_error(options: HttpOptions) -> String {
    match HttpSource::new("https://127.0.0.1:9/feed", options) {
        Ok(source) => panic!("built {source:?}"),
        Err(err) => {
            assert!(matches!(err, SourceError::Invalid { .. }), "{err:?}");
            err.to_string()
        }
    }
}

#[tokio::test]
async fn headers_go_with_every_request_retries_included() {
    let server = FeedServer::start(fixture_feed());
    let uuid = fixture_uuids()[0].clone();
    let event = format!("{uuid}.json");
    server.fail_next("manifest.json", Fault::Status(503));
    server.fail_next("manifest.json", Fault::Status(429));
    server.fail_next(&event, Fault::Truncate);
    let source = HttpSource::new(
        &server.url(),
        HttpOptions {
            headers: extra_headers(),
            authorization: Some(Secret::new("Bearer feed-token")),
            ..options()
        },
    )
    .unwrap();

    assert_eq!(
        entry_count(source.list(None).await.unwrap()),
        fixture_uuids().len()
    );
    source.fetch(&uuid).await.unwrap();

    assert_eq!(server.requests_for("manifest.json"), 3);
    assert_eq!(server.requests_for(&event), 2);
    for request in server.requests() {
        assert_eq!(request.header("x-tenant"), Some(TENANT), "{request:?}");
        assert_eq!(request.header("x-api-key"), Some(API_KEY), "{request:?}");
        assert_eq!(
            request.header("authorization"),
            Some("Bearer feed-token"),
            "{request:?}"
        );
    }
}

#[tokio::test]
async fn headers_follow_a_redirect_within_the_feed_but_never_to_another_origin() {
    let server = FeedServer::start(fixture_feed());
    let elsewhere = FeedServer::start(fixture_feed());
    let redirect = |location: &str| {
        Fault::Raw(
            format!(
                "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .into_bytes(),
        )
    };
    let source = HttpSource::new(
        &server.url(),
        HttpOptions {
            headers: extra_headers(),
            ..options()
        },
    )
    .unwrap();

    // Within the feed's origin: followed, headers and all.
    server.write_file("moved.json", &server.read_file("manifest.json"));
    server.fail_next("manifest.json", redirect("/feed/moved.json"));
    assert_eq!(
        entry_count(source.list(None).await.unwrap()),
        fixture_uuids().len()
    );
    let moved = server
        .requests()
        .into_iter()
        .find(|r| r.name == "moved.json")
        .expect("the redirect was followed");
    assert_eq!(moved.header("x-api-key"), Some(API_KEY));

    // To another origin (another port): refused, nothing reaches it.
    server.fail_next(
        "manifest.json",
        redirect(&format!("{}/manifest.json", elsewhere.url())),
    );
    let err = source.list(None).await.unwrap_err().to_string();
    assert!(err.contains("another origin"), "{err}");
    assert!(
        elsewhere.requests().is_empty(),
        "{:?}",
        elsewhere.requests()
    );
}

#[tokio::test]
async fn a_server_requiring_a_client_certificate_refuses_a_client_without_one() {
    let server = FeedServer::start_mutual_tls(fixture_feed());
    let source = HttpSource::new(&server.url(), mutual(None)).unwrap();

    let err = source.list(None).await.unwrap_err();
    assert!(matches!(err, SourceError::Transport { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("the server refused the TLS handshake"),
        "{text}"
    );
    assert!(
        text.contains("MISP_FEED_CLIENT_CERT") && text.contains("MISP_FEED_CLIENT_KEY"),
        "{text}"
    );
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    // A refusal is the server's verdict: asked once, not retried (3 retries allowed). When
    // the alert raced the request and was lost, the client's probe was refused a second time.
    let refused = server.refused_handshakes();
    assert!((1..=2).contains(&refused), "{refused} refused handshakes");
}

#[tokio::test]
async fn a_client_certificate_the_server_does_not_trust_is_refused() {
    let server = FeedServer::start_mutual_tls(fixture_feed());
    // The server's own certificate: a valid identity, signed by a CA the server does not
    // accept client certificates from.
    let source =
        HttpSource::new(&server.url(), mutual(identity("server.pem", "server.key"))).unwrap();

    let text = source.list(None).await.unwrap_err().to_string();
    assert!(
        text.contains("the server refused the TLS handshake")
            && text.contains("does not accept the client certificate"),
        "{text}"
    );
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn mutual_tls_succeeds_with_pkcs8_rsa_and_ec_keys() {
    let server = FeedServer::start_mutual_tls(fixture_feed());
    let uuid = fixture_uuids()[0].clone();
    for (cert, key) in [
        ("client.pem", "client.key"),
        ("client-rsa.pem", "client-rsa.key"),
        ("client-ec.pem", "client-ec.key"),
    ] {
        let source = HttpSource::new(
            &server.url(),
            HttpOptions {
                headers: extra_headers(),
                ..mutual(identity(cert, key))
            },
        )
        .unwrap();
        assert_eq!(
            entry_count(source.list(None).await.unwrap()),
            fixture_uuids().len(),
            "{key}"
        );
        let file = source.fetch(&uuid).await.unwrap();
        assert_eq!(
            file.bytes,
            server.read_file(&format!("{uuid}.json")),
            "{key}"
        );
        assert!(
            source.describe().contains(&format!(
                "client certificate {}",
                FeedServer::tls_file(cert).display()
            )),
            "{}",
            source.describe()
        );
    }
    assert_eq!(server.refused_handshakes(), 0);
    assert_eq!(server.requests().len(), 6);
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.header("x-tenant") == Some(TENANT))
    );
}

#[tokio::test]
async fn one_file_holding_certificate_and_key_may_be_named_for_both() {
    let server = FeedServer::start_mutual_tls(fixture_feed());
    let dir = tempfile::tempdir().unwrap();
    let both = dir.path().join("client-identity.pem");
    let mut text = std::fs::read(FeedServer::tls_file("client.key")).unwrap();
    text.extend(std::fs::read(FeedServer::tls_file("client.pem")).unwrap());
    std::fs::write(&both, text).unwrap();
    let files = ClientIdentityFiles {
        cert: both.clone(),
        key: both,
    };

    let source = HttpSource::new(&server.url(), mutual(Some(files))).unwrap();
    assert_eq!(
        entry_count(source.list(None).await.unwrap()),
        fixture_uuids().len()
    );
}

/// Writes `text` to a file of `dir` and returns its path.
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn unusable_identity_files_are_named_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cert = FeedServer::tls_file("client.pem");
    let key = FeedServer::tls_file("client.key");
    let with = |cert: PathBuf, key: PathBuf| HttpOptions {
        client_identity: Some(ClientIdentityFiles { cert, key }),
        ..options()
    };
    let cases: Vec<(HttpOptions, String, &str)> = vec![
        (
            with(dir.path().join("absent.pem"), key.clone()),
            format!(
                "MISP_FEED_CLIENT_CERT {}: cannot be read",
                dir.path().join("absent.pem").display()
            ),
            "a missing certificate file",
        ),
        (
            with(key.clone(), key.clone()),
            format!(
                "MISP_FEED_CLIENT_CERT {}: holds no PEM certificate",
                key.display()
            ),
            "a key named as the certificate",
        ),
        (
            with(cert.clone(), cert.clone()),
            format!(
                "MISP_FEED_CLIENT_KEY {}: holds no PEM private key",
                cert.display()
            ),
            "a certificate named as the key",
        ),
        (
            with(cert.clone(), FeedServer::tls_file("client-rsa.key")),
            format!(
                "MISP_FEED_CLIENT_CERT {} and MISP_FEED_CLIENT_KEY {}: the private key does not belong to the certificate",
                cert.display(),
                FeedServer::tls_file("client-rsa.key").display()
            ),
            "the key of another certificate",
        ),
        (
            with(
                write(
                    dir.path(),
                    "bad-cert.pem",
                    "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
                ),
                key.clone(),
            ),
            format!(
                "MISP_FEED_CLIENT_CERT {}: is not valid PEM: a section is not valid base64",
                dir.path().join("bad-cert.pem").display()
            ),
            "a broken PEM certificate",
        ),
    ];
    for (options, expected, case) in cases {
        let line = construction_error(options);
        assert!(line.starts_with(&expected), "{case}: {line}");
        assert!(!line.contains('\n'), "{case}: {line}");
    }
}

#[test]
fn key_errors_never_quote_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let cert = FeedServer::tls_file("client.pem");
    // Valid base64 that is no key; a section whose base64 is broken; an encrypted key.
    let marker_base64 = "a2V5LWNvbnRlbnQtTUFSS0VSLTE5ZjQ=";
    let cases = [
        (
            format!("-----BEGIN PRIVATE KEY-----\n{marker_base64}\n-----END PRIVATE KEY-----\n"),
            "not a usable private key",
        ),
        (
            "-----BEGIN EC PRIVATE KEY-----\nkey-MARKER-19f4\n-----END EC PRIVATE KEY-----\n"
                .to_string(),
            "is not valid PEM",
        ),
        (
            format!(
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\n{marker_base64}\n-----END ENCRYPTED PRIVATE KEY-----\n"
            ),
            "holds an encrypted private key",
        ),
    ];
    for (index, (text, expected)) in cases.iter().enumerate() {
        let key = write(dir.path(), &format!("key-{index}.pem"), text);
        let line = construction_error(HttpOptions {
            client_identity: Some(ClientIdentityFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            ..options()
        });
        assert!(
            line.starts_with(&format!("MISP_FEED_CLIENT_KEY {}: ", key.display())),
            "{line}"
        );
        assert!(line.contains(expected), "{line}");
        for leak in [marker_base64, "MARKER", "key-content"] {
            assert!(!line.contains(leak), "{line}");
        }
    }
}

#[tokio::test]
async fn an_s3_feed_ignores_the_feed_access_options() {
    use misp_feed::config::{Settings, SourceType};
    use misp_feed::source::build_source;

    let server = crate::support::s3_server::S3Server::start().await;
    let client = server.client();
    client.create_bucket().bucket("misp").send().await.unwrap();
    let uuid = fixture_uuids()[0].clone();
    let bytes = std::fs::read(fixture_feed().join(format!("{uuid}.json"))).unwrap();
    client
        .put_object()
        .bucket("misp")
        .key(format!("{uuid}.json"))
        .body(bytes.into())
        .send()
        .await
        .unwrap();
    let mut settings = Settings::default();
    settings.misp_feed.source_type = SourceType::S3;
    settings.misp_feed.bucket_name = Some("misp".into());
    settings.misp_feed.http_retries = 1;
    settings.aws = server.aws_settings();
    // Even a pair that could not be loaded: the bucket is reached without them.
    settings.misp_feed.http_headers = extra_headers();
    settings.misp_feed.client_cert = Some(FeedServer::tls_file("client.pem"));
    settings.misp_feed.client_key = Some(FeedServer::tls_file("client-rsa.key"));

    let source = build_source(&settings).await.unwrap();
    assert!(
        !source.describe().contains("client certificate"),
        "{}",
        source.describe()
    );
    match source.list(None).await.unwrap() {
        Listing::Objects(objects) => assert_eq!(objects.len(), 1),
        other => panic!("expected objects, got {other:?}"),
    }
    assert!(source.fetch(&format!("{uuid}.json")).await.is_ok());
}
