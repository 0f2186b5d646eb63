//! Produces alerts the way Quench's ingest connectors do: Avro in Confluent framing with the
//! registered schema, keyed by group key (with the same route tree the worker uses), through the
//! idempotent producer. The demo and the benchmark harness feed their storms through it.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::Duration,
};

use quench_schemas::{Alert, Encoder};
use rdkafka::{
    error::KafkaError,
    message::DeliveryResult,
    producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer},
    types::RDKafkaErrorCode,
    ClientContext,
};

use quench_core::rules::RouteTree;

use crate::{config::Config, kafka::client_config, preflight::registry_client};

/// Counts deliveries Kafka refused, so that `flush` can say so instead of losing them quietly.
#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::SeqCst);
            *self.last_error.lock().expect("delivery error lock") = Some(e.to_string());
        }
    }
}

pub struct AlertProducer {
    producer: ThreadedProducer<Deliveries>,
    encoder: Encoder<Alert>,
    topic: String,
    rules: RouteTree,
    correlate: crate::correlate::CorrelateConfig,
}

impl AlertProducer {
    pub async fn new(config: &Config, rules: RouteTree, role: &str) -> anyhow::Result<Self> {
        let encoder = Encoder::<Alert>::register(&registry_client(&config.registry)?, &config.topics.alerts).await?;
        let producer = client_config(&config.kafka, role)
            .set("enable.idempotence", "true")
            .set("linger.ms", "20")
            .set("batch.size", "1000000")
            .set("compression.type", "lz4")
            .set("queue.buffering.max.messages", "1000000")
            .create_with_context(Deliveries::default())?;
        Ok(Self { producer, encoder, topic: config.topics.alerts.clone(), rules, correlate: config.correlate.clone() })
    }

    /// Queues `alert` with its times moved forward by `shift_ms`; waits for room when the local
    /// queue is full.
    pub fn send(&self, alert: &Alert, shift_ms: i64) -> anyhow::Result<()> {
        let mut alert = alert.clone();
        alert.starts_at += shift_ms;
        alert.received_at += shift_ms;
        alert.ends_at = alert.ends_at.map(|t| t + shift_ms);
        let key = self.correlate.partition_key(&self.rules, &alert);
        let payload = self.encoder.encode(&alert)?;
        let mut record = BaseRecord::to(&self.topic).key(&key).payload(&payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    /// Waits until Kafka acknowledged every queued alert; fails if it refused any.
    pub fn flush(&self, timeout: Duration) -> anyhow::Result<()> {
        self.producer.flush(timeout)?;
        let context = self.producer.context();
        match context.failed.load(Ordering::SeqCst) {
            0 => Ok(()),
            failed => anyhow::bail!(
                "Kafka did not acknowledge {failed} alerts: {}",
                context.last_error.lock().expect("delivery error lock").clone().unwrap_or_default()
            ),
        }
    }
}
