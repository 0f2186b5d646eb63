//! Delivery lanes: one per target, each with its own rate budget, retry schedule and slots, so
//! that a slow, throttled or dead receiver holds up only its own deliveries. Within a lane one
//! incident's jobs go in order (its Slack thread exists before the replies, PagerDuty sees
//! trigger before resolve); different incidents' go concurrently, up to the lane's slots.
//!
//! Nothing here waits: the shell asks which attempts may start now ([`Lanes::start`]), runs them,
//! and reports back that a job finished ([`Lanes::finished`]) or must be tried again later
//! ([`Lanes::retry`]); [`Lanes::wake_at`] says when to ask again.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use crate::planner::Job;

/// A job waiting in its lane: the attempt to make next (from 1) and not before when (epoch ms).
#[derive(Debug)]
pub struct Queued {
    pub job: Job,
    pub attempt: u32,
    pub not_before: i64,
}

/// The lanes of every target a notifier delivers to.
pub struct Lanes {
    lanes: HashMap<String, Lane>,
    /// Budgets by target, kept while lanes come and go (one per configured target), so that an
    /// emptied lane does not start again with a full budget.
    budgets: HashMap<String, Budget>,
    slots: usize,
    /// Jobs queued or in flight, across lanes.
    len: usize,
}

#[derive(Default)]
struct Lane {
    /// One FIFO per incident, so that its deliveries to this target go in order.
    incidents: BTreeMap<String, VecDeque<Queued>>,
    /// Incidents with an attempt in flight.
    busy: HashSet<String>,
    /// Incidents whose next job was already reported as held back by the budget.
    held: HashSet<String>,
}

impl Lanes {
    /// Lanes with `slots` attempts in flight at once per target, and the targets' per-minute
    /// budgets (targets not listed, or 0, are unlimited).
    pub fn new(slots: usize, per_minute: HashMap<String, u64>, now: i64) -> Self {
        let budgets = per_minute
            .into_iter()
            .filter(|(_, tokens)| *tokens > 0)
            .map(|(target, tokens)| (target, Budget::per_minute(tokens, now)))
            .collect();
        Self { lanes: HashMap::new(), budgets, slots: slots.max(1), len: 0 }
    }

    /// Jobs queued or in flight.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Jobs queued or in flight on `target`.
    pub fn queued_on(&self, target: &str) -> usize {
        self.lanes
            .get(target)
            .map_or(0, |lane| lane.busy.len() + lane.incidents.values().map(VecDeque::len).sum::<usize>())
    }

    /// Queues a job at the back of its incident's queue on its target.
    pub fn push(&mut self, queued: Queued) {
        self.len += 1;
        let lane = self.lanes.entry(queued.job.target.clone()).or_default();
        lane.incidents.entry(queued.job.event.incident_id.clone()).or_default().push_back(queued);
    }

    /// An attempt failed and may succeed later: the job goes back to the front of its
    /// incident's queue (what comes after it still waits for it), to start at `not_before`.
    pub fn retry(&mut self, queued: Queued) {
        let lane = self.lanes.get_mut(&queued.job.target).expect("a retried job has its lane");
        let incident = queued.job.event.incident_id.clone();
        lane.busy.remove(&incident);
        lane.incidents.entry(incident).or_default().push_front(queued);
    }

    /// A job ended (delivered or failed for good): its slot is free and the next of its
    /// incident may start.
    pub fn finished(&mut self, job: &Job) {
        self.len -= 1;
        if let Some(lane) = self.lanes.get_mut(&job.target) {
            lane.busy.remove(&job.event.incident_id);
            if lane.busy.is_empty() && lane.incidents.is_empty() {
                self.lanes.remove(&job.target);
            }
        }
    }

    /// The attempts that may start at `now`: per lane, while slots are free, the head of each
    /// incident's queue that is due and not waiting for an attempt in flight, as the lane's
    /// budget allows. The second value names the target of each job newly held back by a spent
    /// budget (each job once).
    pub fn start(&mut self, now: i64) -> (Vec<Queued>, Vec<String>) {
        let (mut started, mut throttled) = (Vec::new(), Vec::new());
        for (target, lane) in &mut self.lanes {
            let mut budget = self.budgets.get_mut(target);
            let due: Vec<String> = lane
                .incidents
                .iter()
                .filter(|(incident, queue)| !lane.busy.contains(*incident) && queue[0].not_before <= now)
                .map(|(incident, _)| incident.clone())
                .take(self.slots.saturating_sub(lane.busy.len()))
                .collect();
            for incident in due {
                if budget.as_mut().is_some_and(|b| !b.take(now)) {
                    if lane.held.insert(incident) {
                        throttled.push(target.clone());
                    }
                    continue;
                }
                lane.held.remove(&incident);
                let queue = lane.incidents.get_mut(&incident).expect("listed above");
                let queued = queue.pop_front().expect("queues are never empty");
                if queue.is_empty() {
                    lane.incidents.remove(&incident);
                }
                lane.busy.insert(incident);
                started.push(queued);
            }
        }
        (started, throttled)
    }

    /// When something waiting could start next, if anything waits; the shell also asks again
    /// whenever a job finishes.
    pub fn wake_at(&self, now: i64) -> Option<i64> {
        self.lanes
            .iter()
            .filter(|(_, lane)| lane.busy.len() < self.slots)
            .filter_map(|(target, lane)| {
                let due = lane
                    .incidents
                    .iter()
                    .filter(|(incident, _)| !lane.busy.contains(*incident))
                    .map(|(_, queue)| queue[0].not_before)
                    .min()?;
                Some(self.budgets.get(target).map_or(due, |b| due.max(b.ready_at(now))))
            })
            .min()
    }

