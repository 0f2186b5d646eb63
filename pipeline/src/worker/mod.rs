//! `quench run`: the stateless stream worker.
//!
//! One consume-transform-produce loop per process. Records are decoded and fed, with the time, to
//! the pure operator of their partition ([`quench_core::operator`]), which makes every decision.
//! Every `commit_interval` one Kafka transaction carries what the operators produced (incident
//! states, routing events, the changed groups for the `quench-state` changelog), dead letters, and
//! the consumed offsets. So a read_committed consumer sees each output exactly once whatever
//! happens to the worker. This module only polls, rebalances and runs the transaction.
//!
//! On a rebalance the open transaction is aborted and the state of every partition is rebuilt from
//! the changelog, from the last committed offsets: the eager rebalance protocol revokes everything,
//! so no partition's in-memory state can outlive a transaction that did not commit. Any other
//! transaction error ends the process (abort-and-exit), for its supervisor to restart it: restart
//! is the one recovery path, and it is tested by killing workers.

mod changelog;
mod dlq;
mod learned;
mod rekey;
mod traced;
mod transaction;

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use quench_classify::{Classification, Classifier, LocalClassifier, Subject};
use quench_core::{
    correlate::Correlator,
    mute::{Check, Mutes},
    operator::{Classify, Operator},
    routing::RoutingRules,
    rules::{alertmanager_group_key, RouteTree},
    window::transient::Transients,
};
use quench_schemas::{headers, now_ms, Alert, Decoder, Encoder, Incident, IncidentAction, Record, RoutingEvent};
use rdkafka::{
    message::{Header, OwnedHeaders, OwnedMessage},
    producer::BaseRecord,
    Message, Offset, TopicPartitionList,
};
use tokio::runtime::Handle;

use crate::{
    clickhouse::labelled_incidents,
    config::{ClickHouseConfig, Config, WorkerConfig},
    events::{ActionApplied, AlertConsumed, Classified, Committed, DeadLetterReason, Restored},
    http::Readiness,
    kafka::{check_partition_counts, consumed, recheck_partition_counts, Rebalanced},
    mutes::SideInputs,
    preflight::registry_client,
    reload::{FileSource, ReloadAudit, RulesSource},
};
use dlq::DeadLetter;
use learned::Learned;
use traced::Traced;
use transaction::Session;

/// Runs the worker until `shutdown` is set, then commits the transaction in flight and returns.
pub async fn run(
    config: Config,
    rules: (RulesSource, RouteTree),
    shutdown: Arc<AtomicBool>,
    readiness: Arc<Readiness>,
) -> anyhow::Result<()> {
    let routing_rules = FileSource::open(config.worker.routing.clone(), RoutingRules::load, RoutingRules::default)
        .map_err(|e| anyhow::anyhow!("invalid configuration: key `worker.routing`: {e}"))?;
    crate::signals::on_hangup(routing_rules.0.reload_flag());
    let registry = registry_client(&config.registry)?;
    let incidents = Encoder::<Incident>::register(&registry, &config.topics.incidents).await?;
    let routing = Encoder::<RoutingEvent>::register(&registry, &config.topics.routing).await?;
    let decoder = Decoder::<Alert>::new(registry.clone());
    let actions = Decoder::<IncidentAction>::new(registry.clone());
    let handle = Handle::current();
    let rekey = rekeyed(&config, &rules.1);
    if config.worker.input_keyed_by_group && rekey {
        tracing::info!(
            topic = %config.topics.rekey,
            "routes with `continue` put an alert in groups keyed differently: alerts are re-keyed, one record per group, \
             so that every group's alerts meet in one worker"
        );
    }
    let rekeying = if !rekey {
        None
    } else {
        let (config, shutdown, handle) = (config.clone(), shutdown.clone(), handle.clone());
        let rules = RulesSource::load(config.worker.rules.clone()).map_err(anyhow::Error::msg)?;
        let decoder = Decoder::<Alert>::new(registry);
        Some(tokio::task::spawn_blocking(move || {
            let _stops_the_worker = StopsTheOther(shutdown.clone());
            rekey::run(&config, &instance_id(&config.worker), rules, &decoder, &handle, &shutdown)
        }))
    };
    let worker = tokio::task::spawn_blocking(move || {
        let _stops_the_rekeying = StopsTheOther(shutdown.clone());
        readiness.not_ready("loading the classifier");
        let started = Instant::now();
        let classifier = Arc::new(load_classifier(&config.classify, &config.clickhouse, &handle)?);
        classifier.spawn_refiner(&handle);
        tracing::info!(
            provider = ?config.classify.provider,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "classifier loaded"
        );
        let codecs = Codecs { decoder, actions, incidents, routing };
        let mut worker = Worker::start(config, rules, routing_rules, codecs, classifier, handle, readiness)?;
        worker.run(&shutdown)
    });
    // Both awaited before either's result is used: neither thread may outlive this function.
    let rekeyed = match rekeying {
        Some(rekeying) => rekeying.await,
        None => Ok(Ok(())),
    };
    let worked = worker.await;
    // The worker's error first: the stage that failed is the cause, the other stopped for it.
    worked?.and(rekeyed?)
}

