//! The GraphQL side of the connector protocol: one `POST {url}/graphql` per operation, with
//! the query texts, variables and headers pycti 7.261026.0 sends (see the transcripts in
//! `tests/fixtures/opencti/`). Query texts keep pycti's tokens exactly (including its odd
//! spacing such as `toProcessed (message:` and `ConnectorInfoInput )`); only indentation differs.

use std::time::Duration;

use reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT,
};
use serde_json::{Map, Value, json};

use crate::config::OpenCtiSettings;
use crate::secret::Secret;

/// pycti identifies itself this way; the platform and proxies in front of it see the same
/// client as with the Python connector.
pub(crate) const PYCTI_USER_AGENT: &str = "pycti/7.261026.0";

/// pycti's session timeout for every GraphQL request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

pub(crate) const HEALTH_CHECK: &str = "query healthCheck {
  about {
    version
  }
}";

pub const REGISTER_CONNECTOR: &str = "mutation RegisterConnector($input: RegisterConnectorInput) {
  registerConnector(input: $input) {
    id
    connector_state
    jwks
    config {
      connection {
        host
        vhost
        use_ssl
        port
        user
        pass
      }
      s3 {
        endpoint
        port
        use_ssl
        bucket_name
        bucket_region
        access_key
        secret_key
      }
      listen
      listen_routing
      listen_exchange
      push
      push_routing
      push_exchange
    }
    connector_user_id
  }
}";

pub(crate) const PING_CONNECTOR: &str =
    "mutation PingConnector($id: ID!, $state: String, $connectorInfo: ConnectorInfoInput ) {
  pingConnector(id: $id, state: $state, connectorInfo: $connectorInfo) {
    id
    connector_state
    connector_info {
      run_and_terminate
      buffering
      queue_threshold
      queue_messages_size
      next_run_datetime
      last_run_datetime
    }
  }
}";

pub(crate) const WORK_ADD: &str = "mutation workAdd($connectorId: String!, $friendlyName: String, $isMultiPartWork: Boolean) {
  workAdd(connectorId: $connectorId, friendlyName: $friendlyName, isMultiPartWork: $isMultiPartWork) {
    id
  }
}";

pub(crate) const ADD_EXPECTATIONS: &str = "mutation addExpectations($id: ID!, $expectations: Int) {
  workEdit(id: $id) {
    addExpectations(expectations: $expectations)
  }
}";

pub(crate) const WORK_TO_PROCESSED: &str =
    "mutation workToProcessed($id: ID!, $message: String, $inError: Boolean) {
  workEdit(id: $id) {
    toProcessed (message: $message, inError: $inError)
  }
}";

/// pycti's `connector.read`, used by its buffering check for the queue size.
pub(crate) const GET_CONNECTOR: &str = "query GetConnector($id: String!) {
  connector(id: $id) {
    id
    name
    active
    auto
    only_contextual
    connector_type
    connector_scope
    connector_state
    connector_queue_details {
      messages_number
      messages_size
    }
    updated_at
    created_at
    config {
      listen
      listen_exchange
      push
      push_exchange
      push_routing
    }
    built_in
  }
}";

/// pycti's `stix_domain_object.list` with a narrow selection: the threat guesser only reads
/// `entity_type` and `name` of the first match, so the full property set is not requested.
pub(crate) const STIX_DOMAIN_OBJECTS: &str = "query StixDomainObjects($types: [String], $filters: FilterGroup, $search: String, $first: Int, $after: ID, $orderBy: StixDomainObjectsOrdering, $orderMode: OrderingMode) {
  stixDomainObjects(types: $types, filters: $filters, search: $search, first: $first, after: $after, orderBy: $orderBy, orderMode: $orderMode) {
    edges {
      node {
        id
        standard_id
        entity_type
        parent_types
        ... on AttackPattern {
          name
          x_mitre_id
        }
        ... on IntrusionSet {
          name
        }
        ... on Malware {
          name
        }
        ... on Tool {
          name
        }
      }
    }
    pageInfo {
      startCursor
      endCursor
      hasNextPage
      hasPreviousPage
      globalCount
    }
  }
}";

