//! The memory budget (`MISP_FEED_MEMORY_BUDGET_MB`): its option; a feed whose every event is
//! estimated above a tiny budget, run through the binary: every event is still pushed, and
//! the log says which events ran alone and which waited; and an S3 bucket (admitted from the
//! listing's sizes) whose objects are pushed one at a time above the budget, together within it.

use std::collections::{BTreeSet, HashMap};

use chrono::{TimeZone, Utc};
use misp_feed::config::Settings;
use misp_feed::testsuite::generated_event;
use serde_json::Value;

use crate::config_env::Row;
use crate::support::generated::write_feed;
use crate::support::workspace::{Workspace, stderr_lines};

/// The option's row of the option table test (`config_env`).
pub(crate) fn option_rows() -> Vec<Row> {
    vec![Row {
        env: "MISP_FEED_MEMORY_BUDGET_MB",
        yaml: "misp_feed.memory_budget_mb",
        read: |s| s.misp_feed.memory_budget_mb.to_string(),
        default: Some("1024"),
        env_value: "4096",
        env_expected: "4096",
        yaml_value: "512",
        yaml_expected: "512",
        bad: Some("0"),
    }]
}

#[test]
fn a_budget_of_zero_or_not_a_whole_number_of_megabytes_stops_start_up_in_one_line() {
    let now = Utc.with_ymd_and_hms(2026, 3, 15, 12, 0, 0).unwrap();
    for bad in ["0", "-1", "1.5", "lots", "1G", "99999999999"] {
        let env: HashMap<String, String> = [
            ("OPENCTI_URL", "http://opencti:8080"),
            ("OPENCTI_TOKEN", "base-token-value"),
            ("CONNECTOR_ID", "8f1a7bd0-3a5b-4e9c-9d8e-2f4b6a1c0e11"),
            ("MISP_FEED_URL", "https://feed.example/base"),
            ("MISP_FEED_MEMORY_BUDGET_MB", bad),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let error = Settings::load_from(&env, None, now)
            .err()
            .unwrap_or_else(|| panic!("MISP_FEED_MEMORY_BUDGET_MB={bad} was accepted"));
        let line = error.to_string();
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("MISP_FEED_MEMORY_BUDGET_MB"), "{line}");
        assert!(line.contains("whole number of megabytes"), "{line}");
    }
}

/// A feed folder of `count` generated events of `attributes` attributes each.
fn generated_feed(dir: &std::path::Path, count: usize, attributes: usize) -> Vec<String> {
    let events: Vec<Value> = (0..count)
        .map(|index| {
            serde_json::from_slice(&generated_event(attributes, 0xb0d6_0000 + index as u64))
                .unwrap()
        })
        .collect();
    write_feed(dir, &events)
}

