//! What a notifier does with a batch, decided without I/O: routing events and the partition's
//! state (delivery log, Slack threads, escalation timers) in; delivery jobs, and after delivery
//! the state records to write, out. The Kafka shell (`quench notify`) consumes, runs the jobs
//! through [`crate::deliver::Deliverer`], produces what this returns and commits, so every
//! decision here is unit-tested without Kafka or a network.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use quench_schemas::{Delivered, NotificationAttempt, NotificationDeadLetter, RoutingEvent, RoutingReason};

use crate::{
    channel::Receipt,
    config::NotifyConfig,
    deliver::Attempt,
    escalation::{resolve, Escalation, Escalations},
    template::Message,
};

/// Key prefix of escalation records in the notifier's state topic (then the incident id).
pub const ESCALATION_PREFIX: &str = "escalation|";
/// Key prefix of Slack thread records in the notifier's state topic (then `incident|target`).
pub const THREAD_PREFIX: &str = "thread|";

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

/// The jobs of a batch by incident: one incident's are delivered in order (its Slack thread
/// exists before the replies, PagerDuty sees trigger before resolve), different incidents'
/// concurrently.
#[derive(Debug, Default)]
pub struct Plan {
    pub jobs: BTreeMap<String, Vec<Job>>,
    /// Deliveries already in the delivery log, not sent again.
    pub skipped: u64,
    /// Escalation steps that had nobody to page: (incident id, step).
    pub unstaffed: Vec<(String, usize)>,
}

impl Plan {
    fn push(&mut self, job: Job) {
        self.jobs.entry(job.event.incident_id.clone()).or_default().push(job);
    }
}

