//! The configuration table: every option, in the environment and in `config.yml`, its default,
//! environment-over-file precedence and a rejected value; then aliases, deprecations and the
//! cross-option rules.

mod commands;
mod rows_feed;
mod rows_platform;
mod rows_services;
mod rules;
mod table;
mod values;

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, TimeZone, Utc};
use misp_feed::config::{ConfigError, OPTIONS, Scope, Settings, option_spec};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 15, 12, 0, 0).unwrap()
}

/// The smallest environment that loads: a platform, its token, an id, and a feed URL.
fn base_env() -> HashMap<String, String> {
    [
        ("OPENCTI_URL", "http://opencti:8080"),
        ("OPENCTI_TOKEN", "base-token-value"),
        ("CONNECTOR_ID", "8f1a7bd0-3a5b-4e9c-9d8e-2f4b6a1c0e11"),
        ("MISP_FEED_URL", "https://feed.example/base"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

pub(crate) type Read = fn(&Settings) -> String;

pub(crate) struct Row {
    pub(crate) env: &'static str,
    /// `section.key` in config.yml.
    pub(crate) yaml: &'static str,
    pub(crate) read: Read,
    /// What `read` gives when the option is unset (`None`: unset is not loadable alone).
    pub(crate) default: Option<&'static str>,
    pub(crate) env_value: &'static str,
    pub(crate) env_expected: &'static str,
    /// A YAML scalar, as written in the file.
    pub(crate) yaml_value: &'static str,
    pub(crate) yaml_expected: &'static str,
    /// A value that must stop start-up (`None`: any text is valid).
    pub(crate) bad: Option<&'static str>,
}

pub(crate) fn opt<T: ToString>(value: &Option<T>) -> String {
    value
        .as_ref()
        .map_or_else(|| "None".to_string(), |v| v.to_string())
}

fn rows() -> Vec<Row> {
    let mut rows = rows_platform::rows();
    rows.extend(rows_feed::rows());
    rows.extend(rows_services::rows());
    rows.extend(crate::config_env_import::rows());
    rows.extend(crate::pipeline_budget::option_rows());
    rows
}

const CLIENT_CERT_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/tls/client.pem");
const CLIENT_KEY_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/tls/client.key");

/// Options that only load together with another (an AWS key, a client certificate and its
/// key need their pair).
fn companions(env: &str) -> Vec<(&'static str, &'static str)> {
    match env {
        "AWS_ACCESS_KEY_ID" => vec![("AWS_SECRET_ACCESS_KEY", "companion-secret")],
        "AWS_SECRET_ACCESS_KEY" => vec![("AWS_ACCESS_KEY_ID", "AKIACOMPANION")],
        "MISP_FEED_CLIENT_CERT" => vec![("MISP_FEED_CLIENT_KEY", CLIENT_KEY_FILE)],
        "MISP_FEED_CLIENT_KEY" => vec![("MISP_FEED_CLIENT_CERT", CLIENT_CERT_FILE)],
        _ => vec![],
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    pem: String,
    /// A folder holding a `lists` folder.
    folder: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("ca.pem");
    std::fs::write(
        &pem,
        "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let pem = pem.display().to_string();
    let folder = dir.path().join("folder");
    std::fs::create_dir_all(folder.join("lists")).unwrap();
    let folder = folder.display().to_string();
    Fixture {
        _dir: dir,
        pem,
        folder,
    }
}

fn env_for(row: &Row) -> HashMap<String, String> {
    let mut env = base_env();
    env.remove(row.env);
    for (name, value) in companions(row.env) {
        env.insert(name.to_string(), value.to_string());
    }
    env
}

fn yaml_for(row: &Row, value: &str) -> String {
    let (section, key) = row.yaml.split_once('.').unwrap();
    format!("{section}:\n  {key}: {value}\n")
}

fn fill(text: &str, fx: &Fixture) -> String {
    text.replace("{PEM}", &fx.pem).replace("{DIR}", &fx.folder)
}

fn missing_variable(env: &HashMap<String, String>, yaml: Option<&str>) -> String {
    match Settings::load_from(env, yaml, now()) {
        Err(ConfigError::Missing { variable, .. }) => variable,
        other => panic!("expected a missing-variable error, got {other:?}"),
    }
}
