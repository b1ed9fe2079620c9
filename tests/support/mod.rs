//! Test harness for the OpenCTI sink: a fake OpenCTI GraphQL endpoint that validates every
//! request against the real schema subset, and RabbitMQ helpers that set up the topology as
//! the platform does and read the push queue back.

pub mod feed_server;
pub mod s3_server;
pub mod workspace;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use apollo_compiler::executable::Selection;
use apollo_compiler::response::JsonMap;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Schema};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use misp_feed::config::{QueueProtocol, Settings};
use misp_feed::secret::Secret;
use serde_json::{Value, json};

pub const TOKEN: &str = "test-token-0f4c";
pub const APPLICANT_ID: &str = "88ec0c6a-13ce-5e39-b486-354fe4a7084f";
pub const PLATFORM_VERSION: &str = "7.261026.0";

pub fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

/// The schema the platform would validate against: the real subset, its stubs, and the
/// test-only threat search extension.
pub fn schema() -> Valid<Schema> {
    let read = |path: PathBuf| std::fs::read_to_string(&path).unwrap();
    Schema::builder()
        .adopt_orphan_extensions()
        .parse(
            read(fixture("opencti/connector-api.graphql")),
            "connector-api.graphql",
        )
        .parse(
            read(fixture("opencti/connector-api.stubs.graphql")),
            "connector-api.stubs.graphql",
        )
        .parse(
            read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/threat-search.graphql")),
            "threat-search.graphql",
        )
        .build()
        .unwrap()
        .validate()
        .unwrap()
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub operation_name: String,
    pub operation_type: String,
    pub root_fields: Vec<String>,
    pub body_keys: Vec<String>,
    pub query: String,
    pub variables: Value,
    pub headers: HashMap<String, String>,
    /// `None` when the request was valid; else the validation error the fake answered.
    pub rejected: Option<String>,
}

/// The platform-side data the fake keeps between requests.
#[derive(Debug)]
pub struct Platform {
    pub connector_state: Option<String>,
    pub reset_pending: bool,
    pub broker_port: u16,
    pub requests: Vec<Recorded>,
    pub works: Vec<String>,
    /// `messages_size` values (bytes) the next `GetConnector` calls answer, the last repeated.
    pub queue_sizes: Vec<f64>,
    /// Tag value -> nodes answered by `stixDomainObjects`.
    pub threats: HashMap<String, Vec<Value>>,
    pub pushed_bundles: Vec<String>,
    /// When set, every `addExpectations` answers this GraphQL error name.
    pub expectations_error: Option<String>,
    /// While set, every request is answered as a platform behind a failing proxy would.
    pub api_outage: Option<ApiOutage>,
    /// Requests answered with the outage.
    pub outage_answers: usize,
}

/// How the API fails while [`Platform::api_outage`] is set.
#[derive(Debug, Clone, Copy)]
pub enum ApiOutage {
    /// `502 Bad Gateway` at once.
    BadGateway,
    /// No answer for this long, then `504 Gateway Timeout` (a proxy giving up on the platform).
    GatewayTimeout(std::time::Duration),
}

pub struct FakeOpenCti {
    pub url: String,
    pub platform: Arc<Mutex<Platform>>,
}

struct Shared {
    schema: Valid<Schema>,
    platform: Arc<Mutex<Platform>>,
}

impl FakeOpenCti {
    pub async fn start(initial_state: Option<&str>) -> Self {
        let platform = Arc::new(Mutex::new(Platform {
            connector_state: initial_state.map(str::to_string),
            reset_pending: false,
            broker_port: 5672,
            requests: Vec::new(),
            works: Vec::new(),
            queue_sizes: vec![0.0],
            threats: HashMap::new(),
            pushed_bundles: Vec::new(),
            expectations_error: None,
            api_outage: None,
            outage_answers: 0,
        }));
        let shared = Arc::new(Shared {
            schema: schema(),
            platform: platform.clone(),
        });
        let app = Router::new()
            .route("/graphql", post(graphql))
            .layer(DefaultBodyLimit::max(256 * 1024 * 1024))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeOpenCti {
            url: format!("http://{address}"),
            platform,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.platform.lock().unwrap().requests.clone()
    }

    pub fn operation_names(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .map(|r| r.operation_name)
            .collect()
    }

    /// What "reset state" in the UI does: stored state `""` and the reset flag.
    pub fn reset_state(&self) {
        let mut platform = self.platform.lock().unwrap();
        platform.connector_state = Some(String::new());
        platform.reset_pending = true;
    }

    pub fn stored_state(&self) -> Option<String> {
        self.platform.lock().unwrap().connector_state.clone()
    }
}

fn graphql_error(status: StatusCode, name: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"errors": [{"message": message, "name": name,
                                 "extensions": {"code": name}}]})),
    )
        .into_response()
}

