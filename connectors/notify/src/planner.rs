//! What a notifier does with routing events and time, decided without I/O: routing events and
//! the partition's state (delivery log, Slack threads, escalation timers, pending retries) in;
//! delivery jobs, and as they end the state records to write, out. The Kafka shell
//! (`quench notify`) consumes, runs the jobs through [`crate::lanes`] and
//! [`crate::deliver::Deliverer`], produces what this returns and commits the offsets this says
//! are done, so every decision here is unit-tested without Kafka or a network.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use quench_schemas::{Delivered, NotificationAttempt, NotificationDeadLetter, RoutingEvent, RoutingReason};
use serde::{Deserialize, Serialize};

use crate::{
    channel::Receipt,
    config::NotifyConfig,
    deliver::Attempt,
    escalation::{resolve, Escalation, Escalations},
    lanes::Queued,
    template::{Markup, Message},
};

/// Key prefix of escalation records in the notifier's state topic (then the incident id).
pub const ESCALATION_PREFIX: &str = "escalation|";
/// Key prefix of Slack thread records in the notifier's state topic (then `incident|target`).
pub const THREAD_PREFIX: &str = "thread|";
/// Key prefix of pending-delivery records in the notifier's state topic (then the job's key).
pub const PENDING_PREFIX: &str = "pending|";
/// The format of the escalation and pending records this version writes (see
/// `quench_schemas::state_format`); the restore refuses later ones.
pub const STATE_FORMAT: u32 = 1;

/// A state record: key, and value or `None` for a tombstone.
pub type StateRecord = (String, Option<Vec<u8>>);

/// Why a job exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// A routing event to one of its targets.
    Event,
    /// An escalation step paging one of its targets.
    Escalation,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Event => "event",
            JobKind::Escalation => "escalation",
        }
    }
}

/// One delivery: a notice to one target.
#[derive(Debug)]
pub struct Job {
    pub partition: i32,
    /// Idempotency key: `event_id|channel:name`, or the escalation page's id and the target.
    pub key: String,
    /// `channel:name`.
    pub target: String,
    pub event: Arc<RoutingEvent>,
    pub message: Arc<Message>,
    pub kind: JobKind,
    /// Offset of the routing event delivered; -1 for escalation pages.
    pub routing_offset: i64,
    /// The escalation page's note (pages only), kept to rebuild the job after a restart.
    pub note: Option<String>,
}

impl Job {
    /// The `notifications` record of one of this job's attempts, which ended at `at`.
    pub fn attempt_record(&self, attempt: &Attempt, at: i64) -> NotificationAttempt {
        let (channel, target) = self.target.split_once(':').unwrap_or((&self.target, ""));
        NotificationAttempt {
            tenant: self.event.tenant.clone(),
            incident_id: self.event.incident_id.clone(),
            event_id: self.event.event_id.clone(),
            idempotency_key: self.key.clone(),
            channel: channel.to_string(),
            target: target.to_string(),
            kind: self.kind.as_str().to_string(),
            attempt: attempt.number,
            outcome: attempt.outcome.to_string(),
            status: attempt.status,
            error: attempt.error.clone().unwrap_or_default(),
            latency_ms: attempt.latency_ms,
            at,
            emitted_at: self.event.emitted_at,
        }
    }

    /// The delivery log's record of this job, finished at `at` with `outcome`.
    pub fn logged(&self, outcome: &str, at: i64) -> Delivered {
        Delivered { at, outcome: outcome.to_string(), routing_offset: self.routing_offset }
    }

    /// The dead letter of this job, which failed for good at `at` because of `reason`.
    pub fn dead_letter(&self, reason: &str, at: i64) -> NotificationDeadLetter {
        NotificationDeadLetter {
            idempotency_key: self.key.clone(),
            target: self.target.clone(),
            reason: reason.to_string(),
            at,
            event: (*self.event).clone(),
        }
    }
}

/// A delivery that is waiting for a retry, or an escalation page not delivered yet, as the state
/// topic keeps it so that a restarted notifier goes on where this one stopped: the same attempt
/// number at the same time, and pages that are no longer due (their timer moved on) still sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// [`STATE_FORMAT`] when written (records from before formats were numbered: 1).
    #[serde(default = "quench_schemas::state_format::first")]
    pub format: u32,
    /// The attempt to make next, from 1.
    pub attempt: u32,
    /// Not before (epoch ms).
    pub not_before: i64,
    /// The routing event's offset; -1 for pages.
    pub routing_offset: i64,
    /// What a page delivers (an event's job is planned again from its re-read event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<PendingPage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingPage {
    pub target: String,
    pub event: RoutingEvent,
    pub note: String,
}