/// Sets the shutdown flag when its stage ends, by returning, failing or panicking: one stage
/// left alone would look alive (re-keying what nobody reads, or waiting for input that no longer
/// comes).
struct StopsTheOther(Arc<AtomicBool>);

impl Drop for StopsTheOther {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// How long after it stopped firing an inhibition source is kept: far beyond any allowed
/// lateness, so that a replay still finds it.
const SOURCE_RETENTION_MS: i64 = 24 * 3_600 * 1_000;

struct PartitionState {
    operator: Operator,
    /// Offset after the last consumed record, to commit with the next transaction.
    next_offset: Option<i64>,
    /// The same for the partition of `incident-actions` with this number.
    next_action_offset: Option<i64>,
}

struct Codecs {
    decoder: Decoder<Alert>,
    actions: Decoder<IncidentAction>,
    incidents: Encoder<Incident>,
    routing: Encoder<RoutingEvent>,
}

struct Worker {
    config: Config,
    rules: RouteTree,
    rules_source: RulesSource,
    routing_rules: RoutingRules,
    routing_source: FileSource<RoutingRules>,
    readiness: Arc<Readiness>,
    decoder: Decoder<Alert>,
    actions: Decoder<IncidentAction>,
    incidents: Encoder<Incident>,
    routing: Encoder<RoutingEvent>,
    classifier: Arc<Classifier>,
    handle: Handle,
    session: Session,
    /// The topic read: `alerts`, or the re-keyed topic.
    input: String,
    partitions: HashMap<i32, PartitionState>,
    dead_letters: Vec<DeadLetter>,
    /// Silences and inhibition sources, shared by every partition.
    mutes: Mutes,
    side_inputs: SideInputs,
    /// The transient kinds in force, and what is learned from ClickHouse.
    transients: Transients,
    learned: Learned,
    /// With `[correlate]` on, the correlator each partition starts from.
    correlator: Option<Correlator>,
    traced: Traced,
}

impl Worker {
    fn start(
        config: Config,
        (rules_source, rules): (RulesSource, RouteTree),
        (routing_source, routing_rules): (FileSource<RoutingRules>, RoutingRules),
        Codecs { decoder, actions, incidents, routing }: Codecs,
        classifier: Arc<Classifier>,
        handle: Handle,
        readiness: Arc<Readiness>,
    ) -> anyhow::Result<Self> {
        let instance = instance_id(&config.worker);
        let audit = || ReloadAudit::new(crate::clickhouse::client(&config.clickhouse), &instance, handle.clone());
        let (rules_source, routing_source) = (rules_source.with_audit(audit()), routing_source.with_audit(audit()));
        let input = if rekeyed(&config, &rules) { config.topics.rekey.clone() } else { config.topics.alerts.clone() };
        let topics = [input.as_str(), config.topics.actions.as_str()];
        readiness.not_ready("reading silences and inhibition sources");
        let (side_inputs, mutes) = SideInputs::start(&config, "worker-side")?;
        readiness.not_ready("learning from ClickHouse history");
        let mut learned = Learned::start(&config, &handle);
        learned.first(&handle, Duration::from_secs(30));
        let correlator = match config.correlate.enabled {
            true => Some(Correlator::new(
                config.correlate.settings(),
                learned.associations(),
                config.correlate.dependencies().map_err(anyhow::Error::msg)?,
            )),
            false => None,
        };
        check_partition_counts(&config.kafka, &[&input, &config.topics.actions, &config.topics.state])?;
        let session =
            Session::connect(&config.kafka, &config.worker, "worker", &config.worker.group_id, &instance, &topics)?;
        tracing::info!(instance, group = %config.worker.group_id, ?topics, "worker started");
        readiness.not_ready("joining the consumer group");
        Ok(Self {
            config,
            rules,
            rules_source,
            routing_rules,
            routing_source,
            readiness,
            decoder,
            actions,
            incidents,
            routing,
            classifier,
            handle,
            session,
            input,
            partitions: HashMap::new(),
            dead_letters: Vec::new(),
            mutes,
            side_inputs,
            transients: learned.transients(),
            learned,
            correlator,
            traced: Traced::default(),
        })
    }