/// A failed GraphQL call, classified as pycti classifies it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request never got an HTTP answer (DNS, TCP, TLS, timeout).
    #[error("{operation}: cannot reach {url}: {reason}")]
    Unreachable {
        operation: &'static str,
        url: String,
        reason: String,
    },
    /// Any non-200 answer; pycti raises with the body text.
    #[error("{operation}: HTTP {status}: {body}")]
    Http {
        operation: &'static str,
        status: u16,
        body: String,
    },
    /// HTTP 200 with an `errors` array; `name` is `errors[0].name`, else
    /// `errors[0].extensions.code`, else the message (pycti's order).
    #[error("{operation}: {name}: {message}")]
    Graphql {
        operation: &'static str,
        name: String,
        message: String,
    },
    /// An answer without the expected `data` shape.
    #[error("{operation}: unexpected answer: {reason}")]
    Decode {
        operation: &'static str,
        reason: String,
    },
    /// The client could not be built (bad CA file, bad header).
    #[error("OpenCTI client configuration: {0}")]
    Config(String),
}

impl ApiError {
    /// The platform's error name, when it gave one (e.g. `WORK_NOT_ALIVE`).
    pub(crate) fn graphql_name(&self) -> Option<&str> {
        match self {
            ApiError::Graphql { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// Keep error bodies short in logs: the platform may answer with a whole HTML page.
fn truncate_for_error(text: &str) -> String {
    const LIMIT: usize = 500;
    if text.len() <= LIMIT {
        return text.to_string();
    }
    let mut end = LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// One keep-alive HTTP session to `{url}/graphql`, authenticated by the connector token.
#[derive(Clone)]
pub struct GraphqlClient {
    http: reqwest::Client,
    endpoint: String,
}

impl std::fmt::Debug for GraphqlClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphqlClient")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl GraphqlClient {
    /// Builds the client from `OPENCTI_URL`, `OPENCTI_TOKEN`, `OPENCTI_SSL_VERIFY`,
    /// `OPENCTI_CA_FILE` and `OPENCTI_CUSTOM_HEADERS`.
    pub(crate) fn new(settings: &OpenCtiSettings) -> Result<Self, ApiError> {
        let url = settings
            .url
            .as_deref()
            .filter(|url| !url.trim().is_empty())
            .ok_or_else(|| ApiError::Config("OPENCTI_URL is not set".into()))?;
        let token = settings
            .token
            .as_ref()
            .filter(|token| !token.is_empty())
            .ok_or_else(|| ApiError::Config("OPENCTI_TOKEN is not set".into()))?;
        let headers = default_headers(token, &settings.custom_headers)?;
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(REQUEST_TIMEOUT)
            .danger_accept_invalid_certs(!settings.ssl_verify);
        if let Some(ca_file) = &settings.ca_file {
            let pem = std::fs::read(ca_file).map_err(|e| {
                ApiError::Config(format!("OPENCTI_CA_FILE {}: {e}", ca_file.display()))
            })?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ApiError::Config(format!("OPENCTI_CA_FILE {}: {e}", ca_file.display()))
            })?;
            if certificates.is_empty() {
                return Err(ApiError::Config(format!(
                    "OPENCTI_CA_FILE {}: no PEM certificate found",
                    ca_file.display()
                )));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder
            .build()
            .map_err(|e| ApiError::Config(format!("HTTP client: {e}")))?;
        Ok(GraphqlClient {
            http,
            endpoint: format!("{}/graphql", url.trim_end_matches('/')),
        })
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends `{"query", "variables"}` (exactly these members, as pycti) and returns `data`.
    pub async fn execute(
        &self,
        operation: &'static str,
        query: &str,
        variables: Value,
    ) -> Result<Value, ApiError> {
        let body = json!({ "query": query, "variables": variables });
        let response = self
            .http
            .post(&self.endpoint)
            .json(&body)
            .send()
            .await
            .map_err(|e| ApiError::Unreachable {
                operation,
                url: self.endpoint.clone(),
                reason: describe_reqwest_error(&e),
            })?;
        let status = response.status();
        let text = response.text().await.map_err(|e| ApiError::Unreachable {
            operation,
            url: self.endpoint.clone(),
            reason: describe_reqwest_error(&e),
        })?;
        if status != reqwest::StatusCode::OK {
            return Err(ApiError::Http {
                operation,
                status: status.as_u16(),
                body: truncate_for_error(&text),
            });
        }
        let mut answer: Value = serde_json::from_str(&text).map_err(|e| ApiError::Decode {
            operation,
            reason: format!("invalid JSON ({e})"),
        })?;
        if let Some(first) = answer
            .get("errors")
            .and_then(Value::as_array)
            .and_then(|errors| errors.first())
        {
            let message = first
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("(no message)")
                .to_string();
            let name = first
                .get("name")
                .and_then(Value::as_str)
                .filter(|name| !name.is_empty())
                .or_else(|| {
                    first
                        .pointer("/extensions/code")
                        .and_then(Value::as_str)
                        .filter(|code| !code.is_empty())
                })
                .unwrap_or(&message)
                .to_string();
            return Err(ApiError::Graphql {
                operation,
                name,
                message,
            });
        }
        match answer.get_mut("data") {
            Some(data) if !data.is_null() => Ok(data.take()),
            _ => Err(ApiError::Decode {
                operation,
                reason: "no `data` member".into(),
            }),
        }
    }
}

/// reqwest's Display omits the cause chain ("error sending request"); the cause is what tells
/// an operator whether it was DNS, a refused connection or a certificate.
fn describe_reqwest_error(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn default_headers(token: &Secret, custom: &[(String, Secret)]) -> Result<HeaderMap, ApiError> {
    let mut headers = HeaderMap::new();
    headers.insert(USER_AGENT, HeaderValue::from_static(PYCTI_USER_AGENT));
    let mut authorization =
        HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
            ApiError::Config("OPENCTI_TOKEN holds characters not allowed in a header".into())
        })?;
    authorization.set_sensitive(true);
    headers.insert(AUTHORIZATION, authorization);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in custom {
        let header_name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
            ApiError::Config(format!(
                "OPENCTI_CUSTOM_HEADERS: invalid header name {name:?}"
            ))
        })?;
        let mut header_value = HeaderValue::from_str(value.expose().trim()).map_err(|_| {
            ApiError::Config(format!(
                "OPENCTI_CUSTOM_HEADERS: invalid value for header {name:?}"
            ))
        })?;
        header_value.set_sensitive(true);
        headers.insert(header_name, header_value);
    }
    Ok(headers)
}

/// `data.<field>` of an answer, or a decode error naming the field.
pub(crate) fn field<'a>(
    data: &'a Value,
    operation: &'static str,
    path: &str,
) -> Result<&'a Value, ApiError> {
    data.pointer(path).ok_or_else(|| ApiError::Decode {
        operation,
        reason: format!("missing {path}"),
    })
}

