//! `quench notify`: a consumer group on `incident-routing` (read_committed) that delivers each
//! routing event to its targets and runs escalation policies, beside the acknowledgement API.
//!
//! Delivery is at-least-once with deduplication, and never waits in line: every (event, target)
//! becomes a job with an idempotency key, queued in its target's lane (`quench_notify::lanes`:
//! its own rate budget, retry schedule and slots), so a dead webhook or a throttled Slack holds up
//! only its own deliveries while the consumer keeps polling. A job's log, attempt, dead-letter and
//! state records are produced when it ends; a routing event's offset is committed once every job
//! of it and of every event before it has ended and its records are acknowledged. A retry waiting
//! for its time, and an escalation page not delivered yet, are pending records in the state
//! topic, so a restarted notifier goes on with the same attempt number at the same time. A
//! notifier killed re-sends only what it delivered but had not logged, with the same key
//! (PagerDuty dedup_key, webhook Idempotency-Key, Slack client_msg_id and thread), so receivers
//! can drop it. The log, threads, timers and pending jobs of a partition are read back from Kafka
//! when it is assigned. When `max_queued` jobs wait, reading pauses (still polling, so the group
//! keeps the consumer) until they drain.

pub(crate) mod receivers;
mod state;

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures::{future::BoxFuture, stream::FuturesUnordered, StreamExt};
use quench_core::rules::RouteTree;
use quench_notify::{
    api::{self, Rejection, Submit},
    callbacks,
    channel::Notice,
    deliver::{Attempt, Deliverer, Outcome},
    lanes::{Lanes, Queued},
    planner::{JobKind, PartitionState, Plan, StateRecord},
    template::{self, Markup},
};
use quench_schemas::{headers, now_ms, Decoder, IncidentAction, RoutingEvent, RoutingReason};
use rdkafka::{
    consumer::{CommitMode, Consumer, StreamConsumer},
    error::{KafkaError, RDKafkaErrorCode},
    message::OwnedMessage,
    producer::{FutureProducer, FutureRecord},
    Message, Offset, TopicPartitionList,
};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::{
    actions::Actions,
    clickhouse,
    config::Config,
    events::{DeliveriesQueued, DuplicatesSkipped, NotificationFinished, RoutingEventUndecodable},
    http,
    kafka::{
        check_partition_counts, client_config, consumed, header, reader_config, recheck_partition_counts, Rebalanced,
        Rebalances,
    },
    preflight::registry_client,
    similar::note::Notes,
};

/// An attempt that ended, reported by its task.
struct Finished {
    /// The assignment it was started under; a revocation makes it stale.
    generation: u64,
    queued: Queued,
    attempt: Attempt,
    outcome: Outcome,
    at: i64,
}

/// A job's records are acknowledged by Kafka: the routing event's offset it ends, if any.
struct Acked {
    generation: u64,
    partition: i32,
    offset: Option<i64>,
}

/// What woke the notifier's loop.
enum Wake {
    Message(Option<OwnedMessage>),
    Finished(Finished),
    Acked(Acked),
    Tick,
    Timer,
}

/// How often the finished prefix of the routing partitions is committed.
const COMMIT_INTERVAL: Duration = Duration::from_millis(100);