    fn run(&mut self, shutdown: &AtomicBool) -> anyhow::Result<()> {
        let interval = Duration::from_millis(self.config.worker.commit_interval_ms);
        let mut last_commit = Instant::now();
        while !shutdown.load(Ordering::SeqCst) {
            let polled = self.session.consumer.poll(Duration::from_millis(20)).map(|r| r.map(|m| m.detach()));
            self.apply_rebalances()?;
            match polled {
                Some(polled) => {
                    if let Some(message) = consumed(polled, "worker")? {
                        if self.partitions.contains_key(&message.partition()) {
                            self.process(&message)?;
                        }
                    }
                }
                None => self.partitions.values_mut().for_each(|p| p.operator.caught_up()),
            }
            if last_commit.elapsed() >= interval {
                self.side_inputs.poll(&mut self.mutes, Duration::ZERO)?;
                self.take_learned();
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
        for event in self.session.rebalances()? {
            match event {
                Rebalanced::Revoked => {
                    self.partitions.clear();
                    self.traced.revoked();
                    self.dead_letters.clear();
                    self.readiness.not_ready("rebalancing");
                }
                Rebalanced::Assigned(mut partitions) => {
                    // Partitions added while running: stop before a state is restored from (or
                    // a partition number given to) the wrong place.
                    let topics = [self.input.as_str(), &self.config.topics.actions, &self.config.topics.state];
                    recheck_partition_counts(&self.config.kafka, &topics)?;
                    // Each number comes once per topic read (alerts and actions).
                    partitions.sort_unstable();
                    partitions.dedup();
                    let started = Instant::now();
                    let count = partitions.len();
                    for partition in partitions {
                        let groups = changelog::restore(
                            &self.config.kafka,
                            &self.config.topics.state,
                            &format!("{}-restore", self.config.worker.group_id),
                            partition,
                            Duration::from_secs(120),
                        )?;
                        let worker = &self.config.worker;
                        let mut operator = Operator::restore(
                            groups,
                            self.config.classify.taxonomy.scale.clone(),
                            Duration::from_millis(worker.allowed_lateness_ms),
                            Duration::from_millis(worker.idle_timeout_ms),
                            Instant::now(),
                        )
                        .with_max_groups(worker.max_open_groups)
                        .with_max_groups_per_tenant(match worker.max_open_groups_per_tenant {
                            0 => usize::MAX,
                            limit => limit,
                        });
                        operator.set_transients(self.transients.clone());
                        if let Some(correlator) = &self.correlator {
                            operator = operator.with_correlator(correlator.clone());
                        }
                        tracing::info!(
                            partition,
                            groups = operator.open_groups(),
                            "partition assigned, state restored"
                        );
                        self.partitions.insert(
                            partition,
                            PartitionState { operator, next_offset: None, next_action_offset: None },
                        );
                    }
                    Restored { partitions: count, elapsed: started.elapsed() }.emit();
                    self.readiness.ready();
                }
            }
        }
        Ok(())
    }

    /// What the background learners learned since the last call, for every partition.
    fn take_learned(&mut self) {
        if let Some(transients) = self.learned.transients_changed() {
            self.partitions.values_mut().for_each(|p| p.operator.set_transients(transients.clone()));
            self.transients = transients;
        }
        if let Some(associations) = self.learned.associations_changed() {
            if let Some(correlator) = &mut self.correlator {
                self.partitions.values_mut().for_each(|p| p.operator.set_associations(associations.clone()));
                correlator.set_associations(associations);
            }
        }
    }

    /// Swaps in new rules between two records; a broken file keeps the rules in force.
    fn reload_rules(&mut self) {
        // The re-keying stage starts with the worker: rules that need it wait for a restart.
        // With correlation on, alerts are keyed by tenant: every group of an alert is in its partition.
        let rekeyed = self.input == self.config.topics.rekey || self.config.correlate.enabled;
        let reloaded = self.rules_source.reload_checked(&mut self.rules, "windowing", |tree| {
            match tree.places_on_several_routes() {
                true if !rekeyed => {
                    Err("routes with `continue` need the re-keying stage, which starts with the worker: \
                                         restart the worker to use these rules"
                        .into())
                }
                _ => Ok(()),
            }
        });
        if reloaded {
            let now = Instant::now();
            self.partitions.values_mut().for_each(|p| p.operator.retime(&self.rules, now));
        }
        self.routing_source.reload(&mut self.routing_rules, "routing");
    }

    fn process(&mut self, message: &OwnedMessage) -> anyhow::Result<()> {
        if message.topic() == self.config.topics.actions {
            return self.apply_action(message);
        }
        if !self.decoder.knows(message.payload().unwrap_or_default()) {
            // A new writer schema costs a registry call, which may wait for a registry that is
            // down: commit what came before, so that no transaction is open meanwhile.
            self.commit()?;
        }
        let decoded = decode(&self.decoder, &self.handle, message)?;
        let state = self.partitions.get_mut(&message.partition()).expect("checked by the caller");
        state.next_offset = Some(message.offset() + 1);
        let alert = match decoded {
            Ok(alert) => alert,
            Err(reason) => {
                self.dead_letters.push(DeadLetter::new(message, DeadLetterReason::Undecodable, reason));
                return Ok(());
            }
        };
        let route = rekey::route_of(message);
        let rules = &self.rules;
        self.traced.read(message, &alert, || {
            let placements = rules.place(&alert, route.as_deref());
            placements
                .iter()
                .map(|p| traced::group(&alert.tenant, &alertmanager_group_key(&p.route, &p.group_labels)))
                .collect()
        });
        match state.operator.alert(&alert, route.as_deref(), &self.rules, &mut self.mutes, Instant::now()) {
            Ok(late) => AlertConsumed { late }.emit(),
            Err(refused) => {
                AlertConsumed { late: false }.emit();
                self.dead_letters.push(DeadLetter::new(message, DeadLetterReason::GroupLimit, refused.to_string()));
            }
        }
        Ok(())
    }

    /// Applies an acknowledgement or resolution to the incident it names, which this partition
    /// holds: the API wrote it to the partition number its incident was made in (see
    /// [`headers::PARTITION`]).
    fn apply_action(&mut self, message: &OwnedMessage) -> anyhow::Result<()> {
        let decoded = decode(&self.actions, &self.handle, message)?;
        let state = self.partitions.get_mut(&message.partition()).expect("checked by the caller");
        state.next_action_offset = Some(message.offset() + 1);
        let action = match decoded {
            Ok(action) => action,
            Err(reason) => {
                self.dead_letters.push(DeadLetter::new(message, DeadLetterReason::Undecodable, reason));
                return Ok(());
            }
        };
        let applied = state.operator.action(&action, Instant::now());
        ActionApplied { action: &action, applied }.emit();
        Ok(())
    }

    /// Flushes every partition's operator and commits one transaction with everything produced.
    fn commit(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let classifier = Timed(&self.classifier);
        let mut outputs = Vec::new();
        let mut offsets = TopicPartitionList::new();
        for (partition, state) in &mut self.partitions {
            let check = Check { rules: &self.rules, mutes: &self.mutes };
            outputs.push((*partition, state.operator.flush(started, check, &classifier, &self.routing_rules)?));
            if let Some(offset) = state.next_offset.take() {
                offsets.add_partition_offset(&self.input, *partition, Offset::Offset(offset))?;
            }
            if let Some(offset) = state.next_action_offset.take() {
                offsets.add_partition_offset(&self.config.topics.actions, *partition, Offset::Offset(offset))?;
            }
        }
        if outputs.iter().all(|(_, o)| o.is_empty()) && offsets.count() == 0 && self.dead_letters.is_empty() {
            self.reclassify_refined();
            return Ok(());
        }
        self.session.begin()?;
        for (partition, out) in &outputs {
            let partition_number = partition.to_string();
            for incident in &out.incidents {
                let value = self.incidents.encode(incident)?;
                let headers =
                    OwnedHeaders::new().insert(Header { key: headers::PARTITION, value: Some(&partition_number) });
                self.session.send(
                    BaseRecord::to(&self.config.topics.incidents)
                        .key(&incident.incident_id)
                        .payload(&value)
                        .headers(headers),
                )?;
            }
            for event in &out.routing {
                let value = self.routing.encode(event)?;
                // A correlated child goes where its parent's events go: the notifier that holds
                // the parent's threads files it there.
                let key = event.parent_incident_id.as_ref().unwrap_or(&event.incident_id);
                let mut record = BaseRecord::to(&self.config.topics.routing).key(key).payload(&value);
                if let Some(headers) = self.traced.routing_headers(&event.tenant, &event.group_key) {
                    record = record.headers(headers);
                }
                self.session.send(record)?;
            }
            for joined in &out.incident_alerts {
                let value = serde_json::to_vec(joined)?;
                self.session.send(
                    BaseRecord::to(&self.config.topics.incident_alerts).key(&joined.incident_id).payload(&value),
                )?;
            }
            for source in &out.sources {
                let value = serde_json::to_vec(source)?;
                self.session
                    .send(BaseRecord::to(&self.config.topics.inhibit_sources).key(&source.key()).payload(&value))?;
            }
            for (key, value) in &out.changes {
                let mut record = BaseRecord::<str, [u8]>::to(&self.config.topics.state).key(key).partition(*partition);
                if let Some(value) = value {
                    record = record.payload(value);
                }
                self.session.send(record)?;
            }
        }
        for letter in self.dead_letters.drain(..) {
            self.session.send(letter.record(&self.config.topics.dlq))?;
        }
        // Sources that stopped firing a day before every partition's event time can no longer
        // inhibit anything: tombstones keep the topic (and every worker's memory) to what fires.
        let oldest = self.partitions.values().filter_map(|p| p.operator.watermark(started)).min();
        if let Some(oldest) = oldest.filter(|_| !self.mutes.sources.is_empty()) {
            for key in self.mutes.sources.expire(oldest.saturating_sub(SOURCE_RETENTION_MS)) {
                self.session.send(BaseRecord::<str, [u8]>::to(&self.config.topics.inhibit_sources).key(&key))?;
            }
        }
        self.session.commit(&offsets)?;
        self.traced.committed();
        let operators = self.partitions.values().map(|p| &p.operator);
        Committed {
            incidents: outputs.iter().map(|(_, o)| o.incidents.len()).sum(),
            routing_events: outputs.iter().map(|(_, o)| o.routing.len()).sum(),
            elapsed: started.elapsed(),
            open_groups: operators.clone().map(Operator::open_groups).sum(),
            open_fingerprints: operators.clone().map(Operator::open_fingerprints).sum(),
            untracked_alerts: outputs.iter().map(|(_, o)| o.untracked).sum(),
            watermark_delay: operators
                .filter_map(|o| o.watermark(started))
                .min()
                .map(|oldest| Duration::from_millis(now_ms().saturating_sub(oldest).max(0) as u64)),
        }
        .emit();
        self.reclassify_refined();
        Ok(())
    }

    /// Has the incidents whose signature the LLM just answered emitted again, now classified by it.
    fn reclassify_refined(&mut self) {
        let signatures = self.classifier.take_refined();
        if signatures.is_empty() {
            return;
        }
        let touched: usize = self.partitions.values_mut().map(|p| p.operator.refined(&signatures)).sum();
        if touched > 0 {
            tracing::debug!(incidents = touched, "LLM answers arrived; incidents will be emitted again");
        }
    }
}

/// The classifier as the operator sees it, timed.
struct Timed<'a>(&'a Classifier);

impl Classify for Timed<'_> {
    fn classify_now(&self, subjects: &[Subject]) -> anyhow::Result<Vec<Classification>> {
        let started = Instant::now();
        let answers = self.0.classify_now(subjects);
        Classified { elapsed: started.elapsed() }.emit();
        answers
    }

