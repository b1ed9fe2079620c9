//! Rules across options, the config.yml file itself, and secrets kept out of errors and the
//! summary.

use super::*;

#[test]
fn cross_option_rules() {
    let mut env = base_env();
    env.remove("MISP_FEED_URL");
    assert_eq!(missing_variable(&env, None), "MISP_FEED_URL");

    let mut env = base_env();
    env.insert("MISP_FEED_SOURCE_TYPE".into(), "s3".into());
    assert_eq!(missing_variable(&env, None), "MISP_FEED_BUCKET_NAME");

    let mut env = base_env();
    env.remove("OPENCTI_TOKEN");
    assert_eq!(missing_variable(&env, None), "OPENCTI_TOKEN");

    let mut env = base_env();
    env.remove("CONNECTOR_ID");
    assert_eq!(missing_variable(&env, None), "CONNECTOR_ID");

    let mut env = base_env();
    env.remove("OPENCTI_URL");
    assert_eq!(missing_variable(&env, None), "OPENCTI_URL");

    let mut env = base_env();
    env.insert("CONNECTOR_SEND_TO_QUEUE".into(), "false".into());
    assert_eq!(missing_variable(&env, None), "CONNECTOR_SEND_TO_QUEUE");

    let mut env = base_env();
    env.insert("CONNECTOR_SEND_TO_DIRECTORY".into(), "true".into());
    assert_eq!(
        missing_variable(&env, None),
        "CONNECTOR_SEND_TO_DIRECTORY_PATH"
    );

    let mut env = base_env();
    env.insert("AWS_ACCESS_KEY_ID".into(), "AKIA".into());
    assert_eq!(missing_variable(&env, None), "AWS_SECRET_ACCESS_KEY");

    // Offline: no platform at all, bundles to a folder only.
    let env: HashMap<String, String> = [
        ("MISP_FEED_URL", "tests/fixtures/misp/feed"),
        ("CONNECTOR_SEND_TO_QUEUE", "false"),
        ("CONNECTOR_SEND_TO_DIRECTORY", "true"),
        ("CONNECTOR_SEND_TO_DIRECTORY_PATH", "out"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let settings = Settings::load_from(&env, None, now()).unwrap();
    assert!(settings.opencti.url.is_none());
    assert_eq!(
        settings.misp_feed.url.as_deref(),
        Some("tests/fixtures/misp/feed")
    );
}

#[test]
fn feed_access_rules_name_the_option_and_never_a_header_value() {
    // A client certificate needs its key and the reverse.
    let mut env = base_env();
    env.insert("MISP_FEED_CLIENT_CERT".into(), CLIENT_CERT_FILE.into());
    assert_eq!(missing_variable(&env, None), "MISP_FEED_CLIENT_KEY");
    let mut env = base_env();
    env.insert("MISP_FEED_CLIENT_KEY".into(), CLIENT_KEY_FILE.into());
    assert_eq!(missing_variable(&env, None), "MISP_FEED_CLIENT_CERT");

    // Each bad header list stops start-up with one line naming the option, never the value.
    for (value, says) in [
        ("X-Tenant:blue;SECRET-no-colon", "pair #2 is not name:value"),
        ("X-Tenant:blue;:SECRET-no-name", "pair #2 is not name:value"),
        ("X Token SECRET:x", "the name of pair #1 is not"),
        ("X-Api-Key:SECRET\u{7}bell", "the value of X-Api-Key does"),
        (
            "X-Api-Key:SECRET\r\nX-Injected: yes",
            "the value of X-Api-Key does",
        ),
        ("Host:SECRET.example", "Host is set by the connector itself"),
        (
            "If-None-Match:SECRET",
            "If-None-Match is set by the connector itself",
        ),
        (
            "X-Api-Key:SECRET-1;x-api-key:SECRET-2",
            "x-api-key is given twice",
        ),
    ] {
        for in_file in [false, true] {
            let mut env = base_env();
            let yaml = if in_file {
                let escaped = value
                    .replace('\u{7}', "\\a")
                    .replace('\r', "\\r")
                    .replace('\n', "\\n");
                Some(format!("misp_feed:\n  http_headers: \"{escaped}\"\n"))
            } else {
                env.insert("MISP_FEED_HTTP_HEADERS".into(), value.into());
                None
            };
            let line = Settings::load_from(&env, yaml.as_deref(), now())
                .expect_err(value)
                .to_string();
            assert!(
                line.starts_with("invalid MISP_FEED_HTTP_HEADERS")
                    && line.contains("<redacted>")
                    && line.contains("expected \"name1:value1;name2:value2\"")
                    && line.contains(says)
                    && !line.contains('\n'),
                "{value}: {line}"
            );
            assert!(!line.contains("SECRET"), "{value}: {line}");
            if in_file {
                assert!(line.contains("misp_feed.http_headers"), "{line}");
            }
        }
    }

    // The Authorization header has its own option: given both ways, start-up stops.
    let mut env = base_env();
    env.insert(
        "MISP_FEED_HTTP_AUTHORIZATION_HEADER".into(),
        "Bearer SECRET-A".into(),
    );
    env.insert(
        "MISP_FEED_HTTP_HEADERS".into(),
        "authorization:Bearer SECRET-B".into(),
    );
    let line = Settings::load_from(&env, None, now())
        .unwrap_err()
        .to_string();
    assert!(
        line.contains("MISP_FEED_HTTP_HEADERS")
            && line.contains("MISP_FEED_HTTP_AUTHORIZATION_HEADER")
            && !line.contains("SECRET"),
        "{line}"
    );

    // The summary (`check`) shows the header names and the paths, never a value.
    let mut env = base_env();
    env.insert(
        "MISP_FEED_HTTP_HEADERS".into(),
        "X-Tenant:tenant-4e1b;X-Api-Key:key-9a0c".into(),
    );
    env.insert("MISP_FEED_CLIENT_CERT".into(), CLIENT_CERT_FILE.into());
    env.insert("MISP_FEED_CLIENT_KEY".into(), CLIENT_KEY_FILE.into());
    let settings = Settings::load_from(&env, None, now()).unwrap();
    let shown = format!("{}\n{settings:?}", settings.redacted_summary());
    assert!(
        !shown.contains("tenant-4e1b") && !shown.contains("key-9a0c"),
        "{shown}"
    );
    assert!(
        shown.contains("MISP_FEED_HTTP_HEADERS = X-Tenant;X-Api-Key (values hidden)"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("MISP_FEED_CLIENT_KEY = {CLIENT_KEY_FILE}")),
        "{shown}"
    );
}

#[test]
fn broken_yaml_is_one_line_naming_the_file() {
    let error = Settings::load_from(&base_env(), Some("opencti: [unclosed"), now()).unwrap_err();
    let line = error.to_string();
    assert!(
        line.contains("config.yml: invalid YAML") && !line.contains('\n'),
        "{line}"
    );
    let error = Settings::load_from(&base_env(), Some("- a\n- b\n"), now()).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("config.yml: the top level must be a mapping"),
        "{error}"
    );
}

#[test]
fn load_reads_the_given_file_and_names_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.yml");
    let error = Settings::load(Some(&missing)).unwrap_err();
    assert!(
        matches!(error, ConfigError::File { ref path, .. } if path == &missing),
        "{error}"
    );
    assert!(error.to_string().contains("absent.yml"));
}

