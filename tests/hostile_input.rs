//! Hostile feeds: each bad file gets a clear error and a ledger record, the run goes on with
//! the other events, and nothing makes the process use unbounded memory.

use std::io::Write;

use crate::support::feed_server::{Fault, FeedServer};
use crate::support::workspace::Workspace;
use crate::support::{FIXTURE_FEED, child};

const EVENT: &str = "5b646415-7b48-40d5-86b4-c0070acd0835";

/// Runs once with `fault` on one event; that event must be recorded failed with a reason
/// mentioning one of `expect` (texts only the expected failure produces: every reason names
/// the file), and the 8 others pushed.
fn hostile(fault: Fault, expect: &[&str], max_file_size: Option<&str>) -> String {
    let server = FeedServer::start(FIXTURE_FEED);
    let mut ws = Workspace::new(&server.url());
    if let Some(limit) = max_file_size {
        ws.set("MISP_FEED_MAX_FILE_SIZE", limit);
    }
    server.fail_always(&format!("{EVENT}.json"), fault);
    let (report, out) = ws.once();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(report["pushed"], 8, "{report}\n{stderr}");
    assert_eq!(report["failed"], 1, "{report}\n{stderr}");
    let reason = ws.event_error(EVENT).unwrap_or_default();
    assert!(
        expect
            .iter()
            .any(|e| reason.to_lowercase().contains(&e.to_lowercase())),
        "reason {reason:?} mentions none of {expect:?}"
    );
    reason
}

fn peak_child_rss_mb() -> i64 {
    // SAFETY: getrusage only writes into the struct we hand it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    usage.ru_maxrss / 1024
}

// The memory checks read the peak RSS of this process's children, which belongs to the
// whole process: each runs in a child process of its own, whose only child is its run.

#[test]
fn gzip_bomb_is_refused_at_the_size_limit() {
    child::run(module_path!(), "gzip_bomb_in_a_child", |_| {});
}

#[test]
#[ignore = "run in a child process by gzip_bomb_is_refused_at_the_size_limit"]
fn gzip_bomb_in_a_child() {
    if !child::is_child("gzip_bomb_in_a_child") {
        return;
    }
    // 200 MB of zeros compress to about 200 KB.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![b' '; 1024 * 1024];
    for _ in 0..200 {
        encoder.write_all(&zeros).unwrap();
    }
    let body = encoder.finish().unwrap();
    let mut raw = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    hostile(
        Fault::Raw(raw),
        &["bytes is over the limit of 10000000 bytes"],
        Some("10000000"),
    );
    assert!(
        peak_child_rss_mb() < 400,
        "peak RSS {} MB",
        peak_child_rss_mb()
    );
}

#[test]
fn a_one_gigabyte_event_is_cut_off_at_the_size_limit() {
    child::run(module_path!(), "one_gigabyte_event_in_a_child", |_| {});
}

#[test]
#[ignore = "run in a child process by a_one_gigabyte_event_is_cut_off_at_the_size_limit"]
fn one_gigabyte_event_in_a_child() {
    if !child::is_child("one_gigabyte_event_in_a_child") {
        return;
    }
    hostile(
        Fault::Endless(1 << 30),
        &["bytes is over the limit of 20000000 bytes"],
        Some("20000000"),
    );
    assert!(
        peak_child_rss_mb() < 400,
        "peak RSS {} MB",
        peak_child_rss_mb()
    );
}

#[test]
fn an_announced_one_gigabyte_body_is_refused_before_reading() {
    let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\nConnection: close\r\n\r\n{".to_vec();
    hostile(
        Fault::Raw(raw),
        &["1073741824 bytes is over the limit"],
        None,
    );
}

#[test]
fn deeply_nested_json_is_an_error_not_a_stack_overflow() {
    let depth = 100_000;
    let mut body = String::with_capacity(depth * 2 + 20);
    body.push_str("{\"Event\": ");
    body.push_str(&"[".repeat(depth));
    body.push_str(&"]".repeat(depth));
    body.push('}');
    hostile(
        Fault::Body(body.into_bytes()),
        &["invalid json: recursion limit exceeded"],
        None,
    );
}

#[test]
fn invalid_utf8_is_an_error_naming_the_file() {
    let reason = hostile(
        Fault::Body(b"{\"Event\": {\"info\": \"\xff\xfe\"}}".to_vec()),
        &["invalid json: invalid unicode code point"],
        None,
    );
    assert!(reason.contains(EVENT), "{reason}");
}

#[test]
fn wrong_types_are_errors_naming_the_field() {
    let body = format!(
        "{{\"Event\": {{\"uuid\": \"{EVENT}\", \"info\": \"x\", \"date\": \"2020-01-01\", \"timestamp\": \"1600000000\", \"Attribute\": \"not a list\"}}}}"
    );
    hostile(
        Fault::Body(body.into_bytes()),
        &["Event.Attribute: expected a list, got a string"],
        None,
    );
}

#[test]
fn duplicate_keys_do_not_crash_and_are_recorded() {
    let original = std::fs::read_to_string(format!("{FIXTURE_FEED}/{EVENT}.json")).unwrap();
    let doubled = original.replacen("{\"Event\": {", "{\"Event\": {\"info\": \"first\", ", 1);
    let server = FeedServer::start(FIXTURE_FEED);
    let ws = Workspace::new(&server.url());
    server.fail_always(&format!("{EVENT}.json"), Fault::Body(doubled.into_bytes()));
    let (report, out) = ws.once();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    assert_eq!(
        report["failed"].as_u64().unwrap() + report["pushed"].as_u64().unwrap(),
        9
    );
    assert!(ws.event_status(EVENT).is_some());
}

#[test]
fn a_symlink_leaving_a_local_feed_folder_is_refused_and_recorded() {
    let root = tempfile::tempdir().unwrap();
    let feed = root.path().join("feed");
    std::fs::create_dir(&feed).unwrap();
    for entry in std::fs::read_dir(FIXTURE_FEED).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), feed.join(entry.file_name())).unwrap();
    }
    // The event file now points at a file outside the feed folder.
    let outside = root.path().join("secret.json");
    std::fs::write(&outside, b"{\"Event\": {\"info\": \"outside the feed\"}}").unwrap();
    let link = feed.join(format!("{EVENT}.json"));
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&outside, &link).unwrap();

    let ws = Workspace::new(&feed.display().to_string());
    let (report, out) = ws.once();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    assert_eq!(report["pushed"], 8, "{report}");
    assert_eq!(report["failed"], 1, "{report}");
    let reason = ws.event_error(EVENT).unwrap();
    assert!(reason.contains(EVENT), "{reason}");
    assert!(
        reason.contains("outside the feed folder; refused"),
        "{reason}"
    );
    for file in ws.bundle_files() {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            !text.contains("outside the feed"),
            "a file outside the feed was read"
        );
    }
}