/// `data.<field>` as a string.
pub(crate) fn string_field(
    data: &Value,
    operation: &'static str,
    path: &str,
) -> Result<String, ApiError> {
    field(data, operation, path)?
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| ApiError::Decode {
            operation,
            reason: format!("{path} is not a string"),
        })
}

/// An object of variables from ordered pairs (member order is kept on the wire).
pub(crate) fn variables<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    let mut map = Map::new();
    for (key, value) in pairs {
        map.insert(key.to_string(), value);
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_headers_and_token_are_marked_sensitive() {
        let headers = default_headers(
            &Secret::new("tok"),
            &[("X-Tenant".to_string(), Secret::new("blue"))],
        )
        .unwrap();
        assert!(headers[AUTHORIZATION].is_sensitive());
        assert_eq!(headers[AUTHORIZATION], "Bearer tok");
        assert_eq!(headers["x-tenant"], "blue");
        assert!(!format!("{headers:?}").contains("tok"));
    }

    #[test]
    fn invalid_custom_header_name_is_a_config_error() {
        let error = default_headers(
            &Secret::new("t"),
            &[("bad header".into(), Secret::new("v"))],
        )
        .unwrap_err();
        assert!(matches!(error, ApiError::Config(_)), "{error}");
    }

    #[test]
    fn long_error_bodies_are_cut_on_a_char_boundary() {
        let body = "é".repeat(400);
        let cut = truncate_for_error(&body);
        assert!(cut.ends_with('…'));
        assert!(cut.len() < body.len());
    }
}
