//! The local folder feed source against real folders: the fixture feed, and temporary
//! folders with symlinks, traversal keys and oversized files.

use misp_feed::config::{Settings, SourceType};
use misp_feed::source::local::LocalSource;
use misp_feed::source::{FeedLocation, FeedSource, Listing, SourceError, build_source};

use crate::support::{fixture_feed, fixture_uuids};

fn listed(listing: Listing) -> (Vec<String>, Vec<(String, String)>) {
    match listing {
        Listing::Manifest {
            entries, rejected, ..
        } => (entries.into_iter().map(|e| e.uuid).collect(), rejected),
        other => panic!("expected a manifest listing, got {other:?}"),
    }
}

fn settings_for(url: &str) -> Settings {
    let mut settings = Settings::default();
    settings.misp_feed.source_type = SourceType::Url;
    settings.misp_feed.url = Some(url.to_owned());
    settings
}

async fn check_reads_whole_fixture_feed(source: &dyn FeedSource) {
    let (mut uuids, rejected) = listed(source.list(None).await.unwrap());
    assert!(rejected.is_empty(), "{rejected:?}");
    uuids.sort();
    assert_eq!(uuids, fixture_uuids());
    for uuid in &uuids {
        let fetched = source.fetch(uuid).await.unwrap();
        let expected = std::fs::read(fixture_feed().join(format!("{uuid}.json"))).unwrap();
        assert_eq!(fetched.name, format!("{uuid}.json"));
        assert_eq!(fetched.bytes, expected, "{uuid}");
    }
}

#[tokio::test]
async fn reads_the_fixture_feed_from_a_plain_path_and_a_file_url() {
    let path = fixture_feed();
    let from_path = build_source(&settings_for(path.to_str().unwrap()))
        .await
        .unwrap();
    assert!(from_path.describe().starts_with("feed folder "));
    check_reads_whole_fixture_feed(from_path.as_ref()).await;

    let file_url = url::Url::from_directory_path(&path).unwrap().to_string();
    assert!(file_url.starts_with("file:///"));
    let from_url = build_source(&settings_for(&file_url)).await.unwrap();
    check_reads_whole_fixture_feed(from_url.as_ref()).await;
}

#[test]
fn feed_locations_are_told_apart_by_scheme() {
    assert_eq!(
        FeedLocation::parse("https://feeds.example/misp").unwrap(),
        FeedLocation::Http("https://feeds.example/misp".into())
    );
    assert_eq!(
        FeedLocation::parse("file:///srv/feed").unwrap(),
        FeedLocation::Folder("/srv/feed".into())
    );
    assert_eq!(
        FeedLocation::parse("feeds/misp").unwrap(),
        FeedLocation::Folder("feeds/misp".into())
    );
    let err = FeedLocation::parse("ftp://feeds.example").unwrap_err();
    assert!(err.to_string().contains("unsupported scheme"), "{err}");
}

#[tokio::test]
async fn symlink_escaping_the_folder_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.json");
    std::fs::write(&secret, b"{\"not\": \"yours\"}").unwrap();

    let feed = tempfile::tempdir().unwrap();
    let escaping = "5b646415-7b48-40d5-86b4-c0070acd0835";
    let inside = "56bf399d-c46c-4fdb-a9cf-d9bb02de0b81";
    let inside_bytes = std::fs::read(fixture_feed().join(format!("{inside}.json"))).unwrap();
    std::fs::write(feed.path().join("real.json"), &inside_bytes).unwrap();
    std::os::unix::fs::symlink(&secret, feed.path().join(format!("{escaping}.json"))).unwrap();
    // A symlink that stays inside the folder is fine.
    std::os::unix::fs::symlink(
        feed.path().join("real.json"),
        feed.path().join(format!("{inside}.json")),
    )
    .unwrap();
    let manifest = serde_json::json!({
        escaping: {"timestamp": "1"},
        inside: {"timestamp": "2"},
    });
    std::fs::write(feed.path().join("manifest.json"), manifest.to_string()).unwrap();

    let source = LocalSource::new(feed.path(), 1024 * 1024).unwrap();
    let (uuids, _) = listed(source.list(None).await.unwrap());
    assert_eq!(uuids.len(), 2);

    let err = source.fetch(escaping).await.unwrap_err();
    assert!(matches!(err, SourceError::Invalid { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&format!("{escaping}.json")), "{text}");
    assert!(text.contains("outside the feed folder"), "{text}");
    assert_eq!(source.fetch(inside).await.unwrap().bytes, inside_bytes);

    // The manifest itself may not escape either.
    let other = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        feed.path().join("manifest.json"),
        other.path().join("manifest.json"),
    )
    .unwrap();
    let err = LocalSource::new(other.path(), 1024 * 1024)
        .unwrap()
        .list(None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("outside the feed folder"), "{err}");
}

