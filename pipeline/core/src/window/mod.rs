//! The windowing and deduplication core: a pure function of (state, alert, event time) that
//! produces incident states, each with what should be announced about it. The operator
//! ([`crate::operator`]) feeds it alerts and watermark ticks, classifies what it flushes and
//! derives the routing events; it can be unit-tested and benchmarked alone and restored from a
//! changelog.
//!
//! Semantics follow Alertmanager's aggregation groups:
//! - a new group waits `group_wait` before its first flush, unless its first alert started more
//!   than `group_wait` ago, in which case it flushes at once;
//! - afterwards it is re-evaluated only at `group_interval` ticks, and an unchanged firing incident
//!   is announced again after `repeat_interval`;
//! - a group whose alerts all resolved before its first flush never produces an incident.
//!
//! Beyond Alertmanager, and only where a route turns them on ([`crate::rules::Holds`]): flap
//! suppression holds a group's notifications while one of its alerts flaps, and the transient
//! pause holds a group of kinds that usually resolve by themselves ([`transient`]).

pub mod changelog;
mod group;
mod packed;
pub mod transient;

pub use group::{incident_id, routing_event, Group, MAX_LISTED_FINGERPRINTS, MAX_TRACKED_ALERTS};

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use quench_schemas::{
    severity::Scale, ActionKind, Alert, EventAlert, Incident, IncidentAlerts, RoutingReason, Subject,
};

use crate::{
    correlate::Membership,
    mute::Check,
    rules::{GroupKey, Linking, Placement, RouteTree},
};

/// What one flush of a group produced: the incident's latest state (for the compacted `incidents`
/// topic), what the classifier needs to know about it, and whether people should hear of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Flush {
    pub incident: Incident,
    pub subject: Subject,
    /// Why to announce it on `incident-routing`, if anything changed that people should hear of.
    pub announce: Option<RoutingReason>,
    /// Event time of the flush.
    pub at: i64,
    /// Alerts (fingerprints) that became part of the incident with this flush, for
    /// `incident-alerts`: every alert of an incident is listed there once, however many it has.
    pub new_fingerprints: Vec<u64>,
    /// With an announcement, what it lists.
    pub notice: Option<Notice>,
    /// On the announcement that ends a flap hold, how often the alerts changed state.
    pub flaps: i64,
    /// What correlation decided when the incident opened (`None` before it was asked).
    pub correlated: Option<Membership>,
    /// The route's part in correlation.
    pub linking: Linking,
}

/// The group and alerts an announcement lists, as Alertmanager's notifications do.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// The group's route, whose receiver hears of it.
    pub route: String,
    /// In Alertmanager's format: `{}/{team="dba"}:{alertname="X"}`.
    pub group_key: String,
    pub group_labels: BTreeMap<String, String>,
    pub alerts: Vec<EventAlert>,
    pub truncated_alerts: i64,
}

/// All open groups of one partition, with their flush timers and the keys changed since the
/// last [`Windows::take_changes`] (what the changelog must carry at the next commit).
#[derive(Default)]
pub struct Windows {
    groups: HashMap<GroupKey, Group>,
    timers: BTreeSet<(i64, GroupKey)>,
    changed: HashSet<GroupKey>,
    /// Alerts beyond what their groups track, by incident, since the last
    /// [`Windows::take_untracked`]: they are recorded on `incident-alerts` as they come.
    untracked: BTreeMap<String, IncidentAlerts>,
    /// Groups that ended since the last [`Windows::take_changes`], with the changelog buckets
    /// that their tombstones must cover.
    ended: Vec<(GroupKey, u32)>,
    /// The deployment's severity scale, which ranks alerts' `severity` labels.
    scale: Scale,
}

impl Windows {
    pub fn new(scale: Scale) -> Self {
        Self { scale, ..Self::default() }
    }

