//! Works: the platform's record of one run's import. pycti creates one per run
//! (`workAdd`), announces each bundle's messages to it (`addExpectations`) and closes it
//! (`workToProcessed`); the sink drives these calls, with the Python connector's names.

use chrono::Utc;
use serde_json::json;

use super::graphql::{
    ADD_EXPECTATIONS, ApiError, WORK_ADD, WORK_TO_PROCESSED, string_field, variables,
};
use super::{OpenCti, OpenCtiError};
use crate::pycompat::time::python_isoformat;

/// The Python connector's work name prefix (it does not use the configured name).
pub(crate) const WORK_NAME_PREFIX: &str = "MISP Feed run @ ";

impl OpenCti {
    /// `workAdd` for a run starting now, named as the Python connector names its works.
    /// Returns the work id.
    pub(crate) async fn add_run_work(&self) -> Result<String, OpenCtiError> {
        let friendly_name = format!("{WORK_NAME_PREFIX}{}", python_isoformat(&Utc::now()));
        self.work_add(&friendly_name).await
    }

    async fn work_add(&self, friendly_name: &str) -> Result<String, OpenCtiError> {
        let vars = variables([
            ("connectorId", json!(self.connector_id)),
            ("friendlyName", json!(friendly_name)),
            ("isMultiPartWork", json!(false)),
        ]);
        let data = self.client.execute("workAdd", WORK_ADD, vars).await?;
        Ok(string_field(&data, "workAdd", "/workAdd/id")?)
    }

    /// `addExpectations`: the work will receive `expectations` more messages.
    pub(crate) async fn add_expectations(
        &self,
        work_id: &str,
        expectations: usize,
    ) -> Result<(), ApiError> {
        let vars = variables([
            ("id", json!(work_id)),
            ("expectations", json!(expectations)),
        ]);
        self.client
            .execute("addExpectations", ADD_EXPECTATIONS, vars)
            .await
            .map(|_| ())
    }

    /// `workToProcessed`: closes the work with the run's closing message.
    pub(crate) async fn work_to_processed(
        &self,
        work_id: &str,
        message: &str,
        in_error: bool,
    ) -> Result<(), OpenCtiError> {
        let vars = variables([
            ("id", json!(work_id)),
            ("message", json!(message)),
            ("inError", json!(in_error)),
        ]);
        self.client
            .execute("workToProcessed", WORK_TO_PROCESSED, vars)
            .await?;
        Ok(())
    }
}
