//! `quench notify`: a consumer group on `incident-routing` (read_committed) that delivers each
//! routing event to its targets and runs escalation policies, beside the acknowledgement API.
//!
//! Delivery is at-least-once with deduplication. Events are read in batches; every (event,
//! target) has an idempotency key; keys already in the delivery log are skipped; after a batch's
//! deliveries, the log records, attempt records, dead letters and escalation state are produced
//! and flushed, and only then are the batch's offsets committed. A notifier killed mid-batch
//! therefore re-sends only what it delivered but had not logged, with the same key (PagerDuty
//! dedup_key, webhook Idempotency-Key, Slack client_msg_id and thread), so receivers can drop it.
//! The log, threads and escalation timers of a partition are read back from Kafka when it is
//! assigned.

mod directory;
mod state;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures::{stream, StreamExt};
use quench_notify::{
    api::{self, Rejection, Submit},
    channel::{Notice, Receipt},
    deliver::{Attempt, Deliverer},
    planner::{Job, JobKind, PartitionState, Plan},
};
use quench_schemas::{now_ms, Decoder, Encoder, Incident, IncidentAction, RoutingEvent};
use rdkafka::{
    consumer::{CommitMode, Consumer, StreamConsumer},
    message::OwnedMessage,
    producer::{FutureProducer, FutureRecord},
    Message, Offset, TopicPartitionList,
};

use crate::{
    config::Config,
    events::{DuplicatesSkipped, NotificationFinished, RoutingEventUndecodable},
    http,
    kafka::{client_config, consumed, reader_config, Rebalanced, Rebalances},
    preflight::registry_client,
};
use directory::Directory;

/// A job the deliverer finished: its attempts, and how it ended.
struct Done {
    job: Job,
    attempts: Vec<Attempt>,
    result: Result<Receipt, String>,
    at: i64,
}

pub async fn run(config: &Config, shutdown: Arc<AtomicBool>) -> anyhow::Result<()> {
    let notify = &config.notify;
    let registry = registry_client(&config.registry)?;
    let producer: FutureProducer = client_config(&config.kafka, "notify")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .create()?;
    let readiness = http::Readiness::starting();
    let directory = Directory::spawn(config, Decoder::<Incident>::new(registry.clone()))?;
    let actions = Encoder::<IncidentAction>::register(&registry, &config.topics.actions).await?;
    let submit = submitter(config, producer.clone(), actions, directory);
    let app = api::router(notify.api_tokens.clone(), submit).merge(http::operations(readiness.clone())?);
    let listener = http::bind(&notify.listen, "notify.listen").await?;
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let stopped = async move {
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
            tracing::error!(error = %e, "acknowledgement API stopped");
        }
    });

    let consumer: StreamConsumer<Rebalances> =
        reader_config(&config.kafka, "notify", &notify.group_id).create_with_context(Rebalances::new(|| {}))?;
    consumer.subscribe(&[&config.topics.routing])?;
    let mut notifier = Notifier {
        config,
        deliverer: Deliverer::new(notify)?,
        decoder: Decoder::new(registry),
        producer,
        consumer,
        partitions: HashMap::new(),
    };
    tracing::info!(
        group = %notify.group_id, topic = %config.topics.routing, api = %notify.listen,
        targets = notify.slack.len() + notify.pagerduty.len() + notify.teams.len() + notify.email.len() + notify.webhook.len(),
        policies = notify.policies.len(),
        "notifier started"
    );
    if notify.api_tokens.is_empty() {
        tracing::warn!("notify.api_tokens is empty: the acknowledgement API refuses every request");
    }
    readiness.ready();
    let mut last_tick = Instant::now();
    while !shutdown.load(Ordering::SeqCst) {
        let batch = notifier.poll_batch().await?;
        let tick_due = last_tick.elapsed() >= Duration::from_millis(notify.tick_ms);
        if !batch.is_empty() || tick_due {
            notifier.process(batch, tick_due).await?;
            if tick_due {
                last_tick = Instant::now();
            }
        }
    }
    tracing::info!("notifier stopped after logging its last batch");
    Ok(())
}

/// The API's way to Kafka: the incident's partition from the directory, then a produce that
/// answers once Kafka has the action.
fn submitter(
    config: &Config,
    producer: FutureProducer,
    encoder: Encoder<IncidentAction>,
    directory: Arc<Directory>,
) -> Submit {
    let topic = config.topics.actions.clone();
    let encoder = Arc::new(encoder);
    Arc::new(move |mut action: IncidentAction| {
        let (producer, encoder, directory, topic) =
            (producer.clone(), encoder.clone(), directory.clone(), topic.clone());
        Box::pin(async move {
            let Some(located) = directory.find(&action.incident_id) else {
                return Err(if directory.caught_up() {
                    Rejection::UnknownIncident
                } else {
                    Rejection::Unavailable("still reading the incidents topic".into())
                });
            };
            action.tenant = located.tenant;
            let value = encoder.encode(&action).map_err(|e| Rejection::Unavailable(e.to_string()))?;
            let record = FutureRecord::to(&topic).key(&action.incident_id).payload(&value).partition(located.partition);
            producer
                .send(record, Duration::from_secs(5))
                .await
                .map(|_| ())
                .map_err(|(e, _)| Rejection::Unavailable(e.to_string()))
        })
    })
}

