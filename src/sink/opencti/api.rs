//! `CONNECTOR_QUEUE_PROTOCOL=api`: the whole bundle goes to the platform in one
//! `stixBundlePush` call, and the platform splits it.

use serde_json::{Value, json};

use crate::opencti::graphql::{ApiError, variables};
use crate::opencti::{OpenCti, OpenCtiError};

pub(crate) const STIX_BUNDLE_PUSH: &str =
    "mutation StixBundlePush($connectorId: String!, $bundle: String!, $work_id: String) {
  stixBundlePush(connectorId: $connectorId, bundle: $bundle, work_id: $work_id)
}";

/// Sends one bundle under `work_id`; `Ok` only when the platform answers `true`.
pub(crate) async fn stix_bundle_push(
    opencti: &OpenCti,
    bundle: &str,
    work_id: &str,
) -> Result<(), OpenCtiError> {
    let vars = variables([
        ("connectorId", json!(opencti.connector_id())),
        ("bundle", json!(bundle)),
        ("work_id", json!(work_id)),
    ]);
    let data = opencti
        .client()
        .execute("StixBundlePush", STIX_BUNDLE_PUSH, vars)
        .await?;
    match data.get("stixBundlePush") {
        Some(Value::Bool(true)) => Ok(()),
        other => Err(OpenCtiError::Api(ApiError::Decode {
            operation: "StixBundlePush",
            reason: format!("the platform did not accept the bundle (answered {other:?})"),
        })),
    }
}
