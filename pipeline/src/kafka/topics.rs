//! Quench's topics and their settings. Compacted topics hold latest state per key (incidents, the
//! worker's window changelog); the others are plain logs.

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    types::RDKafkaErrorCode,
};

use crate::{config::Config, kafka::client_config};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicOutcome {
    Created,
    Existed,
}

/// Creates every topic Quench uses, leaving existing ones as they are.
pub async fn create_topics(config: &Config) -> anyhow::Result<Vec<(String, TopicOutcome)>> {
    let t = &config.topics;
    let compacted: &[(&str, &str)] = &[("cleanup.policy", "compact"), ("min.compaction.lag.ms", "0")];
    let two_weeks: &[(&str, &str)] = &[("cleanup.policy", "delete"), ("retention.ms", "1209600000")];
    let one_day: &[(&str, &str)] = &[("cleanup.policy", "delete"), ("retention.ms", "86400000")];
    let specs: [(&str, &[(&str, &str)]); 7] = [
        (&t.alerts, two_weeks),
        (&t.incidents, compacted),
        (&t.routing, two_weeks),
        (&t.state, compacted),
        (&t.dlq, two_weeks),
        (&t.actions, two_weeks),
        (&t.rekey, one_day),
    ];
    let new_topics: Vec<NewTopic> = specs
        .iter()
        .map(|(name, settings)| {
            settings.iter().fold(
                NewTopic::new(name, t.partitions, TopicReplication::Fixed(t.replication_factor)),
                |topic, (k, v)| topic.set(k, v),
            )
        })
        .collect();
    let admin: AdminClient<DefaultClientContext> = client_config(&config.kafka, "admin").create()?;
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
