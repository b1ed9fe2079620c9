//! The documents generated from the option table: the README's configuration tables,
//! `config.yml.sample`, and `__metadata__/` (the connector manager's JSON schema and its
//! table). `tests/config_docs.rs` fails when a checked-in copy differs from what is rendered
//! here, and rewrites them with `MISP_FEED_WRITE_DOCS=1 cargo test --test config_docs`.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json, json};

use super::options::{OPTIONS, OptionSpec, Origin, option_spec};
use super::parsers::json_number;
use super::settings::Settings;

/// How to regenerate, for the notes in the documents themselves.
pub const REGENERATE: &str = "MISP_FEED_WRITE_DOCS=1 cargo test --test config_docs";

/// The lines around the generated part of README.md.
pub(crate) const README_BEGIN: &str = "<!-- BEGIN generated options: edit src/config/options/, then run MISP_FEED_WRITE_DOCS=1 cargo test --test config_docs -->";
pub(crate) const README_END: &str = "<!-- END generated options -->";

fn code(text: &str) -> String {
    if text.is_empty() {
        "`''`".to_string()
    } else {
        format!("`{text}`")
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The README's option tables, one per origin, markers included.
pub(crate) fn readme_tables() -> String {
    let mut out = format!("{README_BEGIN}\n");
    for (origin, title) in [
        (
            Origin::Pycti,
            "OpenCTI, the connector and RabbitMQ (as pycti)",
        ),
        (
            Origin::PythonConnector,
            "The feed and the conversion (as the Python connector)",
        ),
        (Origin::Ours, "Options of ours"),
    ] {
        out.push_str(&format!("\n### {title}\n\n"));
        out.push_str("| config.yml | environment | default | meaning |\n");
        out.push_str("| --- | --- | --- | --- |\n");
        for spec in OPTIONS.iter().filter(|spec| spec.origin == origin) {
            let keys: Vec<String> = spec
                .keys()
                .map(|key| code(&format!("{}.{key}", spec.section)))
                .collect();
            let mut names: Vec<String> = std::iter::once(spec.env)
                .chain(spec.env_aliases.iter().copied())
                .map(code)
                .collect();
            names.extend(
                spec.deprecated_env_aliases
                    .iter()
                    .map(|name| format!("{} (deprecated)", code(name))),
            );
            let mut meaning = spec.description.to_string();
            if spec.secret {
                meaning.push_str(" Secret: never shown.");
            }
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                keys.join(" or "),
                names.join(" or "),
                spec.default.map_or_else(|| "—".to_string(), code),
                cell(&meaning)
            ));
        }
    }
    out.push_str(&format!("\n{README_END}"));
    out
}

/// `readme` with its generated part replaced by [`readme_tables`]; `None` without markers.
pub fn readme_with_tables(readme: &str) -> Option<String> {
    let start = readme.find(README_BEGIN)?;
    let end = readme[start..].find(README_END)? + start + README_END.len();
    Some(format!(
        "{}{}{}",
        &readme[..start],
        readme_tables(),
        &readme[end..]
    ))
}

/// A value as `config.yml` writes it: numbers and booleans bare, text quoted, unset `''`.
fn yaml_value(spec: &OptionSpec) -> String {
    match spec.example.or(spec.default) {
        None => "''".to_string(),
        Some(text)
            if matches!(
                spec.value.shape().json_type,
                "boolean" | "integer" | "number"
            ) =>
        {
            text.to_string()
        }
        Some(text) => format!("'{}'", text.replace('\'', "''")),
    }
}

/// `config.yml.sample`: every option with its default (or a value to replace).
pub fn config_sample() -> String {
    let mut out = String::from(
        "# misp-feed configuration. Every option is shown with its default (ChangeMe and the example\n\
         # URLs are yours to replace); the environment variable in brackets overrides the value here\n\
         # (environment > this file > default). Empty ('') means unset.\n\
         # Copy to config.yml (read from the working folder, or pass --config FILE).\n",
    );
    out.push_str(&format!(
        "# Generated from src/config/options/ by `{REGENERATE}`.\n"
    ));
    let mut section = "";
    for spec in OPTIONS.iter().filter(|spec| !spec.deprecated) {
        if spec.section != section {
            section = spec.section;
            out.push_str(&format!("\n{section}:\n"));
        }
        out.push_str(&format!(
            "  {}: {} # [{}] {}\n",
            spec.key,
            yaml_value(spec),
            spec.env,
            spec.description
        ));
    }
    for spec in OPTIONS.iter().filter(|spec| spec.deprecated) {
        out.push_str(&format!(
            "\n# Deprecated, still read: {} [{}] {}\n",
            spec.yaml_path(),
            spec.env,
            spec.description
        ));
    }
    out
}

