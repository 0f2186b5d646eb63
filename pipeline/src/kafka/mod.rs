//! Kafka clients built from configuration, the start-up check and topic creation.

mod topics;

pub use topics::{create_topics, delete_topics, TopicOutcome};

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    ClientConfig, Message, Offset, TopicPartitionList,
};

use crate::config::{Config, KafkaConfig};

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

/// Reads one partition of a keyed state topic (a changelog, the notifiers' state) from its start
/// to its current end with read_committed, calling `apply` with each key, value (`None` for a
/// tombstone) and offset, in order.
pub fn read_to_end(
    config: &Config,
    group: &str,
    topic: &str,
    partition: i32,
    deadline: Duration,
    mut apply: impl FnMut(&str, Option<&[u8]>, i64) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let consumer: BaseConsumer = client_config(&config.kafka, "restore")
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, deadline)
        .with_context(|| format!("watermarks of {topic}/{partition}"))?;
    if high <= low {
        return Ok(());
    }
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(low))?;
    consumer.assign(&assignment)?;
    let started = Instant::now();
    // Control records of transactions and compacted gaps advance the position without a
    // message, so the end is reached by position, not by counting messages.
    while position(&consumer, topic, partition)? < high {
        if started.elapsed() > deadline {
            bail!("reading {topic}/{partition} did not reach offset {high} within {deadline:?}");
        }
        let Some(message) = consumer.poll(Duration::from_millis(100)) else { continue };
        let message = message?;
        let Some(key) = message.key() else { continue };
        apply(&String::from_utf8_lossy(key), message.payload(), message.offset())?;
    }
    Ok(())
}

/// The consumer's position in `topic`/`partition` (0 before it has one).
pub fn position(consumer: &BaseConsumer, topic: &str, partition: i32) -> anyhow::Result<i64> {
    let positions = consumer.position()?;
    Ok(match positions.find_partition(topic, partition).map(|p| p.offset()) {
        Some(Offset::Offset(offset)) => offset,
        _ => 0,
    })
}
