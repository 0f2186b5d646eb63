//! The `quench-state` changelog: every open group of an input partition, in the changelog
//! partition with the same number (the records' layout is the core's: `window::changelog`). Written in the worker's transaction, so that it
//! always matches the committed input offsets; read back in full when a partition is assigned.
//! Values are JSON: the topic is internal, and readable state helps when debugging a worker.

use std::time::Duration;

use quench_core::window::{changelog, Group};

use crate::{config::KafkaConfig, kafka::read_compacted};

/// Reads partition `partition` of the changelog `topic` up to its end, as consumer group
/// `group`, and returns the open groups in it.
pub fn restore(
    kafka: &KafkaConfig,
    topic: &str,
    group: &str,
    partition: i32,
    deadline: Duration,
) -> anyhow::Result<Vec<Group>> {
    let records = read_compacted(kafka, group, topic, partition, deadline)?;
    changelog::read(records.into_iter().map(|(key, (_, value))| (key, value)))
        .map_err(|e| anyhow::anyhow!("changelog {topic}/{partition}: {e}"))
}
