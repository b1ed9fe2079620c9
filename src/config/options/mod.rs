//! The option table: one definition per option (its names, default, parser, secrecy, doc,
//! and the `Settings` field it fills). Loading, defaults, redaction, `Debug`, `check` and the
//! generated documents (README tables, `config.yml.sample`, `__metadata__/`) all read it.
//!
//! The entries live in `platform.rs` (opencti, connector, mq), `feed.rs` (misp_feed, aws) and
//! `import.rs` (the import filters and guards, also under misp_feed).

mod feed;
mod import;
mod platform;

use std::sync::LazyLock;

use super::ConfigError;
use super::parsers::{Parser, Shape};
use super::raw::{Context, Raw};
use super::settings::Settings;

/// Who defined the option first: the documents group options by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// pycti's helper reads it for every connector (`OPENCTI_*`, `CONNECTOR_*`, `MQ_*`).
    Pycti,
    /// The Python MISP Feed connector's own settings.
    PythonConnector,
    /// Added by this connector.
    Ours,
}

/// Which commands read (and so validate) an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Every command: logging.
    Logging,
    /// `convert`, and the syncing commands.
    Conversion,
    /// The ledger commands (`status`, `events`, `show`, `verify`, `reset`, `retry`), and the
    /// syncing commands.
    Ledger,
    /// Only the syncing commands (`once`, `run`, `check`).
    Sync,
}

/// What a command loads: only the options it uses are read, so only those can stop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `convert`: the conversion options.
    Convert,
    /// The ledger commands: the ledger's path (and the bundle retention `verify` reads).
    Ledger,
    /// `once`, `run`, `check`: everything, with the rules between options.
    Sync,
}

impl Scope {
    pub fn reads(self, need: Need) -> bool {
        match self {
            Scope::Sync => true,
            Scope::Convert => matches!(need, Need::Logging | Need::Conversion),
            Scope::Ledger => matches!(need, Need::Logging | Need::Ledger),
        }
    }
}

/// Where in `Settings` an option's value lives.
pub(crate) struct Field<T: 'static> {
    pub(crate) get: fn(&Settings) -> &T,
    pub(crate) get_mut: fn(&mut Settings) -> &mut T,
}

/// `field!(connector.auto)`: the accessors of `settings.connector.auto`.
macro_rules! field {
    ($($path:ident).+) => {
        $crate::config::options::Field {
            get: |settings| &settings.$($path).+,
            get_mut: |settings| &mut settings.$($path).+,
        }
    };
}
pub(crate) use field;

/// An option's parser bound to its field: what the table holds, whatever the value's type.
pub(crate) trait Slot: Sync {
    fn read(
        &self,
        settings: &mut Settings,
        raw: &Raw,
        context: &mut Context,
    ) -> Result<(), ConfigError>;
    /// `None`: unset.
    fn show(&self, settings: &Settings) -> Option<String>;
    /// For a secret: only whether it is set, or a form its parser knows to be safe.
    fn redacted(&self, settings: &Settings) -> Option<String>;
    fn json(&self, settings: &Settings) -> serde_json::Value;
    fn shape(&self) -> Shape;
}

/// A field that always has a value.
pub(crate) struct Plain<P: Parser>(pub(crate) P, pub(crate) Field<P::Value>);

/// A field that may be unset.
pub(crate) struct Maybe<P: Parser>(pub(crate) P, pub(crate) Field<Option<P::Value>>);

impl<P: Parser> Slot for Plain<P> {
    fn read(
        &self,
        settings: &mut Settings,
        raw: &Raw,
        context: &mut Context,
    ) -> Result<(), ConfigError> {
        *(self.1.get_mut)(settings) = self.0.parse(raw, context)?;
        Ok(())
    }
    fn show(&self, settings: &Settings) -> Option<String> {
        self.0.show((self.1.get)(settings))
    }
    fn redacted(&self, settings: &Settings) -> Option<String> {
        self.0.redacted((self.1.get)(settings))
    }
    fn json(&self, settings: &Settings) -> serde_json::Value {
        self.0.json((self.1.get)(settings))
    }
    fn shape(&self) -> Shape {
        self.0.shape()
    }
}

