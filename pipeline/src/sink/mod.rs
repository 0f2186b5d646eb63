//! `quench sink`: writes `alerts`, `incidents`, `incident-routing`, `incident-alerts` and the
//! notifiers' `notifications` (every delivery attempt) to ClickHouse; rows it refuses for good
//! go to `clickhouse-dlq` (see `insert`).
//!
//! Its own consumer group reads with read_committed, so it only sees what the worker committed.
//! Rows are batched by size or age and inserted with the official crate; offsets are committed
//! only after ClickHouse acknowledged every table of the batch. A retried batch carries the same
//! insert deduplication tokens, and every table is a ReplacingMergeTree keyed so that a replay
//! (after a crash between insert and commit, or a rebalance) collapses into the same rows.
//! While ClickHouse is unavailable the sink pauses its partitions and retries with exponential
//! backoff; records keep waiting in Kafka, so nothing is lost however long the outage lasts.

mod batch;
mod insert;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::Context;
use clickhouse::Client;
use quench_schemas::{
    Alert, DecodeError, Decoder, Incident, IncidentAction, IncidentAlerts, NotificationAttempt, Prediction,
    RoutingEvent,
};
use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer},
    message::OwnedMessage,
    producer::{FutureProducer, FutureRecord},
    Message, Offset, TopicPartitionList,
};

use crate::{
    config::{Config, TopicsConfig},
    events::{SinkInsertFailed, SinkRefusedRow, SinkSkipped, SinkWrote},
    http::Readiness,
    kafka::{client_config, consumed, reader_config},
    preflight::registry_client,
};
use batch::Batch;

/// Where a batch goes: its rows to ClickHouse, the rows ClickHouse refuses for good to Kafka.
struct Writers {
    client: Client,
    producer: FutureProducer,
}

struct Decoders {
    alerts: Decoder<Alert>,
    incidents: Decoder<Incident>,
    routing: Decoder<RoutingEvent>,
    predictions: Decoder<Prediction>,
    actions: Decoder<IncidentAction>,
}

/// The topics the sink reads, each into its table.
fn topics(topics: &TopicsConfig) -> [&str; 7] {
    [
        topics.alerts.as_str(),
        topics.incidents.as_str(),
        topics.routing.as_str(),
        topics.incident_alerts.as_str(),
        topics.notifications.as_str(),
        topics.predictions.as_str(),
        topics.actions.as_str(),
    ]
}

/// `quench sink --from-beginning`: commits, for the sink's group, the first offset Kafka still
/// holds of every partition it reads, so that the run that follows writes everything again.
/// Inserts are idempotent, so rows ClickHouse has already are not doubled; what retention has
/// deleted from Kafka cannot come back (README, "Deployment", on retention).
pub fn rewind(config: &Config) -> anyhow::Result<()> {
    let consumer: BaseConsumer = reader_config(&config.kafka, "sink-rewind", &config.sink.group_id).create()?;
    let mut start = TopicPartitionList::new();
    for topic in topics(&config.topics) {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let (low, _) = consumer.fetch_watermarks(topic, partition.id(), Duration::from_secs(10))?;
            start.add_partition_offset(topic, partition.id(), Offset::Offset(low))?;
        }
    }
    // Refused while members of the group run: their next commit would undo this one.
    consumer.commit(&start, CommitMode::Sync).with_context(|| {
        format!(
            "setting consumer group `{}` back to the start of its topics (stop every `quench sink` of the group first)",
            config.sink.group_id
        )
    })?;
    tracing::info!(group = %config.sink.group_id, partitions = start.count(), "sink set back to the start of every topic");
    Ok(())
}

pub async fn run(config: &Config, shutdown: Arc<AtomicBool>, readiness: Arc<Readiness>) -> anyhow::Result<()> {
    let registry = registry_client(&config.registry)?;
    let decoders = Decoders {
        alerts: Decoder::new(registry.clone()),
        incidents: Decoder::new(registry.clone()),
        routing: Decoder::new(registry.clone()),
        predictions: Decoder::new(registry.clone()),
        actions: Decoder::new(registry),
    };
    let consumer: StreamConsumer = reader_config(&config.kafka, "sink", &config.sink.group_id).create()?;
    let topics = topics(&config.topics);
    consumer.subscribe(&topics)?;
    let writers = Writers {
        client: crate::clickhouse::client(&config.clickhouse),
        producer: client_config(&config.kafka, "sink").set("enable.idempotence", "true").create()?,
    };
    let interval = Duration::from_millis(config.sink.flush_interval_ms);
    tracing::info!(group = %config.sink.group_id, ?topics, "sink started");
    readiness.ready();

    let mut batch = Batch::default();
    while !shutdown.load(Ordering::SeqCst) {
        let wait = batch.started.map_or(interval, |s| interval.saturating_sub(s.elapsed()));
        if let Ok(message) = tokio::time::timeout(wait.max(Duration::from_millis(1)), consumer.recv()).await {
            if let Some(message) = consumed(message, "sink")? {
                add(&config.topics, &decoders, &mut batch, &message.detach()).await?;
            }
        }
        let full = batch.rows() >= config.sink.batch_rows;
        let old = batch.started.is_some_and(|s| s.elapsed() >= interval);
        if !batch.is_empty() && (full || old) {
            batch = flush(config, &writers, &consumer, &decoders, batch, &shutdown, &readiness).await?;
        }
    }
    if !batch.is_empty() {
        flush(config, &writers, &consumer, &decoders, batch, &shutdown, &readiness).await?;
    }
    tracing::info!("sink stopped after writing its last batch");
    Ok(())
}

