//! The RabbitMQ broker of this machine (127.0.0.1:5672, guest/guest): the topology the
//! platform declares, reading a push queue back, and stopping the broker on purpose.
//!
//! Every test of the binary runs in one process, and some tests stop the broker. So a test
//! reaches the broker only through a [`Broker`], which holds a claim on it for the test's
//! duration: shared by the tests that use the broker, held alone ([`BrokerAlone`]) by the
//! tests that stop it, so that none of those runs while another test uses the broker. The
//! claim is also taken on the machine (a `flock` on a file of the temporary folder), so that
//! the test runs of two checkouts on one machine do not stop the broker under each other.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use serde_json::Value;

use super::services;

pub const BROKER: &str = "127.0.0.1:5672";

/// This machine's broker as the connector's publisher reaches it (plain AMQP, guest).
pub fn endpoint() -> misp_feed::opencti::broker::BrokerEndpoint {
    misp_feed::opencti::broker::BrokerEndpoint {
        host: "127.0.0.1".into(),
        port: 5672,
        vhost: "/".into(),
        user: "guest".into(),
        pass: misp_feed::secret::Secret::new("guest"),
        use_ssl: false,
        ca_pem: None,
    }
}

static CLAIM: RwLock<()> = RwLock::new(());

enum Claim {
    Shared {
        _process: RwLockReadGuard<'static, ()>,
        _machine: File,
    },
    Alone {
        _process: RwLockWriteGuard<'static, ()>,
        _machine: File,
    },
}

impl Claim {
    fn shared() -> Claim {
        Claim::Shared {
            // A test that panicked holding the claim has already started the broker again.
            _process: CLAIM.read().unwrap_or_else(PoisonError::into_inner),
            _machine: machine_lock(libc::LOCK_SH),
        }
    }

    fn alone() -> Claim {
        Claim::Alone {
            _process: CLAIM.write().unwrap_or_else(PoisonError::into_inner),
            _machine: machine_lock(libc::LOCK_EX),
        }
    }
}