#[test]
fn with_a_tiny_budget_every_event_runs_alone_and_is_still_pushed() {
    let feed = tempfile::tempdir().unwrap();
    // Each file is some 200 KB: estimated well above a 1 MB budget, and long enough to
    // convert that the events fetched with it are still waiting when it is admitted.
    let uuids = generated_feed(feed.path(), 4, 500);
    let mut ws = Workspace::new(&feed.path().display().to_string());
    ws.set("MISP_FEED_FETCH_CONCURRENCY", "4");
    ws.set("MISP_FEED_MEMORY_BUDGET_MB", "1");

    let out = ws.run(&["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("MISP_FEED_MEMORY_BUDGET_MB = 1"),
        "check does not show the budget:\n{stdout}"
    );

    let (report, out) = ws.once();
    assert_eq!(report["pushed"], 4, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    for uuid in &uuids {
        assert_eq!(ws.event_status(uuid).as_deref(), Some("pushed"), "{uuid}");
    }

    let lines = stderr_lines(&out);
    let budget_lines: Vec<&Value> = lines
        .iter()
        .filter(|line| line["attributes"]["budget_mb"] == 1)
        .collect();
    let alone: BTreeSet<&str> = budget_lines
        .iter()
        .filter(|line| {
            let message = line["message"].as_str().unwrap_or_default();
            message.contains("it runs alone")
        })
        .filter_map(|line| line["attributes"]["event"].as_str())
        .collect();
    assert_eq!(
        alone,
        uuids.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        "every event is estimated above the budget and runs alone:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in &budget_lines {
        let needed = line["attributes"]["needed_mb"].as_u64().unwrap();
        assert!(needed > 1, "{line}");
    }
    // Four events fetched at once, one admitted at a time: the others waited for it.
    let waited = budget_lines
        .iter()
        .filter(|line| line["attributes"]["waited"] == true)
        .count();
    assert!(
        waited >= 1,
        "no event waited for the budget:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A directory sink that counts the pushes in progress: until two were seen at once, each push
/// waits (up to `linger`) for another to start beside it, so that events the budget lets run
/// together are seen together.
struct OverlapSink {
    inner: misp_feed::sink::directory::DirectorySink,
    in_progress: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
    linger: std::time::Duration,
}

#[async_trait::async_trait]
impl misp_feed::sink::Sink for OverlapSink {
    fn name(&self) -> &'static str {
        "overlap"
    }
    async fn push(
        &self,
        delivery: misp_feed::sink::Delivery<'_>,
    ) -> Result<misp_feed::sink::Receipt, misp_feed::sink::SinkError> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.in_progress.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        let until = std::time::Instant::now() + self.linger;
        while self.in_progress.load(SeqCst) < 2
            && self.most.load(SeqCst) < 2
            && std::time::Instant::now() < until
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let receipt = self.inner.push(delivery).await;
        self.in_progress.fetch_sub(1, SeqCst);
        receipt
    }
    async fn finish_run(
        &self,
        summary: &misp_feed::sink::RunSummary,
    ) -> Result<(), misp_feed::sink::SinkError> {
        self.inner.finish_run(summary).await
    }
}

/// Runs an S3 bucket of four objects (one generated event each) with `budget_mb`; returns the
/// most events pushed at once and the ledger status of each event.
async fn s3_run(budget_mb: u32, linger: std::time::Duration) -> (usize, Vec<Option<String>>) {
    use std::sync::Arc;

    use aws_sdk_s3::primitives::ByteStream;
    use misp_feed::config::SourceType;
    use misp_feed::ledger::Ledger;
    use misp_feed::pipeline::Pipeline;

    let server = crate::support::s3_server::S3Server::start().await;
    let client = server.client();
    client.create_bucket().bucket("misp").send().await.unwrap();
    let mut uuids = Vec::new();
    for index in 0..4 {
        let bytes = generated_event(500, 0x5e_0000 + index);
        let event: Value = serde_json::from_slice(&bytes).unwrap();
        let uuid = event["Event"]["uuid"].as_str().unwrap().to_string();
        let put = client
            .put_object()
            .bucket("misp")
            .key(format!("feeds/{uuid}.json"));
        put.body(ByteStream::from(bytes)).send().await.unwrap();
        uuids.push(uuid);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.misp_feed.source_type = SourceType::S3;
    settings.misp_feed.bucket_name = Some("misp".into());
    settings.misp_feed.bucket_prefix = Some("feeds/".into());
    settings.misp_feed.http_retries = 1;
    settings.misp_feed.fetch_concurrency = 4;
    settings.misp_feed.memory_budget_mb = budget_mb;
    settings.connector.send_to_directory = true;
    settings.connector.send_to_directory_path = Some(dir.path().join("bundles"));
    settings.aws = server.aws_settings();
    let settings = Arc::new(settings);
    let source = misp_feed::source::build_source(&settings).await.unwrap();
    let sink = Arc::new(OverlapSink {
        inner: misp_feed::sink::directory::DirectorySink::new(&settings).unwrap(),
        in_progress: Default::default(),
        most: Default::default(),
        linger,
    });
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite"))
        .await
        .unwrap();
    let pipeline = Pipeline::new(settings, Arc::from(source), sink.clone(), ledger.clone());
    let report = pipeline.run_once().await.unwrap();
    assert_eq!(report.pushed, 4, "{}", report.message());
    let mut statuses = Vec::new();
    for uuid in &uuids {
        let record = ledger.event(uuid.clone()).await.unwrap();
        statuses.push(record.map(|r| r.status.to_string()));
    }
    (
        sink.most.load(std::sync::atomic::Ordering::SeqCst),
        statuses,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_objects_above_the_budget_are_pushed_one_at_a_time_and_together_within_it() {
    let pushed = vec![Some("pushed".to_string()); 4];
    // Each object (some 200 KB) is estimated well above 1 MB: one at a time, all pushed.
    let (most, statuses) = s3_run(1, std::time::Duration::from_millis(300)).await;
    assert_eq!(statuses, pushed);
    assert_eq!(
        most, 1,
        "two objects above the budget were in flight at once"
    );
    // Within the default budget they run together (the same feed, the same concurrency).
    let (most, statuses) = s3_run(1024, std::time::Duration::from_secs(20)).await;
    assert_eq!(statuses, pushed);
    assert!(
        most >= 2,
        "the objects never ran together within the budget"
    );
}