/// Adds a record's row to the batch; a record that does not decode is skipped and counted. An
/// error means the schema registry stayed unavailable: the sink stops before committing the
/// record, which is read again after a restart rather than skipped.
async fn add(
    topics: &TopicsConfig,
    decoders: &Decoders,
    batch: &mut Batch,
    message: &OwnedMessage,
) -> anyhow::Result<()> {
    let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
    let bytes = message.payload().unwrap_or_default();
    let avro = |decoded: Result<(), DecodeError>| match decoded {
        Err(e) if e.is_transient() => Err(anyhow::Error::from(e)),
        decoded => Ok(decoded.map_err(|e| e.to_string())),
    };
    let result = if topic == topics.alerts {
        avro(decoders.alerts.decode(bytes).await.map(|alert| batch.add_alert(alert, partition, offset)))?
    } else if topic == topics.incidents {
        avro(decoders.incidents.decode(bytes).await.map(|incident| batch.add_incident(incident)))?
    } else if topic == topics.routing {
        avro(decoders.routing.decode(bytes).await.map(|event| batch.add_routing(event)))?
    } else if topic == topics.predictions {
        avro(decoders.predictions.decode(bytes).await.map(|prediction| batch.add_prediction(prediction)))?
    } else if topic == topics.actions {
        avro(decoders.actions.decode(bytes).await.map(|action| batch.add_action(action)))?
    } else if topic == topics.incident_alerts {
        serde_json::from_slice::<IncidentAlerts>(bytes)
            .map(|joined| batch.add_incident_alerts(joined))
            .map_err(|e| e.to_string())
    } else {
        serde_json::from_slice::<NotificationAttempt>(bytes)
            .map(|attempt| batch.notifications.push(attempt))
            .map_err(|e| e.to_string())
    };
    batch.track(topic, partition, offset);
    // Undecodable alerts are the worker's to dead-letter; the sink only skips and counts them.
    if let Err(error) = result {
        SinkSkipped { topic, partition, offset, error: &error }.emit();
    }
    Ok(())
}

/// Writes the batch until ClickHouse accepts it, then commits its offsets. Records that arrive
/// while ClickHouse is down start the next batch, which is returned.
async fn flush(
    config: &Config,
    Writers { client, producer }: &Writers,
    consumer: &StreamConsumer,
    decoders: &Decoders,
    batch: Batch,
    shutdown: &AtomicBool,
    readiness: &Readiness,
) -> anyhow::Result<Batch> {
    let mut next = Batch::default();
    let mut backoff = Duration::from_millis(200);
    let mut paused = false;
    let refused = loop {
        match insert::insert(client, &batch).await {
            Ok(refused) => break refused,
            Err(e) => {
                SinkInsertFailed { error: &format!("{e:#}"), retry_in: backoff, rows: batch.rows() }.emit();
                readiness.not_ready(format!("ClickHouse unavailable: {e:#}"));
                paused = true;
                if shutdown.load(Ordering::SeqCst) {
                    anyhow::bail!("shutdown while ClickHouse is unavailable; the batch stays in Kafka: {e:#}");
                }
                // Keep serving the consumer (group membership, already fetched records) while waiting,
                // with every partition paused, those a rebalance assigns meanwhile too: the next
                // batch holds at most what was fetched before the pause.
                let deadline = tokio::time::Instant::now() + backoff;
                loop {
                    consumer.pause(&consumer.assignment()?)?;
                    let Ok(message) = tokio::time::timeout_at(deadline, consumer.recv()).await else { break };
                    if let Some(message) = consumed(message, "sink")? {
                        add(&config.topics, decoders, &mut next, &message.detach()).await?;
                    }
                }
                backoff = (backoff * 2).min(Duration::from_millis(config.sink.max_backoff_ms));
            }
        }
    };
    if paused {
        readiness.ready();
        consumer.resume(&consumer.assignment()?)?;
        tracing::info!("ClickHouse accepted the batch again; consumption resumed");
    }
    // Refused rows are on their dead-letter topic before the offsets that cover them commit.
    for row in &refused {
        let value = serde_json::to_vec(row)?;
        let record = FutureRecord::<str, [u8]>::to(&config.topics.sink_dlq).key(&row.table).payload(&value);
        producer.send(record, Duration::from_secs(30)).await.map_err(|(e, _)| e)?;
        SinkRefusedRow { table: &row.table, error: &row.error }.emit();
    }
    let mut offsets = TopicPartitionList::new();
    for ((topic, partition), (_, last)) in &batch.offsets {
        offsets.add_partition_offset(topic, *partition, Offset::Offset(last + 1))?;
    }
    // After a rebalance the partitions may belong to another sink, which re-inserts the rows;
    // ReplacingMergeTree collapses them, so a refused commit is logged, not fatal.
    if let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
        tracing::warn!(error = %e, "offset commit refused (rebalance?); rows will be replayed idempotently");
    }
    SinkWrote { rows: batch.rows() }.emit();
    Ok(next)
}