pub async fn run(config: &Config, shutdown: Arc<AtomicBool>) -> anyhow::Result<()> {
    let config = &with_receivers(config)?;
    let notify = &config.notify;
    let registry = registry_client(&config.registry)?;
    let producer: FutureProducer = client_config(&config.kafka, "notify")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .create()?;
    let (readiness, operations) = http::public(&config.http).await?;
    let actions = Actions::start(config, &registry, producer.clone(), "notify").await?;
    let submit = submitter(Arc::new(actions));
    let app = api::router(notify.api_tokens.clone(), submit.clone())
        .merge(callbacks::router(&notify.callbacks, submit))
        .merge(operations);
    let listener = http::bind(&notify.listen, "notify.listen").await?;
    let (stop, limits) = (shutdown.clone(), config.http.limits.clone());
    tokio::spawn(async move {
        let stopped = async move {
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        if let Err(e) = crate::serve::serve(listener, app, &limits, stopped).await {
            tracing::error!(error = %e, "acknowledgement API stopped");
        }
    });

    // Eager rebalancing: a revocation takes every partition, which is what the loop assumes.
    let consumer: StreamConsumer<Rebalances> = reader_config(&config.kafka, "notify", &notify.group_id)
        .set("partition.assignment.strategy", "range")
        .create_with_context(Rebalances::new(|| {}))?;
    tokio::task::block_in_place(|| check_partition_counts(&config.kafka, &partitions_together(config)))?;
    consumer.subscribe(&[&config.topics.routing])?;
    let deliverer = Deliverer::new(notify)?;
    let notes = config.api.similar.enabled.then(|| {
        let model_dir = &config.classify.local.model_dir;
        let reader = clickhouse::client(&config.clickhouse).with_setting("readonly", "2");
        tokio::task::block_in_place(|| Notes::load(reader, &config.api.similar, model_dir)).map(Arc::new)
    });
    let (finished, mut finishes) = mpsc::unbounded_channel();
    let mut notifier = Notifier {
        config,
        lanes: Lanes::new(notify.concurrency, deliverer.budgets(), now_ms()),
        deliverer: Arc::new(deliverer),
        decoder: Decoder::new(registry),
        producer,
        consumer,
        partitions: HashMap::new(),
        committed: HashMap::new(),
        generation: 0,
        finished,
        tasks: tokio::task::JoinSet::new(),
        in_flight: 0,
        notes: notes.flatten(),
        acks: FuturesUnordered::new(),
        paused: false,
        last_commit: Instant::now(),
        traced: quench_trace::Pending::default(),
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
    let mut tick = tokio::time::interval(Duration::from_millis(notify.tick_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !shutdown.load(Ordering::SeqCst) {
        let now = now_ms();
        let timer = notifier.lanes.wake_at(now).map_or(1_000, |at| (at - now).clamp(0, 1_000)) as u64;
        let wake = tokio::select! {
            received = notifier.consumer.recv() => Wake::Message(consumed(received.map(|m| m.detach()), "notify")?),
            Some(finished) = finishes.recv() => Wake::Finished(finished),
            Some(acked) = notifier.acks.next(), if !notifier.acks.is_empty() => Wake::Acked(acked?),
            _ = tick.tick() => Wake::Tick,
            _ = tokio::time::sleep(Duration::from_millis(timer)) => Wake::Timer,
        };
        notifier.apply_rebalances()?;
        match wake {
            Wake::Message(Some(message)) => notifier.read(message).await?,
            Wake::Finished(finished) => notifier.finish(finished),
            Wake::Acked(acked) => notifier.acked(acked),
            Wake::Tick => notifier.fire_pages().await?,
            Wake::Message(None) | Wake::Timer => {}
        }
        notifier.start_ready();
        while let Some(ended) = notifier.tasks.try_join_next() {
            // Only an aborted attempt ends without reporting; a panic is a bug to surface.
            if let Err(e) = ended {
                anyhow::ensure!(e.is_cancelled(), "a delivery attempt panicked: {e}");
            }
        }
        notifier.commit(false).await?;
        notifier.pause_when_full()?;
    }
    notifier.drain(&mut finishes).await?;
    tracing::info!("notifier stopped after logging its last deliveries");
    Ok(())
}

/// The acknowledgement API's way to Kafka: the incident's partition and tenant from the
/// directory, then the produce. An incident outside the caller's scope is unknown to it.
fn submitter(actions: Arc<Actions>) -> Submit {
    Arc::new(move |mut action: IncidentAction, scope| {
        let actions = actions.clone();
        Box::pin(async move {
            let located = actions.locate(&action.incident_id)?;
            if scope.is_some_and(|tenants| !tenants.contains(&located.tenant)) {
                return Err(Rejection::UnknownIncident);
            }
            action.tenant = located.tenant;
            actions.send(&action, located.partition).await
        })
    })
}

struct Notifier<'a> {
    config: &'a Config,
    deliverer: Arc<Deliverer>,
    lanes: Lanes,
    decoder: Decoder<RoutingEvent>,
    producer: FutureProducer,
    consumer: StreamConsumer<Rebalances>,
    partitions: HashMap<i32, PartitionState>,
    /// The offset last committed per partition.
    committed: HashMap<i32, i64>,
    /// Bumped when partitions are revoked: what was started before is not this notifier's any more.
    generation: u64,
    finished: mpsc::UnboundedSender<Finished>,
    /// Attempts running, aborted on revocation: the partitions' next owner (maybe this
    /// notifier again) starts them over, and a stale attempt must not overtake a newer one.
    tasks: tokio::task::JoinSet<()>,
    in_flight: usize,
    /// The "looks like" line of opening messages (`api.similar.enabled` and the model loaded).
    notes: Option<Arc<Notes>>,
    /// Records of ended jobs, until Kafka acknowledges them.
    acks: FuturesUnordered<BoxFuture<'static, anyhow::Result<Acked>>>,
    paused: bool,
    last_commit: Instant,
    /// Routing events read with a trace context (see `quench-trace`): event id → `traceparent`,
    /// under which their deliveries are attempted.
    traced: quench_trace::Pending,
}

impl Notifier<'_> {
    /// Takes in the rebalances the consumer reported. A revocation drops every job (their
    /// partitions' next owner reads the events again and skips what the log has); an assignment
    /// restores the partition's state and queues its pending pages.
    fn apply_rebalances(&mut self) -> anyhow::Result<()> {
        for event in self.consumer.context().take() {
            match event {
                Rebalanced::Revoked => {
                    self.generation += 1;
                    self.tasks.abort_all();
                    self.in_flight = 0;
                    self.lanes.clear();
                    self.partitions.clear();
                    self.committed.clear();
                    self.acks.clear();
                    self.traced.clear();
                }
                Rebalanced::Assigned(partitions) => {
                    let topics = partitions_together(self.config);
                    tokio::task::block_in_place(|| recheck_partition_counts(&self.config.kafka, &topics))?;
                    let committed = self.committed_offsets(&partitions)?;
                    let notify = &self.config.notify;
                    for partition in partitions {
                        let from = committed.get(&partition).copied().unwrap_or(0);
                        let (mut state, stale) = tokio::task::block_in_place(|| {
                            state::load(&self.config.kafka, &self.config.topics, &notify.group_id, partition, from)
                        })?;
                        let pages = state.restored_pages(notify, partition);
                        tracing::info!(
                            partition,
                            logged = state.delivered.len(),
                            escalations = state.escalations.running(),
                            pending = state.pending.len() + pages.len(),
                            "partition assigned, delivery log, timers and pending deliveries restored"
                        );
                        let tombstones = self.send_state(partition, stale);
                        self.expect_acks(partition, None, tombstones);
                        self.partitions.insert(partition, state);
                        self.committed.insert(partition, from);
                        self.queue(pages);
                    }
                    // librdkafka keeps a pause across a reassignment: start reading again, and
                    // let the loop pause anew if the queues are still full.
                    self.consumer.resume(&self.consumer.assignment()?)?;
                    self.paused = false;
                }
            }
        }
        Ok(())
    }

    fn committed_offsets(&self, partitions: &[i32]) -> anyhow::Result<HashMap<i32, i64>> {
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

    /// Plans a routing event's deliveries into the lanes, or dead-letters an undecodable one.
    async fn read(&mut self, message: OwnedMessage) -> anyhow::Result<()> {
        let (partition, offset) = (message.partition(), message.offset());
        if !self.partitions.contains_key(&partition) {
            return Ok(());
        }
        let event = match message.payload() {
            Some(bytes) => match self.decoder.decode(bytes).await {
                // The registry stayed unavailable: stop before committing, read it again after
                // the restart; a page must not be lost to a dependency's failure.
                Err(e) if e.is_transient() => return Err(e.into()),
                decoded => decoded.map_err(|e| e.to_string()),
            },
            None => Err("record has no value".into()),
        };
        let state = self.partitions.get_mut(&partition).expect("checked above");
        let event = match event {
            Ok(event) => event,
            Err(reason) => {
                let at = format!("{}/{partition}@{offset}", message.topic());
                RoutingEventUndecodable { record: &at, error: &reason }.emit();
                let letter =
                    serde_json::json!({"reason": format!("undecodable routing event: {reason}"), "record": at});
                state.read(offset, 1);
                let sent = send_json(&self.producer, &self.config.topics.notifications_dlq, &at, None, &letter);
                self.expect_acks(partition, Some(offset), vec![sent]);
                return Ok(());
            }
        };
        if let Some(context) = header(&message, headers::TRACEPARENT).filter(|_| quench_trace::exporting()) {
            self.traced.insert(event.event_id.clone(), String::from_utf8_lossy(context).into_owned());
        }
        let mut plan = Plan::default();
        let now = now_ms();
        state.plan_event(&self.config.notify, partition, event, offset, now, &mut plan);
        DuplicatesSkipped { count: plan.skipped }.emit();
        self.queue(plan.jobs);
        Ok(())
    }

    /// Fires the escalation steps that are due: their pages are pending records before the
    /// timers that moved past them are written, then queued.
    async fn fire_pages(&mut self) -> anyhow::Result<()> {
        let now = now_ms();
        let mut sent = Vec::new();
        let mut jobs = Vec::new();
        for (partition, state) in &mut self.partitions {
            let mut plan = Plan::default();
            state.plan_pages(&self.config.notify, *partition, now, &mut plan);
            for (incident, step) in &plan.unstaffed {
                tracing::warn!(incident, step, "escalation step has nobody to page");
            }
            let records = plan.records.into_iter().chain(state.escalation_records());
            sent.extend(send_records(&self.producer, &self.config.topics.notify_state, *partition, records));
            jobs.extend(plan.jobs);
        }
        for result in futures::future::join_all(sent).await {
            result?;
        }
        self.queue(jobs);
        Ok(())
    }

    /// Starts every attempt its lane lets start now, each in a task of its own.
    fn start_ready(&mut self) {
        let (started, throttled) = self.lanes.start(now_ms());
        for target in &throttled {
            quench_notify::events::RateLimited { channel: target.split(':').next().unwrap_or_default() }.emit();
        }
        for queued in started {
            let thread =
                self.partitions.get(&queued.job.partition).and_then(|s| s.thread(&queued.job)).map(str::to_string);
            let (deliverer, finished, generation) = (self.deliverer.clone(), self.finished.clone(), self.generation);
            let notes = self.notes.clone();
            let span = match self.traced.get(&queued.job.event.event_id) {
                Some(context) => {
                    let span = tracing::info_span!("quench.notify", delivery.target = %queued.job.target, attempt = queued.attempt);
                    quench_trace::follow(&span, context.as_bytes());
                    span
                }
                None => tracing::Span::none(),
            };
            self.in_flight += 1;
            let attempt = async move {
                let job = &queued.job;
                // An opening message says which resolved incident it looks like, when one does.
                let opening = job.kind == JobKind::Event && job.event.reason == RoutingReason::Opened;
                let line = match (&notes, opening) {
                    (Some(notes), true) => notes.line(&job.event).await,
                    _ => None,
                };
                let message = match line {
                    Some(line) => {
                        // It quotes past incidents' titles and comments: data, escaped as the
                        // template's values are.
                        let markup = Markup::of_target(&job.target);
                        let body = format!("{}\n{}", job.message.body, markup.escape(&line));
                        Arc::new(template::Message { body, ..(*job.message).clone() })
                    }
                    None => job.message.clone(),
                };
                let notice = Notice { key: &job.key, event: &job.event, message: &message, thread: thread.as_deref() };
                let (attempt, outcome) = deliverer.attempt(&job.target, &notice, queued.attempt).await;
                // The receiver is gone only when the notifier stopped: nothing to report to.
                let _ = finished.send(Finished { generation, queued, attempt, outcome, at: now_ms() });
            };
            self.tasks.spawn(attempt.instrument(span));
        }
    }

    /// An attempt ended: the job is retried later (its pending record keeps the schedule), or it
    /// ended and its log, dead-letter and state records are produced.
    fn finish(&mut self, finished: Finished) {
        let Finished { generation, mut queued, attempt, outcome, at } = finished;
        if generation != self.generation {
            return;
        }
        self.in_flight -= 1;
        let topics = &self.config.topics;
        let partition = queued.job.partition;
        let sent = vec![send_json(
            &self.producer,
            &topics.notifications,
            &queued.job.key,
            None,
            &queued.job.attempt_record(&attempt, at),
        )];
        let (receipt, failed) = match outcome {
            Outcome::Retry(after) => {
                queued.attempt += 1;
                queued.not_before = at + after.as_millis() as i64;
                let state = self.partitions.get_mut(&partition).expect("jobs come from assigned partitions");
                let record = state.pending_record(&queued);
                self.lanes.retry(queued);
                let mut sent = sent;
                sent.extend(self.send_state(partition, vec![record]));
                self.expect_acks(partition, None, sent);
                return;
            }
            Outcome::Delivered(receipt) => (Some(receipt), None),
            Outcome::Failed(reason) => (None, Some(reason)),
        };
        self.lanes.finished(&queued.job);
        self.end(&queued.job, receipt, failed, at, sent);
    }

    /// A job ended, delivered or failed for good: its dead letter, log and state records are
    /// produced, and once they are in, its routing event's offset may be done.
    fn end(
        &mut self,
        job: &quench_notify::planner::Job,
        receipt: Option<quench_notify::channel::Receipt>,
        failed: Option<String>,
        at: i64,
        mut sent: Vec<BoxFuture<'static, anyhow::Result<()>>>,
    ) {
        let topics = &self.config.topics;
        let partition = job.partition;
        if let Some(reason) = &failed {
            let letter = job.dead_letter(reason, at);
            sent.push(send_json(&self.producer, &topics.notifications_dlq, &job.key, None, &letter));
        }
        let since_emitted =
            (job.kind == JobKind::Event).then(|| Duration::from_millis((at - job.event.emitted_at).max(0) as u64));
        NotificationFinished { key: &job.key, kind: job.kind.as_str(), failed: failed.as_deref(), since_emitted }
            .emit();
        let delivered = job.logged(if failed.is_some() { "failed" } else { "delivered" }, at);
        sent.push(send_json(&self.producer, &topics.deliveries, &job.key, Some(partition), &delivered));
        let state = self.partitions.get_mut(&partition).expect("jobs come from assigned partitions");
        let records = state.finished(job, receipt.as_ref());
        let offset = (job.kind == JobKind::Event).then_some(job.routing_offset);
        // The thread and pending records too: the event's offset is done only once they are in.
        sent.extend(self.send_state(partition, records));
        self.expect_acks(partition, offset, sent);
    }

    /// Queues jobs in their lanes; a job whose target already has `max_queued_per_target`
    /// waiting fails at once (dead letter with the reason), so that one dead receiver cannot
    /// fill the queues and pause reading for every other target.
    fn queue(&mut self, jobs: Vec<Queued>) {
        let cap = self.config.notify.max_queued_per_target;
        for queued in jobs {
            let waiting = self.lanes.queued_on(&queued.job.target);
            if waiting < cap {
                self.lanes.push(queued);
                continue;
            }
            let reason = format!(
                "{}: {waiting} deliveries already wait for this target (notify.max_queued_per_target); not queued",
                queued.job.target
            );
            self.end(&queued.job, None, Some(reason), now_ms(), Vec::new());
        }
    }

    /// Produces state records to the partition's state topic.
    fn send_state(&self, partition: i32, records: Vec<StateRecord>) -> Vec<BoxFuture<'static, anyhow::Result<()>>> {
        send_records(&self.producer, &self.config.topics.notify_state, partition, records)
    }

    /// Waits for `sent` in the background; then, if `offset` is given, one of that routing
    /// event's jobs is done.
    fn expect_acks(&mut self, partition: i32, offset: Option<i64>, sent: Vec<BoxFuture<'static, anyhow::Result<()>>>) {
        if sent.is_empty() && offset.is_none() {
            return;
        }
        let generation = self.generation;
        self.acks.push(Box::pin(async move {
            for result in futures::future::join_all(sent).await {
                result?;
            }
            Ok(Acked { generation, partition, offset })
        }));
    }

    fn acked(&mut self, acked: Acked) {
        if acked.generation != self.generation {
            return;
        }
        if let (Some(state), Some(offset)) = (self.partitions.get_mut(&acked.partition), acked.offset) {
            state.done(offset);
        }
    }

    /// Commits, per partition, the offset before which every routing event is done, after the
    /// escalation timers those events started or stopped are written.
    async fn commit(&mut self, now: bool) -> anyhow::Result<()> {
        if !now && self.last_commit.elapsed() < COMMIT_INTERVAL {
            return Ok(());
        }
        self.last_commit = Instant::now();
        let mut list = TopicPartitionList::new();
        let mut sent = Vec::new();
        for (partition, state) in &mut self.partitions {
            let Some(offset) = state.committable().filter(|o| Some(o) != self.committed.get(partition)) else {
                continue;
            };
            list.add_partition_offset(&self.config.topics.routing, *partition, Offset::Offset(offset))?;
            let records = state.escalation_records();
            sent.extend(send_records(&self.producer, &self.config.topics.notify_state, *partition, records));
        }
        if list.count() == 0 {
            return Ok(());
        }
        for result in futures::future::join_all(sent).await {
            result?;
        }
        // A commit refused during a rebalance is not fatal: what is done is committed at the next
        // interval, or read again by the partition's next owner and skipped by the delivery log.
        if let Err(e) = self.consumer.commit(&list, CommitMode::Sync) {
            tracing::warn!(error = %e, "commit failed; retried at the next interval");
            return Ok(());
        }
        for element in list.elements() {
            if let (Offset::Offset(offset), Some(state)) =
                (element.offset(), self.partitions.get_mut(&element.partition()))
            {
                state.committed(offset);
                self.committed.insert(element.partition(), offset);
            }
        }
        Ok(())
    }

    /// Pauses reading while `max_queued` jobs wait, and resumes once half of them are gone; the
    /// loop keeps polling meanwhile, so the group does not evict the consumer.
    fn pause_when_full(&mut self) -> anyhow::Result<()> {
        let bound = self.config.notify.max_queued;
        let queued = self.lanes.len();
        let pause = if self.paused { queued > bound / 2 } else { queued >= bound };
        let changed = pause != self.paused;
        if changed {
            let assignment = self.consumer.assignment()?;
            if pause {
                self.consumer.pause(&assignment)?;
            } else {
                self.consumer.resume(&assignment)?;
            }
            self.paused = pause;
        }
        DeliveriesQueued { queued, paused: changed.then_some(pause), bound }.emit();
        Ok(())
    }

    /// At shutdown: starts nothing new, lets the attempts in flight end (each within the request
    /// timeout) and records them, then commits what is done.
    async fn drain(&mut self, finishes: &mut mpsc::UnboundedReceiver<Finished>) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + self.config.notify.timeout() + Duration::from_secs(1);
        while self.in_flight > 0 {
            // Still polling (records are dropped, read again after the restart), so that the
            // group keeps this member until its last commit.
            let finished = tokio::select! {
                finished = finishes.recv() => finished,
                _ = self.consumer.recv() => continue,
                _ = tokio::time::sleep_until(deadline) => None,
            };
            match finished {
                Some(finished) => self.finish(finished),
                None => break,
            }
        }
        while let Some(acked) = self.acks.next().await {
            self.acked(acked?);
        }
        self.commit(true).await
    }
}

/// Produces state records (key, value or tombstone) to one partition of `topic`.
fn send_records(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    records: impl IntoIterator<Item = StateRecord>,
) -> Vec<BoxFuture<'static, anyhow::Result<()>>> {
    records.into_iter().map(|(key, value)| send_bytes(producer, topic, &key, Some(partition), value)).collect()
}

