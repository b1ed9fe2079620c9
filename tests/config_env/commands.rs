//! Each command validates only the options it reads.

use super::*;

/// Each command reads only what it uses: a bad value stops a command exactly when the
/// command's scope reads that option.
#[test]
fn a_bad_value_stops_only_the_commands_that_read_it() {
    let scopes = [Scope::Convert, Scope::Ledger, Scope::Sync];
    let mut stopped = BTreeSet::new();
    for row in rows() {
        let Some(bad) = row.bad else { continue };
        let spec = option_spec(row.env).unwrap();
        for scope in scopes {
            let mut env = env_for(&row);
            env.insert(row.env.to_string(), bad.to_string());
            let result = Settings::resolve_for(scope, &env, None, now());
            assert_eq!(
                result.is_err(),
                scope.reads(spec.need),
                "{}={bad} under {scope:?}",
                row.env
            );
            if result.is_err() {
                stopped.insert(format!("{scope:?}"));
            }
        }
    }
    assert_eq!(stopped.len(), scopes.len(), "{stopped:?}");
}

#[test]
fn convert_needs_no_configuration_and_reads_the_conversion_options() {
    let empty = HashMap::new();
    let loaded = Settings::resolve_for(Scope::Convert, &empty, None, now()).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(
        loaded.settings.misp_feed.convert,
        Settings::default().misp_feed.convert
    );

    let env: HashMap<String, String> = [
        ("MISP_FEED_CREATE_INDICATORS", "true"),
        ("MISP_FEED_REFERENCE_COMPAT", "yes"),
        ("OPENCTI_URL", "not a url"),
        ("MISP_FEED_URL", "ftp://unused.example"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let yaml = "misp_feed:\n  create_observables: true\n  max_file_size: huge\n";
    let settings = Settings::resolve_for(Scope::Convert, &env, Some(yaml), now())
        .unwrap()
        .settings;
    let convert = &settings.misp_feed.convert;
    assert!(convert.create_indicators && convert.reference_compat && convert.create_observables);
    assert_eq!(settings.opencti.url, None, "the platform is not read");
}

#[test]
fn ledger_commands_need_only_the_ledger_path() {
    let env: HashMap<String, String> = [(
        "MISP_FEED_LEDGER_PATH".to_string(),
        "/data/a.sqlite".to_string(),
    )]
    .into();
    let settings = Settings::resolve_for(Scope::Ledger, &env, None, now())
        .unwrap()
        .settings;
    assert_eq!(
        settings.misp_feed.ledger_path.display().to_string(),
        "/data/a.sqlite"
    );

    let yaml = "misp_feed:\n  ledger_path: from-file.sqlite\n";
    let settings = Settings::resolve_for(Scope::Ledger, &HashMap::new(), Some(yaml), now())
        .unwrap()
        .settings;
    assert_eq!(
        settings.misp_feed.ledger_path.display().to_string(),
        "from-file.sqlite"
    );
    // The same file is not enough to sync: the rules between options apply there.
    assert_eq!(
        missing_variable(&HashMap::new(), Some(yaml)),
        "MISP_FEED_URL"
    );
}
