//! Spellings the Python connector accepts: booleans, dates and durations, sizes, older names,
//! deprecated names and the case of variable names.

use super::*;

#[test]
fn every_boolean_spelling_pydantic_accepts() {
    for (text, expected) in [
        ("true", true),
        ("True", true),
        ("TRUE", true),
        ("yes", true),
        ("Y", true),
        ("on", true),
        ("t", true),
        ("1", true),
        ("false", false),
        ("False", false),
        ("no", false),
        ("N", false),
        ("off", false),
        ("f", false),
        ("0", false),
    ] {
        let mut env = base_env();
        env.insert("MISP_FEED_CREATE_INDICATORS".into(), text.into());
        let settings = Settings::load_from(&env, None, now()).unwrap();
        assert_eq!(
            settings.misp_feed.convert.create_indicators, expected,
            "{text}"
        );
    }
    let mut env = base_env();
    env.insert("MISP_FEED_SSL_VERIFY".into(), "2".into());
    let line = Settings::load_from(&env, None, now())
        .unwrap_err()
        .to_string();
    assert!(line.contains("true/false, yes/no"), "{line}");
}

#[test]
fn import_from_date_accepts_dates_datetimes_and_durations() {
    for (text, expected) in [
        ("2023-10-01", "2023-10-01T00:00:00+00:00"),
        ("20231001", "2023-10-01T00:00:00+00:00"),
        ("2023-10-01T08:30:00Z", "2023-10-01T08:30:00+00:00"),
        ("2023-10-01 08:30", "2023-10-01T08:30:00+00:00"),
        ("2023-10-01T08:30:00+02:00", "2023-10-01T06:30:00+00:00"),
        (
            "2023-10-01T08:30:00.250-01:30",
            "2023-10-01T10:00:00.250+00:00",
        ),
        ("P30D", "2026-02-13T12:00:00+00:00"),
        ("P1W", "2026-03-08T12:00:00+00:00"),
        ("PT36H", "2026-03-14T00:00:00+00:00"),
        ("P1Y", "2025-03-15T12:00:00+00:00"),
    ] {
        let mut env = base_env();
        env.insert("MISP_FEED_IMPORT_FROM_DATE".into(), text.into());
        let settings = Settings::load_from(&env, None, now()).unwrap();
        assert_eq!(
            settings.misp_feed.import_from_date.unwrap().to_rfc3339(),
            expected,
            "{text}"
        );
    }
    for bad in [
        "2023-13-01",
        "P",
        "PT",
        "P3X",
        "yesterday",
        "2023-10-01T25:00",
    ] {
        let mut env = base_env();
        env.insert("MISP_FEED_IMPORT_FROM_DATE".into(), bad.into());
        assert!(
            Settings::load_from(&env, None, now()).is_err(),
            "{bad} must be rejected"
        );
    }
}

#[test]
fn older_names_mean_the_same() {
    for (alias, value, read) in [
        (
            "MISP_BUCKET_NAME",
            "legacy-bucket",
            (|s: &Settings| opt(&s.misp_feed.bucket_name)) as Read,
        ),
        ("MISP_BUCKET_PREFIX", "legacy/", |s| {
            opt(&s.misp_feed.bucket_prefix)
        }),
        ("MISP_CREATE_TAGS_AS_LABELS", "false", |s| {
            s.misp_feed.convert.create_tags_as_labels.to_string()
        }),
        ("MISP_FEED_GUESS_THREAT_FROM_TAGS", "true", |s| {
            s.misp_feed.convert.guess_threats_from_tags.to_string()
        }),
        ("AWS_DEFAULT_REGION", "ap-south-1", |s| opt(&s.aws.region)),
    ] {
        let mut env = base_env();
        env.insert(alias.into(), value.into());
        let settings = Settings::load_from(&env, None, now()).unwrap();
        assert_eq!(read(&settings), value, "{alias}");
    }
    // The canonical name wins over the older one.
    let mut env = base_env();
    env.insert("MISP_BUCKET_NAME".into(), "old".into());
    env.insert("MISP_FEED_BUCKET_NAME".into(), "new".into());
    assert_eq!(
        Settings::load_from(&env, None, now())
            .unwrap()
            .misp_feed
            .bucket_name
            .as_deref(),
        Some("new")
    );
    // The misspelled key and the older region key also work in config.yml.
    let yaml = "misp_feed:\n  guess_threat_from_tags: true\naws:\n  default_region: eu-north-1\n";
    let settings = Settings::load_from(&base_env(), Some(yaml), now()).unwrap();
    assert!(settings.misp_feed.convert.guess_threats_from_tags);
    assert_eq!(settings.aws.region.as_deref(), Some("eu-north-1"));
    // An S3 source can be configured with the seed's names only.
    let mut env = base_env();
    env.remove("MISP_FEED_URL");
    env.insert("MISP_FEED_SOURCE_TYPE".into(), "s3".into());
    env.insert("MISP_BUCKET_NAME".into(), "misp".into());
    assert_eq!(
        Settings::load_from(&env, None, now())
            .unwrap()
            .misp_feed
            .source_type,
        misp_feed::config::SourceType::S3
    );
}

