//! The platform's broker as `registerConnector` describes it: where it is, which exchange
//! and routing key the connector publishes to, and how a connection is opened (pycti's
//! heartbeat, TLS when `use_ssl`). The `check` probe and the sink's publisher both connect
//! through [`BrokerEndpoint::connect`].

use lapin::tcp::OwnedTLSConfig;
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{Connection, ConnectionProperties};

use crate::secret::Secret;

/// pycti's AMQP heartbeat on the publishing connection, in seconds.
const HEARTBEAT_SECONDS: u16 = 10;

/// Where the broker is: `config.connection` of the `registerConnector` answer.
#[derive(Debug, Clone)]
pub struct BrokerEndpoint {
    pub host: String,
    pub port: u16,
    pub vhost: String,
    pub user: String,
    pub pass: Secret,
    pub use_ssl: bool,
    /// Extra CA chain (PEM) trusted for the broker's certificate when `use_ssl`.
    pub ca_pem: Option<String>,
}

impl BrokerEndpoint {
    /// `amqp(s)://host:port/vhost`, without credentials: safe for logs and errors.
    pub(crate) fn display_address(&self) -> String {
        let scheme = if self.use_ssl { "amqps" } else { "amqp" };
        format!("{scheme}://{}:{}/{}", self.host, self.port, self.vhost)
    }

    fn uri(&self) -> AMQPUri {
        AMQPUri {
            scheme: if self.use_ssl {
                AMQPScheme::AMQPS
            } else {
                AMQPScheme::AMQP
            },
            authority: AMQPAuthority {
                userinfo: AMQPUserInfo {
                    username: self.user.clone(),
                    password: self.pass.expose().to_string(),
                },
                host: self.host.clone(),
                port: self.port,
            },
            vhost: self.vhost.clone(),
            query: AMQPQueryString {
                heartbeat: Some(HEARTBEAT_SECONDS),
                connection_timeout: Some(30_000),
                ..AMQPQueryString::default()
            },
        }
    }

    /// Opens a connection (the caller closes it). Errors never contain the password.
    pub(crate) async fn connect(&self) -> Result<Connection, BrokerError> {
        let properties = ConnectionProperties::default()
            .with_connection_name("misp-feed".into())
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio);
        let tls = OwnedTLSConfig {
            identity: None,
            cert_chain: self.ca_pem.clone(),
        };
        Connection::connect_uri_with_config(self.uri(), properties, tls)
            .await
            .map_err(|e| BrokerError::Connect {
                address: self.display_address(),
                reason: e.to_string(),
            })
    }
}

/// Exchange and routing key of the connector's push queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishTarget {
    pub exchange: String,
    pub routing_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot connect to {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error(
        "{confirmed} of {total} messages confirmed after {rounds} failed rounds; last error: {last_error}"
    )]
    Unconfirmed {
        confirmed: usize,
        total: usize,
        rounds: u32,
        last_error: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_address_has_no_credentials() {
        let endpoint = BrokerEndpoint {
            host: "mq".into(),
            port: 5671,
            vhost: "/".into(),
            user: "connector".into(),
            pass: Secret::new("s3cret"),
            use_ssl: true,
            ca_pem: None,
        };
        let shown = endpoint.display_address();
        assert_eq!(shown, "amqps://mq:5671//");
        assert!(!shown.contains("s3cret") && !shown.contains("connector"));
        let uri = endpoint.uri();
        assert_eq!(uri.scheme, AMQPScheme::AMQPS);
        assert_eq!(uri.query.heartbeat, Some(10));
    }
}