fn send_json(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    partition: Option<i32>,
    value: &impl serde::Serialize,
) -> BoxFuture<'static, anyhow::Result<()>> {
    let value = serde_json::to_vec(value).expect("records serialise");
    send_bytes(producer, topic, key, partition, Some(value))
}

/// Produces a record (a tombstone when `value` is `None`) and returns its acknowledgement. The
/// record is handed to the producer now, not when the future is first polled, so that records of
/// one key (a pending record, then its tombstone) reach Kafka in the order they were made.
fn send_bytes(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    partition: Option<i32>,
    value: Option<Vec<u8>>,
) -> BoxFuture<'static, anyhow::Result<()>> {
    let failed = |topic: &str, e: &dyn std::fmt::Display| anyhow::anyhow!("producing to {topic}: {e}");
    let delivery = loop {
        match producer.send_result(record(topic, key, partition, &value)) {
            Ok(delivery) => break delivery,
            // The producer's queue is full: wait here for room rather than hand the record over
            // later, out of order. Rare (100,000 records in flight), and short.
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err((e, _)) => {
                let e = failed(topic, &e);
                return Box::pin(async move { Err(e) });
            }
        }
    };
    let topic = topic.to_string();
    Box::pin(async move {
        match delivery.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(failed(&topic, &e)),
            Err(e) => Err(failed(&topic, &e)),
        }
    })
}

