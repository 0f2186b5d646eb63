//! What a notifier keeps per partition of `incident-routing`, rebuilt from Kafka when the
//! partition is assigned: the delivery log (idempotency keys already delivered), the Slack
//! threads of incidents, and the escalation timers. Both topics are written to the partition
//! with the routing partition's number, so one partition's state is read from one partition each.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use anyhow::Context;
use quench_notify::escalation::{Escalation, Escalations};

use super::records::Delivered;
use crate::{config::Config, kafka::read_to_end};

pub const ESCALATION_PREFIX: &str = "escalation|";
pub const THREAD_PREFIX: &str = "thread|";

#[derive(Default)]
pub struct PartitionState {
    pub delivered: HashSet<String>,
    /// By `incident|target`.
    pub threads: HashMap<String, String>,
    pub escalations: Escalations,
}

pub fn thread_key(incident_id: &str, target: &str) -> String {
    format!("{incident_id}|{target}")
}

impl PartitionState {
    /// Reads partition `partition` of the delivery log and of the state topic. Deliveries of
    /// routing events before `committed` (the group's committed offset) cannot be read again, so
    /// they are not kept.
    pub fn load(config: &Config, partition: i32, committed: i64) -> anyhow::Result<Self> {
        let mut state = Self::default();
        let deadline = Duration::from_secs(120);
        let group = format!("{}-restore", config.notify.group_id);
        let topic = &config.topics.deliveries;
        read_to_end(config, &group, topic, partition, deadline, |key, value, offset| {
            match value {
                Some(value) => {
                    let delivered: Delivered = serde_json::from_slice(value)
                        .with_context(|| format!("delivery record {topic}/{partition}@{offset}"))?;
                    if delivered.routing_offset >= committed {
                        state.delivered.insert(key.to_string());
                    }
                }
                None => {
                    state.delivered.remove(key);
                }
            }
            Ok(())
        })?;
        let topic = &config.topics.notify_state;
        let mut escalations = HashMap::new();
        read_to_end(config, &group, topic, partition, deadline, |key, value, offset| {
            if let Some(incident) = key.strip_prefix(ESCALATION_PREFIX) {
                match value {
                    Some(value) => {
                        let escalation: Escalation = serde_json::from_slice(value)
                            .with_context(|| format!("escalation record {topic}/{partition}@{offset}"))?;
                        escalations.insert(incident.to_string(), escalation);
                    }
                    None => {
                        escalations.remove(incident);
                    }
                }
            } else if let Some(thread) = key.strip_prefix(THREAD_PREFIX) {
                match value {
                    Some(ts) => state.threads.insert(thread.to_string(), String::from_utf8_lossy(ts).into_owned()),
                    None => state.threads.remove(thread),
                };
            }
            Ok(())
        })?;
        escalations.into_values().for_each(|e| state.escalations.restore(e));
        Ok(state)
    }
}
