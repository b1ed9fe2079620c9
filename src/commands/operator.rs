//! `reset`, `retry`, `verify`: what an operator does to the ledger by hand.

use chrono::{DateTime, Utc};

use super::{Answer, CommandError, Completion};
use crate::ledger::{EventReset, Ledger, ResetOrigin};

/// What a platform would also be told, said once after each reset.
const PLATFORM_NOTE: &str = "With OpenCTI, this reset wins over the state stored on the platform, \
                             which the next ping replaces with the ledger's.";

fn date_of(timestamp: i64) -> String {
    DateTime::<Utc>::from_timestamp(timestamp, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| timestamp.to_string())
}

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
            let n = ledger
                .reset_all("reset --all by operator".into(), ResetOrigin::Operator)
                .await?;
            let window = match ledger.import_floor().await? {
                Some(floor) => format!(
                    "every event the feed lists from {} on (the import floor; older ones stay \
                     too_old, `reset --since DATE` goes further back)",
                    date_of(floor.at)
                ),
                None => "what the first run would import".to_string(),
            };
            format!(
                "ledger reset: {n} event record(s) forgotten (history kept).\n\
                 The next run imports again {window}.\n{PLATFORM_NOTE}\n"
            )
        }
        ResetScope::Event(uuid) => {
            let uuid = uuid.to_lowercase();
            match ledger.reset_event(uuid.clone()).await? {
                EventReset::Unknown => {
                    return Err(CommandError::Usage(format!(
                        "event {uuid} is not in the ledger"
                    )));
                }
                EventReset::Listed => {
                    format!("event {uuid} will be imported again by the next run\n")
                }
                EventReset::NotListed => format!(
                    "event {uuid} is reset, but the feed no longer lists it: it will be imported \
                     again only if the feed lists it again\n"
                ),
            }
        }
        ResetScope::Since(since) => {
            let n = ledger.reset_since(since).await?;
            let floor = ledger
                .import_floor()
                .await?
                .map(|floor| date_of(floor.at))
                .unwrap_or_else(|| since.to_rfc3339());
            format!(
                "{n} event(s) since {} will be imported again by the next run, and every event \
                 the feed lists from {floor} on that was never imported.\n{PLATFORM_NOTE}\n",
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
        if !report.failing.is_empty() {
            out.push_str(&format!(
                "{} failing (retried by later runs; given up ones wait for `misp-feed retry`):\n",
                report.failing.len()
            ));
            for failing in &report.failing {
                out.push_str(&format!("  {failing}\n"));
            }
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