/// What planning produced: jobs to queue in arrival order, and state records to write before
/// they start.
#[derive(Debug, Default)]
pub struct Plan {
    pub jobs: Vec<Queued>,
    /// Deliveries already in the delivery log, not sent again.
    pub skipped: u64,
    /// Escalation steps that had nobody to page: (incident id, step).
    pub unstaffed: Vec<(String, usize)>,
    pub records: Vec<StateRecord>,
}

/// What a notifier keeps per partition of `incident-routing`; the shell rebuilds it from Kafka
/// when the partition is assigned.
#[derive(Default)]
pub struct PartitionState {
    /// Idempotency keys already delivered (or dead-lettered), with their routing offset.
    pub delivered: HashMap<String, i64>,
    /// Slack thread by `incident|target`.
    pub threads: HashMap<String, String>,
    pub escalations: Escalations,
    /// Pending records read back at assignment, by job key, until their jobs are planned.
    pub pending: HashMap<String, Pending>,
    /// Jobs with a pending record in the state topic, tombstoned when they end.
    written: HashSet<String>,
    /// Jobs not ended yet per routing offset read; the offsets before the first are done.
    open: BTreeMap<i64, usize>,
    /// The offset after the last routing event read.
    read_to: Option<i64>,
}

/// The key of an incident's thread on a target.
pub fn thread_key(incident_id: &str, target: &str) -> String {
    format!("{incident_id}|{target}")
}

impl PartitionState {
    /// Plans the deliveries of `event`, read at `routing_offset` of `partition` at `now`
    /// (epoch ms), and starts, updates or stops its incident's escalation.
    pub fn plan_event(
        &mut self,
        config: &NotifyConfig,
        partition: i32,
        event: RoutingEvent,
        routing_offset: i64,
        now: i64,
        plan: &mut Plan,
    ) {
        // A correlated child is an update of its parent's incident: it starts no escalation
        // and pages no one (PagerDuty would open an incident of its own); other channels file it
        // in the parent's thread.
        let child = event.parent_incident_id.is_some();
        if !child {
            self.escalations.observe(&event, &config.policies, now);
        }
        let event = Arc::new(event);
        // Rendered once per markup the targets read (values are escaped for it).
        let mut messages: HashMap<Markup, Arc<Message>> = HashMap::new();
        let mut jobs = 0;
        // A target without send_resolved (an Alertmanager receiver's) does not hear of resolutions.
        let resolved = matches!(event.reason, RoutingReason::Resolved | RoutingReason::AlertsResolved);
        let targets = event.targets.iter().filter(|t| t.send_resolved || !resolved);
        for target in targets.filter(|t| !(child && t.channel == "pagerduty")) {
            let target = format!("{}:{}", target.channel, target.target);
            let key = format!("{}|{target}", event.event_id);
            if self.delivered.contains_key(&key) {
                // Its pending record, if the tombstone was lost, goes once the event is committed.
                self.pending.remove(&key);
                plan.skipped += 1;
                continue;
            }
            let (attempt, not_before) = match self.pending.remove(&key) {
                Some(pending) => {
                    self.written.insert(key.clone());
                    (pending.attempt, pending.not_before)
                }
                None => (1, now),
            };
            let markup = Markup::of_target(&target);
            let message = messages
                .entry(markup)
                .or_insert_with(|| Arc::new(config.templates.render(&event, &config.incident_url, None, markup)))
                .clone();
            let event = event.clone();
            let job = Job { partition, key, target, event, message, kind: JobKind::Event, routing_offset, note: None };
            plan.jobs.push(Queued { job, attempt, not_before });
            jobs += 1;
        }
        self.read(routing_offset, jobs);
    }

    /// Records that the routing event at `offset` has `jobs` jobs to end before it is done
    /// (none for one that is dead-lettered once its dead letter is written: 1).
    pub fn read(&mut self, offset: i64, jobs: usize) {
        if jobs > 0 {
            self.open.insert(offset, jobs);
        }
        self.read_to = Some(offset + 1);
    }

