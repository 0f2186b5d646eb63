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
    consumer::{BaseConsumer, Consumer},
    error::KafkaError,
    producer::{BaseProducer, BaseRecord, Producer},
    TopicPartitionList,
};

use crate::{
    config::{KafkaConfig, WorkerConfig},
    kafka::{abort_transaction, client_config, reader_config, send_waiting, Rebalanced, Rebalances},
};

pub const TXN_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Session {
    pub producer: Arc<BaseProducer>,
    pub consumer: BaseConsumer<Rebalances>,
    in_transaction: Arc<AtomicBool>,
    abort_failed: Arc<Mutex<Option<KafkaError>>>,
}

impl Session {
    /// Joins `group` on `topics` as `instance`, with a transactional producer named after both.
    /// The range assignor gives one member the same partition number of every topic, which is
    /// what lets the worker read an incident's actions beside its alerts.
    pub fn connect(
        kafka: &KafkaConfig,
        worker: &WorkerConfig,
        role: &str,
        group: &str,
        instance: &str,
        topics: &[&str],
    ) -> anyhow::Result<Self> {
        let producer: BaseProducer = client_config(kafka, role)
            .set("transactional.id", format!("{group}-{instance}"))
            .set("enable.idempotence", "true")
            .set("transaction.timeout.ms", "30000")
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .create()?;
        producer.init_transactions(TXN_TIMEOUT).context("initialising the transactional producer")?;
        let producer = Arc::new(producer);
        let in_transaction = Arc::new(AtomicBool::new(false));
        let abort_failed = Arc::new(Mutex::new(None));
        let (aborting, open, failed) = (producer.clone(), in_transaction.clone(), abort_failed.clone());
        let context = Rebalances::new(move || {
            if open.swap(false, Ordering::SeqCst) {
                crate::events::TransactionAborted.emit();
                if let Err(e) = abort_transaction(&aborting, TXN_TIMEOUT) {
                    *failed.lock().expect("abort outcome") = Some(e);
                }
            }
        });
        let consumer: BaseConsumer<Rebalances> = reader_config(kafka, role, group)
            // Static membership: a restarted member takes its partitions back at once instead of
            // waiting for its previous incarnation's session to time out.
            .set("group.instance.id", instance)
            .set("session.timeout.ms", worker.session_timeout_ms.to_string())
            .set("partition.assignment.strategy", "range")
            .set("statistics.interval.ms", "5000")
            .create_with_context(context)?;
        consumer.subscribe(topics)?;
        Ok(Self { producer, consumer, in_transaction, abort_failed })
    }

    /// Rebalances since the last call, in order; an error when the transaction open at a
    /// revocation could not be aborted: the producer is then in no state to begin another, and
    /// the process ends (abort-and-exit) naming why instead of failing at its next transaction.
    pub fn rebalances(&self) -> anyhow::Result<Vec<Rebalanced>> {
        if let Some(e) = self.abort_failed.lock().expect("abort outcome").take() {
            return Err(e).context("aborting the open transaction when partitions were revoked");
        }
        Ok(self.consumer.context().take())
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
    pub fn send<K, P>(&self, record: BaseRecord<'_, K, P>) -> anyhow::Result<()>
    where
        K: rdkafka::message::ToBytes + ?Sized,
        P: rdkafka::message::ToBytes + ?Sized,
    {
        send_waiting(&self.producer, record)
    }
}
