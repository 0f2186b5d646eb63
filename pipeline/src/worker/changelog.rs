//! The `quench-state` changelog: every open group of an input partition, keyed by group key, in
//! the changelog partition with the same number. Written in the worker's transaction, so that it
//! always matches the committed input offsets; read back in full when a partition is assigned.
//! Values are JSON: the topic is internal, and readable state helps when debugging a worker.

use std::time::Duration;

use anyhow::Context;

use quench_core::window::Group;

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
    read_compacted(kafka, group, topic, partition, deadline)?
        .into_values()
        .map(|(offset, value)| {
            serde_json::from_slice(&value).with_context(|| format!("changelog record {topic}/{partition}@{offset}"))
        })
        .collect()
}
