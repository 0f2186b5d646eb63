//! Producing a request's alerts to Kafka: Avro in Confluent framing, keyed by group key, through
//! the idempotent producer. A request is answered 2xx only once Kafka acknowledged every one of
//! its records; if any is refused or not acknowledged in time, the whole request gets 503 and
//! the sender retries it. A retried alert is the same alert re-sent, which the stream worker
//! folds into its incident, so a retry after a partial failure duplicates nothing downstream.

use std::{sync::Arc, time::Duration};

use futures::future::join_all;
use quench_schemas::{headers, Alert, Encoder};
use rdkafka::{
    error::KafkaError,
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord, Producer},
    types::RDKafkaErrorCode,
    ClientConfig,
};

/// The Kafka key of an alert: its group key under the route rules the workers use.
pub type KeyFn = Arc<dyn Fn(&Alert) -> String + Send + Sync>;

/// Kafka did not take the request's alerts; the client should retry after `retry_after`.
#[derive(Debug, thiserror::Error)]
#[error("Kafka did not acknowledge the alerts: {reason}")]
pub struct Unavailable {
    pub reason: String,
    pub retry_after: Duration,
}

pub struct Publisher {
    producer: FutureProducer,
    encoder: Encoder<Alert>,
    topic: String,
    key: KeyFn,
    ack_timeout: Duration,
    retry_after: Duration,
}

impl Publisher {
    /// `client` carries the brokers and the user's properties; `ack_timeout` bounds how long a
    /// record may wait for Kafka (librdkafka's `message.timeout.ms`).
    pub fn new(
        mut client: ClientConfig,
        encoder: Encoder<Alert>,
        topic: String,
        key: KeyFn,
        ack_timeout: Duration,
    ) -> Result<Self, KafkaError> {
        let producer = client
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .set("message.timeout.ms", ack_timeout.as_millis().to_string())
            .create()?;
        let retry_after = ack_timeout.max(Duration::from_secs(1));
        Ok(Self { producer, encoder, topic, key, ack_timeout, retry_after })
    }

    pub async fn publish(&self, alerts: &[Alert]) -> Result<(), Unavailable> {
        let mut pending = Vec::with_capacity(alerts.len());
        let trace = quench_trace::traceparent(&tracing::Span::current());
        for alert in alerts {
            let payload = self.encoder.encode(alert).map_err(|e| self.unavailable(e.to_string()))?;
            let key = (self.key)(alert);
            let mut record = FutureRecord::to(&self.topic).key(&key).payload(&payload);
            if let Some(trace) = &trace {
                record = record.headers(
                    OwnedHeaders::new().insert(Header { key: headers::TRACEPARENT, value: Some(trace.as_str()) }),
                );
            }
            match self.producer.send_result(record) {
                Ok(delivery) => pending.push(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    return Err(Unavailable {
                        reason: "the producer queue is full".into(),
                        retry_after: Duration::from_secs(1),
                    });
                }
                Err((e, _)) => return Err(self.unavailable(e.to_string())),
            }
        }
        // librdkafka checks `message.timeout.ms` on its own timer, which can lag by seconds while
        // it reconnects to a broker that went away; the sender is promised an answer within the
        // ack timeout, so the request keeps its own deadline. Records still queued after it are
        // delivered or time out in librdkafka; a sender's retry of them duplicates nothing.
        let outcomes = tokio::time::timeout(self.ack_timeout, join_all(pending)).await.map_err(|_| {
            self.unavailable(format!("not acknowledged within the ack timeout of {} ms", self.ack_timeout.as_millis()))
        })?;
        for outcome in outcomes {
            match outcome {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(self.unavailable(e.to_string())),
                Err(_) => return Err(self.unavailable("the producer was dropped".into())),
            }
        }
        Ok(())
    }

    /// Waits for records still queued; for graceful shutdown.
    /// librdkafka's fatal error, after which this producer can send nothing more (the idempotent
    /// producer's guarantees would be broken): only a new process helps.
    pub fn fatal_error(&self) -> Option<String> {
        self.producer.client().fatal_error().map(|(code, reason)| format!("{code:?}: {reason}"))
    }

    /// Raises a fatal error in the producer through librdkafka's test hook, so that tests can
    /// check what follows one; debug builds only.
    #[cfg(debug_assertions)]
    pub fn inject_fatal_error(&self, reason: &str) {
        let reason = std::ffi::CString::new(reason).expect("no NUL in the reason");
        // SAFETY: the client pointer is valid while `self.producer` lives, and librdkafka copies
        // the reason before returning.
        unsafe {
            rdkafka::bindings::rd_kafka_test_fatal_error(
                self.producer.client().native_ptr(),
                rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__FATAL,
                reason.as_ptr(),
            );
        }
    }

    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }

    fn unavailable(&self, reason: String) -> Unavailable {
        Unavailable { reason, retry_after: self.retry_after }
    }
}