/// The machine-wide lock, held until the file is closed.
fn machine_lock(operation: libc::c_int) -> File {
    let path = std::env::temp_dir().join("misp-feed-tests-rabbitmq.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap();
    // SAFETY: flock(2) on a descriptor this function owns and returns open.
    let locked = unsafe { libc::flock(file.as_raw_fd(), operation) };
    assert_eq!(
        locked,
        0,
        "flock {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    file
}

/// The broker, claimed for one test.
pub struct Broker {
    _claim: Claim,
}

impl Broker {
    /// The broker, shared with the other tests that use it (waits while a test holds it
    /// alone); `None` when there is none, as [`services::require`] decides.
    pub fn shared(test: &str) -> Option<Broker> {
        let claim = Claim::shared();
        services::require(test, reachable())?;
        Some(Broker { _claim: claim })
    }

    pub async fn connection(&self) -> lapin::Connection {
        connect().await.unwrap()
    }

    /// Declares what the platform asserts on registration: the durable direct exchange
    /// `amqp.worker.exchange`, the durable classic queue `push_<id>` and its binding with
    /// `push_routing_<id>`. Purges the queue.
    pub async fn declare_push_queue(&self, connector_id: &str) {
        use lapin::options::{
            ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueuePurgeOptions,
        };
        use lapin::types::{AMQPValue, FieldTable, ShortString};
        let connection = self.connection().await;
        let channel = connection.create_channel().await.unwrap();
        channel
            .exchange_declare(
                "amqp.worker.exchange",
                lapin::ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let mut arguments = FieldTable::default();
        arguments.insert(
            ShortString::from("name"),
            AMQPValue::LongString("MISP Feed".into()),
        );
        arguments.insert(
            ShortString::from("x-queue-type"),
            AMQPValue::LongString("classic".into()),
        );
        let queue = format!("push_{connector_id}");
        channel
            .queue_declare(
                &queue,
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                arguments,
            )
            .await
            .unwrap();
        channel
            .queue_bind(
                &queue,
                "amqp.worker.exchange",
                &format!("push_routing_{connector_id}"),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_purge(&queue, QueuePurgeOptions::default())
            .await
            .unwrap();
        connection.close(200, "ok").await.unwrap();
    }

    /// Drains `push_<id>` (acks everything) and deletes the queue.
    pub async fn drain_push_queue(&self, connector_id: &str) -> Vec<QueuedMessage> {
        use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeleteOptions};
        let connection = self.connection().await;
        let channel = connection.create_channel().await.unwrap();
        let queue = format!("push_{connector_id}");
        let mut messages = Vec::new();
        while let Some(message) = channel
            .basic_get(&queue, BasicGetOptions::default())
            .await
            .unwrap()
        {
            let delivery = message.delivery;
            channel
                .basic_ack(delivery.delivery_tag, BasicAckOptions::default())
                .await
                .unwrap();
            messages.push(QueuedMessage {
                exchange: delivery.exchange.to_string(),
                routing_key: delivery.routing_key.to_string(),
                properties: delivery.properties,
                body: delivery.data,
            });
        }
        channel
            .queue_delete(&queue, QueueDeleteOptions::default())
            .await
            .unwrap();
        connection.close(200, "ok").await.unwrap();
        messages
    }

    /// Drains `push_<id>` with a consumer (much faster than one `basic.get` per message), then
    /// deletes the queue. Stops once the queue has been empty for half a second.
    pub async fn drain_push_queue_fast(&self, connector_id: &str) -> Vec<Vec<u8>> {
        use futures::StreamExt;
        use lapin::options::{BasicConsumeOptions, BasicQosOptions, QueueDeleteOptions};
        use lapin::types::FieldTable;
        let connection = self.connection().await;
        let channel = connection.create_channel().await.unwrap();
        channel
            .basic_qos(1000, BasicQosOptions::default())
            .await
            .unwrap();
        let queue = format!("push_{connector_id}");
        let mut consumer = channel
            .basic_consume(
                &queue,
                "drain",
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let mut bodies = Vec::new();
        while let Ok(Some(delivery)) =
            tokio::time::timeout(std::time::Duration::from_millis(500), consumer.next()).await
        {
            bodies.push(delivery.unwrap().data);
        }
        channel
            .queue_delete(&queue, QueueDeleteOptions::default())
            .await
            .unwrap();
        connection.close(200, "ok").await.unwrap();
        bodies
    }

    /// The number of messages in `push_<id>`; `None` while the broker cannot answer.
    pub async fn queue_depth(&self, connector_id: &str) -> Option<u32> {
        use lapin::options::QueueDeclareOptions;
        use lapin::types::FieldTable;
        let connection = connect().await.ok()?;
        let depth = match connection.create_channel().await {
            Ok(channel) => channel
                .queue_declare(
                    &format!("push_{connector_id}"),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .ok()
                .map(|queue| queue.message_count()),
            Err(_) => None,
        };
        let _ = connection.close(200, "ok").await;
        depth
    }
}

/// Keeps the broker up (no test stops it) for a test that copes with its absence but, when
/// it is there, relies on its answers; gives no access to it.
pub struct KeepUp {
    _claim: Claim,
}

pub fn keep_up() -> KeepUp {
    KeepUp {
        _claim: Claim::shared(),
    }
}

/// The broker held alone by a test that stops it: waits until no other test uses it, and
/// keeps the others waiting until it is dropped. Dropping it starts the broker again,
/// whatever happened to the test (panics included).
pub struct BrokerAlone {
    broker: Broker,
}

impl BrokerAlone {
    /// `None` when there is no broker or no `rabbitmqctl` that reaches it, as
    /// [`services::require`] decides.
    pub fn claim(test: &str) -> Option<BrokerAlone> {
        let claim = Claim::alone();
        services::require(test, reachable())?;
        services::require(test, controllable())?;
        Some(BrokerAlone {
            broker: Broker { _claim: claim },
        })
    }

    /// Stops the RabbitMQ application (the node stays up); false if `rabbitmqctl` failed.
    pub fn stop(&self) -> bool {
        rabbitmqctl("stop_app")
    }

    /// Starts the RabbitMQ application and waits until it serves again.
    pub fn start(&self) -> bool {
        rabbitmqctl("start_app") && rabbitmqctl("await_startup")
    }
}

impl std::ops::Deref for BrokerAlone {
    type Target = Broker;

    fn deref(&self) -> &Broker {
        &self.broker
    }
}

impl Drop for BrokerAlone {
    fn drop(&mut self) {
        // Runs before the claim is released: the other tests find the broker up.
        self.start();
    }
}

async fn connect() -> Result<lapin::Connection, lapin::Error> {
    lapin::Connection::connect(
        &format!("amqp://guest:guest@{BROKER}/%2f"),
        lapin::ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio),
    )
    .await
}

fn reachable() -> Result<(), String> {
    std::net::TcpStream::connect_timeout(&BROKER.parse().unwrap(), Duration::from_secs(2))
        .map(drop)
        .map_err(|_| {
            format!("no RabbitMQ on {BROKER} (start one, e.g. .ci/run does, to run this test)")
        })
}

/// `rabbitmqctl` is installed and reaches the broker's node.
fn controllable() -> Result<(), String> {
    match std::process::Command::new("rabbitmqctl")
        .arg("await_startup")
        .output()
    {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!(
            "rabbitmqctl cannot reach the broker's node: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(error) => Err(format!("rabbitmqctl cannot be run: {error}")),
    }
}

/// A message read back from the push queue.
#[derive(Debug)]
pub struct QueuedMessage {
    pub exchange: String,
    pub routing_key: String,
    pub properties: lapin::BasicProperties,
    pub body: Vec<u8>,
}

/// The names of the reports carried by one AMQP message body (a report's name is its MISP
/// event's title), so a test can count how often each event was sent.
pub fn report_names(body: &[u8]) -> Vec<String> {
    message_objects(body)
        .iter()
        .filter(|o| o["type"] == "report")
        .filter_map(|o| o["name"].as_str().map(str::to_string))
        .collect()
}

/// The STIX objects of one AMQP message body (pycti's envelope around a base64 bundle);
/// empty for a body that is not one.
pub fn message_objects(body: &[u8]) -> Vec<Value> {
    use base64::Engine;
    let Ok(envelope) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let Some(content) = envelope["content"]
        .as_str()
        .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
    else {
        return Vec::new();
    };
    let Ok(mut bundle) = serde_json::from_slice::<Value>(&content) else {
        return Vec::new();
    };
    match bundle["objects"].take() {
        Value::Array(objects) => objects,
        _ => Vec::new(),
    }
}

/// Runs `rabbitmqctl <action>` on this machine's broker; false (with the reason on stderr)
/// if it cannot.
fn rabbitmqctl(action: &str) -> bool {
    match std::process::Command::new("rabbitmqctl")
        .arg(action)
        .output()
    {
        Ok(output) if output.status.success() => true,
        Ok(output) => {
            eprintln!(
                "rabbitmqctl {action} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            false
        }
        Err(error) => {
            eprintln!("rabbitmqctl {action}: {error}");
            false
        }
    }
}