    /// Forgets every job (the partitions were revoked; their next owner delivers them).
    pub fn clear(&mut self) {
        self.lanes.clear();
        self.len = 0;
    }
}

/// A per-minute budget on the notifier's clock (epoch ms), refilled continuously, starting full.
struct Budget {
    capacity: f64,
    per_ms: f64,
    level: f64,
    at: i64,
}

impl Budget {
    fn per_minute(tokens: u64, now: i64) -> Self {
        let capacity = tokens as f64;
        Self { capacity, per_ms: capacity / 60_000.0, level: capacity, at: now }
    }

    fn refill(&mut self, now: i64) {
        self.level = (self.level + (now - self.at).max(0) as f64 * self.per_ms).min(self.capacity);
        self.at = self.at.max(now);
    }

    fn take(&mut self, now: i64) -> bool {
        self.refill(now);
        let taken = self.level >= 1.0;
        if taken {
            self.level -= 1.0;
        }
        taken
    }

    /// When the budget holds a token again.
    fn ready_at(&self, now: i64) -> i64 {
        let level = (self.level + (now - self.at).max(0) as f64 * self.per_ms).min(self.capacity);
        if level >= 1.0 {
            now
        } else {
            now + ((1.0 - level) / self.per_ms).ceil() as i64
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use quench_schemas::RoutingReason;

    use super::*;
    use crate::{
        planner::JobKind,
        template::{tests::event, Message},
    };

    fn job(incident: &str, target: &str, n: usize) -> Queued {
        let mut event = event(RoutingReason::Opened);
        event.incident_id = incident.into();
        let job = Job {
            partition: 0,
            key: format!("{incident}/{n}|{target}"),
            target: target.into(),
            event: Arc::new(event),
            message: Arc::new(Message { title: String::new(), body: String::new(), url: None }),
            kind: JobKind::Event,
            routing_offset: n as i64,
            note: None,
        };
        Queued { job, attempt: 1, not_before: 0 }
    }

    fn keys(started: &[Queued]) -> Vec<&str> {
        let mut keys: Vec<&str> = started.iter().map(|q| q.job.key.as_str()).collect();
        keys.sort();
        keys
    }

    #[test]
    fn a_blocked_target_holds_up_only_its_own_lane() {
        let mut lanes = Lanes::new(1, HashMap::new(), 0);
        lanes.push(job("a", "webhook:dead", 1));
        lanes.push(job("b", "webhook:dead", 2));
        let (started, _) = lanes.start(0);
        assert_eq!(keys(&started), ["a/1|webhook:dead"]);
        lanes.push(job("c", "pagerduty:db", 3));
        let (started, _) = lanes.start(0);
        assert_eq!(keys(&started), ["c/3|pagerduty:db"], "the dead target's slot is taken; PagerDuty's is not");
        assert_eq!(lanes.len(), 3);
        assert_eq!((lanes.queued_on("webhook:dead"), lanes.queued_on("pagerduty:db"), lanes.queued_on("x")), (2, 1, 0));
    }

    #[test]
    fn one_incidents_jobs_go_in_order_and_a_retry_keeps_its_place() {
        let mut lanes = Lanes::new(8, HashMap::new(), 0);
        lanes.push(job("a", "slack:ops", 1));
        lanes.push(job("a", "slack:ops", 2));
        let (mut started, _) = lanes.start(0);
        assert_eq!(keys(&started), ["a/1|slack:ops"], "the reply waits for the thread");
        let mut first = started.pop().unwrap();
        (first.attempt, first.not_before) = (2, 1_000);
        lanes.retry(first);
        assert!(lanes.start(999).0.is_empty(), "nothing overtakes the job being retried");
        assert_eq!(lanes.wake_at(0), Some(1_000));
        let (started, _) = lanes.start(1_000);
        assert_eq!((keys(&started), started[0].attempt), (vec!["a/1|slack:ops"], 2));
        lanes.finished(&started[0].job);
        assert_eq!(keys(&lanes.start(1_000).0), ["a/2|slack:ops"]);
    }

    #[test]
    fn a_spent_budget_holds_jobs_until_it_refills() {
        let mut lanes = Lanes::new(8, HashMap::from([("slack:ops".to_string(), 2)]), 0);
        for incident in ["a", "b", "c"] {
            lanes.push(job(incident, "slack:ops", 1));
        }
        let (started, throttled) = lanes.start(0);
        assert_eq!((started.len(), throttled), (2, vec!["slack:ops".to_string()]));
        assert_eq!(lanes.wake_at(0), Some(30_000), "two a minute: one every 30 s");
        let (started, held) = lanes.start(29_999);
        assert!(started.is_empty() && held.is_empty(), "held back, and counted, once");
        let (started, _) = lanes.start(30_000);
        assert_eq!(keys(&started), ["c/1|slack:ops"]);
        for queued in started {
            lanes.finished(&queued.job);
        }
        lanes.push(job("d", "slack:ops", 1));
        assert!(lanes.start(30_001).0.is_empty(), "an emptied lane keeps its spent budget");
    }

    #[test]
    fn finished_jobs_free_their_lane() {
        let mut lanes = Lanes::new(2, HashMap::new(), 0);
        lanes.push(job("a", "webhook:ops", 1));
        let (started, _) = lanes.start(0);
        lanes.finished(&started[0].job);
        assert!(lanes.is_empty() && lanes.lanes.is_empty() && lanes.wake_at(0).is_none());
    }
}
