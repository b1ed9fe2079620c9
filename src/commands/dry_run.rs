//! `misp-feed once --dry-run`: a run that decides, fetches and converts as a real one would,
//! and pushes and records nothing. How an operator tries a filter before turning it on.
//!
//! The run works on a copy of the ledger in a folder of its own, removed afterwards, and
//! delivers to a sink that keeps only the object counts: its decisions are exactly a real
//! run's, and neither the ledger nor the platform nor the bundle folder sees any of it.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;

use super::{Answer, CommandError, Completion};
use crate::config::Settings;
use crate::ledger::{EventFilter, EventRecord, EventStatus, Ledger};
use crate::pipeline::{Pipeline, RunReport};
use crate::sink::dry_run::DryRunSink;

/// A folder removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, CommandError> {
        let path = std::env::temp_dir().join(format!("misp-feed-dry-run-{}", uuid::Uuid::new_v4()));
        create_private_dir(&path).map_err(|source| CommandError::Io {
            what: format!("dry-run folder {}", path.display()),
            source,
        })?;
        Ok(Scratch(path))
    }
}

/// The copy holds the ledger's contents: only its owner may read it.
fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a run would do with one event.
fn decision(record: &EventRecord, objects: Option<usize>) -> (&'static str, String) {
    let reason = record.last_error.clone().unwrap_or_default();
    match record.status {
        EventStatus::Pushed => (
            "push",
            format!("{} STIX object(s)", objects.unwrap_or_default()),
        ),
        EventStatus::Filtered => ("filtered", reason),
        EventStatus::Refused => ("refused", reason),
        EventStatus::Failed | EventStatus::GaveUp => ("fail", reason),
        EventStatus::TooOld => ("too_old", "older than the import floor".into()),
        EventStatus::Pending | EventStatus::InFlight => (
            "owed",
            "due, but over MISP_FEED_MAX_EVENTS_PER_RUN: a later run".into(),
        ),
    }
}

pub async fn dry_run(settings: Settings, as_json: bool) -> Result<Answer, CommandError> {
    let scratch = Scratch::new()?;
    let copy = scratch.0.join("ledger.sqlite");
    if settings.misp_feed.ledger_path.exists() {
        Ledger::copy_file(&settings.misp_feed.ledger_path, &copy).await?;
    }
    let ledger = Ledger::open(&copy).await?;
    let mut dry = settings;
    dry.misp_feed.ledger_path = copy;
    if dry.misp_feed.convert.guess_threats_from_tags {
        tracing::warn!("dry run: threats named by tags are not searched on the platform");
    }
    tracing::warn!(
        "dry run: nothing is pushed or recorded; the lines below say what a run would do"
    );
    let source = crate::source::build_source(&dry)
        .await
        .map_err(|e| CommandError::Connector(crate::connector::ConnectorError::Source(e)))?;
    let warninglists = crate::warninglists::load_configured(&dry)
        .map_err(|e| CommandError::Connector(e.into()))?;
    let sink = Arc::new(DryRunSink::default());
    let pipeline = Pipeline::new(
        Arc::new(dry),
        Arc::from(source),
        sink.clone(),
        ledger.clone(),
    )
    .with_warninglists(warninglists);
    let report = pipeline
        .run_once()
        .await
        .map_err(|e| CommandError::Connector(e.into()))?;
    let objects = sink.objects_by_event();
    let decided: Vec<(EventRecord, &'static str, String)> = ledger
        .list_events(EventFilter::default())
        .await?
        .into_iter()
        .filter(|record| record.last_run == Some(report.run_id))
        .map(|record| {
            let (what, why) = decision(&record, objects.get(&record.uuid).copied());
            (record, what, why)
        })
        .collect();
    drop(ledger);
    Ok(Answer {
        output: render(&report, &decided, as_json),
        completion: Completion::Done,
    })
}

fn render(
    report: &RunReport,
    decided: &[(EventRecord, &'static str, String)],
    as_json: bool,
) -> String {
    if as_json {
        let events: Vec<serde_json::Value> = decided
            .iter()
            .map(|(record, what, why)| {
                json!({"uuid": record.uuid, "decision": what, "reason": why, "info": record.info})
            })
            .collect();
        let value = json!({
            "dry_run": true,
            "would_push": report.pushed,
            "unchanged": report.unchanged,
            "skipped": report.skipped,
            "would_fail": report.failed,
            "filtered": report.filtered,
            "refused": report.refused,
            "owed": report.deferred,
            "events": events,
        });
        return serde_json::to_string_pretty(&value).unwrap_or_default() + "\n";
    }
    let mut out = format!(
        "dry run (nothing pushed, nothing recorded): {} event(s) would be pushed, {} unchanged, \
         {} skipped, {} would fail, {} filtered, {} refused, {} owed to later runs\n",
        report.pushed,
        report.unchanged,
        report.skipped,
        report.failed,
        report.filtered,
        report.refused,
        report.deferred
    );
    for (record, what, why) in decided {
        out.push_str(&format!("  {}  {:<8} {}\n", record.uuid, what, why));
    }
    out
}