/// One property of the connector manager's schema.
fn schema_property(spec: &OptionSpec, defaults: &Settings) -> Json {
    let shape = spec.value.shape();
    let mut property: BTreeMap<&str, Json> = BTreeMap::new();
    property.insert("description", json!(spec.description));
    property.insert("type", json!(shape.json_type));
    if !spec.required {
        let default = match spec.default {
            Some(_) => spec.value.json(defaults),
            None => Json::Null,
        };
        property.insert("default", default);
    }
    if spec.secret {
        property.insert("format", json!("password"));
        property.insert("writeOnly", json!(true));
    } else if let Some(format) = shape.format {
        property.insert("format", json!(format));
    }
    match shape.choices.as_slice() {
        [] => {}
        [only] => {
            property.insert("const", json!(only));
        }
        many => {
            property.insert("enum", json!(many));
        }
    }
    if shape.json_type == "array" {
        property.insert("items", json!({"type": "string"}));
    }
    for (name, bound) in [
        ("minimum", shape.minimum),
        ("exclusiveMinimum", shape.exclusive_minimum),
        ("maximum", shape.maximum),
    ] {
        if let Some(bound) = bound {
            property.insert(name, json_number(bound));
        }
    }
    if let Some(replacement) = spec.replaced_by.and_then(option_spec) {
        property.insert("deprecated", json!(true));
        property.insert("new_namespace", json!(replacement.section));
        property.insert("new_namespaced_var", json!(replacement.key));
        property.insert("removal_date", Json::Null);
    }
    Json::Object(
        property
            .into_iter()
            .map(|(name, value)| (name.to_string(), value))
            .collect(),
    )
}

fn schema_value() -> Json {
    let defaults = Settings::default();
    let properties: Map<String, Json> = OPTIONS
        .iter()
        .map(|spec| (spec.env.to_string(), schema_property(spec, &defaults)))
        .collect();
    let required: Vec<&str> = OPTIONS
        .iter()
        .filter(|spec| spec.required)
        .map(|spec| spec.env)
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://www.filigran.io/connectors/misp-feed_config.schema.json",
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": true,
    })
}

/// `__metadata__/connector_config_schema.json`.
pub fn connector_config_schema() -> String {
    // Rendering a JSON value built here cannot fail.
    let text = serde_json::to_string_pretty(&schema_value()).unwrap_or_default();
    format!("{text}\n")
}

/// `__metadata__/CONNECTOR_CONFIG_DOC.md`: the schema as a table.
pub fn connector_config_doc() -> String {
    let schema = schema_value();
    let mut out = String::from(
        "# Connector configurations\n\n\
         Every option, as the connector manager and `docker-compose.yml` set it (environment variables).\n\
         Each is also read from `config.yml` (section and key in the second column). Environment over file over default.\n",
    );
    out.push_str(&format!(
        "Generated from `src/config/options/` by `{REGENERATE}`.\n\n"
    ));
    out.push_str("| Variable | config.yml | Type | Required | Default | Description |\n");
    out.push_str("| --- | --- | --- | --- | --- | --- |\n");
    for spec in OPTIONS.iter() {
        let property = &schema["properties"][spec.env];
        let mut kind = property["type"].as_str().unwrap_or_default().to_string();
        if let Some(choices) = property["enum"].as_array() {
            let names: Vec<String> = choices.iter().filter_map(Json::as_str).map(code).collect();
            kind.push_str(&format!(" ({})", names.join(", ")));
        }
        let default = match property.get("default") {
            None | Some(Json::Null) => String::new(),
            Some(value) => code(&value.to_string()),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            spec.env,
            spec.yaml_path(),
            kind,
            if spec.required { "yes" } else { "" },
            default,
            cell(spec.description)
        ));
    }
    out
}