#[tokio::test]
async fn traversal_keys_are_rejected_and_cannot_be_fetched() {
    let parent = tempfile::tempdir().unwrap();
    std::fs::write(parent.path().join("passwd.json"), b"{}").unwrap();
    let feed = parent.path().join("feed");
    std::fs::create_dir(&feed).unwrap();
    let valid = "57c4445b-c548-4654-af0b-4be3950d210f";
    std::fs::copy(
        fixture_feed().join(format!("{valid}.json")),
        feed.join(format!("{valid}.json")),
    )
    .unwrap();
    let manifest = serde_json::json!({
        "../passwd": {"timestamp": "1"},
        "..": {"timestamp": "1"},
        "/etc/passwd": {"timestamp": "1"},
        valid: {"timestamp": 3},
    });
    std::fs::write(feed.join("manifest.json"), manifest.to_string()).unwrap();

    let source = LocalSource::new(&feed, 1024 * 1024).unwrap();
    let (uuids, rejected) = listed(source.list(None).await.unwrap());
    assert_eq!(uuids, vec![valid.to_string()]);
    let mut keys: Vec<&str> = rejected.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort();
    assert_eq!(keys, vec!["..", "../passwd", "/etc/passwd"]);
    let traversal = rejected.iter().find(|(k, _)| k == "../passwd").unwrap();
    assert!(traversal.1.contains("path traversal"), "{}", traversal.1);

    for key in ["../passwd", "../passwd.json", "..", "/etc/passwd"] {
        let err = source.fetch(key).await.unwrap_err();
        assert!(matches!(err, SourceError::Invalid { .. }), "{key}: {err:?}");
    }
}

#[tokio::test]
async fn files_over_the_size_limit_are_refused() {
    let (uuid, size) = fixture_uuids()
        .into_iter()
        .map(|uuid| {
            let size = std::fs::metadata(fixture_feed().join(format!("{uuid}.json")))
                .unwrap()
                .len();
            (uuid, size)
        })
        .max_by_key(|(_, size)| *size)
        .unwrap();
    let limit = size - 1;
    let source = LocalSource::new(&fixture_feed(), limit).unwrap();
    let err = source.fetch(&uuid).await.unwrap_err();
    match &err {
        SourceError::TooLarge {
            what,
            size: s,
            limit: l,
        } => {
            assert!(what.ends_with(&format!("{uuid}.json")), "{what}");
            assert_eq!((*s, *l), (size, limit));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }

    let manifest_size = std::fs::metadata(fixture_feed().join("manifest.json"))
        .unwrap()
        .len();
    let tiny = LocalSource::new(&fixture_feed(), manifest_size - 1).unwrap();
    let err = tiny.list(None).await.unwrap_err();
    assert!(matches!(err, SourceError::TooLarge { .. }), "{err:?}");
    assert!(err.to_string().contains("manifest.json"), "{err}");
}

#[tokio::test]
async fn missing_event_invalid_manifest_and_missing_folder_name_the_file() {
    let feed = tempfile::tempdir().unwrap();
    std::fs::write(feed.path().join("manifest.json"), b"{\"oops\": ").unwrap();
    let source = LocalSource::new(feed.path(), 1024).unwrap();

    let err = source.list(None).await.unwrap_err();
    assert!(matches!(err, SourceError::Invalid { .. }), "{err:?}");
    assert!(err.to_string().contains("manifest.json"), "{err}");
    assert!(err.to_string().contains("not valid JSON"), "{err}");

    let missing = "5c066053-0e94-46eb-9746-4b7d950d210f";
    let err = source.fetch(missing).await.unwrap_err();
    assert!(matches!(err, SourceError::NotFound { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("{missing}.json")),
        "{err}"
    );

    let gone = feed.path().join("nowhere");
    let err = LocalSource::new(&gone, 1024).unwrap_err();
    assert!(matches!(err, SourceError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("nowhere"), "{err}");
}