struct Notifier<'a> {
    config: &'a Config,
    deliverer: Deliverer,
    decoder: Decoder<RoutingEvent>,
    producer: FutureProducer,
    consumer: StreamConsumer<Rebalances>,
    partitions: HashMap<i32, PartitionState>,
}

impl Notifier<'_> {
    /// Up to `batch_events` records, or what arrives within 50 ms. Records read before a
    /// revocation are dropped: their partitions' next owner reads them again.
    async fn poll_batch(&mut self) -> anyhow::Result<Vec<OwnedMessage>> {
        let mut batch = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(50);
        while batch.len() < self.config.notify.batch_events {
            let received = tokio::time::timeout_at(deadline, self.consumer.recv()).await.map(|r| r.map(|m| m.detach()));
            self.apply_rebalances(&mut batch)?;
            match received {
                Ok(polled) => {
                    if let Some(message) = consumed(polled, "notify")? {
                        if self.partitions.contains_key(&message.partition()) {
                            batch.push(message);
                        }
                    }
                }
                Err(_) => break,
            }
        }
        Ok(batch)
    }

    fn apply_rebalances(&mut self, batch: &mut Vec<OwnedMessage>) -> anyhow::Result<()> {
        for event in self.consumer.context().take() {
            match event {
                Rebalanced::Revoked => {
                    batch.clear();
                    self.partitions.clear();
                }
                Rebalanced::Assigned(partitions) => {
                    let committed = self.committed(&partitions)?;
                    for partition in partitions {
                        let from = committed.get(&partition).copied().unwrap_or(0);
                        let state = tokio::task::block_in_place(|| {
                            state::load(
                                &self.config.kafka,
                                &self.config.topics,
                                &self.config.notify.group_id,
                                partition,
                                from,
                            )
                        })?;
                        tracing::info!(
                            partition,
                            logged = state.delivered.len(),
                            escalations = state.escalations.running(),
                            "partition assigned, delivery log and timers restored"
                        );
                        self.partitions.insert(partition, state);
                    }
                }
            }
        }
        Ok(())
    }

    fn committed(&self, partitions: &[i32]) -> anyhow::Result<HashMap<i32, i64>> {
        let mut list = TopicPartitionList::new();
        for p in partitions {
            list.add_partition(&self.config.topics.routing, *p);
        }
        let committed = self.consumer.committed_offsets(list, Duration::from_secs(30))?;
        Ok(committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect())
    }

    async fn process(&mut self, batch: Vec<OwnedMessage>, tick: bool) -> anyhow::Result<()> {
        let notify = &self.config.notify;
        let now = now_ms();
        let mut plan = Plan::default();
        let mut offsets: BTreeMap<i32, i64> = BTreeMap::new();
        let mut pending = Vec::new();
        for message in &batch {
            let (partition, routing_offset) = (message.partition(), message.offset());
            offsets.insert(partition, routing_offset + 1);
            let event = match message.payload() {
                Some(bytes) => match self.decoder.decode(bytes).await {
                    // The registry stayed unavailable: stop before committing, read it again
                    // after the restart; a page must not be lost to a dependency's failure.
                    Err(e) if e.is_transient() => return Err(e.into()),
                    decoded => decoded.map_err(|e| e.to_string()),
                },
                None => Err("record has no value".into()),
            };
            let event = match event {
                Ok(event) => event,
                Err(reason) => {
                    let at = format!("{}/{partition}@{}", message.topic(), message.offset());
                    RoutingEventUndecodable { record: &at, error: &reason }.emit();
                    pending.push(send_json(
                        &self.producer,
                        &self.config.topics.notifications_dlq,
                        &at,
                        None,
                        &serde_json::json!({
                            "reason": format!("undecodable routing event: {reason}"), "record": at,
                        }),
                    ));
                    continue;
                }
            };
            let state = self.partitions.get_mut(&partition).expect("only assigned partitions are batched");
            state.plan_event(notify, partition, event, routing_offset, now, &mut plan);
        }
        if tick || !batch.is_empty() {
            for (partition, state) in &mut self.partitions {
                state.plan_pages(notify, *partition, now, &mut plan);
            }
        }
        DuplicatesSkipped { count: plan.skipped }.emit();
        for (incident, step) in &plan.unstaffed {
            tracing::warn!(incident, step, "escalation step has nobody to page");
        }
        let done = self.deliver(plan.jobs).await;
        self.record(done, &mut pending);
        for (partition, state) in &mut self.partitions {
            for (key, value) in state.escalation_records() {
                pending.push(send_bytes(
                    &self.producer,
                    &self.config.topics.notify_state,
                    &key,
                    Some(*partition),
                    value,
                ));
            }
        }
        for result in futures::future::join_all(pending).await {
            result?;
        }
        if !offsets.is_empty() {
            let mut list = TopicPartitionList::new();
            for (partition, offset) in offsets {
                list.add_partition_offset(&self.config.topics.routing, partition, Offset::Offset(offset))?;
            }
            self.consumer.commit(&list, CommitMode::Sync)?;
            self.partitions.values_mut().for_each(PartitionState::committed);
        }
        Ok(())
    }

    /// Runs the jobs, one incident's in order (so a Slack thread exists before its replies and
    /// PagerDuty sees trigger before resolve), different incidents concurrently.
    async fn deliver(&self, jobs: BTreeMap<String, Vec<Job>>) -> Vec<Done> {
        let threads: Vec<(Vec<Job>, HashMap<String, String>)> = jobs
            .into_values()
            .map(|jobs| {
                let threads = self.partitions[&jobs[0].partition].threads(&jobs);
                (jobs, threads)
            })
            .collect();
        let deliverer = &self.deliverer;
        stream::iter(threads)
            .map(|(jobs, mut threads)| async move {
                let mut done = Vec::with_capacity(jobs.len());
                for job in jobs {
                    let notice = Notice {
                        key: &job.key,
                        event: &job.event,
                        message: &job.message,
                        thread: threads.get(&job.target).map(String::as_str),
                    };
                    let mut attempts = Vec::new();
                    let result = deliverer.deliver(&job.target, &notice, &mut attempts).await;
                    if let Ok(Receipt { thread: Some(ts), .. }) = &result {
                        threads.insert(job.target.clone(), ts.clone());
                    }
                    done.push(Done { job, attempts, result, at: now_ms() });
                }
                done
            })
            .buffer_unordered(self.config.notify.concurrency)
            .flat_map(stream::iter)
            .collect()
            .await
    }

    /// Queues the delivery log, attempt, dead-letter and thread records of finished jobs.
    fn record(&mut self, done: Vec<Done>, pending: &mut Vec<futures::future::BoxFuture<'static, anyhow::Result<()>>>) {
        let topics = &self.config.topics;
        for Done { job, attempts, result, at } in done {
            for attempt in &attempts {
                let record = job.attempt_record(attempt, at);
                pending.push(send_json(&self.producer, &topics.notifications, &job.key, None, &record));
            }
            let failed = result.as_ref().err();
            if let Some(reason) = failed {
                let letter = job.dead_letter(reason, at);
                pending.push(send_json(&self.producer, &topics.notifications_dlq, &job.key, None, &letter));
            }
            let since_emitted =
                (job.kind == JobKind::Event).then(|| Duration::from_millis((at - job.event.emitted_at).max(0) as u64));
            NotificationFinished {
                key: &job.key,
                kind: job.kind.as_str(),
                failed: failed.map(String::as_str),
                since_emitted,
            }
            .emit();
            let delivered = job.logged(if failed.is_some() { "failed" } else { "delivered" }, at);
            pending.push(send_json(&self.producer, &topics.deliveries, &job.key, Some(job.partition), &delivered));
            let state = self.partitions.get_mut(&job.partition).expect("jobs come from assigned partitions");
            if let Some((key, ts)) = state.finished(&job, result.as_ref().ok()) {
                pending.push(send_bytes(
                    &self.producer,
                    &topics.notify_state,
                    &key,
                    Some(job.partition),
                    ts.map(String::into_bytes),
                ));
            }
        }
    }
}

fn send_json(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    partition: Option<i32>,
    value: &impl serde::Serialize,
) -> futures::future::BoxFuture<'static, anyhow::Result<()>> {
    let value = serde_json::to_vec(value).expect("records serialise");
    send_bytes(producer, topic, key, partition, Some(value))
}

/// Produces a record (a tombstone when `value` is `None`) and returns its acknowledgement.
fn send_bytes(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    partition: Option<i32>,
    value: Option<Vec<u8>>,
) -> futures::future::BoxFuture<'static, anyhow::Result<()>> {
    let (producer, topic, key) = (producer.clone(), topic.to_string(), key.to_string());
    Box::pin(async move {
        let mut record = FutureRecord::<str, [u8]>::to(&topic).key(&key);
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        if let Some(value) = &value {
            record = record.payload(value);
        }
        producer
            .send(record, Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(e, _)| anyhow::anyhow!("producing to {topic}: {e}"))
    })
}
