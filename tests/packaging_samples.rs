//! The shipped configuration files: the compose file, `config.yml.sample` and the feed samples
//! parse, hold every option of the Python connector's documented table, and load.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::Utc;
use misp_feed::config::{OPTIONS, OptionSpec, Settings};
use serde_yaml_ng::Value;

/// The Python connector's README table (config.yml key, environment variable); `None`: the
/// README gives no config.yml key.
const SEED_TABLE: &[(Option<&str>, &str)] = &[
    (Some("opencti.url"), "OPENCTI_URL"),
    (Some("opencti.token"), "OPENCTI_TOKEN"),
    (Some("connector.id"), "CONNECTOR_ID"),
    (Some("connector.type"), "CONNECTOR_TYPE"),
    (Some("connector.name"), "CONNECTOR_NAME"),
    (Some("connector.scope"), "CONNECTOR_SCOPE"),
    (Some("connector.log_level"), "CONNECTOR_LOG_LEVEL"),
    (Some("misp_feed.source_type"), "MISP_FEED_SOURCE_TYPE"),
    (Some("misp_feed.url"), "MISP_FEED_URL"),
    (Some("misp_feed.ssl_verify"), "MISP_FEED_SSL_VERIFY"),
    (Some("misp_feed.bucket_name"), "MISP_BUCKET_NAME"),
    (Some("misp_feed.bucket_prefix"), "MISP_BUCKET_PREFIX"),
    (None, "AWS_ENDPOINT_URL"),
    (None, "AWS_ACCESS_KEY_ID"),
    (None, "AWS_SECRET_ACCESS_KEY"),
    (
        Some("misp_feed.import_from_date"),
        "MISP_FEED_IMPORT_FROM_DATE",
    ),
    (Some("misp_feed.create_reports"), "MISP_FEED_CREATE_REPORTS"),
    (Some("misp_feed.report_type"), "MISP_FEED_REPORT_TYPE"),
    (
        Some("misp_feed.create_indicators"),
        "MISP_FEED_CREATE_INDICATORS",
    ),
    (
        Some("misp_feed.create_observables"),
        "MISP_FEED_CREATE_OBSERVABLES",
    ),
    (
        Some("misp_feed.create_tags_as_labels"),
        "MISP_CREATE_TAGS_AS_LABELS",
    ),
    (
        Some("misp_feed.guess_threats_from_tags"),
        "MISP_FEED_GUESS_THREAT_FROM_TAGS",
    ),
    (
        Some("misp_feed.author_from_tags"),
        "MISP_FEED_AUTHOR_FROM_TAGS",
    ),
    (
        Some("misp_feed.markings_from_tags"),
        "MISP_FEED_MARKINGS_FROM_TAGS",
    ),
    (
        Some("misp_feed.create_object_observables"),
        "MISP_FEED_CREATE_OBJECT_OBSERVABLES",
    ),
    (
        Some("misp_feed.import_to_ids_no_score"),
        "MISP_FEED_IMPORT_TO_IDS_NO_SCORE",
    ),
    (
        Some("misp_feed.import_with_attachments"),
        "MISP_FEED_IMPORT_WITH_ATTACHMENTS",
    ),
    (
        Some("misp_feed.import_unsupported_observables_as_text"),
        "MISP_FEED_IMPORT_UNSUPPORTED_OBSERVABLES_AS_TEXT",
    ),
    (
        Some("misp_feed.import_unsupported_observables_as_text_transparent"),
        "MISP_FEED_IMPORT_UNSUPPORTED_OBSERVABLES_AS_TEXT_TRANSPARENT",
    ),
];

fn repo_file(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The option a seed name means: its canonical name or one of its older names.
fn spec_for(env: &str) -> &'static OptionSpec {
    OPTIONS
        .iter()
        .find(|spec| spec.env == env || spec.env_aliases.contains(&env))
        .unwrap_or_else(|| panic!("{env} is not an option of this connector"))
}

fn yaml_keys(text: &str) -> Vec<String> {
    let document: Value = serde_yaml_ng::from_str(text).unwrap();
    let mut keys = Vec::new();
    for (section, entries) in document.as_mapping().unwrap() {
        for key in entries.as_mapping().unwrap().keys() {
            keys.push(format!(
                "{}.{}",
                section.as_str().unwrap(),
                key.as_str().unwrap()
            ));
        }
    }
    keys
}