async fn graphql(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let outage = {
        let mut platform = shared.platform.lock().unwrap();
        if platform.api_outage.is_some() {
            platform.outage_answers += 1;
        }
        platform.api_outage
    };
    match outage {
        Some(ApiOutage::BadGateway) => {
            return (StatusCode::BAD_GATEWAY, "<html>502 Bad Gateway</html>").into_response();
        }
        Some(ApiOutage::GatewayTimeout(wait)) => {
            tokio::time::sleep(wait).await;
            return (
                StatusCode::GATEWAY_TIMEOUT,
                "<html>504 Gateway Time-out</html>",
            )
                .into_response();
        }
        None => {}
    }
    let header_map: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(e) => return graphql_error(StatusCode::BAD_REQUEST, "BAD_REQUEST", &e.to_string()),
    };
    let body_keys: Vec<String> = body
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let query = body["query"].as_str().unwrap_or("").to_string();
    let variables = body.get("variables").cloned().unwrap_or(Value::Null);
    let mut recorded = Recorded {
        operation_name: String::new(),
        operation_type: String::new(),
        root_fields: Vec::new(),
        body_keys,
        query: query.clone(),
        variables: variables.clone(),
        headers: header_map.clone(),
        rejected: None,
    };

    // Validation as the platform's GraphQL server does it: document, then variables.
    let validated = (|| -> Result<(), String> {
        let document =
            ExecutableDocument::parse_and_validate(&shared.schema, &query, "request.graphql")
                .map_err(|e| e.errors.to_string())?;
        let operation = document
            .operations
            .get(None)
            .map_err(|e| format!("{e:?}"))?;
        recorded.operation_name = operation
            .name
            .as_ref()
            .map(|n| n.to_string())
            .unwrap_or_default();
        recorded.operation_type = match operation.operation_type {
            apollo_compiler::executable::OperationType::Query => "query".into(),
            apollo_compiler::executable::OperationType::Mutation => "mutation".into(),
            apollo_compiler::executable::OperationType::Subscription => "subscription".into(),
        };
        recorded.root_fields = operation
            .selection_set
            .selections
            .iter()
            .filter_map(|s| match s {
                Selection::Field(f) => Some(f.name.to_string()),
                _ => None,
            })
            .collect();
        let values: JsonMap = serde_json::from_value(if variables.is_null() {
            json!({})
        } else {
            variables.clone()
        })
        .map_err(|e| format!("variables: {e}"))?;
        apollo_compiler::request::coerce_variable_values(&shared.schema, operation, &values)
            .map_err(|e| format!("variables: {e:?}"))?;
        Ok(())
    })();
    if let Err(reason) = validated {
        recorded.rejected = Some(reason.clone());
        shared.platform.lock().unwrap().requests.push(recorded);
        return graphql_error(
            StatusCode::BAD_REQUEST,
            "GRAPHQL_VALIDATION_FAILED",
            &reason,
        );
    }
    let authorized =
        header_map.get("authorization").map(String::as_str) == Some(&*format!("Bearer {TOKEN}"));
    let operation_name = recorded.operation_name.clone();
    let mut platform = shared.platform.lock().unwrap();
    platform.requests.push(recorded);
    if !authorized {
        return graphql_error(
            StatusCode::OK,
            "AUTH_REQUIRED",
            "You must be logged in to do this.",
        );
    }
    let var = |name: &str| variables.get(name).cloned().unwrap_or(Value::Null);
    let data = match operation_name.as_str() {
        "healthCheck" => json!({"about": {"version": PLATFORM_VERSION}}),
        "RegisterConnector" => {
            let id = var("input")["id"].as_str().unwrap_or_default().to_string();
            json!({"registerConnector": {
                "id": id,
                "connector_state": platform.connector_state,
                "jwks": "{\"keys\": []}",
                "config": {
                    "connection": {"host": "127.0.0.1", "vhost": "/", "use_ssl": false,
                                   "port": platform.broker_port, "user": "guest", "pass": "guest"},
                    "s3": {"endpoint": "127.0.0.1", "port": 9000, "use_ssl": false,
                           "bucket_name": "opencti-bucket", "bucket_region": "us-east-1",
                           "access_key": "a", "secret_key": "s"},
                    "listen": format!("listen_{id}"),
                    "listen_routing": format!("listen_routing_{id}"),
                    "listen_exchange": "amqp.connector.exchange",
                    "push": format!("push_{id}"),
                    "push_routing": format!("push_routing_{id}"),
                    "push_exchange": "amqp.worker.exchange"
                },
                "connector_user_id": APPLICANT_ID
            }})
        }
        "PingConnector" => {
            if platform.reset_pending {
                platform.reset_pending = false;
            } else {
                platform.connector_state = var("state").as_str().map(str::to_string);
            }
            json!({"pingConnector": {
                "id": var("id"),
                "connector_state": platform.connector_state,
                "connector_info": var("connectorInfo"),
            }})
        }
        "workAdd" => {
            let work_id = format!(
                "work_{}_{}",
                var("connectorId").as_str().unwrap_or_default(),
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            );
            platform.works.push(work_id.clone());
            json!({"workAdd": {"id": work_id}})
        }
        "addExpectations" => {
            if let Some(name) = platform.expectations_error.clone() {
                return graphql_error(StatusCode::OK, &name, "work is gone");
            }
            json!({"workEdit": {"addExpectations": var("id")}})
        }
        "workToProcessed" => json!({"workEdit": {"toProcessed": var("id")}}),
        "StixBundlePush" => {
            platform
                .pushed_bundles
                .push(var("bundle").as_str().unwrap_or_default().to_string());
            json!({"stixBundlePush": true})
        }
        "GetConnector" => {
            let size = if platform.queue_sizes.len() > 1 {
                platform.queue_sizes.remove(0)
            } else {
                platform.queue_sizes.first().copied().unwrap_or(0.0)
            };
            json!({"connector": {
                "id": var("id"), "name": "MISP Feed", "active": true, "auto": false,
                "only_contextual": false, "connector_type": "EXTERNAL_IMPORT",
                "connector_scope": ["misp-feed"], "connector_state": platform.connector_state,
                "connector_queue_details": {"messages_number": 10.0, "messages_size": size},
                "updated_at": null, "created_at": null,
                "config": {"listen": "l", "listen_exchange": "e", "push": "p",
                           "push_exchange": "amqp.worker.exchange", "push_routing": "r"},
                "built_in": false
            }})
        }
        "StixDomainObjects" => {
            let value = var("filters")["filters"][0]["values"][0]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let nodes = platform.threats.get(&value).cloned().unwrap_or_default();
            let edges: Vec<Value> = nodes
                .into_iter()
                .map(|n| json!({"cursor": "c", "node": n}))
                .collect();
            json!({"stixDomainObjects": {"edges": edges, "pageInfo": {
                "startCursor": "", "endCursor": "", "hasNextPage": false,
                "hasPreviousPage": false, "globalCount": 0}}})
        }
        other => {
            return graphql_error(
                StatusCode::OK,
                "UNSUPPORTED",
                &format!("fake has no answer for {other}"),
            );
        }
    };
    Json(json!({"data": data})).into_response()
}