    /// One job of the routing event at `offset` ended and its records are written.
    pub fn done(&mut self, offset: i64) {
        if let Some(left) = self.open.get_mut(&offset) {
            *left -= 1;
            if *left == 0 {
                self.open.remove(&offset);
            }
        }
    }

    /// The offset to commit: every event before it is done.
    pub fn committable(&self) -> Option<i64> {
        self.open.keys().next().copied().or(self.read_to)
    }

    /// Plans the escalation pages due at `now`: each step's targets resolved (users, whoever a
    /// schedule has on call) to channel targets, each with a pending record so that a page the
    /// timer has moved past is still sent after a restart.
    pub fn plan_pages(&mut self, config: &NotifyConfig, partition: i32, now: i64, plan: &mut Plan) {
        for page in self.escalations.fire_due(&config.policies, now) {
            let mut targets: Vec<String> = page.targets.iter().flat_map(|t| resolve(config, t, now)).collect();
            targets.dedup();
            if targets.is_empty() {
                plan.unstaffed.push((page.event.incident_id.clone(), page.step));
            }
            let event = Arc::new(page.event.clone());
            for target in targets {
                let key = format!("{}|{target}", page.id());
                let queued = Queued {
                    job: page_job(config, partition, key, target, event.clone(), page.note()),
                    attempt: 1,
                    not_before: now,
                };
                plan.records.push(self.pending_record(&queued));
                plan.jobs.push(queued);
            }
        }
    }

    /// Turns the pages read back at assignment into jobs again; the other pending records wait
    /// for their events to be read again.
    pub fn restored_pages(&mut self, config: &NotifyConfig, partition: i32) -> Vec<Queued> {
        let pages: Vec<String> =
            self.pending.iter().filter(|(_, p)| p.page.is_some()).map(|(k, _)| k.clone()).collect();
        pages
            .into_iter()
            .map(|key| {
                let Pending { attempt, not_before, page, .. } = self.pending.remove(&key).expect("listed above");
                let PendingPage { target, event, note } = page.expect("filtered above");
                self.written.insert(key.clone());
                Queued { job: page_job(config, partition, key, target, Arc::new(event), note), attempt, not_before }
            })
            .collect()
    }

    /// A job will be tried again: the record that keeps its attempt number and time.
    pub fn pending_record(&mut self, queued: &Queued) -> StateRecord {
        let job = &queued.job;
        let page = job.note.as_ref().map(|note| PendingPage {
            target: job.target.clone(),
            event: (*job.event).clone(),
            note: note.clone(),
        });
        let pending = Pending {
            format: STATE_FORMAT,
            attempt: queued.attempt,
            not_before: queued.not_before,
            routing_offset: job.routing_offset,
            page,
        };
        self.written.insert(job.key.clone());
        (format!("{PENDING_PREFIX}{}", job.key), Some(serde_json::to_vec(&pending).expect("pending records serialise")))
    }

    /// The thread that `job`'s incident (or, for a correlated child, its parent) is filed under
    /// on its target.
    pub fn thread(&self, job: &Job) -> Option<&str> {
        let incident = job.event.parent_incident_id.as_ref().unwrap_or(&job.event.incident_id);
        self.threads.get(&thread_key(incident, &job.target)).map(String::as_str)
    }

    /// A delivery finished (delivered, or failed for good): its key is in the log from now on.
    /// Returns the state records to write: the thread the receiver started, or a tombstone once
    /// the incident's resolution is delivered (nothing is filed under its thread after that), and
    /// a tombstone for the job's pending record.
    pub fn finished(&mut self, job: &Job, receipt: Option<&Receipt>) -> Vec<StateRecord> {
        self.delivered.insert(job.key.clone(), job.routing_offset);
        let mut records = Vec::new();
        if self.written.remove(&job.key) {
            records.push((format!("{PENDING_PREFIX}{}", job.key), None));
        }
        let key = thread_key(&job.event.incident_id, &job.target);
        if job.event.parent_incident_id.is_some() {
            // Filed in its parent's thread, which it neither starts nor ends.
        } else if job.kind == JobKind::Event && job.event.reason == RoutingReason::Resolved {
            if self.threads.remove(&key).is_some() {
                records.push((format!("{THREAD_PREFIX}{key}"), None));
            }
        } else if let Some(ts) = receipt.and_then(|r| r.thread.as_ref()) {
            if self.threads.get(&key) != Some(ts) {
                self.threads.insert(key.clone(), ts.clone());
                records.push((format!("{THREAD_PREFIX}{key}"), Some(ts.clone().into_bytes())));
            }
        }
        records
    }

