//! The S3 feed source against an in-process S3 server (s3s-fs over HTTP on 127.0.0.1, with
//! signature checking), built through `build_source` exactly as the connector builds it.

use std::collections::BTreeSet;

use crate::support::fixture_feed;
use crate::support::s3_server::{self, S3Server};
use aws_sdk_s3::primitives::ByteStream;
use md5::{Digest, Md5};
use misp_feed::config::{Settings, SourceType};
use misp_feed::secret::Secret;
use misp_feed::source::{Deletion, Listing, ObjectEntry, SourceError, build_source};

const BUCKET: &str = "misp-events";

/// The fixture event files, (uuid, bytes), smallest first.
fn fixture_events() -> Vec<(String, Vec<u8>)> {
    let text = std::fs::read_to_string(fixture_feed().join("manifest.json")).unwrap();
    let manifest: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    let mut events: Vec<(String, Vec<u8>)> = manifest
        .keys()
        .map(|uuid| {
            let bytes = std::fs::read(fixture_feed().join(format!("{uuid}.json"))).unwrap();
            (uuid.clone(), bytes)
        })
        .collect();
    events.sort_by_key(|(_, bytes)| bytes.len());
    events
}

fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

async fn start_with_bucket() -> S3Server {
    let server = S3Server::start().await;
    server
        .client()
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    server
}

async fn put(server: &S3Server, key: &str, bytes: &[u8]) {
    server
        .client()
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(bytes.to_vec()))
        .send()
        .await
        .unwrap();
}

fn settings(server: &S3Server, prefix: Option<&str>, max_file_size: u64) -> Settings {
    let mut settings = Settings::default();
    settings.misp_feed.source_type = SourceType::S3;
    settings.misp_feed.bucket_name = Some(BUCKET.into());
    settings.misp_feed.bucket_prefix = prefix.map(str::to_owned);
    settings.misp_feed.max_file_size = max_file_size;
    settings.misp_feed.http_retries = 1;
    settings.aws = server.aws_settings();
    settings
}

fn objects(listing: Listing) -> Vec<ObjectEntry> {
    match listing {
        Listing::Objects(objects) => objects,
        other => panic!("expected an object listing, got {other:?}"),
    }
}

#[tokio::test]
async fn lists_only_event_files_under_the_prefix_with_etag_size_and_date() {
    let server = start_with_bucket().await;
    let events = fixture_events();
    let (inside, outside) = events.split_at(3);
    for (uuid, bytes) in inside {
        put(&server, &format!("feed/{uuid}.json"), bytes).await;
    }
    for (uuid, bytes) in outside {
        put(&server, &format!("other/{uuid}.json"), bytes).await;
    }
    put(
        &server,
        "feedback/5b646415-7b48-40d5-86b4-c0070acd0835.json",
        b"{}",
    )
    .await;
    put(&server, "feed/manifest.json", b"{}").await;
    put(&server, "feed/hashes.csv", b"a,b").await;

    let source = build_source(&settings(&server, Some("feed/"), 1 << 20))
        .await
        .unwrap();
    assert!(source.describe().contains(BUCKET), "{}", source.describe());
    let listed = objects(source.list(None).await.unwrap());

    let keys: BTreeSet<String> = listed.iter().map(|o| o.key.clone()).collect();
    let expected: BTreeSet<String> = inside
        .iter()
        .map(|(uuid, _)| format!("feed/{uuid}.json"))
        .collect();
    assert_eq!(keys, expected);
    for object in &listed {
        let (_, bytes) = inside
            .iter()
            .find(|(uuid, _)| object.key == format!("feed/{uuid}.json"))
            .unwrap();
        assert_eq!(object.etag.as_deref(), Some(md5_hex(bytes).as_str()));
        assert_eq!(object.size, bytes.len() as u64);
        let age = chrono::Utc::now() - object.last_modified.unwrap();
        assert!(age.num_minutes().abs() < 10, "{:?}", object.last_modified);
    }

    // Without a prefix every event file of the bucket counts, manifests still excluded.
    let everything = build_source(&settings(&server, None, 1 << 20))
        .await
        .unwrap();
    let all = objects(everything.list(None).await.unwrap());
    assert_eq!(all.len(), events.len() + 1);
    assert!(all.iter().all(|o| !o.key.ends_with("manifest.json")));
}

