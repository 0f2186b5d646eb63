//! `quench init`: everything a fresh Kafka, registry and ClickHouse need before the first alert.
//! Each step is idempotent, so it is safe to run on every deployment.

use quench_schemas::{Alert, Compatibility, Incident, IncidentAction, Prediction, Record, Registry, RoutingEvent};

use crate::{
    clickhouse::{self, MigrationReport},
    config::{Config, RegistryConfig, TopicsConfig},
    kafka::{self, TopicOutcome},
    preflight::registry_client,
};

pub struct InitReport {
    pub topics: Vec<(String, TopicOutcome)>,
    /// Subject and schema id.
    pub schemas: Vec<(String, u32)>,
    pub migrations: MigrationReport,
}

pub async fn init(config: &Config) -> anyhow::Result<InitReport> {
    let topics = kafka::create_topics(&config.kafka, &config.topics).await?;
    let schemas = register_schemas(&config.registry, &config.topics).await?;
    let migrations = clickhouse::migrate(&config.clickhouse, clickhouse::MIGRATIONS).await?;
    Ok(InitReport { topics, schemas, migrations })
}

/// Registers each topic's value schema and pins the subject to BACKWARD compatibility, so that
/// the registry refuses a producer that would break Quench's readers.
async fn register_schemas(registry: &RegistryConfig, t: &TopicsConfig) -> anyhow::Result<Vec<(String, u32)>> {
    let registry = registry_client(registry)?;
    let mut out = Vec::new();
    for (topic, schema) in [
        (&t.alerts, Alert::SCHEMA_JSON),
        (&t.incidents, Incident::SCHEMA_JSON),
        (&t.routing, RoutingEvent::SCHEMA_JSON),
        (&t.actions, IncidentAction::SCHEMA_JSON),
        (&t.predictions, Prediction::SCHEMA_JSON),
    ] {
        let subject = Registry::value_subject(topic);
        registry.set_compatibility(&subject, Compatibility::Backward).await?;
        out.push((subject.clone(), registry.register_schema(&subject, schema).await?));
    }
    Ok(out)
}

impl InitReport {
    /// Lines for people, one per topic, subject and migration.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .topics
            .iter()
            .map(|(name, outcome)| {
                format!("topic {name}: {}", if *outcome == TopicOutcome::Created { "created" } else { "exists" })
            })
            .collect();
        lines.extend(self.schemas.iter().map(|(subject, id)| format!("schema {subject}: id {id} (BACKWARD)")));
        lines.extend(self.migrations.lines());
        lines
    }
}
