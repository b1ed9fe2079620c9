//! The documents generated from the option table stay what the table renders: the README's
//! configuration tables, `config.yml.sample`, and the connector manager's schema and table in
//! `__metadata__/`. After changing an option, regenerate them with
//! `MISP_FEED_WRITE_DOCS=1 cargo test --test config_docs` (this test then writes the files).

use std::path::PathBuf;

use misp_feed::config::docs;

fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Compares the checked-in file with the rendering; writes it instead when asked to.
fn check_generated(relative: &str, rendered: &str) {
    let path = repo_path(relative);
    if std::env::var_os("MISP_FEED_WRITE_DOCS").is_some() {
        std::fs::write(&path, rendered).unwrap();
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap();
    if current != rendered {
        let line = current
            .lines()
            .zip(rendered.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || current.lines().count().min(rendered.lines().count()) + 1,
                |index| index + 1,
            );
        panic!(
            "{relative} differs from the option table from line {line} on: regenerate it with `{}`",
            docs::REGENERATE
        );
    }
}

#[test]
fn readme_tables_are_the_option_tables() {
    let readme = std::fs::read_to_string(repo_path("README.md")).unwrap();
    let rendered = docs::readme_with_tables(&readme).expect("README.md has the option markers");
    check_generated("README.md", &rendered);
}

#[test]
fn config_sample_is_the_option_table() {
    check_generated("config.yml.sample", &docs::config_sample());
}

#[test]
fn connector_manager_schema_is_the_option_table() {
    check_generated(
        "__metadata__/connector_config_schema.json",
        &docs::connector_config_schema(),
    );
}

#[test]
fn connector_manager_table_is_the_option_table() {
    check_generated(
        "__metadata__/CONNECTOR_CONFIG_DOC.md",
        &docs::connector_config_doc(),
    );
}

#[test]
fn a_changed_table_is_drift() {
    // The comparison itself: a README whose generated part was edited by hand no longer
    // matches, and regenerating restores exactly the rendering.
    let readme = std::fs::read_to_string(repo_path("README.md")).unwrap();
    let edited = readme.replacen("| `opencti.url` |", "| `opencti.uri` |", 1);
    assert_ne!(edited, readme, "the README lists opencti.url");
    let restored = docs::readme_with_tables(&edited).unwrap();
    assert!(restored.contains("| `opencti.url` |") && !restored.contains("`opencti.uri`"));
    assert!(docs::readme_with_tables("no markers here").is_none());
}