#[test]
fn deprecated_interval_replaces_the_period_with_a_warning() {
    let mut env = base_env();
    env.insert("CONNECTOR_DURATION_PERIOD".into(), "PT5M".into());
    env.insert("MISP_FEED_INTERVAL".into(), "60".into());
    let loaded = Settings::resolve(&env, None, now()).unwrap();
    assert_eq!(loaded.settings.connector.duration_period.as_secs(), 3600);
    assert!(!loaded.settings.connector.run_and_terminate);
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("MISP_FEED_INTERVAL is deprecated")),
        "{:?}",
        loaded.warnings
    );
    // Zero means "run once", as pycti reads a zero period.
    env.insert("MISP_FEED_INTERVAL".into(), "0".into());
    let settings = Settings::load_from(&env, None, now()).unwrap();
    assert!(settings.connector.duration_period.is_zero() && settings.connector.run_and_terminate);
    // Without it, no warning at all.
    assert!(
        Settings::resolve(&base_env(), None, now())
            .unwrap()
            .warnings
            .is_empty()
    );
}

#[test]
fn deprecated_queue_protocol_name_warns() {
    let mut env = base_env();
    env.insert("QUEUE_PROTOCOL".into(), "api".into());
    let loaded = Settings::resolve(&env, None, now()).unwrap();
    assert_eq!(
        loaded.settings.connector.queue_protocol,
        misp_feed::config::QueueProtocol::Api
    );
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("CONNECTOR_QUEUE_PROTOCOL"))
    );
}

#[test]
fn unknown_names_of_our_namespace_are_reported() {
    let mut env = base_env();
    env.insert("MISP_FEED_CREATE_INDICATOR".into(), "true".into());
    let yaml = "misp_feed:\n  improt_from_date: P1D\nconnector:\n  listen_protocol: API\n";
    let loaded = Settings::resolve(&env, Some(yaml), now()).unwrap();
    assert_eq!(
        loaded.warnings,
        vec![
            "unknown environment variable MISP_FEED_CREATE_INDICATOR is ignored".to_string(),
            "unknown key misp_feed.improt_from_date in config.yml is ignored".to_string(),
        ]
    );
}

#[test]
fn durations_sizes_and_dates_parse_as_pydantic_and_python_read_them() {
    use misp_feed::config::{
        format_iso_duration, parse_duration_seconds, parse_iso_datetime, parse_size,
    };
    for (text, seconds) in [
        ("PT5M", 300.0),
        ("P1DT2H", 93_600.0),
        ("PT1.5S", 1.5),
        ("P1M", 2_592_000.0),
        ("P2W", 1_209_600.0),
        ("p1d", 86_400.0),
        ("-P1D", -86_400.0),
        ("01:00:00", 3600.0),
        ("00:30", 1800.0),
    ] {
        assert_eq!(parse_duration_seconds(text), Some(seconds), "{text}");
    }
    for bad in [
        "", "P", "PT", "P1H", "PT1D", "1 hour", "5", "P1.2.3D", "00:61",
    ] {
        assert_eq!(parse_duration_seconds(bad), None, "{bad}");
    }
    assert_eq!(parse_size("512M"), Some(512 << 20));
    assert_eq!(parse_size("2GiB"), Some(2 << 30));
    assert_eq!(parse_size("1024"), Some(1024));
    assert_eq!(parse_size("1.5M"), None);
    assert_eq!(parse_size("99999999999999999999G"), None);
    assert_eq!(
        format_iso_duration(std::time::Duration::from_secs(5400)),
        "PT1H30M"
    );
    assert_eq!(format_iso_duration(std::time::Duration::ZERO), "PT0S");
    assert_eq!(parse_iso_datetime("2024-02-30"), None);
    assert_eq!(
        parse_iso_datetime("2024-02-29T23:59:59.999999+00:00").map(|d| d.to_rfc3339()),
        Some("2024-02-29T23:59:59.999999+00:00".to_string())
    );
    // A negative duration counts forward, as Python's datetime arithmetic does.
    let mut env = base_env();
    env.insert("MISP_FEED_IMPORT_FROM_DATE".into(), "-P1D".into());
    let settings = Settings::load_from(&env, None, now()).unwrap();
    assert_eq!(
        settings.misp_feed.import_from_date.unwrap().to_rfc3339(),
        "2026-03-16T12:00:00+00:00"
    );
}

#[test]
fn variable_names_are_case_insensitive_like_pydantic_settings() {
    let mut env = base_env();
    env.insert("misp_feed_create_indicators".into(), "true".into());
    env.insert("Connector_Name".into(), "lower".into());
    env.insert("CONNECTOR_NAME".into(), "UPPER".into());
    let settings = Settings::load_from(&env, None, now()).unwrap();
    assert!(settings.misp_feed.convert.create_indicators);
    assert_eq!(
        settings.connector.name, "UPPER",
        "the exact upper-case name wins"
    );
}
