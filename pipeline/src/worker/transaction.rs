//! The transactional consume-produce session shared by the worker and the re-keying stage: a
//! consumer-group member with static membership and eager rebalancing, and a transactional
//! producer whose transactions carry the consumed offsets (KIP-447 fencing by group generation).
//! On revocation the open transaction is aborted before the partitions move.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use anyhow::Context;
use rdkafka::{
    consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance},
    error::KafkaError,
    producer::{BaseProducer, BaseRecord, Producer},
    types::RDKafkaErrorCode,
    ClientContext, TopicPartitionList,
};

use crate::{config::Config, kafka::client_config};

pub const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// What the consumer's rebalance callbacks tell the loop.
pub enum Rebalanced {
    Revoked,
    Assigned(Vec<i32>),
}

pub struct RebalanceContext {
    producer: Arc<BaseProducer>,
    events: Mutex<Vec<Rebalanced>>,
    in_transaction: Arc<AtomicBool>,
}

impl ClientContext for RebalanceContext {
    /// librdkafka's statistics carry each partition's consumer lag (high watermark minus position).
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, stats) in &statistics.topics {
            for (partition, p) in stats.partitions.iter().filter(|(id, p)| **id >= 0 && p.consumer_lag >= 0) {
                metrics::gauge!("quench_consumer_lag", "topic" => topic.clone(), "partition" => partition.to_string())
                    .set(p.consumer_lag as f64);
            }
        }
    }
}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            // Abort before the partitions move, so that their next owner's read_committed
            // reads are not held up by this member's open transaction.
            if self.in_transaction.swap(false, Ordering::SeqCst) {
                if let Err(e) = self.producer.abort_transaction(TXN_TIMEOUT) {
                    tracing::error!(error = %e, "aborting the transaction on revoke failed");
                }
            }
            self.events.lock().expect("rebalance events").push(Rebalanced::Revoked);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let partitions = list.elements().iter().map(|e| e.partition()).collect();
            self.events.lock().expect("rebalance events").push(Rebalanced::Assigned(partitions));
        }
    }
}

pub struct Session {
    pub producer: Arc<BaseProducer>,
    pub consumer: BaseConsumer<RebalanceContext>,
    in_transaction: Arc<AtomicBool>,
}

impl Session {
    /// Joins `group` on `topics` as `instance`, with a transactional producer named after both.
    /// The range assignor gives one member the same partition number of every topic, which is
    /// what lets the worker read an incident's actions beside its alerts.
    pub fn connect(config: &Config, role: &str, group: &str, instance: &str, topics: &[&str]) -> anyhow::Result<Self> {
        let producer: BaseProducer = client_config(&config.kafka, role)
            .set("transactional.id", format!("{group}-{instance}"))
            .set("enable.idempotence", "true")
            .set("transaction.timeout.ms", "30000")
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .create()?;
        producer.init_transactions(TXN_TIMEOUT).context("initialising the transactional producer")?;
        let producer = Arc::new(producer);
        let in_transaction = Arc::new(AtomicBool::new(false));
        let context = RebalanceContext {
            producer: producer.clone(),
            events: Mutex::new(Vec::new()),
            in_transaction: in_transaction.clone(),
        };
        let consumer: BaseConsumer<RebalanceContext> = client_config(&config.kafka, role)
            .set("group.id", group)
            // Static membership: a restarted member takes its partitions back at once instead of
            // waiting for its previous incarnation's session to time out.
            .set("group.instance.id", instance)
            .set("session.timeout.ms", config.worker.session_timeout_ms.to_string())
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "range")
            .set("statistics.interval.ms", "5000")
            .create_with_context(context)?;
        consumer.subscribe(topics)?;
        Ok(Self { producer, consumer, in_transaction })
    }

    /// Rebalances since the last call, in order.
    pub fn rebalances(&self) -> Vec<Rebalanced> {
        std::mem::take(&mut *self.consumer.context().events.lock().expect("rebalance events"))
    }

    pub fn in_transaction(&self) -> bool {
        self.in_transaction.load(Ordering::SeqCst)
    }

    pub fn begin(&self) -> anyhow::Result<()> {
        self.producer.begin_transaction()?;
        self.in_transaction.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Commits the open transaction with `offsets` (the next offset to read per partition).
    pub fn commit(&self, offsets: &TopicPartitionList) -> anyhow::Result<()> {
        if offsets.count() > 0 {
            let metadata = self.consumer.group_metadata().context("consumer group metadata")?;
            self.producer.send_offsets_to_transaction(offsets, &metadata, TXN_TIMEOUT)?;
        }
        self.producer.commit_transaction(TXN_TIMEOUT).context("committing the transaction")?;
        self.in_transaction.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Sends a record, waiting for room when librdkafka's local queue is full.
    pub fn send<K, P>(&self, mut record: BaseRecord<'_, K, P>) -> anyhow::Result<()>
    where
        K: rdkafka::message::ToBytes + ?Sized,
        P: rdkafka::message::ToBytes + ?Sized,
    {
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    self.producer.poll(Duration::from_millis(10));
                    record = back;
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
}
