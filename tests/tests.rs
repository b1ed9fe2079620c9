//! The integration tests: one test binary (`cargo test --test integration`), one module per
//! area, and the harness they share in `support/` (feed, S3 and OpenCTI fakes, RabbitMQ,
//! the runner for the `misp-feed` binary, and the gate for outside services).
//!
//! Every test of this binary runs in a thread of one process: a test that changes state the
//! whole process shares (the environment, the global logger or metrics registry) runs its
//! body in a child process, and tests that stop RabbitMQ hold the broker alone.

mod support;
mod telemetry_support;

mod config_docs;
mod config_env;
mod config_env_import;
mod config_scope;
mod connector_opencti;
mod convert_default;
mod convert_fuzz;
mod convert_input;
mod convert_parity;
mod convert_shapes;
mod delta_push;
mod engine_crash;
mod engine_http;
mod engine_options;
mod engine_s3;
mod engine_shapes;
mod hostile_input;
mod ids_vectors;
mod import_control;
mod ledger;
mod opencti_amqp;
mod opencti_broker_restart;
mod opencti_protocol;
mod opencti_splitter;
mod opencti_tls;
mod operator_experience;
mod packaging_image_run;
mod packaging_metadata;
mod packaging_samples;
mod pipeline_budget;
mod reliability_broker_outage;
mod reliability_outages;
mod reliability_secrets;
mod reliability_soak;
mod reliability_soak_delta;
mod source_http;
mod source_http_access;
mod source_http_proxy;
mod source_local;
mod source_s3;
mod telemetry_endpoint;
mod telemetry_global;
mod telemetry_logs;
mod telemetry_metrics;
mod trust_cli;
mod trust_manifest;
mod trust_platform;
mod trust_s3;
mod warninglists;
mod warninglists_import;