impl<P: Parser> Slot for Maybe<P> {
    fn read(
        &self,
        settings: &mut Settings,
        raw: &Raw,
        context: &mut Context,
    ) -> Result<(), ConfigError> {
        *(self.1.get_mut)(settings) = Some(self.0.parse(raw, context)?);
        Ok(())
    }
    fn show(&self, settings: &Settings) -> Option<String> {
        (self.1.get)(settings)
            .as_ref()
            .and_then(|value| self.0.show(value))
    }
    fn redacted(&self, settings: &Settings) -> Option<String> {
        (self.1.get)(settings)
            .as_ref()
            .and_then(|value| self.0.redacted(value))
    }
    fn json(&self, settings: &Settings) -> serde_json::Value {
        (self.1.get)(settings)
            .as_ref()
            .map_or(serde_json::Value::Null, |value| self.0.json(value))
    }
    fn shape(&self) -> Shape {
        self.0.shape()
    }
}

/// One configuration option.
#[derive(Clone, Copy)]
pub struct OptionSpec {
    /// The environment variable, e.g. `MISP_FEED_URL`.
    pub env: &'static str,
    /// Other variables meaning the same, read after `env` (the Python connector's names).
    pub env_aliases: &'static [&'static str],
    /// Older variables still read, with a deprecation warning.
    pub(crate) deprecated_env_aliases: &'static [&'static str],
    /// `config.yml` section, e.g. `misp_feed`.
    pub section: &'static str,
    /// `config.yml` key inside the section, e.g. `url`.
    pub key: &'static str,
    /// Other keys of the same section meaning the same, read after `key`.
    pub key_aliases: &'static [&'static str],
    /// As written in the environment or `config.yml`; `None`: unset.
    pub(crate) default: Option<&'static str>,
    /// What `config.yml.sample` shows instead of the default: a value to replace.
    pub example: Option<&'static str>,
    /// The connector manager must set it (the JSON schema's `required`).
    pub(crate) required: bool,
    /// A token, key or header value: never shown, in errors, logs, `Debug` or `check`.
    pub secret: bool,
    /// Kept for old deployments; using it logs a deprecation warning.
    pub deprecated: bool,
    /// The option that replaces a deprecated one.
    pub(crate) replaced_by: Option<&'static str>,
    pub(crate) origin: Origin,
    pub need: Need,
    /// One line for operators.
    pub description: &'static str,
    pub(crate) value: &'static dyn Slot,
}

impl OptionSpec {
    pub(crate) const fn new(
        env: &'static str,
        section: &'static str,
        key: &'static str,
        value: &'static dyn Slot,
        origin: Origin,
        need: Need,
        description: &'static str,
    ) -> OptionSpec {
        OptionSpec {
            env,
            env_aliases: &[],
            deprecated_env_aliases: &[],
            section,
            key,
            key_aliases: &[],
            default: None,
            example: None,
            required: false,
            secret: false,
            deprecated: false,
            replaced_by: None,
            origin,
            need,
            description,
            value,
        }
    }

    pub(crate) const fn or(mut self, default: &'static str) -> OptionSpec {
        self.default = Some(default);
        self
    }

    pub(crate) const fn example(mut self, example: &'static str) -> OptionSpec {
        self.example = Some(example);
        self
    }

    pub(crate) const fn required(mut self) -> OptionSpec {
        self.required = true;
        self
    }

    pub(crate) const fn secret(mut self) -> OptionSpec {
        self.secret = true;
        self
    }

    pub(crate) const fn alias(mut self, names: &'static [&'static str]) -> OptionSpec {
        self.env_aliases = names;
        self
    }

    pub(crate) const fn old_alias(mut self, names: &'static [&'static str]) -> OptionSpec {
        self.deprecated_env_aliases = names;
        self
    }

    pub(crate) const fn key_alias(mut self, keys: &'static [&'static str]) -> OptionSpec {
        self.key_aliases = keys;
        self
    }

    pub(crate) const fn deprecated_for(mut self, replacement: &'static str) -> OptionSpec {
        self.deprecated = true;
        self.replaced_by = Some(replacement);
        self
    }

    /// `section.key`, as `config.yml` nests it.
    pub(crate) fn yaml_path(&self) -> String {
        format!("{}.{}", self.section, self.key)
    }

    /// Every environment variable read for it, canonical first.
    pub(crate) fn env_names(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.env)
            .chain(self.env_aliases.iter().copied())
            .chain(self.deprecated_env_aliases.iter().copied())
    }

    /// Every `config.yml` key read for it, canonical first.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.key).chain(self.key_aliases.iter().copied())
    }

    /// Its value in `settings` as the summary, `Debug` and `check` show it.
    pub(crate) fn shown(&self, settings: &Settings) -> String {
        let shown = if self.secret {
            self.value.redacted(settings)
        } else {
            self.value.show(settings)
        };
        shown.unwrap_or_else(|| "<unset>".to_string())
    }
}

