//! The HTTP feed source against a real HTTP server on 127.0.0.1 serving the fixture feed,
//! with one test per fault.

use std::time::Duration;

use crate::support::feed_server::{self, Fault, FeedServer};
use crate::support::{fixture_feed, fixture_uuids};
use misp_feed::secret::Secret;
use misp_feed::source::http::{HttpOptions, HttpSource};
use misp_feed::source::retry::RetryPolicy;
use misp_feed::source::{FeedSource, Listing, ManifestEntry, ManifestValidators, SourceError};

const TOKEN: &str = "Bearer s3cr3t-feed-token";

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture_feed().join(name)).unwrap()
}

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

fn source(server: &FeedServer, options: HttpOptions) -> HttpSource {
    HttpSource::new(&server.url(), options).unwrap()
}

fn manifest_entries(
    listing: Listing,
) -> (
    Vec<ManifestEntry>,
    Vec<(String, String)>,
    ManifestValidators,
) {
    match listing {
        Listing::Manifest {
            entries,
            rejected,
            validators,
        } => (entries, rejected, validators),
        other => panic!("expected a manifest listing, got {other:?}"),
    }
}

/// The smallest event file of the fixture feed (uuid, bytes).
fn small_event() -> (String, Vec<u8>) {
    fixture_uuids()
        .into_iter()
        .map(|uuid| {
            let bytes = fixture_bytes(&format!("{uuid}.json"));
            (uuid, bytes)
        })
        .min_by_key(|(_, bytes)| bytes.len())
        .unwrap()
}

/// The largest event file of the fixture feed (uuid, bytes).
fn large_event() -> (String, Vec<u8>) {
    fixture_uuids()
        .into_iter()
        .map(|uuid| {
            let bytes = fixture_bytes(&format!("{uuid}.json"));
            (uuid, bytes)
        })
        .max_by_key(|(_, bytes)| bytes.len())
        .unwrap()
}

#[tokio::test]
async fn lists_and_fetches_the_fixture_feed() {
    let server = FeedServer::start(fixture_feed());
    let source = source(&server, options());

    let (entries, rejected, validators) = manifest_entries(source.list(None).await.unwrap());
    assert!(rejected.is_empty(), "{rejected:?}");
    let mut listed: Vec<String> = entries.iter().map(|e| e.uuid.clone()).collect();
    listed.sort();
    assert_eq!(listed, fixture_uuids());
    assert_eq!(
        validators.etag.as_deref(),
        Some(FeedServer::etag_of(&fixture_bytes("manifest.json")).as_str())
    );
    assert_eq!(
        validators.last_modified.as_deref(),
        Some(feed_server::LAST_MODIFIED)
    );

    for entry in &entries {
        let fetched = source.fetch(&entry.uuid).await.unwrap();
        let expected = fixture_bytes(&format!("{}.json", entry.uuid));
        assert_eq!(fetched.name, format!("{}.json", entry.uuid));
        assert_eq!(fetched.bytes, expected, "{}", entry.uuid);
        assert_eq!(fetched.etag, Some(FeedServer::etag_of(&expected)));
    }
    assert_eq!(server.requests().len(), 1 + entries.len());
}

