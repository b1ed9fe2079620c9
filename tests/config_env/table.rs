//! Every row of the option table: read from the environment and from config.yml, environment
//! over file, the default, and a value that stops start-up.

use super::*;

#[test]
fn table_covers_every_option() {
    let table: BTreeSet<&str> = rows().iter().map(|row| row.env).collect();
    let known: BTreeSet<&str> = OPTIONS.iter().map(|spec| spec.env).collect();
    assert_eq!(
        table, known,
        "every option needs a row, every row an option"
    );
    for row in rows() {
        let spec = OPTIONS.iter().find(|spec| spec.env == row.env).unwrap();
        assert_eq!(
            row.yaml,
            format!("{}.{}", spec.section, spec.key),
            "{}",
            row.env
        );
    }
}

#[test]
fn each_option_is_read_from_the_environment() {
    let fx = fixture();
    for row in rows() {
        let mut env = env_for(&row);
        env.insert(row.env.to_string(), fill(row.env_value, &fx));
        let settings = Settings::load_from(&env, None, now())
            .unwrap_or_else(|e| panic!("{}={}: {e}", row.env, row.env_value));
        assert_eq!(
            (row.read)(&settings),
            fill(row.env_expected, &fx),
            "env {}",
            row.env
        );
    }
}

#[test]
fn each_option_is_read_from_config_yml() {
    let fx = fixture();
    for row in rows() {
        let env = env_for(&row);
        let yaml = fill(&yaml_for(&row, row.yaml_value), &fx);
        let settings = Settings::load_from(&env, Some(&yaml), now())
            .unwrap_or_else(|e| panic!("{}: {e}", row.yaml));
        assert_eq!(
            (row.read)(&settings),
            fill(row.yaml_expected, &fx),
            "yaml {}",
            row.yaml
        );
    }
}

#[test]
fn environment_wins_over_config_yml() {
    let fx = fixture();
    for row in rows() {
        if row.env_expected == row.yaml_expected {
            continue;
        }
        let mut env = env_for(&row);
        env.insert(row.env.to_string(), fill(row.env_value, &fx));
        let yaml = fill(&yaml_for(&row, row.yaml_value), &fx);
        let settings = Settings::load_from(&env, Some(&yaml), now()).unwrap();
        assert_eq!(
            (row.read)(&settings),
            fill(row.env_expected, &fx),
            "precedence {}",
            row.env
        );
    }
    let distinct = rows()
        .iter()
        .filter(|row| row.env_expected != row.yaml_expected)
        .count();
    assert!(
        distinct >= 30,
        "too few rows exercise precedence: {distinct}"
    );
}

#[test]
fn each_option_has_its_default_when_unset_or_empty() {
    for row in rows() {
        let Some(default) = row.default else { continue };
        let mut env = env_for(&row);
        env.retain(|name, _| !companions(row.env).iter().any(|(c, _)| c == name));
        let settings = Settings::load_from(&env, None, now()).unwrap();
        assert_eq!((row.read)(&settings), default, "default of {}", row.env);
        // An empty variable (`- MISP_FEED_BUCKET_NAME=` in a compose file) means unset, as in pycti.
        env.insert(row.env.to_string(), String::new());
        let settings = Settings::load_from(&env, Some(&yaml_for(&row, "''")), now()).unwrap();
        assert_eq!((row.read)(&settings), default, "empty {}", row.env);
    }
}

#[test]
fn a_bad_value_stops_start_up_with_one_line_naming_variable_value_and_accepted_values() {
    for row in rows() {
        let Some(bad) = row.bad else { continue };
        let mut env = env_for(&row);
        env.insert(row.env.to_string(), bad.to_string());
        let error = Settings::load_from(&env, None, now()).expect_err(row.env);
        let line = error.to_string();
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains(row.env), "{line}");
        assert!(line.contains(bad), "{line}");
        assert!(line.contains("expected"), "{line}");

        // The same bad value in the file names the file key.
        let env = env_for(&row);
        let yaml = yaml_for(&row, &format!("'{bad}'"));
        let error = Settings::load_from(&env, Some(&yaml), now()).expect_err(row.yaml);
        let line = error.to_string();
        assert!(line.contains(row.env) && line.contains(row.yaml), "{line}");
    }
}
