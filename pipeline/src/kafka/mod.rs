//! Kafka clients built from configuration, the start-up check and topic creation.

mod topics;

pub use topics::{create_topics, delete_topics, TopicOutcome};

use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    ClientConfig,
};

use crate::config::KafkaConfig;

/// A librdkafka configuration for one role (`producer`, `worker`, `sink`...) with the user's extra
/// properties applied last, so that they can override anything Quench sets.
pub fn client_config(kafka: &KafkaConfig, role: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &kafka.brokers).set("client.id", format!("{}-{role}", kafka.client_id));
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    config
}

/// Fails with the configured address unless a broker answers a metadata request in time.
pub async fn check(kafka: &KafkaConfig) -> anyhow::Result<usize> {
    let kafka = kafka.clone();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client_config(&kafka, "check").create()?;
        let metadata = consumer.fetch_metadata(None, kafka.connect_timeout()).map_err(|e| {
            anyhow::anyhow!(
                "cannot reach Kafka at kafka.brokers = {} within {} ms: {e}",
                kafka.brokers,
                kafka.connect_timeout_ms
            )
        })?;
        Ok(metadata.brokers().len())
    })
    .await?
}
