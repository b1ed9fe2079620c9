//! `reset`, `retry`, `verify`: what an operator does to the ledger by hand.

use chrono::{DateTime, Utc};

use super::{Answer, CommandError, Completion};
use crate::ledger::Ledger;

/// What `misp-feed reset` makes due again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetScope {
    /// Everything (the audit history is kept).
    All,
    /// One event, by uuid.
    Event(String),
    /// Every event whose manifest timestamp is at or after this moment.
    Since(DateTime<Utc>),
}

/// `misp-feed reset`.
pub async fn reset(ledger: &Ledger, scope: ResetScope) -> Result<Answer, CommandError> {
    let output = match scope {
        ResetScope::All => {
            let n = ledger.reset_all("reset --all by operator".into()).await?;
            format!(
                "ledger reset: {n} event record(s) forgotten, checkpoint cleared (history kept)\n"
            )
        }
        ResetScope::Event(uuid) => {
            let uuid = uuid.to_lowercase();
            if !ledger.reset_event(uuid.clone()).await? {
                return Err(CommandError::Usage(format!(
                    "event {uuid} is not in the ledger"
                )));
            }
            format!("event {uuid} will be imported again by the next run\n")
        }
        ResetScope::Since(since) => {
            let n = ledger.reset_since(since).await?;
            format!(
                "{n} event(s) since {} will be imported again; checkpoint moved back\n",
                since.to_rfc3339()
            )
        }
    };
    Ok(Answer::done(output))
}

/// `misp-feed retry`.
pub async fn retry(ledger: &Ledger, event: Option<String>) -> Result<Answer, CommandError> {
    let n = ledger.retry(event.map(|e| e.to_lowercase())).await?;
    Ok(Answer::done(format!(
        "{n} event(s) will be retried by the next run\n"
    )))
}

/// `misp-feed verify`: SQLite's integrity check, and every pushed event has its proof.
/// `files_may_expire`: the bundle folder's retention removes old files.
pub async fn verify(
    ledger: &Ledger,
    files_may_expire: bool,
    as_json: bool,
) -> Result<Answer, CommandError> {
    let report = ledger.verify(files_may_expire).await?;
    let output = if as_json {
        serde_json::to_string_pretty(&report).unwrap_or_else(|_| "{}".into()) + "\n"
    } else {
        let mut out = format!(
            "integrity: {}; {} pushed event(s) checked; {} problem(s)\n",
            report.integrity,
            report.pushed_events,
            report.problems.len()
        );
        for problem in &report.problems {
            out.push_str(&format!("  {problem}\n"));
        }
        out
    };
    Ok(Answer {
        output,
        completion: if report.problems.is_empty() {
            Completion::Done
        } else {
            Completion::ProblemsFound
        },
    })
}