/// What a notifier keeps per partition of `incident-routing`; the shell rebuilds it from Kafka
/// when the partition is assigned.
#[derive(Default)]
pub struct PartitionState {
    /// Idempotency keys already delivered (or dead-lettered).
    pub delivered: HashSet<String>,
    /// Slack thread by `incident|target`.
    pub threads: HashMap<String, String>,
    pub escalations: Escalations,
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
        self.escalations.observe(&event, &config.policies, now);
        let event = Arc::new(event);
        let message = Arc::new(config.templates.render(&event, &config.incident_url, None));
        for target in &event.targets {
            let target = format!("{}:{}", target.channel, target.target);
            let key = format!("{}|{target}", event.event_id);
            if self.delivered.contains(&key) {
                plan.skipped += 1;
                continue;
            }
            let (event, message) = (event.clone(), message.clone());
            plan.push(Job { partition, key, target, event, message, kind: JobKind::Event, routing_offset });
        }
    }

    /// Plans the escalation pages due at `now`: each step's targets resolved (users, whoever a
    /// schedule has on call) to channel targets.
    pub fn plan_pages(&mut self, config: &NotifyConfig, partition: i32, now: i64, plan: &mut Plan) {
        for page in self.escalations.fire_due(&config.policies, now) {
            let event = Arc::new(page.event.clone());
            let message = Arc::new(config.templates.render(&event, &config.incident_url, Some(&page.note())));
            let mut targets: Vec<String> = page.targets.iter().flat_map(|t| resolve(config, t, now)).collect();
            targets.dedup();
            if targets.is_empty() {
                plan.unstaffed.push((event.incident_id.clone(), page.step));
            }
            for target in targets {
                let key = format!("{}|{target}", page.id());
                let (event, message) = (event.clone(), message.clone());
                plan.push(Job {
                    partition,
                    key,
                    target,
                    event,
                    message,
                    kind: JobKind::Escalation,
                    routing_offset: -1,
                });
            }
        }
    }

    /// The threads that `jobs` (one incident's) are filed under, by target.
    pub fn threads(&self, jobs: &[Job]) -> HashMap<String, String> {
        jobs.iter()
            .filter_map(|j| {
                let key = thread_key(&j.event.incident_id, &j.target);
                self.threads.get(&key).map(|ts| (j.target.clone(), ts.clone()))
            })
            .collect()
    }

    /// A delivery finished (delivered, or failed for good): its key is in the log from now on.
    /// Returns the thread record to write: the thread the receiver started, or a tombstone once
    /// the incident's resolution is delivered (nothing is filed under its thread after that).
    pub fn finished(&mut self, job: &Job, receipt: Option<&Receipt>) -> Option<(String, Option<String>)> {
        self.delivered.insert(job.key.clone());
        let key = thread_key(&job.event.incident_id, &job.target);
        if job.kind == JobKind::Event && job.event.reason == RoutingReason::Resolved {
            return self.threads.remove(&key).map(|_| (format!("{THREAD_PREFIX}{key}"), None));
        }
        let ts = receipt?.thread.as_ref()?;
        if self.threads.get(&key) == Some(ts) {
            return None;
        }
        self.threads.insert(key.clone(), ts.clone());
        Some((format!("{THREAD_PREFIX}{key}"), Some(ts.clone())))
    }

    /// The batch's offsets are committed: its events are not read again (a restart reads from
    /// the committed offset, and keeps only later keys too), so their keys need not be kept.
    pub fn committed(&mut self) {
        self.delivered.clear();
    }

    /// Escalations changed since the last call, as state records: key, and JSON or `None` for a
    /// tombstone.
    pub fn escalation_records(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
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
        event.targets = vec![
            RoutingTarget { channel: "slack".into(), target: "dba".into() },
            RoutingTarget { channel: "webhook".into(), target: "ops".into() },
        ];
        event.escalation_policy = policy.map(str::to_string);
        event
    }

    fn keys(plan: &Plan) -> Vec<&str> {
        plan.jobs.values().flatten().map(|j| j.key.as_str()).collect()
    }

    #[test]
    fn an_event_becomes_one_job_per_target_and_logged_keys_are_skipped() {
        let (config, mut state, mut plan) = (config(), PartitionState::default(), Plan::default());
        state.delivered.insert("inc-1/1/Opened|webhook:ops".into());
        state.plan_event(&config, 3, routed(RoutingReason::Opened, None), 42, NOW, &mut plan);
        assert_eq!(keys(&plan), ["inc-1/1/Opened|slack:dba"]);
        assert_eq!(plan.skipped, 1, "already delivered before a restart");
        let job = &plan.jobs["inc-1"][0];
        assert_eq!((job.partition, job.routing_offset, job.kind), (3, 42, JobKind::Event));
        assert!(job.message.title.starts_with("[FIRING]"), "{}", job.message.title);
    }

    #[test]
    fn escalation_pages_each_step_when_due_until_acknowledged() {
        let (config, mut state) = (config(), PartitionState::default());
        let mut plan = Plan::default();
        state.plan_event(&config, 0, routed(RoutingReason::Opened, Some("db")), 1, NOW, &mut plan);
        state.plan_pages(&config, 0, NOW, &mut plan);
        let pages: Vec<&Job> = plan.jobs["inc-1"].iter().filter(|j| j.kind == JobKind::Escalation).collect();
        assert_eq!(pages.len(), 1, "step 1 pages at once");
        assert_eq!((pages[0].target.as_str(), pages[0].routing_offset), ("webhook:primary", -1), "alice, on call");
        assert_eq!(state.escalation_records().len(), 1, "the timer goes to the state topic");

        let mut plan = Plan::default();
        state.plan_pages(&config, 0, NOW + 4 * MINUTE, &mut plan);
        assert!(plan.jobs.is_empty(), "step 2 is not due yet");
        state.plan_pages(&config, 0, NOW + 5 * MINUTE, &mut plan);
        assert_eq!(plan.jobs["inc-1"][0].target, "webhook:manager");

        let mut acknowledged = routed(RoutingReason::Acknowledged, Some("db"));
        acknowledged.status = IncidentStatus::Acknowledged;
        let mut plan = Plan::default();
        state.plan_event(&config, 0, acknowledged, 2, NOW + 6 * MINUTE, &mut plan);
        state.plan_pages(&config, 0, NOW + 60 * MINUTE, &mut plan);
        assert!(plan.jobs["inc-1"].iter().all(|j| j.kind == JobKind::Event), "acknowledged: no more pages");
        assert_eq!(state.escalation_records(), [("escalation|inc-1".to_string(), None)], "a tombstone");
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
        let job = &plan.jobs["inc-1"][0];
        let receipt = Receipt { status: 200, thread: Some("1700000000.000100".into()) };
        assert_eq!(
            state.finished(job, Some(&receipt)),
            Some(("thread|inc-1|slack:dba".to_string(), Some("1700000000.000100".to_string())))
        );
        assert!(state.delivered.contains(&job.key));
        assert_eq!(state.finished(job, Some(&receipt)), None, "a known thread is not written again");
        assert_eq!(state.threads(&plan.jobs["inc-1"]).get("slack:dba").map(String::as_str), Some("1700000000.000100"));
        assert_eq!(state.finished(&plan.jobs["inc-1"][1], None), None, "failed for good: logged, no thread");
        assert_eq!(state.delivered.len(), 2);
    }

    #[test]
    fn state_is_let_go_once_no_longer_needed() {
        let (config, mut state, mut plan) = (config(), PartitionState::default(), Plan::default());
        state.plan_event(&config, 0, routed(RoutingReason::Opened, None), 1, NOW, &mut plan);
        let receipt = Receipt { status: 200, thread: Some("1700000000.000100".into()) };
        state.finished(&plan.jobs["inc-1"][0], Some(&receipt));
        let mut resolved = Plan::default();
        state.plan_event(&config, 0, routed(RoutingReason::Resolved, None), 2, NOW, &mut resolved);
        let job = &resolved.jobs["inc-1"][0];
        assert_eq!(
            state.finished(job, Some(&receipt)),
            Some(("thread|inc-1|slack:dba".to_string(), None)),
            "the resolution delivered: a tombstone for the incident's thread"
        );
        assert!(state.threads.is_empty());
        state.committed();
        assert!(state.delivered.is_empty(), "committed events are not read again");
    }
}
