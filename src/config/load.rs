//! Loading: each option the command's scope reads is taken from the environment (canonical
//! name, then older names), else from `config.yml` (canonical key, then older keys), else
//! left at its default; then the rules between options are checked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::options::{OPTIONS, OptionSpec, Scope};
use super::raw::{Context, Raw, RawValue};
use super::settings::Settings;
use super::{ConfigError, LoadedSettings, validate};

/// The two places options come from.
struct Sources {
    env: HashMap<String, String>,
    file: serde_yaml_ng::Mapping,
}

impl Sources {
    /// pydantic-settings reads variable names case-insensitively; an exact upper-case name
    /// wins over another spelling.
    fn new(env: &HashMap<String, String>, file: serde_yaml_ng::Mapping) -> Sources {
        let mut upper: HashMap<String, String> = env
            .iter()
            .filter(|(name, _)| name.to_ascii_uppercase() != **name)
            .map(|(name, value)| (name.to_ascii_uppercase(), value.clone()))
            .collect();
        upper.extend(
            env.iter()
                .map(|(name, value)| (name.clone(), value.clone())),
        );
        Sources { env: upper, file }
    }

    fn file_value(&self, section: &str, key: &str) -> Option<&serde_yaml_ng::Value> {
        self.file
            .get(section)
            .and_then(|section| section.as_mapping())
            .and_then(|mapping| mapping.get(key))
    }

    /// The option's value, if set. Empty values count as unset, as pycti reads them.
    fn raw(&self, spec: &OptionSpec, warnings: &mut Vec<String>) -> Option<Raw> {
        for name in spec.env_names() {
            let Some(text) = self.env.get(name).filter(|text| !text.trim().is_empty()) else {
                continue;
            };
            if spec.deprecated_env_aliases.contains(&name) {
                warnings.push(format!("{name} is deprecated, use {}", spec.env));
            }
            return Some(Raw {
                value: RawValue::Text(text.clone()),
                origin: name.to_string(),
                secret: spec.secret,
            });
        }
        spec.keys().find_map(|key| {
            let value = yaml_scalar(self.file_value(spec.section, key)?)?;
            Some(Raw {
                value,
                origin: format!("{} ({}.{key} in config.yml)", spec.env, spec.section),
                secret: spec.secret,
            })
        })
    }

    /// A misspelled option would otherwise be silently ignored: name the unknown ones of our
    /// own namespace (other sections belong to pycti and hold many options we do not need).
    fn unknown_names(&self) -> Vec<String> {
        let known_env = |name: &str| {
            OPTIONS
                .iter()
                .any(|spec| spec.env_names().any(|n| n == name))
        };
        let mut unknown: Vec<String> = self
            .env
            .keys()
            .filter(|name| name.starts_with("MISP_FEED_") && !known_env(name))
            .map(|name| format!("unknown environment variable {name} is ignored"))
            .collect();
        if let Some(section) = self
            .file
            .get("misp_feed")
            .and_then(|value| value.as_mapping())
        {
            for key in section.keys().filter_map(|key| key.as_str()) {
                let known = OPTIONS
                    .iter()
                    .any(|spec| spec.section == "misp_feed" && spec.keys().any(|k| k == key));
                if !known {
                    unknown.push(format!(
                        "unknown key misp_feed.{key} in config.yml is ignored"
                    ));
                }
            }
        }
        unknown.sort();
        unknown
    }
}

fn yaml_scalar(value: &serde_yaml_ng::Value) -> Option<RawValue> {
    use serde_yaml_ng::Value;
    match value {
        Value::Null => None,
        Value::Bool(flag) => Some(RawValue::Bool(*flag)),
        Value::Number(number) => match number.as_i64() {
            Some(int) => Some(RawValue::Int(int)),
            None => number.as_f64().map(RawValue::Float),
        },
        Value::String(text) if text.trim().is_empty() => None,
        Value::String(text) => Some(RawValue::Text(text.clone())),
        Value::Sequence(items) => Some(RawValue::List(
            items
                .iter()
                .map(|item| match item {
                    Value::String(text) => text.clone(),
                    other => serde_yaml_ng::to_string(other)
                        .map(|text| text.trim().to_string())
                        .unwrap_or_default(),
                })
                .collect(),
        )),
        Value::Tagged(tagged) => yaml_scalar(&tagged.value),
        Value::Mapping(_) => Some(RawValue::Text("<mapping>".to_string())),
    }
}

