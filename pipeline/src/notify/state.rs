//! The planner's state of a partition of `incident-routing` ([`PartitionState`]), rebuilt from
//! Kafka when the partition is assigned: the delivery log (idempotency keys already delivered), the Slack
//! threads of incidents, the escalation timers, and the deliveries waiting for a retry or not
//! made yet (pending records). Both topics are written to the partition
//! with the routing partition's number, so one partition's state is read from one partition each.

use std::time::Duration;

use anyhow::Context;
use quench_notify::{
    escalation::Escalation,
    planner::{PartitionState, Pending, StateRecord, ESCALATION_PREFIX, PENDING_PREFIX, STATE_FORMAT, THREAD_PREFIX},
};
use quench_schemas::{state_format, Delivered};

use crate::{
    config::{KafkaConfig, TopicsConfig},
    kafka::read_compacted,
};

/// Reads partition `partition` of the delivery log and of the state topic. Deliveries of routing
/// events before `committed` (the group's committed offset) cannot be read again, so they are not
/// kept, nor are their pending records: those come back as tombstones to write.
pub fn load(
    kafka: &KafkaConfig,
    topics: &TopicsConfig,
    group_id: &str,
    partition: i32,
    committed: i64,
) -> anyhow::Result<(PartitionState, Vec<StateRecord>)> {
    let (mut state, mut stale) = (PartitionState::default(), Vec::new());
    let deadline = Duration::from_secs(120);
    let group = format!("{group_id}-restore");
    let topic = &topics.deliveries;
    for (key, (offset, value)) in read_compacted(kafka, &group, topic, partition, deadline)? {
        let delivered: Delivered =
            serde_json::from_slice(&value).with_context(|| format!("delivery record {topic}/{partition}@{offset}"))?;
        if delivered.routing_offset >= committed {
            state.delivered.insert(key, delivered.routing_offset);
        }
    }
    let topic = &topics.notify_state;
    for (key, (offset, value)) in read_compacted(kafka, &group, topic, partition, deadline)? {
        let what = || format!("{key:?} in {topic}/{partition}@{offset}");
        if key.starts_with(ESCALATION_PREFIX) || key.starts_with(PENDING_PREFIX) {
            state_format::check(&value, STATE_FORMAT, &what()).map_err(anyhow::Error::msg)?;
        }
        if key.starts_with(ESCALATION_PREFIX) {
            let escalation: Escalation = serde_json::from_slice(&value).with_context(what)?;
            state.escalations.restore(escalation);
        } else if let Some(thread) = key.strip_prefix(THREAD_PREFIX) {
            state.threads.insert(thread.to_string(), String::from_utf8_lossy(&value).into_owned());
        } else if let Some(job) = key.strip_prefix(PENDING_PREFIX) {
            let pending: Pending = serde_json::from_slice(&value).with_context(what)?;
            // An event's job whose event is committed ended before the crash that kept its
            // tombstone from being written.
            if pending.routing_offset >= 0 && pending.routing_offset < committed {
                stale.push((key.clone(), None));
            } else {
                state.pending.insert(job.to_string(), pending);
            }
        }
    }
    Ok((state, stale))
}
