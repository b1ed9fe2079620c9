//! `status`, `events`, `show`: what the ledger knows, for an operator or a script (`--json`).

use chrono::DateTime;
use serde_json::json;

use super::{Answer, CommandError};
use crate::ledger::{EventFilter, Ledger};

fn json_text(value: &impl serde::Serialize) -> String {
    // Serialising plain records into a String cannot fail; an empty object is the fallback.
    serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".into())
}

fn epoch_rfc3339(ts: i64) -> Option<String> {
    DateTime::from_timestamp(ts, 0).map(|t| t.to_rfc3339())
}

/// `misp-feed status`: counts per status, checkpoint, last runs.
pub async fn status(ledger: &Ledger, as_json: bool) -> Result<Answer, CommandError> {
    let counts = ledger.status_counts().await?;
    let checkpoint = ledger.checkpoint().await?;
    let runs = ledger.last_runs(5).await?;
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
        return Ok(Answer::done(json_text(&value) + "\n"));
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
    Ok(Answer::done(out))
}

/// `misp-feed events`: the audit list.
pub async fn events(
    ledger: &Ledger,
    filter: EventFilter,
    as_json: bool,
) -> Result<Answer, CommandError> {
    let events = ledger.list_events(filter).await?;
    if as_json {
        return Ok(Answer::done(json_text(&events) + "\n"));
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
    Ok(Answer::done(out))
}

/// `misp-feed show UUID`: one event and its history.
pub async fn show(ledger: &Ledger, uuid: &str, as_json: bool) -> Result<Answer, CommandError> {
    let uuid = uuid.to_lowercase();
    let record = ledger
        .event(uuid.clone())
        .await?
        .ok_or_else(|| CommandError::Usage(format!("event {uuid} is not in the ledger")))?;
    let history = ledger.history(uuid).await?;
    if as_json {
        let value = json!({"event": record, "history": history});
        return Ok(Answer::done(json_text(&value) + "\n"));
    }
    let destination = match &record.destination {
        Some(destination) => format!("{} {destination}", destination.kind()),
        None => "-".into(),
    };
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
        destination,
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
    Ok(Answer::done(out))
}
