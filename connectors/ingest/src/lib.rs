//! Quench's ingest connectors: the webhooks that observability stacks already send (Alertmanager,
//! Grafana, PagerDuty Events v2, Prometheus's Alertmanager API, plain JSON) turned into Avro
//! alerts on Kafka, answered 2xx only once Kafka holds every alert of the request.
//!
//! `payload` is the pure core (bytes in, alerts or a named error out; also the fuzz targets'
//! entry point), `auth` checks credentials, `quota` each tenant's rate, `publish` is the Kafka side and `server` the HTTP
//! side. The `quench ingest` command wires them to the configuration and the route rules.

pub mod auth;
pub mod config;
#[cfg(feature = "server")]
pub mod events;
pub mod payload;
#[cfg(feature = "server")]
pub mod publish;
pub mod quota;
#[cfg(feature = "server")]
pub mod server;

pub use config::{IngestConfig, SourceConfig};
#[cfg(feature = "server")]
pub use publish::{KeyFn, Publisher};
#[cfg(feature = "server")]
pub use server::router;
