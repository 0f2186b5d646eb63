//! Quench's topics and their settings. Compacted topics hold latest state per key (incidents, the
//! worker's window changelog, silences and inhibition sources, the notifier's escalation state;
//! the notifier's delivery log is compacted and also deleted after 7 days); the others are plain
//! logs.

use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
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
        // As long as `alerts`: the worker reads it behind the re-keying stage, and a worker that
        // falls behind by more than the retention would find its alerts deleted unread.
        (&t.rekey, TWO_WEEKS),
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

/// Checks that `topics` have one partition count: a process that keeps a partition's state in
/// the partition of the same number of another topic (the worker's changelog beside its input
/// and actions, the notifier's state beside its routing events) would otherwise strand state or
/// give one partition number to two members. Kafka can only add partitions, and adding them moves
/// keys to other partitions: README, "Deployment", says how to grow a topic.
pub fn check_partition_counts(kafka: &KafkaConfig, topics: &[&str]) -> anyhow::Result<()> {
    // A client of its own (one connection per check): asked through the worker's own consumer,
    // between its subscription and its first poll, the check did not return in a test.
    let consumer: BaseConsumer = client_config(kafka, "partitions").create()?;
    let mut counts = Vec::new();
    for topic in topics {
        counts.push((topic, partition_count(&consumer, topic)?));
    }
    if counts.windows(2).any(|pair| pair[0].1 != pair[1].1) {
        let counts: Vec<String> = counts.iter().map(|(topic, count)| format!("{topic} has {count}")).collect();
        return Err(PartitionMismatch(counts.join(", ")).into());
    }
    Ok(())
}

/// How many partitions `topic` has; an error naming it when it does not exist.
pub fn partition_count(client: &BaseConsumer, topic: &str) -> anyhow::Result<usize> {
    let metadata = client
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .with_context(|| format!("reading the partitions of topic {topic}"))?;
    let Some(found) = metadata.topics().first() else { bail!("no metadata for topic {topic}") };
    if let Some(error) = found.error() {
        bail!(
            "reading the partitions of topic {topic}: {} (`quench init` creates missing topics)",
            RDKafkaErrorCode::from(error)
        );
    }
    Ok(found.partitions().len())
}

/// [`check_partition_counts`] again at an assignment (partitions may have been added since the
/// start): a mismatch stops the process, a broker that does not answer now does not.
pub fn recheck_partition_counts(kafka: &KafkaConfig, topics: &[&str]) -> anyhow::Result<()> {
    match check_partition_counts(kafka, topics) {
        Err(e) if !e.is::<PartitionMismatch>() => {
            tracing::warn!(error = %format!("{e:#}"), "partition counts not checked at this assignment");
            Ok(())
        }
        checked => checked,
    }
}

/// Topics whose partitions go together have different partition counts (each "topic has N").
#[derive(Debug, thiserror::Error)]
#[error(
    "topics whose partitions go together have different partition counts ({0}): give them the same number \
     before starting (README, \"Deployment\", adding partitions)"
)]
pub struct PartitionMismatch(String);
