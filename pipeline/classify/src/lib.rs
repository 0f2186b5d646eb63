//! Incident classification: severity, priority, category, a one-line summary and a confidence
//! for each incident, from an LLM in batches or from the local embedding classifier.
//!
//! Pure parts (text, catalog, taxonomy, rules, cache) know nothing of HTTP or models; `embed`
//! runs the model, `llm` talks to providers, and `stage` puts them together behind a cache and a
//! circuit breaker for the stream worker.

pub mod breaker;
pub mod cache;
pub mod catalog;
pub mod config;
pub mod corpus;
pub mod embed;
pub mod eval;
pub mod events;
pub mod features;
pub mod llm;
pub mod local;
pub mod logit;
pub mod promql;
pub mod redact;
pub mod rules;
pub mod severity;
pub mod stage;
pub mod subject;
pub mod taxonomy;
pub mod text;
pub mod words;

pub use config::{ClassifyConfig, ProviderKind};
pub use local::{LocalClassifier, LocalConfig};
pub use stage::Classifier;
pub use subject::{Classification, Subject};
pub use taxonomy::Taxonomy;
