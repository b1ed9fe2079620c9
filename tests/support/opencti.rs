//! A fake OpenCTI platform: the GraphQL endpoint a connector talks to, validating every
//! request against the real schema subset, keeping the connector's state, works and pushed
//! bundles, and able to fail as a platform behind a broken proxy does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::fixture;
use super::workspace::Workspace;
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

/// A workspace pushing to the fake platform, with the reference's `full` profile in compat mode.
pub fn platform_workspace(feed_url: &str, platform_url: &str, connector_id: &str) -> Workspace {
    let mut ws = Workspace::new(feed_url);
    for (key, value) in [
        ("OPENCTI_URL", platform_url),
        ("OPENCTI_TOKEN", TOKEN),
        ("CONNECTOR_ID", connector_id),
        ("CONNECTOR_NAME", "MISP Feed"),
        ("CONNECTOR_SEND_TO_QUEUE", "true"),
        ("CONNECTOR_SEND_TO_DIRECTORY", "false"),
        ("MISP_FEED_REFERENCE_COMPAT", "true"),
        ("MISP_FEED_CREATE_INDICATORS", "true"),
        ("MISP_FEED_CREATE_OBSERVABLES", "true"),
        ("MISP_FEED_CREATE_OBJECT_OBSERVABLES", "true"),
        ("MISP_FEED_AUTHOR_FROM_TAGS", "true"),
        ("MISP_FEED_MARKINGS_FROM_TAGS", "true"),
        ("MISP_FEED_IMPORT_TO_IDS_NO_SCORE", "40"),
        ("MISP_FEED_IMPORT_UNSUPPORTED_OBSERVABLES_AS_TEXT", "true"),
        ("MISP_FEED_IMPORT_WITH_ATTACHMENTS", "true"),
    ] {
        ws.set(key, value);
    }
    ws
}

/// A fresh connector id, so that each test has its own push queue and state.
pub fn unique_connector_id() -> String {
    uuid::Uuid::new_v4().to_string()
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