/// A file holds an option when it sets its config.yml key or one of the key's older spellings.
fn holds_key(keys: &[String], spec: &OptionSpec) -> bool {
    std::iter::once(spec.key)
        .chain(spec.key_aliases.iter().copied())
        .any(|key| keys.contains(&format!("{}.{key}", spec.section)))
}

#[test]
fn every_seed_option_is_an_option_here() {
    for (key, env) in SEED_TABLE {
        let spec = spec_for(env);
        if let Some(key) = key {
            assert_eq!(*key, format!("{}.{}", spec.section, spec.key), "{env}");
        }
    }
}

#[test]
fn config_sample_holds_every_option_with_its_default_and_a_comment() {
    let text = repo_file("config.yml.sample");
    let keys = yaml_keys(&text);
    for spec in OPTIONS.iter().filter(|spec| !spec.deprecated) {
        assert!(
            holds_key(&keys, spec),
            "config.yml.sample lacks {}.{}",
            spec.section,
            spec.key
        );
        // One comment per option, naming its environment variable.
        let line = text
            .lines()
            .find(|line| {
                line.trim_start().starts_with(&format!("{}:", spec.key))
                    && line.contains(&format!("[{}]", spec.env))
            })
            .unwrap_or_else(|| panic!("no commented line for {}", spec.env));
        assert!(
            line.split('#')
                .nth(1)
                .is_some_and(|c| c.len() > spec.env.len() + 10),
            "{line}"
        );
    }
    assert_eq!(
        keys.len(),
        OPTIONS.iter().filter(|spec| !spec.deprecated).count(),
        "no extra keys"
    );

    // It loads, and every value it shows is the default, the values to replace aside.
    let sample = Settings::load_from(&HashMap::new(), Some(&text), Utc::now()).unwrap();
    let defaults: BTreeMap<&str, String> =
        Settings::default().redacted_entries().into_iter().collect();
    let placeholders: Vec<&str> = OPTIONS
        .iter()
        .filter(|spec| spec.example.is_some())
        .map(|spec| spec.env)
        .collect();
    assert_eq!(
        placeholders,
        [
            "OPENCTI_URL",
            "OPENCTI_TOKEN",
            "CONNECTOR_ID",
            "MISP_FEED_URL"
        ]
    );
    for (name, value) in sample.redacted_entries() {
        if !placeholders.contains(&name) {
            assert_eq!(
                value, defaults[name],
                "config.yml.sample shows a non-default {name}"
            );
        }
    }
}

#[test]
fn feed_samples_hold_every_seed_option_and_load() {
    for (file, url) in [
        (
            "examples/circl.yml",
            "https://www.circl.lu/doc/misp/feed-osint",
        ),
        (
            "examples/botvrij.yml",
            "https://www.botvrij.eu/data/feed-osint",
        ),
        (
            "examples/threatfox.yml",
            "https://threatfox.abuse.ch/downloads/misp",
        ),
    ] {
        let text = repo_file(file);
        let keys = yaml_keys(&text);
        for (key, env) in SEED_TABLE {
            if key.is_some() {
                assert!(
                    holds_key(&keys, spec_for(env)),
                    "{file} lacks the option of {env}"
                );
            }
        }
        let settings = Settings::load_from(&HashMap::new(), Some(&text), Utc::now())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(settings.misp_feed.url.as_deref(), Some(url), "{file}");
        assert_eq!(settings.connector.duration_period.as_secs(), 3600, "{file}");
        assert!(settings.misp_feed.convert.create_indicators, "{file}");
        assert_eq!(
            settings.misp_feed.convert.import_to_ids_no_score,
            Some(40),
            "{file}"
        );
        let ledger = settings.misp_feed.ledger_path.display().to_string();
        assert!(
            ledger.contains(
                file.trim_start_matches("examples/")
                    .trim_end_matches(".yml")
            ),
            "{file}: {ledger}"
        );
    }
}