/// Every option the connector reads, in the order of `config.yml.sample`.
pub static OPTIONS: LazyLock<Vec<OptionSpec>> = LazyLock::new(|| {
    [
        platform::OPENCTI,
        platform::CONNECTOR,
        feed::MISP_FEED,
        import::IMPORT_CONTROL,
        feed::AWS,
        platform::MQ,
    ]
    .concat()
});

/// The option read from environment variable `env` (its canonical name).
pub fn option_spec(env: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|spec| spec.env == env)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::config::raw::RawValue;

    #[test]
    fn every_default_parses() {
        let mut settings = Settings::default();
        let mut context = Context {
            now: chrono::Utc::now(),
            warnings: Vec::new(),
        };
        for spec in OPTIONS.iter() {
            if let Some(text) = spec.default {
                let raw = Raw {
                    value: RawValue::Text(text.to_string()),
                    origin: spec.env.to_string(),
                    secret: spec.secret,
                };
                spec.value
                    .read(&mut settings, &raw, &mut context)
                    .unwrap_or_else(|e| panic!("default of {}: {e}", spec.env));
            }
        }
        assert!(context.warnings.is_empty(), "{:?}", context.warnings);
    }

    #[test]
    fn names_and_keys_are_unique() {
        let mut names = BTreeSet::new();
        let mut keys = BTreeSet::new();
        for spec in OPTIONS.iter() {
            for name in spec.env_names() {
                assert!(names.insert(name), "{name} twice");
            }
            for key in spec.keys() {
                assert!(
                    keys.insert(format!("{}.{key}", spec.section)),
                    "{key} twice"
                );
            }
            assert!(!spec.description.is_empty() && !spec.description.contains('\n'));
        }
    }

    #[test]
    fn a_secret_is_never_shown_and_never_a_default() {
        let secrets: Vec<&OptionSpec> = OPTIONS.iter().filter(|spec| spec.secret).collect();
        assert!(secrets.len() >= 6);
        let mut context = Context {
            now: chrono::Utc::now(),
            warnings: Vec::new(),
        };
        for spec in secrets {
            assert_eq!(spec.default, None, "{}", spec.env);
            let mut settings = Settings::default();
            let raw = Raw {
                value: RawValue::Text("name:marker-4d2".to_string()),
                origin: spec.env.to_string(),
                secret: true,
            };
            spec.value.read(&mut settings, &raw, &mut context).unwrap();
            let shown = format!("{} {settings:?}", spec.shown(&settings));
            assert!(!shown.contains("marker-4d2"), "{}: {shown}", spec.env);
            assert!(
                spec.value.show(&settings).is_some(),
                "{} reads as unset",
                spec.env
            );
        }
    }

    /// `ConvertOptions::default()` (what the converter's callers and tests start from) holds
    /// the table's defaults: each conversion option shows the same value in both.
    #[test]
    fn convert_options_default_is_the_tables() {
        let mut from_type = Settings::default();
        from_type.misp_feed.convert = crate::convert::ConvertOptions::default();
        let mut context = Context {
            now: chrono::Utc::now(),
            warnings: Vec::new(),
        };
        let conversion: Vec<&OptionSpec> = OPTIONS
            .iter()
            .filter(|spec| spec.need == Need::Conversion)
            .collect();
        assert!(conversion.len() >= 20);
        for spec in conversion {
            let expected = match spec.default {
                Some(text) => {
                    let mut from_table = Settings::default();
                    let raw = Raw {
                        value: RawValue::Text(text.to_string()),
                        origin: spec.env.to_string(),
                        secret: spec.secret,
                    };
                    spec.value
                        .read(&mut from_table, &raw, &mut context)
                        .unwrap();
                    spec.shown(&from_table)
                }
                None => "<unset>".to_string(),
            };
            assert_eq!(spec.shown(&from_type), expected, "{}", spec.env);
        }
    }

    #[test]
    fn deprecated_options_name_an_option_that_replaces_them() {
        for spec in OPTIONS.iter().filter(|spec| spec.deprecated) {
            let replacement = spec.replaced_by.and_then(option_spec);
            assert!(replacement.is_some_and(|r| !r.deprecated), "{}", spec.env);
        }
    }
}