    /// Adds an alert observed at event time `now` to its group, creating the group if needed;
    /// `transient` says whether its kind usually resolves by itself (see [`crate::rules::Holds`]).
    pub fn ingest(&mut self, alert: &Alert, fingerprint: u64, placement: Placement, now: i64, transient: bool) {
        let Placement { key, route, group_labels, timing } = placement;
        let group = match self.groups.entry(key.clone()) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let group = Group::new(key.clone(), route, alert, group_labels, timing, now, transient);
                self.timers.insert((group.next_flush(), key.clone()));
                entry.insert(group)
            }
        };
        let due = group.next_flush();
        let untracked = group.ingest(alert, fingerprint, now, &self.scale, transient);
        if group.next_flush() != due {
            // An alert of another kind ended the transient pause.
            self.timers.remove(&(due, key.clone()));
            self.timers.insert((group.next_flush(), key.clone()));
        }
        if let Some(incident_id) = untracked {
            let (first_seen, last_seen) = group.seen();
            let joined = self.untracked.entry(incident_id.clone()).or_insert_with(|| IncidentAlerts {
                tenant: group.tenant().to_string(),
                incident_id,
                first_seen,
                last_seen,
                fingerprints: Vec::new(),
            });
            joined.last_seen = last_seen;
            joined.fingerprints.push(format!("{fingerprint:016x}"));
        }
        self.changed.insert(key);
    }

    /// Flushes every group whose timer is due by event time `now`, in timer order and each at its
    /// due time; `check` says what is muted (time intervals, inhibition, silences).
    pub fn tick(&mut self, now: i64, out: &mut Vec<Flush>, check: &Check) {
        while let Some((due, _)) = self.timers.first() {
            if *due > now {
                break;
            }
            let (due, key) = self.timers.pop_first().expect("first exists");
            let Some(group) = self.groups.get_mut(&key) else { continue };
            let produced = out.len();
            // At its due time, not at `now`: after a gap or a backlog the watermark may be far
            // past it, and a group evaluated then would see its alerts timed out (resolve_timeout)
            // before it ever announced them.
            if group.flush(due, out, &self.scale, check) {
                self.timers.insert((group.next_flush(), key.clone()));
            } else if let Some(group) = self.groups.remove(&key) {
                self.ended.push((key.clone(), group.written_buckets));
            }
            // A flush that emitted nothing changed only its timer, which a restore recomputes.
            if out.len() > produced || !self.groups.contains_key(&key) {
                self.changed.insert(key);
            }
        }
    }

    /// Rules were reloaded at event time `now`: every open group whose route is still there takes
    /// its new timings (see [`Group::retime`]); a group whose route went keeps its own.
    pub fn retime(&mut self, rules: &RouteTree, now: i64) {
        for (key, group) in &mut self.groups {
            let Some(route) = rules.route(group.route()) else { continue };
            self.timers.remove(&(group.next_flush(), key.clone()));
            group.retime(route.timing, now);
            self.timers.insert((group.next_flush(), key.clone()));
            self.changed.insert(key.clone());
        }
    }

    /// Has the group's incident emitted again at the next tick, so that it is classified anew.
    pub fn touch(&mut self, key: &GroupKey, now: i64) {
        let Some(group) = self.groups.get_mut(key) else { return };
        self.timers.remove(&(group.next_flush(), key.clone()));
        group.touch(now);
        self.timers.insert((group.next_flush(), key.clone()));
    }

    /// Has the open incident `incident_id` of group `key` emitted again at the group's next flush
    /// (to carry its new classification); false when the group holds another incident or none.
    pub fn refine(&mut self, key: &GroupKey, incident_id: &str) -> bool {
        let Some(group) = self.groups.get_mut(key) else { return false };
        if group.incident_id() != Some(incident_id) {
            return false;
        }
        group.mark_dirty();
        self.changed.insert(key.clone());
        true
    }

    /// Keeps with group `key` what correlation decided for its incident, if the group still
    /// holds that incident.
    pub fn correlated(&mut self, key: &GroupKey, membership: Membership) {
        let group = self.groups.get_mut(key).filter(|g| g.incident_id() == Some(&membership.opened.incident_id));
        if let Some(group) = group {
            group.correlated(membership);
            self.changed.insert(key.clone());
        }
    }

    /// What correlation decided for incident `incident_id` of group `key`, if anything.
    pub fn membership(&self, key: &GroupKey, incident_id: &str) -> Option<&Membership> {
        self.groups.get(key)?.membership().filter(|m| m.opened.incident_id == incident_id)
    }

    /// What correlation decided for the open groups' incidents.
    pub fn memberships(&self) -> impl Iterator<Item = &Membership> {
        self.groups.values().filter_map(Group::membership)
    }

    /// Applies a person's action to the open incident `incident_id`, announced at the next tick.
    /// Returns false when no open group of this partition has that incident (or nothing changed).
    pub fn act(&mut self, incident_id: &str, kind: ActionKind, at: i64, now: i64) -> bool {
        let Some(key) = self.groups.iter().find(|(_, g)| g.incident_id() == Some(incident_id)).map(|(k, _)| k.clone())
        else {
            return false;
        };
        let acted = self.groups.get_mut(&key).is_some_and(|group| group.act(kind, at));
        if acted {
            self.touch(&key, now);
            self.changed.insert(key);
        }
        acted
    }

    /// Puts back a group read from the changelog.
    pub fn restore(&mut self, group: Group) {
        self.timers.insert((group.next_flush(), group.key().clone()));
        self.groups.insert(group.key().clone(), group);
    }

    /// The `incident-alerts` records of the alerts counted but not tracked since the last call.
    pub fn take_untracked(&mut self) -> Vec<IncidentAlerts> {
        std::mem::take(&mut self.untracked).into_values().collect()
    }

    /// The changelog records of what changed since the last call: the changed groups' records,
    /// tombstones for the ended ones.
    pub fn take_changes(&mut self) -> serde_json::Result<Vec<changelog::Record>> {
        let mut out = Vec::new();
        // Tombstones first: a group of the same key opened since is written after them.
        for (key, buckets) in self.ended.drain(..) {
            changelog::erase(&key, buckets, &mut out);
        }
        for key in self.changed.drain() {
            if let Some(group) = self.groups.get_mut(&key) {
                changelog::write(group, &mut out)?;
            }
        }
        Ok(out)
    }

    /// Forgets what changed, for runs that keep no changelog (a replay).
    pub fn discard_changes(&mut self) {
        self.ended.clear();
        self.changed.clear();
    }

    /// The id of the incident that group `key` has, or will have at its first flush.
    pub fn incident_of(&self, key: &GroupKey) -> Option<String> {
        self.groups.get(key).map(Group::pending_incident_id)
    }

    pub fn is_open(&self, key: &GroupKey) -> bool {
        self.groups.contains_key(key)
    }

    pub fn open_groups(&self) -> usize {
        self.groups.len()
    }

    /// Open groups of `tenant`.
    pub fn open_groups_of(&self, tenant: &str) -> usize {
        self.groups.values().filter(|group| group.tenant() == tenant).count()
    }

    /// Alerts (distinct fingerprints) held across all open groups.
    pub fn open_fingerprints(&self) -> usize {
        self.groups.values().map(Group::fingerprints).sum()
    }
}

#[cfg(test)]
mod tests;