/// Settings pointing at the fake, as the transcripts' connector was configured.
pub fn settings(url: &str, connector_id: &str, protocol: QueueProtocol) -> Settings {
    let mut settings = Settings::default();
    settings.opencti.url = Some(url.to_string());
    settings.opencti.token = Some(Secret::new(TOKEN));
    settings.connector.id = Some(connector_id.to_string());
    settings.connector.name = "MISP Feed".into();
    settings.connector.queue_protocol = protocol;
    settings
}

/// pycti's query texts differ from ours only in indentation.
pub fn normalize_query(query: &str) -> String {
    query.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A transcript of a real pycti run.
pub fn transcript(name: &str) -> Vec<Value> {
    std::fs::read_to_string(fixture(&format!("opencti/{name}")))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn sorted_keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

/// Asserts the fake saw the same requests as pycti sent: operation names and types, root
/// fields, body members, query text modulo whitespace, variable keys (and the keys of the
/// `input` / `connectorInfo` objects), and pycti's headers.
pub fn assert_matches_transcript(seen: &[Recorded], expected: &[Value]) {
    let seen_names: Vec<&str> = seen.iter().map(|r| r.operation_name.as_str()).collect();
    let expected_names: Vec<&str> = expected
        .iter()
        .map(|e| e["operationName"].as_str().unwrap())
        .collect();
    assert_eq!(seen_names, expected_names, "operation sequence");
    for (ours, theirs) in seen.iter().zip(expected) {
        let name = &ours.operation_name;
        assert_eq!(ours.rejected, None, "{name} rejected by the schema");
        assert_eq!(
            ours.operation_type,
            theirs["operationType"].as_str().unwrap(),
            "{name}"
        );
        let root: Vec<String> = serde_json::from_value(theirs["rootFields"].clone()).unwrap();
        assert_eq!(ours.root_fields, root, "{name} root fields");
        let body_keys: Vec<String> = serde_json::from_value(theirs["bodyKeys"].clone()).unwrap();
        assert_eq!(ours.body_keys, body_keys, "{name} body members");
        assert_eq!(
            normalize_query(&ours.query),
            normalize_query(theirs["query"].as_str().unwrap()),
            "{name} query text"
        );
        assert_eq!(
            sorted_keys(&ours.variables),
            sorted_keys(&theirs["variables"]),
            "{name} variables"
        );
        for nested in ["input", "connectorInfo"] {
            if let Some(expected_nested) = theirs["variables"].get(nested) {
                assert_eq!(
                    ours.variables[nested]
                        .as_object()
                        .map(|o| o.keys().cloned().collect::<Vec<_>>()),
                    expected_nested
                        .as_object()
                        .map(|o| o.keys().cloned().collect::<Vec<_>>()),
                    "{name} {nested} members and order"
                );
            }
        }
        let headers = &theirs["headers"];
        assert_eq!(
            ours.headers.get("user-agent").map(String::as_str),
            headers["User-Agent"].as_str(),
            "{name}"
        );
        assert_eq!(
            ours.headers.get("content-type").map(String::as_str),
            headers["Content-Type"].as_str(),
            "{name}"
        );
        assert_eq!(
            ours.headers.get("authorization").cloned(),
            Some(format!("Bearer {TOKEN}")),
            "{name}"
        );
        assert!(!ours.headers.contains_key("opencti-applicant-id"), "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// RabbitMQ
// ---------------------------------------------------------------------------------------

pub const BROKER: &str = "127.0.0.1:5672";

/// True when a broker listens on 127.0.0.1:5672; otherwise prints why the test is skipped.
pub fn broker_available(test: &str) -> bool {
    let reachable = std::net::TcpStream::connect_timeout(
        &BROKER.parse().unwrap(),
        std::time::Duration::from_secs(2),
    )
    .is_ok();
    if !reachable {
        // CI starts a broker and sets this: there a missing broker is a failure, not a skip.
        assert!(
            std::env::var_os("MISP_FEED_REQUIRE_BROKER").is_none(),
            "{test}: no RabbitMQ on {BROKER} and MISP_FEED_REQUIRE_BROKER is set"
        );
        eprintln!(
            "SKIPPED {test}: no RabbitMQ on {BROKER} (start one, e.g. .ci/run does, to run this test)"
        );
    }
    reachable
}

pub async fn broker_connection() -> lapin::Connection {
    lapin::Connection::connect(
        &format!("amqp://guest:guest@{BROKER}/%2f"),
        lapin::ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio),
    )
    .await
    .unwrap()
}

/// Declares what the platform asserts on registration: the durable direct exchange
/// `amqp.worker.exchange`, the durable classic queue `push_<id>` and its binding with
/// `push_routing_<id>`. Purges the queue.
pub async fn declare_push_queue(connector_id: &str) {
    use lapin::options::{
        ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueuePurgeOptions,
    };
    use lapin::types::{AMQPValue, FieldTable, ShortString};
    let connection = broker_connection().await;
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

/// A message read back from the push queue.
#[derive(Debug)]
pub struct QueuedMessage {
    pub exchange: String,
    pub routing_key: String,
    pub properties: lapin::BasicProperties,
    pub body: Vec<u8>,
}

/// Drains `push_<id>` (acks everything) and deletes the queue.
pub async fn drain_push_queue(connector_id: &str) -> Vec<QueuedMessage> {
    use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeleteOptions};
    let connection = broker_connection().await;
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

pub fn unique_connector_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Checks one message read back from the push queue against the recorded pycti message at
/// the same position: exchange, routing key, AMQP properties, body length and member order,
/// envelope members, work id, and the split bundle's object, `nb_deps` and sequence number.
/// Returns the body text and the decoded split bundle for stricter checks.
pub fn check_message_against_recording(
    position: usize,
    ours: &QueuedMessage,
    theirs: &Value,
    connector_id: &str,
    work_id: &str,
) -> (String, Vec<u8>) {
    use base64::Engine;
    assert_eq!(ours.exchange, theirs["exchange"].as_str().unwrap());
    assert_eq!(ours.routing_key, format!("push_routing_{connector_id}"));
    let properties = &ours.properties;
    assert_eq!(properties.delivery_mode(), &Some(2), "message {position}");
    assert_eq!(
        properties.content_encoding().as_ref().map(|s| s.as_str()),
        Some("utf-8")
    );
    assert_eq!(properties.content_type(), &None);
    assert!(properties.headers().is_none());
    assert!(properties.message_id().is_none() && properties.timestamp().is_none());
    assert!(properties.priority().is_none() && properties.expiration().is_none());
    assert!(properties.app_id().is_none() && properties.kind().is_none());

    let body = std::str::from_utf8(&ours.body).unwrap().to_string();
    let envelope: Value = serde_json::from_str(&body).unwrap();
    let keys: Vec<&str> = envelope
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected_keys: Vec<&str> = theirs["body_member_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(keys, expected_keys, "message {position}");
    let recorded_envelope = &theirs["envelope"];
    for member in [
        "bundle_type",
        "applicant_id",
        "action_sequence",
        "entities_types",
        "update",
        "draft_id",
        "no_split",
    ] {
        assert_eq!(
            envelope[member], recorded_envelope[member],
            "message {position} {member}"
        );
    }
    assert_eq!(envelope["work_id"], json!(work_id));
    let content = base64::engine::general_purpose::STANDARD
        .decode(envelope["content"].as_str().unwrap())
        .unwrap();
    let summary = &recorded_envelope["content"];
    let split: Value = serde_json::from_slice(&content).unwrap();
    assert_eq!(
        split["x_opencti_seq"], summary["x_opencti_seq"],
        "message {position}"
    );
    assert_eq!(
        split["objects"][0]["id"], summary["object_ids"][0],
        "message {position}"
    );
    assert_eq!(
        split["objects"][0]["nb_deps"], summary["nb_deps"][0],
        "message {position}"
    );
    (body, content)
}

impl FakeOpenCti {
    /// Starts (`Some`) or ends (`None`) an API outage.
    pub fn set_api_outage(&self, outage: Option<ApiOutage>) {
        self.platform.lock().unwrap().api_outage = outage;
    }

    /// The `message` of every `workToProcessed` call, in order.
    pub fn work_messages(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| r.operation_name == "workToProcessed")
            .map(|r| {
                r.variables["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }
}

/// Drains `push_<id>` with a consumer (much faster than one `basic.get` per message), then
/// deletes the queue. Stops once the queue has been empty for half a second.
pub async fn drain_push_queue_fast(connector_id: &str) -> Vec<Vec<u8>> {
    use futures::StreamExt;
    use lapin::options::{BasicConsumeOptions, BasicQosOptions, QueueDeleteOptions};
    use lapin::types::FieldTable;
    let connection = broker_connection().await;
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

/// The names of the reports carried by one AMQP message body (a report's name is its MISP
/// event's title), so a test can count how often each event was sent.
pub fn report_names(body: &[u8]) -> Vec<String> {
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
    let Ok(bundle) = serde_json::from_slice::<Value>(&content) else {
        return Vec::new();
    };
    bundle["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["type"] == "report")
        .filter_map(|o| o["name"].as_str().map(str::to_string))
        .collect()
}

/// Runs `rabbitmqctl <action>` on this machine's broker; false (with the reason on stderr)
/// if it cannot.
pub fn rabbitmqctl(action: &str) -> bool {
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

/// Starts the RabbitMQ app again whatever happens to the test (panics included); hold one
/// while the test stops the broker.
pub struct RestartGuard;

impl Drop for RestartGuard {
    fn drop(&mut self) {
        rabbitmqctl("start_app");
        rabbitmqctl("await_startup");
    }
}
