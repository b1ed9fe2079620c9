//! Registration with the platform, as pycti's helper registers the MISP Feed connector:
//! the `registerConnector` input, what its answer holds (connector id, stored state, the
//! broker and push queue), and pycti's `MQ_*` overrides of the advertised broker.

use serde_json::{Value, json};

use super::broker::{BrokerEndpoint, PublishTarget};
use super::graphql::{ApiError, field, string_field, variables};
use super::{MANIFEST_SLUG, MANIFEST_VERSION, OpenCtiError};
use crate::config::ConnectorSettings;
use crate::secret::Secret;

/// What `registerConnector` answered and pycti keeps.
#[derive(Debug, Clone)]
pub(crate) struct Registration {
    pub(crate) connector_id: String,
    /// The stored state string: `None` for a new connector, `""` after a UI reset.
    pub(crate) connector_state: Option<String>,
    /// `connector_user_id`: the user the workers impersonate (`applicant_id` of messages).
    pub(crate) applicant_id: String,
    pub(crate) broker: BrokerEndpoint,
    pub(crate) target: PublishTarget,
    /// `config.push`: the queue the workers read (for logs and checks).
    pub(crate) push_queue: String,
}

/// The `input` of `registerConnector`, member for member as pycti sends it.
pub(crate) fn register_input(connector_id: &str, connector: &ConnectorSettings) -> Value {
    variables([
        ("id", json!(connector_id)),
        ("name", json!(connector.name)),
        ("type", json!(connector.connector_type)),
        ("scope", json!(connector.scope)),
        ("auto", json!(connector.auto)),
        ("auto_update", json!(false)),
        ("enrichment_resolution", json!("none")),
        ("only_contextual", json!(connector.only_contextual)),
        ("playbook_compatible", json!(false)),
        ("listen_callback_uri", Value::Null),
        ("version", json!(MANIFEST_VERSION)),
        ("slug", json!(MANIFEST_SLUG)),
    ])
}

pub(crate) fn parse_registration(data: &Value) -> Result<Registration, OpenCtiError> {
    const OP: &str = "RegisterConnector";
    let text = |path: &str| string_field(data, OP, path);
    let connection = field(data, OP, "/registerConnector/config/connection")?;
    let port = connection
        .get("port")
        .and_then(Value::as_u64)
        .and_then(|port| u16::try_from(port).ok())
        .ok_or_else(|| ApiError::Decode {
            operation: OP,
            reason: "config.connection.port is not a port number".into(),
        })?;
    let use_ssl = connection
        .get("use_ssl")
        .and_then(Value::as_bool)
        .ok_or_else(|| ApiError::Decode {
            operation: OP,
            reason: "config.connection.use_ssl is not a boolean".into(),
        })?;
    let connector_state = field(data, OP, "/registerConnector/connector_state")
        .ok()
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Registration {
        connector_id: text("/registerConnector/id")?,
        connector_state,
        applicant_id: text("/registerConnector/connector_user_id")?,
        broker: BrokerEndpoint {
            host: text("/registerConnector/config/connection/host")?,
            port,
            vhost: text("/registerConnector/config/connection/vhost")?,
            user: text("/registerConnector/config/connection/user")?,
            pass: Secret::new(text("/registerConnector/config/connection/pass")?),
            use_ssl,
            ca_pem: None,
        },
        target: PublishTarget {
            exchange: text("/registerConnector/config/push_exchange")?,
            routing_key: text("/registerConnector/config/push_routing")?,
        },
        push_queue: text("/registerConnector/config/push")?,
    })
}

/// pycti's local overrides of the broker connection data the platform advertises
/// (`MQ_HOST`, `MQ_PORT`, `MQ_VHOST`, `MQ_USE_SSL`, `MQ_USER`, `MQ_PASS`; `mq.*` in pycti's
/// config file), plus the CA it trusts for the broker (`MQ_USE_SSL_CA`: a PEM file path or
/// the PEM text itself). Unlike pycti, whose default skips the broker's certificate check
/// (`MQ_USE_SSL_REJECT_UNAUTHORIZED=false`), the certificate is always verified.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct BrokerOverrides {
    pub(crate) host: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) vhost: Option<String>,
    pub(crate) use_ssl: Option<bool>,
    pub(crate) user: Option<String>,
    pub(crate) pass: Option<Secret>,
    pub(crate) ca: Option<String>,
}