    /// Offsets before `offset` are committed: their events are not read again (a restart reads
    /// from the committed offset, and keeps only later keys too), so their keys need not be kept.
    pub fn committed(&mut self, offset: i64) {
        self.delivered.retain(|_, routing_offset| *routing_offset >= offset);
    }

    /// Escalations changed since the last call, as state records.
    pub fn escalation_records(&mut self) -> Vec<StateRecord> {
        self.escalations
            .take_changes()
            .into_iter()
            .map(|(incident, escalation)| {
                let value = escalation.map(|e: &Escalation| serde_json::to_vec(e).expect("escalations serialise"));
                (format!("{ESCALATION_PREFIX}{incident}"), value)
            })
            .collect()
    }
}

fn page_job(
    config: &NotifyConfig,
    partition: i32,
    key: String,
    target: String,
    event: Arc<RoutingEvent>,
    note: String,
) -> Job {
    let markup = Markup::of_target(&target);
    let message = Arc::new(config.templates.render(&event, &config.incident_url, Some(&note), markup));
    Job { partition, key, target, event, message, kind: JobKind::Escalation, routing_offset: -1, note: Some(note) }
}

#[cfg(test)]
mod tests {
    use quench_schemas::{IncidentStatus, RoutingTarget};

    use super::*;
    use crate::{escalation::tests::config, template::tests::event};

    const MINUTE: i64 = 60_000;
    /// 2026-05-28, while the schedule of the test configuration has Alice on call.
    const NOW: i64 = 1_780_000_000_000;

    fn routed(reason: RoutingReason, policy: Option<&str>) -> RoutingEvent {
        let mut event = event(reason);
        event.targets = vec![RoutingTarget::new("slack", "dba"), RoutingTarget::new("webhook", "ops")];
        event.escalation_policy = policy.map(str::to_string);
        event
    }

    fn keys(plan: &Plan) -> Vec<&str> {
        plan.jobs.iter().map(|q| q.job.key.as_str()).collect()
    }

    fn pages(plan: &Plan) -> Vec<&Job> {
        plan.jobs.iter().map(|q| &q.job).filter(|j| j.kind == JobKind::Escalation).collect()
    }

    #[test]
    fn an_event_becomes_one_job_per_target_and_logged_keys_are_skipped() {
        let (config, mut state, mut plan) = (config(), PartitionState::default(), Plan::default());
        state.delivered.insert("inc-1/1/Opened|webhook:ops".into(), 42);
        state.plan_event(&config, 3, routed(RoutingReason::Opened, None), 42, NOW, &mut plan);
        assert_eq!(keys(&plan), ["inc-1/1/Opened|slack:dba"]);
        assert_eq!(plan.skipped, 1, "already delivered before a restart");
        let job = &plan.jobs[0].job;
        assert_eq!((job.partition, job.routing_offset, job.kind), (3, 42, JobKind::Event));
        assert_eq!((plan.jobs[0].attempt, plan.jobs[0].not_before), (1, NOW));
        assert!(job.message.title.starts_with("[FIRING]"), "{}", job.message.title);
    }

    #[test]
    fn offsets_are_done_once_every_job_of_every_event_before_them_ended() {
        let (config, mut state) = (config(), PartitionState::default());
        assert_eq!(state.committable(), None, "nothing read yet");
        for offset in [10, 11] {
            state.plan_event(&config, 0, routed(RoutingReason::Opened, None), offset, NOW, &mut Plan::default());
        }
        state.read(12, 0);
        assert_eq!(state.committable(), Some(10));
        state.done(11);
        state.done(11);
        assert_eq!(state.committable(), Some(10), "event 10's jobs are still out");
        state.done(10);
        assert_eq!(state.committable(), Some(10), "one of two");
        state.done(10);
        assert_eq!(state.committable(), Some(13));
    }