#[test]
fn secrets_never_reach_errors_debug_output_or_the_summary() {
    let secrets = [
        "tok-SECRET-1",
        "Bearer SECRET-2",
        "aws-SECRET-3",
        "SECRET-4",
        "pw-SECRET-5",
        "mq-SECRET-6",
    ];
    let mut env = base_env();
    env.insert("MQ_PASS".into(), secrets[5].into());
    env.insert("OPENCTI_TOKEN".into(), secrets[0].into());
    env.insert(
        "MISP_FEED_HTTP_AUTHORIZATION_HEADER".into(),
        secrets[1].into(),
    );
    env.insert("AWS_ACCESS_KEY_ID".into(), "AKIAVISIBLE".into());
    env.insert("AWS_SECRET_ACCESS_KEY".into(), secrets[2].into());
    env.insert(
        "OPENCTI_CUSTOM_HEADERS".into(),
        format!("X-Api-Key:{};broken-{}", secrets[3], secrets[3]),
    );
    env.insert(
        "MISP_FEED_URL".into(),
        format!("https://user:{}@feed.example/misp/", secrets[4]),
    );
    let loaded = Settings::resolve(&env, None, now()).unwrap();
    let settings = &loaded.settings;
    let shown = format!(
        "{settings:?}\n{}\n{:?}",
        settings.redacted_summary(),
        loaded.warnings
    );
    for secret in secrets {
        assert!(!shown.contains(secret), "{secret} leaked:\n{shown}");
    }
    assert!(shown.contains("OPENCTI_TOKEN = <set>"), "{shown}");
    assert!(shown.contains("MQ_PASS = <set>"), "{shown}");
    assert!(
        shown.contains("MISP_FEED_URL = https://***:***@feed.example/misp"),
        "{shown}"
    );
    assert!(
        shown.contains("OPENCTI_CUSTOM_HEADERS = X-Api-Key (values hidden)"),
        "{shown}"
    );
    assert_eq!(
        loaded.warnings.len(),
        1,
        "the malformed header pair is reported, without its text"
    );
    // The real values are still there for the code that must send them.
    assert_eq!(
        settings.opencti.token.as_ref().unwrap().expose(),
        secrets[0]
    );

    // A rejected URL carrying a password does not show it either.
    let mut env = base_env();
    env.insert(
        "AWS_ENDPOINT_URL".into(),
        format!("ftp://minio:{}@store", secrets[4]),
    );
    let line = Settings::load_from(&env, None, now())
        .unwrap_err()
        .to_string();
    assert!(
        line.contains("AWS_ENDPOINT_URL") && !line.contains(secrets[4]),
        "{line}"
    );
    // A secret given where a list was expected is named, never shown.
    let yaml = "opencti:\n  token: [a, SECRET-LIST]\n";
    let mut env = base_env();
    env.remove("OPENCTI_TOKEN");
    let line = Settings::load_from(&env, Some(yaml), now())
        .unwrap_err()
        .to_string();
    assert!(
        line.contains("OPENCTI_TOKEN")
            && line.contains("<redacted>")
            && !line.contains("SECRET-LIST"),
        "{line}"
    );
}

#[test]
fn summary_lists_every_option_once() {
    let settings = Settings::load_from(&base_env(), None, now()).unwrap();
    let names: Vec<&str> = settings
        .redacted_entries()
        .iter()
        .map(|(name, _)| *name)
        .collect();
    let expected: Vec<&str> = OPTIONS
        .iter()
        .filter(|spec| !spec.deprecated)
        .map(|spec| spec.env)
        .collect();
    assert_eq!(names, expected);
}
