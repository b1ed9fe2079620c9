//! OpenCTI sink: GraphQL control plane and bundle push over RabbitMQ or the API.

pub mod splitter;
