//! Quench's topics and their settings. Compacted topics hold latest state per key (incidents, the
//! worker's window changelog, silences and inhibition sources, the notifier's escalation state;
//! the notifier's delivery log is compacted and also deleted after 7 days); the others are plain
//! logs.

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    types::RDKafkaErrorCode,
};

use crate::{
    config::{KafkaConfig, TopicsConfig},
    kafka::client_config,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicOutcome {
    Created,
    Existed,
}

type Settings = &'static [(&'static str, &'static str)];

const COMPACTED: Settings = &[("cleanup.policy", "compact"), ("min.compaction.lag.ms", "0")];
const TWO_WEEKS: Settings = &[("cleanup.policy", "delete"), ("retention.ms", "1209600000")];
/// Deduplication needs a delivery only until the routing event's offset is committed; a week
/// covers any restart, and compaction keeps one record per idempotency key meanwhile.
const DELIVERY_LOG: Settings =
    &[("cleanup.policy", "compact,delete"), ("retention.ms", "604800000"), ("min.compaction.lag.ms", "0")];
/// The latest state of every incident, but not forever: a resolved incident's record goes after
/// 30 days, so readers of the whole topic (the incident directory of `quench notify` and
/// `quench api`, at start) hold a bounded set. An open incident is written again at least every
/// `repeat_interval` (4 hours by default, far below 30 days), so its latest state stays.
const INCIDENT_STATES: Settings =
    &[("cleanup.policy", "compact,delete"), ("retention.ms", "2592000000"), ("min.compaction.lag.ms", "0")];
const ONE_DAY: Settings = &[("cleanup.policy", "delete"), ("retention.ms", "86400000")];

/// Every topic Quench uses, with its settings.
fn specs(t: &TopicsConfig) -> [(&str, Settings); 16] {
    [
        (&t.alerts, TWO_WEEKS),
        (&t.incidents, INCIDENT_STATES),
        (&t.routing, TWO_WEEKS),
        (&t.state, COMPACTED),
        (&t.dlq, TWO_WEEKS),
        (&t.actions, TWO_WEEKS),
        (&t.incident_alerts, TWO_WEEKS),
        (&t.sink_dlq, TWO_WEEKS),
        (&t.rekey, ONE_DAY),
        (&t.notifications, TWO_WEEKS),
        (&t.notifications_dlq, TWO_WEEKS),
        (&t.deliveries, DELIVERY_LOG),
        (&t.notify_state, COMPACTED),
        (&t.silences, COMPACTED),
        (&t.inhibit_sources, COMPACTED),
        (&t.predictions, TWO_WEEKS),
    ]
}

/// Creates every topic Quench uses, leaving existing ones as they are.
pub async fn create_topics(kafka: &KafkaConfig, t: &TopicsConfig) -> anyhow::Result<Vec<(String, TopicOutcome)>> {
    let new_topics: Vec<NewTopic> = specs(t)
        .iter()
        .map(|(name, settings)| {
            settings.iter().fold(
                NewTopic::new(name, t.partitions, TopicReplication::Fixed(t.replication_factor)),
                |topic, (k, v)| topic.set(k, v),
            )
        })
        .collect();
    let admin: AdminClient<DefaultClientContext> = client_config(kafka, "admin").create()?;
    let results = admin.create_topics(&new_topics, &AdminOptions::new()).await?;
    results
        .into_iter()
        .map(|result| match result {
            Ok(name) => Ok((name, TopicOutcome::Created)),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => Ok((name, TopicOutcome::Existed)),
            Err((name, code)) => Err(anyhow::anyhow!("creating topic {name} failed: {code}")),
        })
        .collect()
}

/// Deletes every topic of `topics` (the demo's per-run topics).
pub async fn delete_topics(kafka: &KafkaConfig, topics: &TopicsConfig) -> anyhow::Result<()> {
    let names: Vec<&str> = specs(topics).iter().map(|(name, _)| *name).collect();
    let admin: AdminClient<DefaultClientContext> = client_config(kafka, "admin").create()?;
    for result in admin.delete_topics(&names, &AdminOptions::new()).await? {
        result.map_err(|(name, code)| anyhow::anyhow!("deleting topic {name} failed: {code}"))?;
    }
    Ok(())
}
