//! `quench run`: the stateless stream worker.
//!
//! One consume-transform-produce loop per process. Records are decoded, fingerprinted, routed and
//! fed to the pure windowing core ([`crate::window`]) of their partition. Every `commit_interval`
//! one Kafka transaction carries what the core produced (incident states, routing events), the
//! changed windows (the `quench-state` changelog), dead letters, and the consumed offsets. So a
//! read_committed consumer sees each output exactly once whatever happens to the worker.
//!
//! On a rebalance the open transaction is aborted and the state of every partition is rebuilt from
//! the changelog, from the last committed offsets: the eager rebalance protocol revokes everything,
//! so no partition's in-memory state can outlive a transaction that did not commit. Any other
//! transaction error ends the process (abort-and-exit), for its supervisor to restart it: restart
//! is the one recovery path, and it is tested by killing workers.

mod changelog;
mod clock;
mod dlq;

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use quench_schemas::{Alert, Decoder, Encoder, Incident, RoutingEvent};
use rdkafka::{
    consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance},
    error::KafkaError,
    producer::{BaseProducer, BaseRecord, Producer},
    types::RDKafkaErrorCode,
    ClientContext, Message, Offset, TopicPartitionList,
};
use tokio::runtime::Handle;

use crate::{
    config::Config,
    fingerprint::fingerprint,
    http::Readiness,
    kafka::client_config,
    preflight::registry_client,
    rules::{RouteTree, RulesSource},
    window::{Output, Placement, Windows},
};
use clock::Clock;
use dlq::DeadLetter;

const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the worker until `shutdown` is set, then commits the transaction in flight and returns.
pub async fn run(
    config: Config,
    rules: (RulesSource, RouteTree),
    shutdown: Arc<AtomicBool>,
    readiness: Arc<Readiness>,
) -> anyhow::Result<()> {
    let registry = registry_client(&config)?;
    let incidents = Encoder::<Incident>::register(&registry, &config.topics.incidents).await?;
    let routing = Encoder::<RoutingEvent>::register(&registry, &config.topics.routing).await?;
    let decoder = Decoder::<Alert>::new(registry);
    let handle = Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut worker = Worker::start(config, rules, decoder, incidents, routing, handle, readiness)?;
        worker.run(&shutdown)
    })
    .await?
}

/// What the consumer's rebalance callbacks tell the loop.
enum Rebalanced {
    Revoked,
    Assigned(Vec<i32>),
}

struct RebalanceContext {
    producer: Arc<BaseProducer>,
    events: Mutex<Vec<Rebalanced>>,
    in_transaction: Arc<AtomicBool>,
}

impl ClientContext for RebalanceContext {}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            // Abort before the partitions move, so that their next owner's read_committed
            // changelog restore is not held up by this worker's open transaction.
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

struct PartitionState {
    windows: Windows,
    clock: Clock,
    /// What flushes produced since the last commit.
    outputs: Vec<Output>,
    /// Offset after the last consumed record, to commit with the next transaction.
    next_offset: Option<i64>,
}

struct Worker {
    config: Config,
    rules: RouteTree,
    rules_source: RulesSource,
    readiness: Arc<Readiness>,
    decoder: Decoder<Alert>,
    incidents: Encoder<Incident>,
    routing: Encoder<RoutingEvent>,
    handle: Handle,
    producer: Arc<BaseProducer>,
    consumer: BaseConsumer<RebalanceContext>,
    in_transaction: Arc<AtomicBool>,
    partitions: HashMap<i32, PartitionState>,
    dead_letters: Vec<DeadLetter>,
}