    #[test]
    fn a_retried_job_goes_on_after_a_restart_with_its_attempt_number_and_time() {
        let (config, mut state, mut plan) = (config(), PartitionState::default(), Plan::default());
        state.plan_event(&config, 0, routed(RoutingReason::Opened, None), 7, NOW, &mut plan);
        let mut queued = plan.jobs.remove(0);
        (queued.attempt, queued.not_before) = (3, NOW + MINUTE);
        let (key, value) = state.pending_record(&queued);
        assert_eq!(key, "pending|inc-1/1/Opened|slack:dba");

        let mut restarted = PartitionState::default();
        restarted.pending.insert(key["pending|".len()..].to_string(), serde_json::from_slice(&value.unwrap()).unwrap());
        let mut plan = Plan::default();
        restarted.plan_event(&config, 0, routed(RoutingReason::Opened, None), 7, NOW + 1_000, &mut plan);
        assert_eq!((plan.jobs[0].attempt, plan.jobs[0].not_before), (3, NOW + MINUTE));
        assert_eq!((plan.jobs[1].attempt, plan.jobs[1].not_before), (1, NOW + 1_000), "never retried");
        let records = restarted.finished(&plan.jobs[0].job, None);
        assert_eq!(records, [("pending|inc-1/1/Opened|slack:dba".to_string(), None)], "a tombstone");
        assert!(restarted.finished(&plan.jobs[1].job, None).is_empty(), "nothing pending to remove");
    }

    #[test]
    fn escalation_pages_each_step_when_due_until_acknowledged() {
        let (config, mut state) = (config(), PartitionState::default());
        let mut plan = Plan::default();
        state.plan_event(&config, 0, routed(RoutingReason::Opened, Some("db")), 1, NOW, &mut plan);
        state.plan_pages(&config, 0, NOW, &mut plan);
        let fired = pages(&plan);
        assert_eq!(fired.len(), 1, "step 1 pages at once");
        assert_eq!((fired[0].target.as_str(), fired[0].routing_offset), ("webhook:primary", -1), "alice, on call");
        assert_eq!(plan.records.len(), 1, "the page is pending until delivered");
        assert_eq!(state.escalation_records().len(), 1, "the timer goes to the state topic");

        let mut plan = Plan::default();
        state.plan_pages(&config, 0, NOW + 4 * MINUTE, &mut plan);
        assert!(plan.jobs.is_empty(), "step 2 is not due yet");
        state.plan_pages(&config, 0, NOW + 5 * MINUTE, &mut plan);
        assert_eq!(plan.jobs[0].job.target, "webhook:manager");

        let mut acknowledged = routed(RoutingReason::Acknowledged, Some("db"));
        acknowledged.status = IncidentStatus::Acknowledged;
        let mut plan = Plan::default();
        state.plan_event(&config, 0, acknowledged, 2, NOW + 6 * MINUTE, &mut plan);
        state.plan_pages(&config, 0, NOW + 60 * MINUTE, &mut plan);
        assert!(pages(&plan).is_empty(), "acknowledged: no more pages");
        assert_eq!(state.escalation_records(), [("escalation|inc-1".to_string(), None)], "a tombstone");
    }

    #[test]
    fn a_correlated_child_goes_to_its_parents_thread_and_pages_no_one() {
        let (config, mut state, mut plan) = (config(), PartitionState::default(), Plan::default());
        state.threads.insert(thread_key("inc-parent", "slack:dba"), "1700000000.000100".into());
        let mut child = routed(RoutingReason::Opened, Some("db"));
        child.targets.push(RoutingTarget::new("pagerduty", "dba"));
        child.parent_incident_id = Some("inc-parent".into());
        child.correlation = Some("same cluster `c1`".into());
        state.plan_event(&config, 0, child, 1, NOW, &mut plan);
        assert_eq!(keys(&plan), ["inc-1/1/Opened|slack:dba", "inc-1/1/Opened|webhook:ops"], "no PagerDuty incident");
        assert_eq!(state.thread(&plan.jobs[0].job), Some("1700000000.000100"), "in the parent's thread");
        assert!(plan.jobs[0].job.message.body.ends_with("part of inc-parent: same cluster `c1`"));
        state.plan_pages(&config, 0, NOW, &mut plan);
        assert!(pages(&plan).is_empty(), "no escalation of its own");
        let receipt = Receipt { status: 200, thread: Some("1700000000.000200".into()) };
        assert!(state.finished(&plan.jobs[0].job, Some(&receipt)).is_empty(), "the parent's thread stays");
    }

