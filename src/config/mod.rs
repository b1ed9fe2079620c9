//! Configuration: every option of the Python MISP Feed connector and of pycti's helper (same
//! environment names, same `config.yml` keys, same defaults) plus ours, resolved as
//! environment over file over default.
//!
//! Each option is defined once, in the table of [`options`]; reading it (`load.rs`), its
//! default and redaction (`settings.rs`), `Debug`, `check` and the generated documents
//! ([`docs`]) follow from that definition. A command reads only the options of its
//! [`Scope`], so `convert` needs no feed and the ledger commands need only the ledger's path.

pub mod docs;
mod headers;
mod load;
pub(crate) mod options;
mod parsers;
mod raw;
mod settings;
mod validate;
mod values;

use std::path::PathBuf;

pub use options::{Need, OPTIONS, OptionSpec, Origin, Scope, option_spec};
pub use settings::{
    AwsSettings, ConnectorSettings, MispFeedSettings, MqSettings, OpenCtiSettings, QueueProtocol,
    Settings, SourceType,
};
pub use values::{
    format_iso_duration, mask_url_credentials, parse_bool, parse_duration_seconds,
    parse_import_from_date, parse_iso_datetime, parse_size,
};

/// Why the configuration cannot be used. Its text is one line, names the variable and shows
/// the offending value unless the option is a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid {variable} = {shown}: expected {expected}", shown = shown_value(.value))]
    Invalid {
        /// Variable and, for file values, where in the file.
        variable: String,
        /// `None` for a secret: never shown.
        value: Option<String>,
        expected: String,
    },
    #[error("missing {variable}: {reason}")]
    Missing { variable: String, reason: String },
    #[error("cannot read configuration file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

fn shown_value(value: &Option<String>) -> String {
    const LIMIT: usize = 120;
    match value {
        None => "<redacted>".to_string(),
        Some(text) if text.chars().count() > LIMIT => {
            let head: String = text.chars().take(LIMIT).collect();
            format!("{head:?}...")
        }
        Some(text) => format!("{text:?}"),
    }
}

/// Settings with the warnings raised while reading them (deprecated names, ignored keys),
/// to be logged once logging is set up (logging itself depends on the settings).
#[derive(Debug, Clone)]
pub struct LoadedSettings {
    pub settings: Settings,
    pub warnings: Vec<String>,
}
