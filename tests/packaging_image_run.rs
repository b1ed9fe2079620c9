//! The binary run the way the image runs it: the image's environment, `run` as the command,
//! the working folder and the ledger on the mounted `/data`-like folder, as the non-root user
//! 65532 when the test can switch user (it runs as root), stopped with SIGTERM like
//! `docker stop`. Offline: bundles go to a folder on the same volume.

use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The image's user (distroless "nonroot").
const IMAGE_UID: u32 = 65532;

/// The binary the image ships is the release build: `.ci/run` builds it first and points
/// `MISP_FEED_RELEASE_BIN` at it. Elsewhere the test profile's build stands in.
fn image_binary() -> std::path::PathBuf {
    match std::env::var_os("MISP_FEED_RELEASE_BIN") {
        Some(path) => {
            let path = std::path::PathBuf::from(path);
            assert!(
                path.is_file(),
                "MISP_FEED_RELEASE_BIN={} is not a file",
                path.display()
            );
            path
        }
        None => {
            eprintln!("note: MISP_FEED_RELEASE_BIN unset; running the test-profile binary");
            env!("CARGO_BIN_EXE_misp-feed").into()
        }
    }
}

fn running_as_root() -> bool {
    let probe = tempfile::NamedTempFile::new().unwrap();
    std::os::unix::fs::MetadataExt::uid(&probe.as_file().metadata().unwrap()) == 0
}

struct Volume {
    _root: tempfile::TempDir,
    data: PathBuf,
    feed: PathBuf,
    as_root: bool,
}

/// A `/data` folder owned by the image user (or read-only), and a copy of the sample feed.
fn volume(data_owner_is_image_user: bool) -> Volume {
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let feed = root.path().join("feed");
    std::fs::create_dir(&feed).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/misp/feed");
    for entry in std::fs::read_dir(fixtures).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), feed.join(entry.file_name())).unwrap();
    }
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let as_root = running_as_root();
    if data_owner_is_image_user {
        if as_root {
            chown(&data, Some(IMAGE_UID), Some(IMAGE_UID)).unwrap();
        }
    } else {
        // Read-only for everyone but root; the connector never runs as root here.
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    Volume {
        _root: root,
        data,
        feed,
        as_root,
    }
}

fn command(volume: &Volume, args: &[&str]) -> Command {
    let mut command = Command::new(image_binary());
    command
        .env_clear()
        // The image's ENV lines, then what an operator sets.
        .env("CONNECTOR_TYPE", "EXTERNAL_IMPORT")
        .env("MISP_FEED_LEDGER_PATH", volume.data.join("ledger.sqlite"))
        .env("MISP_FEED_URL", &volume.feed)
        .env("MISP_FEED_IMPORT_FROM_DATE", "2010-01-01")
        .env("CONNECTOR_SEND_TO_QUEUE", "false")
        .env("CONNECTOR_SEND_TO_DIRECTORY", "true")
        .env(
            "CONNECTOR_SEND_TO_DIRECTORY_PATH",
            volume.data.join("bundles"),
        )
        .env("CONNECTOR_SEND_TO_DIRECTORY_RETENTION", "0")
        .env("CONNECTOR_LOG_LEVEL", "info")
        .current_dir(&volume.data)
        .args(args)
        .stdin(Stdio::null());
    if volume.as_root {
        command.uid(IMAGE_UID).gid(IMAGE_UID);
    }
    command
}

fn bundle_count(volume: &Volume) -> usize {
    std::fs::read_dir(volume.data.join("bundles"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .unwrap_or(0)
}

fn manifest_events() -> usize {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/misp/feed/manifest.json");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    manifest.as_object().unwrap().len()
}

#[test]
fn image_like_run_syncs_the_sample_feed_onto_the_volume_as_non_root_and_stops_on_sigterm() {
    let volume = volume(true);
    let expected = manifest_events();
    let mut child = command(&volume, &["run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while bundle_count(&volume) < expected {
        if let Some(status) = child.try_wait().unwrap() {
            let output = child.wait_with_output().unwrap();
            panic!(
                "exited early with {status}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {} bundles",
            bundle_count(&volume)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // `docker stop`: SIGTERM, then a clean exit.
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert_eq!(bundle_count(&volume), expected);

    let ledger = volume.data.join("ledger.sqlite");
    let metadata = std::fs::metadata(&ledger).unwrap();
    if volume.as_root {
        // Written by the image's user, not by root.
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&metadata), IMAGE_UID);
    }

    // A restart of the container (same volume): nothing is sent twice.
    let again = command(&volume, &["once", "--json"]).output().unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(bundle_count(&volume), expected);
}

#[test]
fn a_volume_the_image_user_cannot_write_stops_with_a_clear_error() {
    let volume = volume(false);
    let output = command(&volume, &["once"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ledger.sqlite: cannot open: Permission denied"),
        "the error names the ledger and the refusal: {stderr}"
    );
    assert_eq!(bundle_count(&volume), 0);
}

/// The image ships the release binary without debug info: at most 40 MB (with line tables it
/// was 187 MB, four fifths of them debug sections).
#[test]
fn the_shipped_binary_is_at_most_40_mb() {
    let test = "the_shipped_binary_is_at_most_40_mb";
    let release = std::env::var_os("MISP_FEED_RELEASE_BIN").ok_or_else(|| {
        "MISP_FEED_RELEASE_BIN is unset (.ci/run builds the release binary and sets it)".to_string()
    });
    let Some(path) = crate::support::services::require(test, release) else {
        return;
    };
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(
        size <= 40_000_000,
        "{}: {size} bytes, over 40 MB",
        PathBuf::from(&path).display()
    );
}
