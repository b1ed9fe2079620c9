//! misp-feed: bring MISP threat-intel feeds into OpenCTI.
//!
//! Data flows one way: `source` (where feed files come from) -> `reconciler` + `ledger`
//! (what must be fetched, skipped, retried) -> `convert` (MISP event to STIX 2.1 bundle)
//! -> `sink` (a bundle folder, or OpenCTI over RabbitMQ / the HTTP API). `opencti` is the
//! platform client (registration, state, works, threat search) the OpenCTI side relies on.
//! `pipeline` drives one run through those stages; `config` and `telemetry` serve them all,
//! and `pycompat` holds the Python behaviour the output must match byte for byte.
//! `warninglists` answers whether a value is on one of MISP's warninglists.

pub mod commands;
pub mod config;
pub(crate) mod connector;
pub mod convert;
pub(crate) mod cpu;
pub mod ledger;
pub mod opencti;
pub mod pipeline;
mod pycompat;
pub mod reconciler;
pub mod secret;
pub mod sink;
pub mod source;
pub mod telemetry;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;
pub mod warninglists;