    fn signature(&self, subject: &Subject) -> String {
        self.0.signature(subject)
    }
}

/// The classifier, with the user's history from ClickHouse among its examples when configured;
/// without ClickHouse the worker still starts, on the built-in examples.
fn load_classifier(
    classify: &quench_classify::ClassifyConfig,
    clickhouse: &ClickHouseConfig,
    handle: &Handle,
) -> anyhow::Result<Classifier> {
    let mut local = LocalClassifier::load(&classify.local, classify.taxonomy.clone())?;
    if classify.local.history > 0 {
        match handle.block_on(labelled_incidents(clickhouse, classify.local.history)) {
            Ok(history) => {
                let added = local.add_examples(&history)?;
                tracing::info!(examples = added, "labelled examples added from ClickHouse history");
            }
            Err(e) => tracing::warn!(error = %e, "no history from ClickHouse; the built-in examples only"),
        }
    }
    Classifier::with_local(classify, local)
}

/// Decodes a record; only a schema id seen for the first time costs a registry call. `Ok(Err)`
/// is the reason to dead-letter the record; `Err` means the schema registry stayed unavailable:
/// the process stops before committing the record, which is read again after a restart, since
/// a dependency's failure must never turn a good record into a dead letter.
fn decode<T: Record>(
    decoder: &Decoder<T>,
    handle: &Handle,
    message: &OwnedMessage,
) -> anyhow::Result<Result<T, String>> {
    let Some(bytes) = message.payload() else { return Ok(Err("record has no value".to_string())) };
    let decoded = match decoder.try_decode(bytes) {
        Some(decoded) => decoded,
        None => handle.block_on(decoder.decode(bytes)),
    };
    match decoded {
        Err(e) if e.is_transient() => Err(e.into()),
        decoded => Ok(decoded.map_err(|e| e.to_string())),
    }
}

/// Whether the worker reads a re-keyed topic: when producers do not key by group (or, with
/// correlation, by tenant), or routes with `continue` put an alert in groups whose keys differ
/// (with correlation on, those groups share the tenant's partition already).
pub fn rekeyed(config: &Config, rules: &RouteTree) -> bool {
    !config.worker.input_keyed_by_group || (rules.places_on_several_routes() && !config.correlate.enabled)
}

/// `worker.instance_id`, or the host name.
fn instance_id(worker: &WorkerConfig) -> String {
    worker.instance_id.clone().unwrap_or_else(hostname)
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into())
}
