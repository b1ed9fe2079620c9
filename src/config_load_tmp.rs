//! TEMPORARY minimal loader until the full configuration module lands.

use std::path::{Path, PathBuf};

use crate::config::Settings;

impl Settings {
    pub fn load(config_file: Option<&Path>) -> Result<Settings, String> {
        let mut s = Settings::default();
        let default_path = PathBuf::from("config.yml");
        let path = config_file
            .map(Path::to_path_buf)
            .or_else(|| default_path.exists().then_some(default_path));
        let yaml: serde_json::Value = match path {
            Some(p) => {
                let text =
                    std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?
            }
            None => serde_json::Value::Null,
        };
        let get = |env: &str, section: &str, key: &str| -> Option<String> {
            std::env::var(env).ok().or_else(|| {
                yaml.get(section)
                    .and_then(|v| v.get(key))
                    .and_then(|v| match v {
                        serde_json::Value::String(s) => Some(s.clone()),
                        serde_json::Value::Null => None,
                        other => Some(other.to_string()),
                    })
            })
        };
        let flag =
            |v: Option<String>, d: bool| v.map(|v| v.eq_ignore_ascii_case("true")).unwrap_or(d);
        s.misp_feed.url = get("MISP_FEED_URL", "misp_feed", "url");
        if let Some(p) = get("MISP_FEED_LEDGER_PATH", "misp_feed", "ledger_path") {
            s.misp_feed.ledger_path = p.into();
        }
        s.connector.send_to_queue = flag(
            get("CONNECTOR_SEND_TO_QUEUE", "connector", "send_to_queue"),
            true,
        );
        s.connector.send_to_directory = flag(
            get(
                "CONNECTOR_SEND_TO_DIRECTORY",
                "connector",
                "send_to_directory",
            ),
            false,
        );
        s.connector.send_to_directory_path = get(
            "CONNECTOR_SEND_TO_DIRECTORY_PATH",
            "connector",
            "send_to_directory_path",
        )
        .map(Into::into);
        s.opencti.url = get("OPENCTI_URL", "opencti", "url");
        if let Some(d) = get(
            "MISP_FEED_IMPORT_FROM_DATE",
            "misp_feed",
            "import_from_date",
        ) {
            let date = chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d")
                .map_err(|e| format!("MISP_FEED_IMPORT_FROM_DATE: {e}"))?;
            s.misp_feed.import_from_date = date.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        }
        if let Some(n) = get("MISP_FEED_MAX_ATTEMPTS", "misp_feed", "max_attempts") {
            s.misp_feed.max_attempts = n
                .parse()
                .map_err(|_| "MISP_FEED_MAX_ATTEMPTS".to_string())?;
        }
        if let Some(n) = get(
            "MISP_FEED_FETCH_CONCURRENCY",
            "misp_feed",
            "fetch_concurrency",
        ) {
            s.misp_feed.fetch_concurrency = n
                .parse()
                .map_err(|_| "MISP_FEED_FETCH_CONCURRENCY".to_string())?;
        }
        if let Some(n) = get("MISP_FEED_RETRY_BACKOFF", "misp_feed", "retry_backoff") {
            s.misp_feed.retry_backoff = std::time::Duration::from_secs(
                n.parse()
                    .map_err(|_| "MISP_FEED_RETRY_BACKOFF".to_string())?,
            );
        }
        if let Some(n) = get("MISP_FEED_MAX_FILE_SIZE", "misp_feed", "max_file_size") {
            s.misp_feed.max_file_size = n
                .parse()
                .map_err(|_| "MISP_FEED_MAX_FILE_SIZE".to_string())?;
        }
        if let Some(n) = get("MISP_FEED_READ_TIMEOUT", "misp_feed", "read_timeout") {
            s.misp_feed.read_timeout = std::time::Duration::from_secs(
                n.parse()
                    .map_err(|_| "MISP_FEED_READ_TIMEOUT".to_string())?,
            );
        }
        if let Some(n) = get("MISP_FEED_HTTP_RETRIES", "misp_feed", "http_retries") {
            s.misp_feed.http_retries = n
                .parse()
                .map_err(|_| "MISP_FEED_HTTP_RETRIES".to_string())?;
        }
        if let Some(l) = get("CONNECTOR_LOG_LEVEL", "connector", "log_level") {
            s.connector.log_level = l;
        }
        s.opencti.json_logging = flag(get("OPENCTI_JSON_LOGGING", "opencti", "json_logging"), true);
        s.misp_feed.convert.reference_compat = flag(
            get(
                "MISP_FEED_REFERENCE_COMPAT",
                "misp_feed",
                "reference_compat",
            ),
            false,
        );
        Ok(s)
    }
}