#[test]
fn the_offline_example_loads() {
    let settings = Settings::load_from(
        &HashMap::new(),
        Some(&repo_file("examples/local.yml")),
        Utc::now(),
    )
    .unwrap();
    assert!(settings.opencti.url.is_none() && settings.connector.send_to_directory);
}

/// `KEY=value # comment` entries of the service's environment list.
fn compose_environment(text: &str) -> (Value, HashMap<String, String>) {
    let document: Value = serde_yaml_ng::from_str(text).unwrap();
    let service = &document["services"]["connector-misp-feed"];
    let mut env = HashMap::new();
    for entry in service["environment"].as_sequence().unwrap() {
        let entry = entry.as_str().unwrap();
        let (name, value) = entry.split_once('=').unwrap_or_else(|| panic!("{entry}"));
        assert!(
            env.insert(name.to_string(), value.to_string()).is_none(),
            "{name} twice"
        );
    }
    (document, env)
}

#[test]
fn compose_file_holds_every_seed_variable_a_ledger_volume_and_loads() {
    let (document, env) = compose_environment(&repo_file("docker-compose.yml"));
    for (_, seed_name) in SEED_TABLE {
        let spec = spec_for(seed_name);
        let present = std::iter::once(spec.env)
            .chain(spec.env_aliases.iter().copied())
            .any(|name| env.contains_key(name));
        assert!(
            present,
            "docker-compose.yml lacks {seed_name} (or {})",
            spec.env
        );
    }
    for name in env.keys() {
        assert!(
            OPTIONS
                .iter()
                .any(|spec| spec.env == name || spec.env_aliases.contains(&name.as_str())),
            "docker-compose.yml sets {name}, which is no option"
        );
    }

    // The ledger lives on a named volume declared at the top level.
    let ledger = Path::new(&env["MISP_FEED_LEDGER_PATH"]);
    let mounts: Vec<&str> = document["services"]["connector-misp-feed"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let (volume, target) = mounts
        .iter()
        .find_map(|m| {
            m.split_once(':')
                .filter(|(_, target)| ledger.starts_with(target))
        })
        .expect("the ledger path is on a mounted volume");
    assert!(
        !volume.starts_with('.') && !volume.starts_with('/'),
        "{volume} must be a named volume"
    );
    assert!(
        document["volumes"]
            .as_mapping()
            .unwrap()
            .contains_key(volume),
        "{volume} not declared"
    );
    assert_eq!(target, "/data");

    let settings = Settings::load_from(&env, None, Utc::now()).unwrap();
    assert_eq!(settings.misp_feed.ledger_path, ledger);
    // Its defaults are the connector's defaults.
    assert_eq!(
        settings.connector.log_level,
        Settings::default().connector.log_level
    );
    assert!(!settings.misp_feed.s3_delete_after_import);
}

#[test]
fn dockerfile_builds_a_non_root_image_with_the_ledger_on_a_volume() {
    let text = repo_file("Dockerfile");
    let from_lines = text.lines().filter(|l| l.starts_with("FROM ")).count();
    assert!(from_lines >= 2, "multi-stage build expected");
    assert!(text.contains("cargo build --release --locked"));
    assert!(
        text.contains("ENV CONNECTOR_TYPE=EXTERNAL_IMPORT")
            && text.contains("MISP_FEED_LEDGER_PATH=/data/ledger.sqlite")
    );
    assert!(text.contains("VOLUME [\"/data\"]"));
    let user = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert!(!user.starts_with('0') && user != "root", "{user}");
    assert!(
        text.contains("ENTRYPOINT [\"/usr/local/bin/misp-feed\"]")
            && text.contains("CMD [\"run\"]")
    );
    // Everything the build copies exists, and .dockerignore does not hide it.
    let ignored = repo_file(".dockerignore");
    for line in text
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        for source in line
            .split_whitespace()
            .skip(1)
            .filter(|w| !w.starts_with("--"))
            .collect::<Vec<_>>()
            .split_last()
            .unwrap()
            .1
        {
            assert!(
                Path::new(env!("CARGO_MANIFEST_DIR")).join(source).exists(),
                "{source} missing"
            );
            assert!(
                !ignored
                    .lines()
                    .any(|l| l.trim_end_matches('/') == source.trim_end_matches('/')),
                "{source} ignored"
            );
        }
    }
}