impl Worker {
    fn start(
        config: Config,
        (rules_source, rules): (RulesSource, RouteTree),
        decoder: Decoder<Alert>,
        incidents: Encoder<Incident>,
        routing: Encoder<RoutingEvent>,
        handle: Handle,
        readiness: Arc<Readiness>,
    ) -> anyhow::Result<Self> {
        let instance = config.worker.instance_id.clone().unwrap_or_else(hostname);
        let producer: BaseProducer = client_config(&config.kafka, "worker")
            .set("transactional.id", format!("{}-{instance}", config.worker.group_id))
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
        let consumer: BaseConsumer<RebalanceContext> = client_config(&config.kafka, "worker")
            .set("group.id", &config.worker.group_id)
            // Static membership: a restarted worker takes its partitions back at once instead of
            // waiting for its previous incarnation's session to time out.
            .set("group.instance.id", &instance)
            .set("session.timeout.ms", config.worker.session_timeout_ms.to_string())
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "range")
            .create_with_context(context)?;
        consumer.subscribe(&[&config.topics.alerts])?;
        tracing::info!(instance, group = %config.worker.group_id, topic = %config.topics.alerts, "worker started");
        readiness.not_ready("joining the consumer group");
        Ok(Self {
            config,
            rules,
            rules_source,
            readiness,
            decoder,
            incidents,
            routing,
            handle,
            producer,
            consumer,
            in_transaction,
            partitions: HashMap::new(),
            dead_letters: Vec::new(),
        })
    }

    fn run(&mut self, shutdown: &AtomicBool) -> anyhow::Result<()> {
        let interval = Duration::from_millis(self.config.worker.commit_interval_ms);
        let mut last_commit = Instant::now();
        while !shutdown.load(Ordering::SeqCst) {
            let polled = self.consumer.poll(Duration::from_millis(20)).map(|r| r.map(|m| m.detach()));
            self.apply_rebalances()?;
            if let Some(message) = polled {
                let message = message?;
                if self.partitions.contains_key(&message.partition()) {
                    self.process(&message)?;
                }
            }
            if last_commit.elapsed() >= interval {
                self.commit()?;
                self.reload_rules();
                last_commit = Instant::now();
            }
        }
        self.commit()?;
        tracing::info!("worker stopped after committing its last transaction");
        Ok(())
    }

    fn apply_rebalances(&mut self) -> anyhow::Result<()> {
        let events: Vec<Rebalanced> =
            std::mem::take(&mut *self.consumer.context().events.lock().expect("rebalance events"));
        for event in events {
            match event {
                Rebalanced::Revoked => {
                    self.partitions.clear();
                    self.dead_letters.clear();
                    self.readiness.not_ready("rebalancing");
                }
                Rebalanced::Assigned(partitions) => {
                    let started = Instant::now();
                    for partition in partitions {
                        let groups = changelog::restore(&self.config, partition, Duration::from_secs(120))?;
                        let newest = groups.iter().map(|g| g.last_seen()).max();
                        let mut windows = Windows::default();
                        for group in groups {
                            windows.restore(group);
                        }
                        let worker = &self.config.worker;
                        let clock = Clock::new(
                            newest,
                            Duration::from_millis(worker.allowed_lateness_ms),
                            Duration::from_millis(worker.idle_timeout_ms),
                        );
                        tracing::info!(partition, groups = windows.open_groups(), "partition assigned, state restored");
                        self.partitions.insert(
                            partition,
                            PartitionState { windows, clock, outputs: Vec::new(), next_offset: None },
                        );
                    }
                    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "restore finished");
                    self.readiness.ready();
                }
            }
        }
        Ok(())
    }

    /// Swaps in new rules between two records; a broken file keeps the rules in force.
    fn reload_rules(&mut self) {
        match self.rules_source.poll() {
            None => {}
            Some(Ok(rules)) => {
                self.rules = rules;
                metrics::counter!("quench_rules_reloads_total", "outcome" => "applied").increment(1);
                tracing::info!("rules reloaded");
            }
            Some(Err(e)) => {
                metrics::counter!("quench_rules_reloads_total", "outcome" => "rejected").increment(1);
                tracing::error!(error = %e, "new rules rejected; the previous rules stay in force");
            }
        }
    }

    fn process(&mut self, message: &rdkafka::message::OwnedMessage) -> anyhow::Result<()> {
        let partition = message.partition();
        let dead = |reason: String| DeadLetter {
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            reason,
            topic: message.topic().to_string(),
            partition,
            offset: message.offset(),
        };
        let state = self.partitions.get_mut(&partition).expect("checked by the caller");
        state.next_offset = Some(message.offset() + 1);
        let decoded = match message.payload() {
            // Only a schema id seen for the first time costs a registry call.
            Some(bytes) => match self.decoder.try_decode(bytes) {
                Some(decoded) => decoded,
                None => self.handle.block_on(self.decoder.decode(bytes)),
            }
            .map_err(|e| e.to_string()),
            None => Err("record has no value".to_string()),
        };
        let alert = match decoded {
            Ok(alert) => alert,
            Err(reason) => {
                metrics::counter!("quench_dlq_records_total", "reason" => "undecodable").increment(1);
                self.dead_letters.push(dead(reason));
                return Ok(());
            }
        };
        metrics::counter!("quench_alerts_consumed_total").increment(1);
        let fingerprint = fingerprint(&alert.labels);
        if state.clock.observe(alert.received_at) {
            metrics::counter!("quench_late_alerts_total").increment(1);
        }
        // Timers fire as event time passes them, before the alert is added: when a backlog is
        // replayed, each group is evaluated at its due time, not at the end of the backlog.
        if let Some(watermark) = state.clock.watermark() {
            state.windows.tick(watermark, &mut state.outputs);
        }
        let routes = self.rules.routes_for(&alert.labels);
        let mut placements = Vec::with_capacity(routes.len());
        for route in routes {
            match route.group_key(&alert.tenant, &alert.labels) {
                Ok((key, group_labels)) => placements.push(Placement { key, group_labels, timing: route.timing }),
                Err(missing) => {
                    metrics::counter!("quench_dlq_records_total", "reason" => "missing_label").increment(1);
                    self.dead_letters.push(dead(missing.to_string()));
                    return Ok(());
                }
            }
        }
        for placement in placements {
            state.windows.ingest(&alert, fingerprint, placement, alert.received_at);
        }
        Ok(())
    }

    /// Ticks every partition's windows and commits one transaction with everything produced.
    fn commit(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut outputs = Vec::new();
        let mut offsets = TopicPartitionList::new();
        let mut changes: Vec<(i32, String, Option<Vec<u8>>)> = Vec::new();
        for (partition, state) in &mut self.partitions {
            if let Some(now) = state.clock.watermark() {
                state.windows.tick(now, &mut state.outputs);
            }
            outputs.append(&mut state.outputs);
            for (key, group) in state.windows.take_changes() {
                changes.push((*partition, key.0, group.map(serde_json::to_vec).transpose()?));
            }
            if let Some(offset) = state.next_offset.take() {
                offsets.add_partition_offset(&self.config.topics.alerts, *partition, Offset::Offset(offset))?;
            }
        }
        if outputs.is_empty() && changes.is_empty() && offsets.count() == 0 && self.dead_letters.is_empty() {
            return Ok(());
        }
        self.producer.begin_transaction()?;
        self.in_transaction.store(true, Ordering::SeqCst);
        for output in &outputs {
            match output {
                Output::Incident(incident) => {
                    let value = self.incidents.encode(incident)?;
                    send(
                        &self.producer,
                        BaseRecord::to(&self.config.topics.incidents).key(&incident.incident_id).payload(&value),
                    )?;
                }
                Output::Routing(event) => {
                    let value = self.routing.encode(event)?;
                    send(
                        &self.producer,
                        BaseRecord::to(&self.config.topics.routing).key(&event.incident_id).payload(&value),
                    )?;
                }
            }
        }
        for (partition, key, value) in &changes {
            let mut record = BaseRecord::<str, [u8]>::to(&self.config.topics.state).key(key).partition(*partition);
            if let Some(value) = value {
                record = record.payload(value);
            }
            send(&self.producer, record)?;
        }
        for letter in self.dead_letters.drain(..) {
            send(&self.producer, letter.record(&self.config.topics.dlq))?;
        }
        if offsets.count() > 0 {
            let metadata = self.consumer.group_metadata().context("consumer group metadata")?;
            self.producer.send_offsets_to_transaction(&offsets, &metadata, TXN_TIMEOUT)?;
        }
        self.producer.commit_transaction(TXN_TIMEOUT).context("committing the transaction")?;
        self.in_transaction.store(false, Ordering::SeqCst);
        let incidents = outputs.iter().filter(|o| matches!(o, Output::Incident(_))).count();
        metrics::counter!("quench_incident_updates_total").increment(incidents as u64);
        metrics::counter!("quench_routing_events_total").increment((outputs.len() - incidents) as u64);
        metrics::histogram!("quench_transaction_seconds").record(started.elapsed().as_secs_f64());
        metrics::gauge!("quench_open_groups")
            .set(self.partitions.values().map(|p| p.windows.open_groups()).sum::<usize>() as f64);
        Ok(())
    }
}

/// Sends a record, waiting for room when librdkafka's local queue is full.
fn send<K: rdkafka::message::ToBytes + ?Sized, P: rdkafka::message::ToBytes + ?Sized>(
    producer: &BaseProducer,
    mut record: BaseRecord<'_, K, P>,
) -> anyhow::Result<()> {
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

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into())
}