fn parse_yaml(text: &str) -> Result<serde_yaml_ng::Mapping, ConfigError> {
    if text.trim().is_empty() {
        return Ok(serde_yaml_ng::Mapping::new());
    }
    let value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|error| ConfigError::File {
            path: PathBuf::from("config.yml"),
            // The location and kind only: serde_yaml_ng's messages do not quote values.
            reason: format!("invalid YAML: {error}"),
        })?;
    match value {
        serde_yaml_ng::Value::Null => Ok(serde_yaml_ng::Mapping::new()),
        serde_yaml_ng::Value::Mapping(mapping) => Ok(mapping),
        _ => Err(ConfigError::File {
            path: PathBuf::from("config.yml"),
            reason: "the top level must be a mapping of sections (opencti, connector, misp_feed, aws, mq)"
                .to_string(),
        }),
    }
}

impl Settings {
    /// Everything `once`, `run` and `check` need, from the process environment and
    /// `config_file` (or `./config.yml` when it exists). Warnings (deprecated names, ignored
    /// keys) go to `tracing`; use [`Settings::load_for`] when logging starts only after loading.
    pub fn load(config_file: Option<&Path>) -> Result<Settings, ConfigError> {
        let loaded = Settings::load_for(Scope::Sync, config_file)?;
        for warning in &loaded.warnings {
            tracing::warn!("{warning}");
        }
        Ok(loaded.settings)
    }

    /// The options a command's `scope` reads, from the process environment and `config_file`
    /// (or `./config.yml` when it exists); the others keep their defaults.
    pub fn load_for(
        scope: Scope,
        config_file: Option<&Path>,
    ) -> Result<LoadedSettings, ConfigError> {
        let env: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .collect();
        let default_file = Path::new("config.yml");
        let path = match config_file {
            Some(path) => Some(path),
            None if default_file.is_file() => Some(default_file),
            None => None,
        };
        let text = match path {
            Some(path) => {
                Some(
                    std::fs::read_to_string(path).map_err(|error| ConfigError::File {
                        path: path.to_path_buf(),
                        reason: error.to_string(),
                    })?,
                )
            }
            None => None,
        };
        Settings::resolve_for(scope, &env, text.as_deref(), Utc::now()).map_err(|error| {
            match (error, path) {
                (ConfigError::File { reason, .. }, Some(path)) => ConfigError::File {
                    path: path.to_path_buf(),
                    reason,
                },
                (error, _) => error,
            }
        })
    }

    /// Everything, environment over `yaml_text` over defaults; `now` anchors a duration-valued
    /// `import_from_date`.
    pub fn load_from(
        env: &HashMap<String, String>,
        yaml_text: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Settings, ConfigError> {
        Settings::resolve(env, yaml_text, now).map(|loaded| loaded.settings)
    }

    /// As [`Settings::load_from`], with the warnings.
    pub fn resolve(
        env: &HashMap<String, String>,
        yaml_text: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<LoadedSettings, ConfigError> {
        Settings::resolve_for(Scope::Sync, env, yaml_text, now)
    }

    /// As [`Settings::resolve`], reading only what `scope` needs.
    pub fn resolve_for(
        scope: Scope,
        env: &HashMap<String, String>,
        yaml_text: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<LoadedSettings, ConfigError> {
        let file = match yaml_text {
            Some(text) => parse_yaml(text)?,
            None => serde_yaml_ng::Mapping::new(),
        };
        let sources = Sources::new(env, file);
        let mut context = Context {
            now,
            warnings: Vec::new(),
        };
        let mut settings = Settings::default();
        for spec in OPTIONS.iter().filter(|spec| scope.reads(spec.need)) {
            if let Some(raw) = sources.raw(spec, &mut context.warnings) {
                spec.value.read(&mut settings, &raw, &mut context)?;
            }
        }
        context.warnings.extend(sources.unknown_names());
        validate::across_options(scope, &mut settings)?;
        Ok(LoadedSettings {
            settings,
            warnings: context.warnings,
        })
    }
}