impl BrokerOverrides {
    /// Reads the `MQ_*` variables from the environment (empty values are ignored).
    pub(crate) fn from_env() -> Result<Self, OpenCtiError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Same as [`BrokerOverrides::from_env`] over any variable source.
    pub(crate) fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, OpenCtiError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let port = match get("MQ_PORT") {
            Some(text) => Some(text.trim().parse::<u16>().map_err(|_| {
                OpenCtiError::Config(format!("MQ_PORT: {text:?} is not a port number"))
            })?),
            None => None,
        };
        let use_ssl = match get("MQ_USE_SSL") {
            Some(text) => Some(parse_bool(&text).ok_or_else(|| {
                OpenCtiError::Config(format!("MQ_USE_SSL: {text:?} is not a boolean"))
            })?),
            None => None,
        };
        Ok(BrokerOverrides {
            host: get("MQ_HOST"),
            port,
            vhost: get("MQ_VHOST"),
            use_ssl,
            user: get("MQ_USER"),
            pass: get("MQ_PASS").map(Secret::new),
            ca: get("MQ_USE_SSL_CA"),
        })
    }

    pub(crate) fn apply(&self, broker: &mut BrokerEndpoint) -> Result<(), OpenCtiError> {
        if let Some(host) = &self.host {
            broker.host = host.clone();
        }
        if let Some(port) = self.port {
            broker.port = port;
        }
        if let Some(vhost) = &self.vhost {
            broker.vhost = vhost.clone();
        }
        if let Some(use_ssl) = self.use_ssl {
            broker.use_ssl = use_ssl;
        }
        if let Some(user) = &self.user {
            broker.user = user.clone();
        }
        if let Some(pass) = &self.pass {
            broker.pass = pass.clone();
        }
        if let Some(ca) = &self.ca {
            let pem = if ca.contains("-----BEGIN") {
                ca.clone()
            } else {
                std::fs::read_to_string(ca)
                    .map_err(|e| OpenCtiError::Config(format!("MQ_USE_SSL_CA {ca}: {e}")))?
            };
            broker.ca_pem = Some(pem);
        }
        Ok(())
    }
}

/// pycti's boolean spelling for config values.
fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Some(true),
        "false" | "no" | "0" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_overrides_replace_the_advertised_connection() {
        let variables = [
            ("MQ_HOST", "mq.internal"),
            ("MQ_PORT", "5671"),
            ("MQ_USE_SSL", "true"),
            ("MQ_PASS", "pw"),
            ("MQ_VHOST", ""),
            (
                "MQ_USE_SSL_CA",
                "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
            ),
        ];
        let lookup = |name: &str| {
            variables
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        };
        let overrides = BrokerOverrides::from_lookup(lookup).unwrap();
        let mut broker = BrokerEndpoint {
            host: "rabbitmq".into(),
            port: 5672,
            vhost: "/".into(),
            user: "guest".into(),
            pass: Secret::new("guest"),
            use_ssl: false,
            ca_pem: None,
        };
        overrides.apply(&mut broker).unwrap();
        assert_eq!(broker.host, "mq.internal");
        assert_eq!(broker.port, 5671);
        assert!(broker.use_ssl);
        assert_eq!(broker.vhost, "/", "empty values do not override");
        assert_eq!(broker.user, "guest");
        assert_eq!(broker.pass.expose(), "pw");
        assert!(
            broker
                .ca_pem
                .as_deref()
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );

        let bad_port =
            BrokerOverrides::from_lookup(|name| (name == "MQ_PORT").then(|| "99999".to_string()));
        assert!(bad_port.unwrap_err().to_string().contains("MQ_PORT"));
        let missing_ca = BrokerOverrides {
            ca: Some("/nonexistent/ca.pem".into()),
            ..BrokerOverrides::default()
        };
        let error = missing_ca.apply(&mut broker).unwrap_err().to_string();
        assert!(
            error.contains("MQ_USE_SSL_CA /nonexistent/ca.pem"),
            "{error}"
        );
    }

    #[test]
    fn registration_is_read_from_the_transcript_answer() {
        let data = json!({"registerConnector": {
            "id": "c1", "connector_state": "", "jwks": "{}",
            "config": {"connection": {"host": "h", "vhost": "/", "use_ssl": true, "port": 5671,
                                      "user": "u", "pass": "p"},
                       "push": "push_c1", "push_routing": "push_routing_c1",
                       "push_exchange": "amqp.worker.exchange"},
            "connector_user_id": "user-1"}});
        let registration = parse_registration(&data).unwrap();
        assert_eq!(registration.connector_state.as_deref(), Some(""));
        assert_eq!(registration.applicant_id, "user-1");
        assert!(registration.broker.use_ssl);
        assert_eq!(registration.broker.port, 5671);
        assert_eq!(registration.target.routing_key, "push_routing_c1");
        assert!(!format!("{registration:?}").contains("\"p\""));
    }
}