#[tokio::test]
async fn manifest_timestamps_match_the_fixture() {
    let server = FeedServer::start(fixture_feed());
    let (entries, _, _) = manifest_entries(source(&server, options()).list(None).await.unwrap());
    let text = std::fs::read_to_string(fixture_feed().join("manifest.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    for entry in entries {
        let raw = &manifest[&entry.uuid]["timestamp"];
        let expected: i64 = match raw {
            serde_json::Value::String(s) => s.parse().unwrap(),
            other => other.as_i64().unwrap(),
        };
        assert_eq!(entry.timestamp, expected, "{}", entry.uuid);
        assert_eq!(
            entry.info.as_deref(),
            manifest[&entry.uuid]["info"].as_str()
        );
    }
}

#[tokio::test]
async fn authorization_header_is_sent_on_every_request_and_never_shown() {
    let server = FeedServer::start(fixture_feed());
    let (uuid, _) = small_event();
    let missing = "00000000-0000-4000-8000-000000000000";
    let failing = large_event().0;
    server.fail_always(&format!("{failing}.json"), Fault::Status(500));
    let source = source(
        &server,
        HttpOptions {
            authorization: Some(Secret::new(TOKEN)),
            ..options()
        },
    );

    source.list(None).await.unwrap();
    source.fetch(&uuid).await.unwrap();
    let not_found = source.fetch(missing).await.unwrap_err();
    let server_error = source.fetch(&failing).await.unwrap_err();

    let requests = server.requests();
    assert_eq!(requests.len(), 1 + 1 + 1 + 4);
    for request in &requests {
        assert_eq!(
            request.header("authorization"),
            Some(TOKEN),
            "{}",
            request.name
        );
    }
    for err in [not_found, server_error] {
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains("s3cr3t"), "secret leaked in {text}");
        }
    }
    assert!(!format!("{source:?}").contains("s3cr3t"));
    assert!(!source.describe().contains("s3cr3t"));
}

#[tokio::test]
async fn server_error_then_recovery_is_retried_within_one_call() {
    let server = FeedServer::start(fixture_feed());
    server.fail_next("manifest.json", Fault::Status(500));
    server.fail_next("manifest.json", Fault::Status(503));
    let source = source(&server, options());

    let (entries, _, _) = manifest_entries(source.list(None).await.unwrap());
    assert_eq!(entries.len(), fixture_uuids().len());
    assert_eq!(server.requests_for("manifest.json"), 3);
}

#[tokio::test]
async fn persistent_server_error_fails_after_bounded_retries() {
    let server = FeedServer::start(fixture_feed());
    let (uuid, _) = small_event();
    let name = format!("{uuid}.json");
    server.fail_always(&name, Fault::Status(500));
    let source = source(&server, options());

    let err = source.fetch(&uuid).await.unwrap_err();
    assert!(matches!(err, SourceError::Transport { .. }), "{err:?}");
    assert!(err.is_transient());
    let text = err.to_string();
    assert!(text.contains(&name), "{text}");
    assert!(text.contains("HTTP 500"), "{text}");
    assert!(text.contains("gave up after 4 tries"), "{text}");
    assert_eq!(server.requests_for(&name), 4);

    // The fault gone, the same source succeeds.
    server.heal(&name);
    assert_eq!(
        source.fetch(&uuid).await.unwrap().bytes,
        fixture_bytes(&name)
    );
}

#[tokio::test]
async fn too_many_requests_waits_a_bounded_retry_after_then_recovers() {
    let server = FeedServer::start(fixture_feed());
    let (uuid, bytes) = small_event();
    let name = format!("{uuid}.json");
    // An hour asked for: the bound (20 ms here) must apply or this test would hang.
    server.fail_next(&name, Fault::StatusRetryAfter(429, "3600".into()));
    server.fail_next(&name, Fault::StatusRetryAfter(429, "1".into()));
    let source = source(&server, options());

    assert_eq!(source.fetch(&uuid).await.unwrap().bytes, bytes);
    assert_eq!(server.requests_for(&name), 3);
}