    #[test]
    fn a_related_incident_notified_on_its_own_pages_and_names_the_related_one() {
        let (config, mut state, mut plan) = (config(), PartitionState::default(), Plan::default());
        let mut related = routed(RoutingReason::Opened, Some("db"));
        related.targets.push(RoutingTarget::new("pagerduty", "dba"));
        related.correlation = Some("related to inc-parent: same cluster `c1`".into());
        state.plan_event(&config, 0, related, 1, NOW, &mut plan);
        let targets: Vec<&str> = plan.jobs.iter().map(|j| j.job.target.as_str()).collect();
        assert!(targets.contains(&"pagerduty:dba"), "its own PagerDuty incident: {targets:?}");
        assert!(plan.jobs[0].job.message.body.ends_with("related to inc-parent: same cluster `c1`"));
    }

    #[test]
    fn a_page_not_delivered_before_a_restart_is_sent_by_the_next_notifier() {
        let (config, mut state, mut plan) = (config(), PartitionState::default(), Plan::default());
        state.plan_event(&config, 0, routed(RoutingReason::Opened, Some("db")), 1, NOW, &mut plan);
        let mut plan = Plan::default();
        state.plan_pages(&config, 0, NOW, &mut plan);
        let (key, value) = plan.records.pop().unwrap();

        let mut restarted = PartitionState::default();
        restarted.pending.insert(key["pending|".len()..].to_string(), serde_json::from_slice(&value.unwrap()).unwrap());
        let restored = restarted.restored_pages(&config, 0);
        assert_eq!(restored.len(), 1);
        let job = &restored[0].job;
        assert_eq!((job.key.as_str(), job.kind), (plan.jobs[0].job.key.as_str(), JobKind::Escalation));
        assert_eq!(job.message, plan.jobs[0].job.message, "the same page, note included");
        assert!(restarted.pending.is_empty());
        assert_eq!(restarted.finished(job, None).len(), 1, "delivered: its pending record goes");
    }

    #[test]
    fn a_step_with_nobody_to_page_is_reported() {
        let mut config = config();
        config.policies.get_mut("db").unwrap().steps[0].targets = vec!["user:nobody".into()];
        let (mut state, mut plan) = (PartitionState::default(), Plan::default());
        state.plan_event(&config, 0, routed(RoutingReason::Opened, Some("db")), 1, NOW, &mut plan);
        state.plan_pages(&config, 0, NOW, &mut plan);
        assert_eq!(plan.unstaffed, [("inc-1".to_string(), 0)]);
    }

    #[test]
    fn a_finished_delivery_is_logged_and_a_new_thread_written_once() {
        let (config, mut state, mut plan) = (config(), PartitionState::default(), Plan::default());
        state.plan_event(&config, 0, routed(RoutingReason::Opened, None), 1, NOW, &mut plan);
        let job = &plan.jobs[0].job;
        let receipt = Receipt { status: 200, thread: Some("1700000000.000100".into()) };
        assert_eq!(
            state.finished(job, Some(&receipt)),
            [("thread|inc-1|slack:dba".to_string(), Some(b"1700000000.000100".to_vec()))]
        );
        assert!(state.delivered.contains_key(&job.key));
        assert!(state.finished(job, Some(&receipt)).is_empty(), "a known thread is not written again");
        assert_eq!(state.thread(job), Some("1700000000.000100"));
        assert!(state.finished(&plan.jobs[1].job, None).is_empty(), "failed for good: logged, no thread");
        assert_eq!(state.delivered.len(), 2);
    }

    #[test]
    fn state_is_let_go_once_no_longer_needed() {
        let (config, mut state, mut plan) = (config(), PartitionState::default(), Plan::default());
        state.plan_event(&config, 0, routed(RoutingReason::Opened, None), 1, NOW, &mut plan);
        let receipt = Receipt { status: 200, thread: Some("1700000000.000100".into()) };
        state.finished(&plan.jobs[0].job, Some(&receipt));
        let mut resolved = Plan::default();
        state.plan_event(&config, 0, routed(RoutingReason::Resolved, None), 2, NOW, &mut resolved);
        let job = &resolved.jobs[0].job;
        assert_eq!(
            state.finished(job, Some(&receipt)),
            [("thread|inc-1|slack:dba".to_string(), None)],
            "the resolution delivered: a tombstone for the incident's thread"
        );
        assert!(state.threads.is_empty());
        state.committed(2);
        assert_eq!(state.delivered.len(), 1, "the event at offset 1 is not read again; the one at 2 may be");
        state.committed(3);
        assert!(state.delivered.is_empty());
    }
}