#[tokio::test]
async fn listing_paginates_past_a_thousand_objects() {
    let server = start_with_bucket().await;
    // Written straight into the store's folder: 1,205 uploads would only slow the test.
    let bulk = server.bucket_dir(BUCKET).join("bulk");
    std::fs::create_dir_all(&bulk).unwrap();
    let total = 1205;
    let mut expected = BTreeSet::new();
    for n in 0..total {
        let uuid = uuid::Uuid::from_u128(0x5b64_6415_7b48_40d5_86b4_0000_0000_0000 + n);
        let body = format!("{{\"Event\": {{\"uuid\": \"{uuid}\"}}}}");
        std::fs::write(bulk.join(format!("{uuid}.json")), body).unwrap();
        expected.insert(format!("bulk/{uuid}.json"));
    }
    std::fs::write(server.bucket_dir(BUCKET).join("zzz-outside.json"), "{}").unwrap();

    let source = build_source(&settings(&server, Some("bulk/"), 1 << 20))
        .await
        .unwrap();
    let calls_before = server.list_calls();
    let listed = objects(source.list(None).await.unwrap());
    let calls = server.list_calls() - calls_before;

    assert_eq!(listed.len(), total as usize);
    let keys: BTreeSet<String> = listed.iter().map(|o| o.key.clone()).collect();
    assert_eq!(keys, expected);
    assert!(calls >= 2, "{calls} list call(s) for {total} objects");
    assert!(listed.iter().all(|o| o.etag.is_some()));
}

#[tokio::test]
async fn fetch_returns_the_bytes_and_etag_and_delete_removes_the_object() {
    let server = start_with_bucket().await;
    let events = fixture_events();
    let (uuid, bytes) = events.last().unwrap();
    let key = format!("feed/{uuid}.json");
    put(&server, &key, bytes).await;
    let source = build_source(&settings(&server, Some("feed/"), 1 << 20))
        .await
        .unwrap();

    let listed = objects(source.list(None).await.unwrap());
    assert_eq!(listed.len(), 1);
    let fetched = source.fetch(&key).await.unwrap();
    assert_eq!(fetched.name, key);
    assert_eq!(&fetched.bytes, bytes);
    assert_eq!(fetched.etag, listed[0].etag);

    // A version other than the one delivered is never deleted.
    assert_eq!(
        source
            .delete(&key, Some("not-what-was-delivered"))
            .await
            .unwrap(),
        Deletion::ChangedSince
    );
    put(&server, &key, &[bytes.as_slice(), b" "].concat()).await;
    assert_eq!(
        source.delete(&key, fetched.etag.as_deref()).await.unwrap(),
        Deletion::ChangedSince,
        "overwritten since its download"
    );
    assert_eq!(objects(source.list(None).await.unwrap()).len(), 1);
    let current = source.fetch(&key).await.unwrap();
    assert_eq!(
        source.delete(&key, current.etag.as_deref()).await.unwrap(),
        Deletion::Deleted
    );
    assert!(objects(source.list(None).await.unwrap()).is_empty());
    let err = source.fetch(&key).await.unwrap_err();
    assert!(matches!(err, SourceError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains(&key), "{err}");
}

#[tokio::test]
async fn objects_over_the_size_limit_are_refused() {
    let server = start_with_bucket().await;
    let events = fixture_events();
    let (small_uuid, small) = events.first().unwrap();
    let (large_uuid, large) = events.last().unwrap();
    put(&server, &format!("feed/{small_uuid}.json"), small).await;
    put(&server, &format!("feed/{large_uuid}.json"), large).await;
    let limit = (large.len() - 1) as u64;
    let source = build_source(&settings(&server, Some("feed/"), limit))
        .await
        .unwrap();

    let large_key = format!("feed/{large_uuid}.json");
    let err = source.fetch(&large_key).await.unwrap_err();
    match &err {
        SourceError::TooLarge {
            what,
            size,
            limit: l,
        } => {
            assert!(what.ends_with(&large_key), "{what}");
            assert_eq!((*size, *l), (large.len() as u64, limit));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let fetched = source
        .fetch(&format!("feed/{small_uuid}.json"))
        .await
        .unwrap();
    assert_eq!(&fetched.bytes, small);
}

#[tokio::test]
async fn wrong_credentials_fail_without_showing_the_secret() {
    let server = start_with_bucket().await;
    put(
        &server,
        "feed/5b646415-7b48-40d5-86b4-c0070acd0835.json",
        b"{}",
    )
    .await;
    let mut settings = settings(&server, Some("feed/"), 1 << 20);
    settings.aws.secret_access_key = Some(Secret::new("wrong-secret-value"));
    let source = build_source(&settings).await.unwrap();

    let err = source.list(None).await.unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains("wrong-secret-value"), "{text}");
        assert!(!text.contains(s3_server::SECRET_KEY), "{text}");
    }
    let text = err.to_string();
    assert!(text.contains(BUCKET), "{text}");
    assert!(text.contains("HTTP 403 SignatureDoesNotMatch"), "{text}");
}

#[tokio::test]
async fn missing_bucket_is_not_found() {
    let server = S3Server::start().await;
    let source = build_source(&settings(&server, None, 1 << 20))
        .await
        .unwrap();
    let err = source.list(None).await.unwrap_err();
    assert!(matches!(err, SourceError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn missing_bucket_name_is_a_clear_setting_error() {
    let mut settings = Settings::default();
    settings.misp_feed.source_type = SourceType::S3;
    let err = match build_source(&settings).await {
        Ok(source) => panic!("built {}", source.describe()),
        Err(err) => err,
    };
    assert!(
        err.to_string().starts_with("MISP_FEED_BUCKET_NAME"),
        "{err}"
    );
}