#[tokio::test]
async fn read_timeout_is_retried_then_reported() {
    let server = FeedServer::start(fixture_feed());
    let (uuid, bytes) = small_event();
    let name = format!("{uuid}.json");
    let quick = HttpOptions {
        read_timeout: Duration::from_millis(200),
        retry: RetryPolicy {
            retries: 1,
            ..options().retry
        },
        ..options()
    };

    server.fail_next(&name, Fault::Hang);
    let source = source(&server, quick);
    assert_eq!(source.fetch(&uuid).await.unwrap().bytes, bytes);
    assert_eq!(server.requests_for(&name), 2);

    server.fail_always(&name, Fault::Hang);
    let err = source.fetch(&uuid).await.unwrap_err();
    assert!(matches!(err, SourceError::Transport { .. }), "{err:?}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(err.to_string().contains("gave up after 2 tries"), "{err}");
    assert_eq!(server.requests_for(&name), 4);
}

#[tokio::test]
async fn a_body_sent_a_byte_at_a_time_is_cut_off_by_the_deadline() {
    let server = FeedServer::start(fixture_feed());
    let (uuid, _) = small_event();
    let name = format!("{uuid}.json");
    // Every read comes well within the read timeout; the whole never would.
    let patient_reads = HttpOptions {
        read_timeout: Duration::from_secs(2),
        deadline: Duration::from_millis(600),
        retry: RetryPolicy {
            retries: 1,
            ..options().retry
        },
        ..options()
    };
    server.fail_always(&name, Fault::Trickle(Duration::from_millis(50)));
    let source = source(&server, patient_reads);
    // Without a deadline the body would arrive whole, minutes later, and the fetch succeed.
    let err = source.fetch(&uuid).await.unwrap_err();
    assert!(matches!(err, SourceError::Transport { .. }), "{err:?}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(server.requests_for(&name), 2, "the deadline ends each try");
}

#[tokio::test]
async fn truncated_body_is_retried_then_reported_as_transport_error() {
    let server = FeedServer::start(fixture_feed());
    let (uuid, bytes) = large_event();
    let name = format!("{uuid}.json");
    let source = source(&server, options());

    server.fail_next(&name, Fault::Truncate);
    assert_eq!(source.fetch(&uuid).await.unwrap().bytes, bytes);
    assert_eq!(server.requests_for(&name), 2);

    server.fail_always(&name, Fault::Truncate);
    let err = source.fetch(&uuid).await.unwrap_err();
    assert!(matches!(err, SourceError::Transport { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&name), "{text}");
    assert!(text.contains("body cut short"), "{text}");
    assert_eq!(server.requests_for(&name), 2 + 4);
}

#[tokio::test]
async fn invalid_json_manifest_is_reported_naming_the_manifest() {
    let server = FeedServer::start(fixture_feed());
    server.fail_always("manifest.json", Fault::Body(b"{\"5b646415-".to_vec()));
    let source = source(&server, options());

    let err = source.list(None).await.unwrap_err();
    assert!(matches!(err, SourceError::Invalid { .. }), "{err:?}");
    assert!(!err.is_transient());
    assert!(err.to_string().starts_with("manifest.json: "), "{err}");
    assert!(err.to_string().contains("not valid JSON"), "{err}");
    assert_eq!(server.requests_for("manifest.json"), 1);
}

#[tokio::test]
async fn missing_event_is_not_found_without_retry() {
    let server = FeedServer::start(fixture_feed());
    let source = source(&server, options());
    let missing = "0a1b2c3d-0000-4000-8000-000000000001";

    let err = source.fetch(missing).await.unwrap_err();
    assert!(matches!(err, SourceError::NotFound { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("{missing}.json")),
        "{err}"
    );
    assert_eq!(server.requests_for(&format!("{missing}.json")), 1);
}

#[tokio::test]
async fn client_error_other_than_not_found_is_not_retried() {
    let server = FeedServer::start(fixture_feed());
    server.fail_always("manifest.json", Fault::Status(403));
    let err = source(&server, options()).list(None).await.unwrap_err();
    assert!(err.to_string().contains("HTTP 403"), "{err}");
    assert_eq!(server.requests_for("manifest.json"), 1);
}

#[tokio::test]
async fn manifest_keys_that_are_not_uuids_are_rejected_and_never_fetched() {
    let folder = tempfile::tempdir().unwrap();
    let (uuid, bytes) = small_event();
    std::fs::write(folder.path().join(format!("{uuid}.json")), &bytes).unwrap();
    let manifest = serde_json::json!({
        uuid.to_uppercase(): {"timestamp": "1700000000", "info": "kept"},
        "../etc/passwd": {"timestamp": "1700000001"},
        "http://127.0.0.1:1/evil": {"timestamp": "1700000002"},
        "not-a-uuid": {"timestamp": "1700000003"},
        "5c7cdc3b-2f40-4dca-8200-276c0a00020f": {"timestamp": "yesterday"},
    });
    std::fs::write(folder.path().join("manifest.json"), manifest.to_string()).unwrap();
    let server = FeedServer::start(folder.path());
    let source = source(&server, options());

    let (entries, rejected, _) = manifest_entries(source.list(None).await.unwrap());
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].uuid, uuid, "keys are lower-cased");
    let mut rejected_keys: Vec<&str> = rejected.iter().map(|(k, _)| k.as_str()).collect();
    rejected_keys.sort();
    assert_eq!(
        rejected_keys,
        vec![
            "../etc/passwd",
            "5c7cdc3b-2f40-4dca-8200-276c0a00020f",
            "http://127.0.0.1:1/evil",
            "not-a-uuid"
        ]
    );
    for (key, reason) in &rejected {
        assert!(!reason.is_empty(), "{key}");
    }

    assert_eq!(source.fetch(&entries[0].uuid).await.unwrap().bytes, bytes);
    for (key, _) in &rejected {
        if key.starts_with("5c7cdc3b") {
            continue; // a valid uuid with a bad timestamp: fetchable, just not listed
        }
        let err = source.fetch(key).await.unwrap_err();
        assert!(matches!(err, SourceError::Invalid { .. }), "{key}: {err:?}");
    }
    let names: Vec<String> = server.requests().into_iter().map(|r| r.name).collect();
    assert_eq!(
        names,
        vec!["manifest.json".to_string(), format!("{uuid}.json")]
    );
}

#[tokio::test]
async fn oversized_file_is_refused_from_content_length_without_retry() {
    let server = FeedServer::start(fixture_feed());
    let (uuid, bytes) = large_event();
    let limit = (bytes.len() / 2) as u64;
    let source = source(
        &server,
        HttpOptions {
            max_file_size: limit,
            ..options()
        },
    );

    let err = source.fetch(&uuid).await.unwrap_err();
    match &err {
        SourceError::TooLarge { size, limit: l, .. } => {
            assert_eq!(*size, bytes.len() as u64);
            assert_eq!(*l, limit);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(err.to_string().contains(&format!("{uuid}.json")), "{err}");
    assert_eq!(server.requests_for(&format!("{uuid}.json")), 1);
}

#[tokio::test]
async fn oversized_body_without_length_is_stopped_while_streaming() {
    let server = FeedServer::start(fixture_feed());
    let (uuid, bytes) = large_event();
    let name = format!("{uuid}.json");
    server.fail_always(&name, Fault::Chunked);
    let limit = (bytes.len() / 2) as u64;
    let source = source(
        &server,
        HttpOptions {
            max_file_size: limit,
            ..options()
        },
    );

    let err = source.fetch(&uuid).await.unwrap_err();
    match &err {
        SourceError::TooLarge { size, .. } => assert!(*size > limit && *size <= bytes.len() as u64),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(server.requests_for(&name), 1);

    // Under the limit the same chunked answer arrives whole.
    let roomy = HttpSource::new(&server.url(), options()).unwrap();
    assert_eq!(roomy.fetch(&uuid).await.unwrap().bytes, bytes);
}

#[tokio::test]
async fn unchanged_manifest_answers_not_modified_to_a_conditional_get() {
    let server = FeedServer::start(fixture_feed());
    let source = source(&server, options());

    let (_, _, validators) = manifest_entries(source.list(None).await.unwrap());
    assert!(validators.etag.is_some());
    let again = source.list(Some(&validators)).await.unwrap();
    assert!(matches!(again, Listing::NotModified), "{again:?}");

    let only_date = ManifestValidators {
        etag: None,
        last_modified: validators.last_modified.clone(),
    };
    let by_date = source.list(Some(&only_date)).await.unwrap();
    assert!(matches!(by_date, Listing::NotModified), "{by_date:?}");

    let stale = ManifestValidators {
        etag: Some("\"stale\"".into()),
        last_modified: None,
    };
    let (entries, _, fresh) = manifest_entries(source.list(Some(&stale)).await.unwrap());
    assert_eq!(entries.len(), fixture_uuids().len());
    assert_eq!(fresh, validators);

    let requests = server.requests();
    assert_eq!(requests.len(), 4);
    assert_eq!(requests[0].header("if-none-match"), None);
    assert_eq!(
        requests[1].header("if-none-match"),
        validators.etag.as_deref()
    );
    assert_eq!(
        requests[1].header("if-modified-since"),
        Some(feed_server::LAST_MODIFIED)
    );
    assert_eq!(
        requests[2].header("if-modified-since"),
        Some(feed_server::LAST_MODIFIED)
    );
    assert_eq!(requests[3].header("if-none-match"), Some("\"stale\""));
}

#[tokio::test]
async fn gzip_encoded_response_is_decoded() {
    let server = FeedServer::start(fixture_feed());
    let (uuid, bytes) = large_event();
    let name = format!("{uuid}.json");
    server.fail_always(&name, Fault::Gzip);
    let source = source(&server, options());

    assert_eq!(source.fetch(&uuid).await.unwrap().bytes, bytes);
    let requests = server.requests();
    let accepted = requests[0].header("accept-encoding").unwrap_or_default();
    assert!(accepted.contains("gzip"), "{accepted}");
    assert!(accepted.contains("br"), "{accepted}");
}

#[tokio::test]
async fn oversized_gzip_body_is_stopped_after_decompression() {
    let folder = tempfile::tempdir().unwrap();
    let uuid = "5b646415-7b48-40d5-86b4-c0070acd0835";
    // 4 MiB of spaces compress to a few kilobytes: the limit must apply to what comes out.
    let mut bomb = b"{\"Event\": {\"info\": \"".to_vec();
    bomb.extend(std::iter::repeat_n(b' ', 4 * 1024 * 1024));
    bomb.extend_from_slice(b"\"}}");
    std::fs::write(folder.path().join(format!("{uuid}.json")), &bomb).unwrap();
    let server = FeedServer::start(folder.path());
    server.fail_always(&format!("{uuid}.json"), Fault::Gzip);
    let source = source(
        &server,
        HttpOptions {
            max_file_size: 64 * 1024,
            ..options()
        },
    );

    let err = source.fetch(uuid).await.unwrap_err();
    assert!(matches!(err, SourceError::TooLarge { .. }), "{err:?}");
}

#[tokio::test]
async fn refused_connection_is_retried_then_reported() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let source = HttpSource::new(&format!("http://{addr}/feed"), options()).unwrap();

    let err = source.list(None).await.unwrap_err();
    assert!(matches!(err, SourceError::Transport { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with("manifest.json from "), "{text}");
    assert!(text.contains("could not connect"), "{text}");
    assert!(text.contains("gave up after 4 tries"), "{text}");
}

// TLS: the server's certificate is signed by a test CA (tests/support/tls/, throwaway keys
// made for these tests) that no system trusts.

#[tokio::test]
async fn tls_server_is_trusted_through_the_ca_bundle() {
    let server = FeedServer::start_tls(fixture_feed());
    assert!(server.url().starts_with("https://"));
    let source = source(
        &server,
        HttpOptions {
            ca_bundle: Some(FeedServer::tls_ca_bundle()),
            authorization: Some(Secret::new(TOKEN)),
            ..options()
        },
    );
    let (entries, _, _) = manifest_entries(source.list(None).await.unwrap());
    assert_eq!(entries.len(), fixture_uuids().len());
    assert_eq!(server.requests()[0].header("authorization"), Some(TOKEN));
}

#[tokio::test]
async fn tls_server_with_an_unknown_ca_is_refused_unless_verification_is_off() {
    let server = FeedServer::start_tls(fixture_feed());
    let no_retry = RetryPolicy {
        retries: 0,
        ..options().retry
    };
    let verifying = source(
        &server,
        HttpOptions {
            retry: no_retry.clone(),
            ..options()
        },
    );
    let err = verifying.list(None).await.unwrap_err();
    assert!(matches!(err, SourceError::Transport { .. }), "{err:?}");
    assert!(
        server.requests().is_empty(),
        "no request may pass a refused handshake"
    );

    let trusting = source(
        &server,
        HttpOptions {
            ssl_verify: false,
            retry: no_retry,
            ..options()
        },
    );
    let (entries, _, _) = manifest_entries(trusting.list(None).await.unwrap());
    assert_eq!(entries.len(), fixture_uuids().len());
}