fn record<'a>(
    topic: &'a str,
    key: &'a str,
    partition: Option<i32>,
    value: &'a Option<Vec<u8>>,
) -> FutureRecord<'a, str, [u8]> {
    let mut record = FutureRecord::to(topic).key(key);
    if let Some(partition) = partition {
        record = record.partition(partition);
    }
    if let Some(value) = value {
        record = record.payload(value.as_slice());
    }
    record
}

/// The topics whose partitions go together: a routing partition's escalation state and delivery
/// log live in the partitions of the same number.
fn partitions_together(config: &Config) -> [&str; 3] {
    let topics = &config.topics;
    [&topics.routing, &topics.notify_state, &topics.deliveries]
}

/// The configuration with the receivers of an Alertmanager rules file (`worker.rules`) among the
/// targets, so that one file says where notifications go for the worker and the notifier.
fn with_receivers(config: &Config) -> anyhow::Result<Config> {
    let mut config = config.clone();
    let Some(path) = config.worker.rules.clone() else { return Ok(config) };
    let rules =
        RouteTree::load(&path).map_err(|e| anyhow::anyhow!("invalid configuration: key `worker.rules`: {e}"))?;
    let added = receivers::add(&mut config.notify, &rules)
        .map_err(|e| anyhow::anyhow!("invalid configuration: key `worker.rules` ({}): {e}", path.display()))?;
    config.notify.validate().map_err(|(key, e)| {
        anyhow::anyhow!("invalid configuration: a receiver of `worker.rules` ({}) as `{key}`: {e}", path.display())
    })?;
    if added > 0 {
        tracing::info!(targets = added, rules = %path.display(), "the rules file's receivers are targets");
    }
    Ok(config)
}
