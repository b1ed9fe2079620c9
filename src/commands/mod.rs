//! The operator commands, one function each, called by `main.rs` once it has parsed the
//! arguments and loaded the settings. Each returns the text to print and how the process
//! should exit; none prints or exits by itself.

mod audit;
mod check;
mod dry_run;
mod operator;
mod sync;

pub use audit::{events, show, status};
pub use check::check;
pub use dry_run::dry_run;
pub use operator::{ResetScope, reset, retry, verify};
pub use sync::{convert, once, run_forever};

use chrono::{DateTime, NaiveDate, Utc};

use crate::connector::ConnectorError;
use crate::ledger::{EventStatus, LedgerError};

/// Why a command could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The command line asks for something that cannot be (a bad date, a missing `--yes`).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Input(#[from] crate::convert::InputError),
    #[error("metrics endpoint on port {port}: {source}")]
    Metrics {
        port: u16,
        #[source]
        source: std::io::Error,
    },
}

/// How a command ended, for the process's exit code (documented in the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Everything went as asked: exit 0.
    Done,
    /// The run went through but some events failed (they are recorded and will be
    /// retried): exit 2, as since the first release.
    EventsFailed,
    /// The command looked and found something wrong (`verify`: a problem in the ledger;
    /// `check`: a dependency that does not answer): exit 1.
    ProblemsFound,
}

/// A command's answer: what to print on standard output, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub output: String,
    pub completion: Completion,
}

impl Answer {
    fn done(output: String) -> Answer {
        Answer {
            output,
            completion: Completion::Done,
        }
    }
}

/// Parses `--since` values: a date (`2024-05-01`) or an RFC 3339 datetime.
pub fn parse_since(text: &str) -> Result<DateTime<Utc>, CommandError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc());
    }
    Err(CommandError::Usage(format!(
        "--since {text:?}: expected a date (2024-05-01) or a datetime (2024-05-01T12:00:00Z)"
    )))
}

/// Parses `--status` values.
pub fn parse_status(text: &str) -> Result<EventStatus, CommandError> {
    EventStatus::parse(text).ok_or_else(|| {
        let known: Vec<&str> = EventStatus::ALL.iter().map(|s| s.as_str()).collect();
        CommandError::Usage(format!(
            "--status {text:?}: expected one of {}",
            known.join(", ")
        ))
    })
}
