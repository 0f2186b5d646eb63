//! The schema registry, through the Confluent REST API (Confluent Schema Registry, Apicurio's
//! `/apis/ccompat/v7`, Karapace, Redpanda). Calls go through `schema_registry_converter`; setting a
//! subject's compatibility level, which that crate does not cover, is one direct PUT.

use std::time::Duration;

use schema_registry_converter::{
    async_impl::schema_registry::{self as sr, SrSettings},
    error::SRCError,
    schema_registry_common::{SchemaType, SuppliedSchema},
};
use serde::Serialize;

use crate::{error::RegistryError, record::Record};

/// Compatibility levels of the Confluent API. Quench's own subjects use [`Compatibility::Backward`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

#[derive(Clone)]
pub struct Registry {
    url: String,
    settings: SrSettings,
    http: reqwest::Client,
}

impl Registry {
    /// A client for the registry at `url`, such as `http://127.0.0.1:8081/apis/ccompat/v7`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, RegistryError> {
        let url = url.trim_end_matches('/').to_string();
        let settings = SrSettings::new_builder(url.clone())
            .set_timeout(timeout)
            .build()
            .map_err(|e| error(&url, "invalid registry settings", e))?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .build()
            .map_err(|e| RegistryError { url: url.clone(), message: e.to_string(), transient: false })?;
        Ok(Self { url, settings, http })
    }

    /// The subject of a topic's values under the topic name strategy.
    pub fn value_subject(topic: &str) -> String {
        format!("{topic}-value")
    }

    /// Fails unless the registry answers; used at start-up so that a wrong address is reported
    /// before any record is processed.
    pub async fn check(&self) -> Result<(), RegistryError> {
        sr::get_all_subjects(&self.settings).await.map(|_| ()).map_err(|e| error(&self.url, "not reachable", e))
    }

    /// Registers `T`'s schema under `subject` (idempotent) and returns its id.
    pub async fn register<T: Record>(&self, subject: &str) -> Result<u32, RegistryError> {
        self.register_schema(subject, T::SCHEMA_JSON).await
    }

    /// Registers an Avro schema given as JSON under `subject` and returns its id. The registry
    /// refuses it when it breaks the subject's compatibility level.
    pub async fn register_schema(&self, subject: &str, schema_json: &str) -> Result<u32, RegistryError> {
        sr::post_schema(&self.settings, subject.to_string(), avro(schema_json))
            .await
            .map(|registered| registered.id)
            .map_err(|e| error(&self.url, &format!("registering a schema under subject {subject} failed"), e))
    }

    /// Whether `schema_json` may be registered under `subject` at its compatibility level.
    pub async fn is_compatible(&self, subject: &str, schema_json: &str) -> Result<bool, RegistryError> {
        sr::is_compatible_schema(&self.settings, subject.to_string(), avro(schema_json))
            .await
            .map_err(|e| error(&self.url, &format!("compatibility check for subject {subject} failed"), e))
    }

    /// Sets the compatibility level that the registry enforces for `subject`.
    pub async fn set_compatibility(&self, subject: &str, level: Compatibility) -> Result<(), RegistryError> {
        #[derive(Serialize)]
        struct Body {
            compatibility: Compatibility,
        }
        // Apicurio creates the subject's rule on the first PUT; two processes setting it at the
        // same moment both try to create it and one gets 409 Conflict. Sent again, the PUT finds
        // the rule and updates it, so a conflict is retried a few times before it is an error.
        let mut conflicts = 0;
        let response = loop {
            let response = self
                .http
                .put(format!("{}/config/{subject}", self.url))
                .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                .json(&Body { compatibility: level })
                .send()
                .await
                .map_err(|e| RegistryError {
                    url: self.url.clone(),
                    message: e.without_url().to_string(),
                    transient: true,
                })?;
            if response.status() != reqwest::StatusCode::CONFLICT || conflicts == 3 {
                break response;
            }
            conflicts += 1;
        };
        if response.status().is_success() {
            return Ok(());
        }
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        Err(RegistryError {
            url: self.url.clone(),
            transient: status.is_server_error(),
            message: format!("setting compatibility of subject {subject} failed: HTTP {status}: {body}"),
        })
    }

    /// The schema registered under `id`, as JSON.
    pub async fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        sr::get_schema_by_id(id, &self.settings)
            .await
            .map(|registered| registered.schema)
            .map_err(|e| error(&self.url, &format!("schema id {id} could not be fetched"), e))
    }
}

fn avro(schema_json: &str) -> SuppliedSchema {
    SuppliedSchema::new(None, SchemaType::Avro, schema_json.to_string())
}

fn error(url: &str, what: &str, e: SRCError) -> RegistryError {
    // The client marks connection failures, timeouts, 502 and 503 retriable; 500 and 504 are
    // the registry's failures too, not the request's.
    let transient = e.retriable || ["status 500", "status 504"].iter().any(|s| e.error.contains(s));
    let cause = e.cause.map(|c| format!(" ({c})")).unwrap_or_default();
    RegistryError { url: url.to_string(), message: format!("{what}: {}{cause}", e.error), transient }
}
