//! Escalation as a pure function of events and time: an open incident with a policy pages the
//! policy's first step at once, then each next step when the previous step's wait ran out without
//! an acknowledgement, `1 + repeat` times over; acknowledging or resolving stops it.
//!
//! Times are arguments, never read from a clock, so tests drive it with a virtual clock and a
//! restarted notifier resumes from the state it wrote to Kafka.

use std::collections::{BTreeMap, BTreeSet};

use quench_schemas::{IncidentStatus, RoutingEvent, RoutingReason};
use serde::{Deserialize, Serialize};

use crate::config::{NotifyConfig, Policy};

/// One incident's escalation, as persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    /// [`crate::planner::STATE_FORMAT`] when written (records from before formats were numbered: 1).
    #[serde(default = "quench_schemas::state_format::first")]
    pub format: u32,
    pub policy: String,
    /// Runs of the policy completed so far.
    pub cycle: u32,
    /// The step that fires next.
    pub step: usize,
    /// When it fires, in epoch milliseconds.
    pub due_at: i64,
    /// Every step of every run has fired; kept until the incident ends so that later updates of
    /// the incident do not start the policy over.
    pub finished: bool,
    /// The incident's latest event, which pages describe.
    pub event: RoutingEvent,
}

/// A step that fired: what to tell which targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub event: RoutingEvent,
    pub cycle: u32,
    pub step: usize,
    /// Unresolved step targets (`channel:name`, `user:name`, `schedule:name`).
    pub targets: Vec<String>,
}

impl Page {
    /// The part of the idempotency key that names this page; the same after a restart, since
    /// cycle and step are.
    pub fn id(&self) -> String {
        format!("{}/escalation/{}.{}", self.event.incident_id, self.cycle, self.step)
    }

    pub fn note(&self) -> String {
        format!("Escalation step {} (round {}): not acknowledged yet.", self.step + 1, self.cycle + 1)
    }
}

/// The escalations of one partition's incidents, with the ones changed since the last
/// [`Escalations::take_changes`].
#[derive(Default)]
pub struct Escalations {
    by_incident: BTreeMap<String, Escalation>,
    changed: BTreeSet<String>,
}

/// How long a finished escalation is kept after its last wait ran out. It is kept so that later
/// updates of its incident do not start the policy over; by then the worker has closed an
/// incident that nobody acknowledged or resolved (`max_incident_age`, 7 days by default), and its
/// record would otherwise stay in the state topic for good.
pub const FINISHED_KEPT_MS: i64 = 8 * 24 * 3_600_000;

fn wait_ms(policy: &Policy, step: usize) -> i64 {
    (policy.steps[step].wait_minutes * 60_000.0).round() as i64
}

impl Escalations {
    /// Puts back an escalation read from Kafka.
    pub fn restore(&mut self, escalation: Escalation) {
        self.by_incident.insert(escalation.event.incident_id.clone(), escalation);
    }

    /// Escalations still running (not finished), for logs.
    pub fn running(&self) -> usize {
        self.by_incident.values().filter(|e| !e.finished).count()
    }

    /// Starts, updates or stops the incident's escalation after `event`, received at `now`.
    pub fn observe(&mut self, event: &RoutingEvent, policies: &BTreeMap<String, Policy>, now: i64) {
        let id = &event.incident_id;
        let ended = matches!(event.reason, RoutingReason::Acknowledged | RoutingReason::Resolved)
            || event.status != IncidentStatus::Open;
        if ended {
            if self.by_incident.remove(id).is_some() {
                self.changed.insert(id.clone());
            }
            return;
        }
        if let Some(escalation) = self.by_incident.get_mut(id) {
            escalation.event = event.clone();
            self.changed.insert(id.clone());
            return;
        }
        let Some(policy) = event.escalation_policy.as_ref().filter(|p| policies.contains_key(*p)) else { return };
        let escalation = Escalation {
            format: crate::planner::STATE_FORMAT,
            policy: policy.clone(),
            cycle: 0,
            step: 0,
            due_at: now,
            finished: false,
            event: event.clone(),
        };
        self.by_incident.insert(id.clone(), escalation);
        self.changed.insert(id.clone());
    }

    /// Fires every step due at `now`, in due order, and schedules the next ones; escalations
    /// finished longer than [`FINISHED_KEPT_MS`] ago are let go (a tombstone).
    pub fn fire_due(&mut self, policies: &BTreeMap<String, Policy>, now: i64) -> Vec<Page> {
        let expired: Vec<String> = self
            .by_incident
            .iter()
            .filter(|(_, e)| e.finished && e.due_at + FINISHED_KEPT_MS <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.by_incident.remove(&id);
            self.changed.insert(id);
        }
        let mut pages = Vec::new();
        for (id, escalation) in &mut self.by_incident {
            if escalation.finished || escalation.due_at > now {
                continue;
            }
            // A policy removed from the configuration stops its escalations.
            let Some(policy) = policies.get(&escalation.policy) else {
                escalation.finished = true;
                self.changed.insert(id.clone());
                continue;
            };
            let step = escalation.step.min(policy.steps.len() - 1);
            pages.push(Page {
                event: escalation.event.clone(),
                cycle: escalation.cycle,
                step,
                targets: policy.steps[step].targets.clone(),
            });
            escalation.due_at = now + wait_ms(policy, step);
            escalation.step = step + 1;
            if escalation.step == policy.steps.len() {
                escalation.step = 0;
                escalation.cycle += 1;
                // The last step's wait is still owed before the policy runs again; with no run
                // left, nothing is owed.
                escalation.finished = escalation.cycle > policy.repeat;
            }
            self.changed.insert(id.clone());
        }
        pages.sort_by_key(|p| (p.event.emitted_at, p.event.incident_id.clone()));
        pages
    }

