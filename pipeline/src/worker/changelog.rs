//! The `quench-state` changelog: every open group of an input partition, keyed by group key, in
//! the changelog partition with the same number. Written in the worker's transaction, so that it
//! always matches the committed input offsets; read back in full when a partition is assigned.
//! Values are JSON: the topic is internal, and readable state helps when debugging a worker.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    Message, Offset, TopicPartitionList,
};

use crate::{config::Config, kafka::client_config, window::Group};

/// Reads the changelog of `partition` up to its end and returns the open groups in it.
pub fn restore(config: &Config, partition: i32, deadline: Duration) -> anyhow::Result<Vec<Group>> {
    let topic = &config.topics.state;
    let consumer: BaseConsumer = client_config(&config.kafka, "restore")
        .set("group.id", format!("{}-restore", config.worker.group_id))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, deadline)
        .with_context(|| format!("watermarks of {topic}/{partition}"))?;
    let mut groups = std::collections::HashMap::new();
    if high > low {
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, partition, Offset::Offset(low))?;
        consumer.assign(&assignment)?;
        let started = Instant::now();
        // Control records of transactions and compacted gaps advance the position without a
        // message, so the end is reached by position, not by counting messages.
        while position(&consumer, topic, partition)? < high {
            if started.elapsed() > deadline {
                bail!("restoring {topic}/{partition} did not reach offset {high} within {deadline:?}");
            }
            let Some(message) = consumer.poll(Duration::from_millis(100)) else { continue };
            let message = message?;
            let Some(key) = message.key() else { continue };
            let key = String::from_utf8_lossy(key).into_owned();
            match message.payload() {
                Some(value) => {
                    let group: Group = serde_json::from_slice(value)
                        .with_context(|| format!("changelog record {topic}/{partition}@{}", message.offset()))?;
                    groups.insert(key, group);
                }
                None => {
                    groups.remove(&key);
                }
            }
        }
    }
    Ok(groups.into_values().collect())
}

fn position(consumer: &BaseConsumer, topic: &str, partition: i32) -> anyhow::Result<i64> {
    let positions = consumer.position()?;
    Ok(match positions.find_partition(topic, partition).map(|p| p.offset()) {
        Some(Offset::Offset(offset)) => offset,
        _ => 0,
    })
}
