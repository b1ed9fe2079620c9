//! Wiring: turns `Settings` into the parts of a run (ledger, source, sink, resolver) and
//! implements the operator commands on top of them. `main.rs` only parses arguments.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;

use crate::config::Settings;
use crate::ledger::{EventFilter, EventStatus, Ledger};
use crate::pipeline::RunReport;
use crate::sink::Sink;
use crate::sink::directory::DirectorySink;

pub type AppResult<T> = Result<T, String>;

/// Which sink the settings select: the bundle folder when sending to the queue is off or no
/// OpenCTI URL is configured (the connector then runs offline).
pub fn runs_offline(settings: &Settings) -> bool {
    !settings.connector.send_to_queue || settings.opencti.url.is_none()
}

pub fn open_ledger(settings: &Settings) -> AppResult<Ledger> {
    Ledger::open(&settings.misp_feed.ledger_path).map_err(|e| e.to_string())
}

pub fn open_ledger_read_only(settings: &Settings) -> AppResult<Ledger> {
    Ledger::open_read_only(&settings.misp_feed.ledger_path).map_err(|e| e.to_string())
}

pub fn directory_sink(settings: &Settings) -> AppResult<Arc<dyn Sink>> {
    if !settings.connector.send_to_directory {
        return Err(
            "no OpenCTI to push to and CONNECTOR_SEND_TO_DIRECTORY is off: set OPENCTI_URL and OPENCTI_TOKEN, \
             or CONNECTOR_SEND_TO_DIRECTORY=true with CONNECTOR_SEND_TO_DIRECTORY_PATH"
                .into(),
        );
    }
    Ok(Arc::new(
        DirectorySink::new(settings).map_err(|e| e.to_string())?,
    ))
}

/// Parses `--since` values: a date (`2024-05-01`) or an RFC 3339 datetime.
pub fn parse_since(text: &str) -> AppResult<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc());
    }
    Err(format!(
        "--since {text:?}: expected a date (2024-05-01) or a datetime (2024-05-01T12:00:00Z)"
    ))
}

pub fn report_json(report: &RunReport) -> serde_json::Value {
    json!({
        "run": report.run_id,
        "pushed": report.pushed,
        "unchanged": report.unchanged,
        "skipped": report.skipped,
        "failed": report.failed,
        "checkpoint": report.checkpoint,
        "duration_ms": report.duration_ms,
    })
}

/// `misp-feed status`: counts per status, checkpoint, last runs.
pub fn status(ledger: &Ledger, as_json: bool) -> AppResult<String> {
    let counts = ledger.status_counts().map_err(|e| e.to_string())?;
    let checkpoint = ledger.checkpoint().map_err(|e| e.to_string())?;
    let runs = ledger.last_runs(5).map_err(|e| e.to_string())?;
    if as_json {
        let counts_json: serde_json::Map<String, serde_json::Value> = counts
            .iter()
            .map(|(s, n)| (s.as_str().to_string(), json!(n)))
            .collect();
        let value = json!({
            "ledger": ledger.path().display().to_string(),
            "events": counts_json,
            "checkpoint": {
                "last_run": checkpoint.last_run,
                "last_event_timestamp": checkpoint.last_event_timestamp,
                "last_event": checkpoint.last_event_timestamp.and_then(epoch_rfc3339),
                "last_file": checkpoint.last_file,
            },
            "runs": runs,
        });
        return serde_json::to_string_pretty(&value).map_err(|e| e.to_string());
    }
    let mut out = format!("ledger: {}\nevents:\n", ledger.path().display());
    for (status, count) in &counts {
        out.push_str(&format!("  {:<10} {count}\n", status.as_str()));
    }
    out.push_str(&format!(
        "checkpoint: last_event_timestamp={} ({}), last_run={}\n",
        checkpoint
            .last_event_timestamp
            .map(|t| t.to_string())
            .unwrap_or_else(|| "none".into()),
        checkpoint
            .last_event_timestamp
            .and_then(epoch_rfc3339)
            .unwrap_or_else(|| "-".into()),
        checkpoint.last_run.as_deref().unwrap_or("never"),
    ));
    out.push_str("last runs:\n");
    for run in runs {
        out.push_str(&format!(
            "  #{} {} {} pushed={} skipped={} failed={}{}\n",
            run.id,
            run.started_at,
            run.status,
            run.pushed,
            run.skipped,
            run.failed,
            run.message.map(|m| format!(" — {m}")).unwrap_or_default()
        ));
    }
    Ok(out)
}

fn epoch_rfc3339(ts: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp(ts, 0).map(|t| t.to_rfc3339())
}

/// `misp-feed events`: the audit list.
pub fn events(ledger: &Ledger, filter: &EventFilter, as_json: bool) -> AppResult<String> {
    let events = ledger.list_events(filter).map_err(|e| e.to_string())?;
    if as_json {
        return serde_json::to_string_pretty(&events).map_err(|e| e.to_string());
    }
    let mut out = String::new();
    for e in events {
        out.push_str(&format!(
            "{}  {:<9} attempts={} updated={} {}{}\n",
            e.uuid,
            e.status.as_str(),
            e.attempts,
            e.updated_at,
            e.destination.map(|d| format!("-> {d}")).unwrap_or_default(),
            e.last_error
                .map(|err| format!(" error: {err}"))
                .unwrap_or_default()
        ));
    }
    if out.is_empty() {
        out.push_str("no event matches\n");
    }
    Ok(out)
}

/// `misp-feed show UUID`: one event and its history.
pub fn show(ledger: &Ledger, uuid: &str, as_json: bool) -> AppResult<String> {
    let uuid = uuid.to_lowercase();
    let record = ledger
        .event(&uuid)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("event {uuid} is not in the ledger"))?;
    let history = ledger.history(&uuid).map_err(|e| e.to_string())?;
    if as_json {
        return serde_json::to_string_pretty(&json!({"event": record, "history": history}))
            .map_err(|e| e.to_string());
    }
    let mut out = format!(
        "event {}\n  status: {}\n  info: {}\n  manifest timestamp: {}\n  content sha256: {}\n  bundle sha256: {}\n  attempts: {}\n  destination: {}\n  pushed at: {}\n  last error: {}\nhistory:\n",
        record.uuid,
        record.status.as_str(),
        record.info.as_deref().unwrap_or("-"),
        record
            .manifest_timestamp
            .map(|t| t.to_string())
            .unwrap_or_else(|| "-".into()),
        record.content_sha256.as_deref().unwrap_or("-"),
        record.bundle_sha256.as_deref().unwrap_or("-"),
        record.attempts,
        record.destination.as_deref().unwrap_or("-"),
        record.pushed_at.as_deref().unwrap_or("-"),
        record.last_error.as_deref().unwrap_or("-"),
    );
    for h in history {
        out.push_str(&format!(
            "  {} run={} {}{}{}\n",
            h.at,
            h.run_id
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
            h.action,
            h.detail.map(|d| format!(": {d}")).unwrap_or_default(),
            h.destination
                .map(|d| format!(" -> {d}"))
                .unwrap_or_default()
        ));
    }
    Ok(out)
}

pub fn parse_status(text: &str) -> AppResult<EventStatus> {
    EventStatus::parse(text).ok_or_else(|| {
        format!("--status {text:?}: expected one of pending, in_flight, pushed, failed, gave_up")
    })
}

/// Writes a file only the owner can read (bundles name the events they carry).
pub fn ensure_parent(path: &Path) -> AppResult<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    Ok(())
}
