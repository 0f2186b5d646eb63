//! Kafka clients built from configuration, the start-up check and topic creation.

mod follow;
mod rebalance;
mod topics;

pub use follow::{FollowedRecord, Follower};
pub use rebalance::{Rebalanced, Rebalances};
pub use topics::{
    check_partition_counts, create_topics, delete_topics, partition_count, recheck_partition_counts, TopicOutcome,
};

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    error::{KafkaError, KafkaResult},
    message::BorrowedMessage,
    producer::{BaseProducer, BaseRecord, Producer},
    types::RDKafkaErrorCode,
    ClientConfig, Message, Offset, TopicPartitionList,
};

use crate::{config::KafkaConfig, events::ConsumerError};

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

/// A consumer in `group` that sees only committed transactions (Quench's outputs are written in
/// transactions), commits its offsets itself, and starts at the beginning of what it has never
/// read.
pub fn reader_config(kafka: &KafkaConfig, role: &str, group: &str) -> ClientConfig {
    let mut config = client_config(kafka, role);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest");
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

/// The latest value of every live key in one partition of a compacted state topic (a changelog,
/// the notifiers' state), read from its start to its current end with read_committed, as a
/// compaction would leave it: by key, the offset and value of its last record; a tombstone
/// removes the key.
pub fn read_compacted(
    kafka: &KafkaConfig,
    group: &str,
    topic: &str,
    partition: i32,
    deadline: Duration,
) -> anyhow::Result<HashMap<String, (i64, Vec<u8>)>> {
    let mut latest = HashMap::new();
    scan(kafka, group, topic, partition, None, deadline, |message| {
        let Some(key) = message.key() else { return };
        let key = String::from_utf8_lossy(key).into_owned();
        match message.payload() {
            Some(value) => latest.insert(key, (message.offset(), value.to_vec())),
            None => latest.remove(&key),
        };
    })?;
    Ok(latest)
}

/// Reads one partition with read_committed from `start` (its first offset when `None`) up to
/// its end as it is now, handing each record to `visit`, as a client of `group` that neither
/// joins the group nor commits.
pub fn scan(
    kafka: &KafkaConfig,
    group: &str,
    topic: &str,
    partition: i32,
    start: Option<i64>,
    deadline: Duration,
    mut visit: impl FnMut(&BorrowedMessage<'_>),
) -> anyhow::Result<()> {
    let started = Instant::now();
    // A leader moving (a broker of the cluster restarting) answers NotLeaderForPartition for a
    // moment, and a client can keep answering UnknownPartition from metadata it read meanwhile:
    // asked again, by a new client, until the deadline.
    let (consumer, (low, high)) = loop {
        let consumer: BaseConsumer = reader_config(kafka, "restore", group).create()?;
        let watermarks = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10));
        if let Some(watermarks) =
            consumed(watermarks, "restore").with_context(|| format!("watermarks of {topic}/{partition}"))?
        {
            break (consumer, watermarks);
        }
        if started.elapsed() > deadline {
            bail!("watermarks of {topic}/{partition} not available within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let start = start.unwrap_or(low).max(low);
    if high <= start {
        return Ok(());
    }
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(start))?;
    consumer.assign(&assignment)?;
    // Control records of transactions and compacted gaps advance the position without a
    // message, so the end is reached by position, not by counting messages.
    while position(&consumer, topic, partition)? < high {
        if started.elapsed() > deadline {
            bail!("reading {topic}/{partition} did not reach offset {high} within {deadline:?}");
        }
        let Some(message) = consumer.poll(Duration::from_millis(100)) else { continue };
        if let Some(message) = consumed(message, "restore")? {
            visit(&message);
        }
    }
    Ok(())
}

/// Sends a record, waiting for room when librdkafka's local queue is full.
pub fn send_waiting<K, P>(producer: &BaseProducer, mut record: BaseRecord<'_, K, P>) -> anyhow::Result<()>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                producer.poll(Duration::from_millis(10));
                record = back;
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

/// Aborts `producer`'s open transaction, flushing first as rdkafka does before a commit but not
/// before an abort: librdkafka's abort waits for the delivery report of every record in flight,
/// and with the event API that rdkafka uses only the caller's polling serves them (librdkafka's
/// error says to poll "prior to calling abort"). Without it, an abort with records in flight (a
/// revocation in the middle of the re-keying stage's transaction) waited out the timeout, failed,
/// and left the producer unable to begin again.
pub fn abort_transaction(producer: &BaseProducer, timeout: Duration) -> KafkaResult<()> {
    producer.flush(timeout)?;
    producer.abort_transaction(timeout)
}

/// The consumer's position in `topic`/`partition` (0 before it has one).
pub fn position(consumer: &BaseConsumer, topic: &str, partition: i32) -> anyhow::Result<i64> {
    let positions = consumer.position()?;
    Ok(match positions.find_partition(topic, partition).map(|p| p.offset()) {
        Some(Offset::Offset(offset)) => offset,
        _ => 0,
    })
}

/// The value of a record's header `key`, if it has one.
pub fn header<'a>(message: &'a impl Message, key: &str) -> Option<&'a [u8]> {
    use rdkafka::message::Headers;
    message.headers()?.iter().find(|h| h.key == key)?.value
}

/// What a consumer's poll gave, sorted: `Ok(Some)` a record; `Ok(None)` an error that librdkafka
/// recovers from by itself (a broker restarting, a leader moving, a blip in the network), logged
/// and counted while consumption goes on; `Err` an error that will not pass (fatal, or not
/// authorised), for the process to stop on.
pub fn consumed<T>(polled: KafkaResult<T>, role: &str) -> anyhow::Result<Option<T>> {
    let error = match polled {
        Ok(record) => return Ok(Some(record)),
        Err(error) => error,
    };
    let lasting = matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::Fatal
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
        )
    ) || matches!(error, KafkaError::ClientCreation(_) | KafkaError::Subscription(_));
    ConsumerError { role, error: &error, lasting }.emit();
    if lasting {
        return Err(error).context("consuming");
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_blip_is_logged_and_passed_over_and_a_fatal_error_stops() {
        let blip = KafkaError::MessageConsumption(RDKafkaErrorCode::BrokerTransportFailure);
        assert!(consumed::<()>(Err(blip), "test").unwrap().is_none());
        let down = KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown);
        assert!(consumed::<()>(Err(down), "test").unwrap().is_none());
        let fatal = KafkaError::MessageConsumption(RDKafkaErrorCode::Fatal);
        assert!(consumed::<()>(Err(fatal), "test").is_err());
        let denied = KafkaError::MessageConsumption(RDKafkaErrorCode::GroupAuthorizationFailed);
        assert!(consumed::<()>(Err(denied), "test").is_err());
        assert_eq!(consumed(Ok(7), "test").unwrap(), Some(7));
    }
}