    /// Escalations changed since the last call: `Some` to write, `None` for a tombstone.
    pub fn take_changes(&mut self) -> Vec<(String, Option<&Escalation>)> {
        let changed = std::mem::take(&mut self.changed);
        changed
            .into_iter()
            .map(|id| {
                let e = self.by_incident.get(&id);
                (id, e)
            })
            .collect()
    }
}

/// The channel targets (`channel:name`) a step target stands for at `at` (epoch ms): itself, a
/// user's targets, or the targets of whoever the schedule has on call.
pub fn resolve(config: &NotifyConfig, target: &str, at: i64) -> Vec<String> {
    let user_targets = |user: &str| config.users.get(user).map(|u| u.targets.clone()).unwrap_or_default();
    match target.split_once(':') {
        Some(("user", name)) => user_targets(name),
        Some(("schedule", name)) => {
            let Some(schedule) = config.schedules.get(name) else { return Vec::new() };
            let Ok(at) = jiff::Timestamp::from_millisecond(at) else { return Vec::new() };
            schedule.on_call(at).map(user_targets).unwrap_or_default()
        }
        _ => vec![target.to_string()],
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::template::tests::event;

    const MINUTE: i64 = 60_000;

    /// Alice on call for schedule `dba`; policy `db`: the schedule, then `webhook:manager`.
    pub(crate) fn config() -> NotifyConfig {
        toml::from_str(
            r#"
            [webhook.primary]
            url = "http://127.0.0.1:1/a"
            [webhook.manager]
            url = "http://127.0.0.1:1/b"
            [users.alice]
            targets = ["webhook:primary"]
            [schedules.dba]
            timezone = "UTC"
            layers = [{ users = ["alice"], start = "2026-01-01", handoff = "00:00" }]
            [policies.db]
            repeat = 1
            steps = [{ targets = ["schedule:dba"], wait_minutes = 5 }, { targets = ["webhook:manager"], wait_minutes = 10 }]
            "#,
        )
        .unwrap()
    }

    fn opened() -> RoutingEvent {
        RoutingEvent { escalation_policy: Some("db".into()), ..event(RoutingReason::Opened) }
    }

    /// Drives the escalation minute by minute (the virtual clock) and lists (minute, step, cycle).
    fn run(
        escalations: &mut Escalations,
        policies: &BTreeMap<String, Policy>,
        from: i64,
        to: i64,
    ) -> Vec<(i64, usize, u32)> {
        (from..=to)
            .flat_map(|minute| {
                escalations.fire_due(policies, minute * MINUTE).into_iter().map(move |p| (minute, p.step, p.cycle))
            })
            .collect()
    }

    #[test]
    fn steps_fire_after_their_waits_and_the_policy_repeats() {
        let config = config();
        let mut escalations = Escalations::default();
        escalations.observe(&opened(), &config.policies, 0);
        let fired = run(&mut escalations, &config.policies, 0, 120);
        assert_eq!(fired, vec![(0, 0, 0), (5, 1, 0), (15, 0, 1), (20, 1, 1)]);
        // Later updates of the incident do not start it over.
        escalations.observe(
            &RoutingEvent { reason: RoutingReason::AlertsAdded, ..opened() },
            &config.policies,
            121 * MINUTE,
        );
        assert!(run(&mut escalations, &config.policies, 121, 200).is_empty());
        escalations.take_changes();
        // The last wait ran out at minute 30; a week and a day later it is let go.
        escalations.fire_due(&config.policies, 30 * MINUTE + FINISHED_KEPT_MS - 1);
        assert!(escalations.take_changes().is_empty());
        escalations.fire_due(&config.policies, 30 * MINUTE + FINISHED_KEPT_MS);
        assert_eq!(escalations.take_changes(), vec![("inc-1".to_string(), None)], "a tombstone");
    }

    #[test]
    fn acknowledging_stops_it_and_the_tombstone_is_a_change() {
        let config = config();
        let mut escalations = Escalations::default();
        escalations.observe(&opened(), &config.policies, 0);
        assert_eq!(run(&mut escalations, &config.policies, 0, 4), vec![(0, 0, 0)]);
        escalations.take_changes();
        let acked =
            RoutingEvent { reason: RoutingReason::Acknowledged, status: IncidentStatus::Acknowledged, ..opened() };
        escalations.observe(&acked, &config.policies, 4 * MINUTE);
        assert_eq!(escalations.take_changes(), vec![("inc-1".to_string(), None)]);
        assert!(run(&mut escalations, &config.policies, 5, 60).is_empty());
    }

    #[test]
    fn a_restored_escalation_resumes_where_it_was() {
        let config = config();
        let mut before = Escalations::default();
        before.observe(&opened(), &config.policies, 0);
        run(&mut before, &config.policies, 0, 7);
        let saved: Vec<Escalation> = before.take_changes().into_iter().filter_map(|(_, e)| e.cloned()).collect();
        let json = serde_json::to_string(&saved).unwrap();
        let mut after = Escalations::default();
        for escalation in serde_json::from_str::<Vec<Escalation>>(&json).unwrap() {
            after.restore(escalation);
        }
        assert_eq!(run(&mut after, &config.policies, 8, 30), vec![(15, 0, 1), (20, 1, 1)]);
    }

    #[test]
    fn schedules_and_users_resolve_to_channel_targets() {
        let config = config();
        assert_eq!(resolve(&config, "schedule:dba", 1_780_000_000_000), vec!["webhook:primary"]);
        assert_eq!(resolve(&config, "user:alice", 0), vec!["webhook:primary"]);
        assert_eq!(resolve(&config, "webhook:manager", 0), vec!["webhook:manager"]);
        assert!(resolve(&config, "schedule:dba", 0).is_empty(), "before the rotation starts");
    }
}
