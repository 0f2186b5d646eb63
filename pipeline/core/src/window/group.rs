//! One aggregation group: the alerts that share a route and group labels, and the incident they
//! form once the group first flushes with something firing.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use quench_schemas::{
    expr_of_generator_url, ActionKind, Alert, AlertStatus, EventAlert, Incident, IncidentStatus, RoutingEvent,
    RoutingReason, Subject,
};
use serde::{Deserialize, Serialize};

use quench_schemas::severity::{Rank, Scale};

use super::{packed::Packed, Flush, Notice};
use crate::{
    correlate::Membership,
    mute::{Check, Muted},
    rules::{alertmanager_group_key, GroupKey, Holds, Timing},
};

/// An alert's flips between firing and resolved, from which a group counts as flapping.
const FLAPPING_FLIPS: u16 = 4;

/// Alerts a group tracks one by one. Beyond it, resolved alerts already recorded are forgotten
/// (their counts stay), and when every tracked alert still fires, new ones are counted but not
/// tracked: a storm into one group cannot grow a worker's memory or its changelog without bound.
pub const MAX_TRACKED_ALERTS: usize = 50_000;

/// Fingerprints an incident record lists (the smallest, as a sample): the record must stay far
/// below Kafka's message limit however many alerts the incident has. Every fingerprint is on
/// `incident-alerts` and in ClickHouse's `incident_alerts`; `distinct_alerts` counts them all.
pub const MAX_LISTED_FINGERPRINTS: usize = 1_000;

/// The changelog spreads a group's alerts over this many records by fingerprint, so that no
/// record passes Kafka's message limit (50,000 alerts make about 350 kB per record) and a change
/// rewrites only the records it touched.
pub const BUCKETS: u32 = 32;

/// Every bucket, as a mask.
pub const ALL_BUCKETS: u32 = u32::MAX >> (32 - BUCKETS);

/// The changelog record of `fingerprint`'s alerts.
pub fn bucket(fingerprint: u64) -> u32 {
    (fingerprint % u64::from(BUCKETS)) as u32
}

/// Per fingerprint: kept small, since a worker holds one per open alert.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Entry {
    firing: bool,
    /// Firing in the last announcement: Alertmanager's notification log keeps the firing set of
    /// the last notification, and a new one is due when a firing alert is not in it. A
    /// resolution changes nothing until the next announcement, so an alert that resolves and
    /// fires again in between is no news.
    notified: bool,
    ends_at: Option<i64>,
    last_seen: i64,
    flips: u16,
    severity: Rank,
    /// Written to `incident-alerts` as part of the group's incident.
    #[serde(default)]
    recorded: bool,
    /// Its sender reports the resolution: no `resolve_timeout` (see `Alert::stateful`).
    #[serde(default)]
    stateful: bool,
    /// What silences and inhibition rules match, and notifications list (changelogs written
    /// before them: none, and such an alert is never muted).
    #[serde(default)]
    labels: Packed,
    /// Up to [`MAX_ANNOTATION_BYTES`] of its annotations, for notifications.
    #[serde(default)]
    annotations: Packed,
    #[serde(default)]
    starts_at: i64,
    /// Resolved, and a flush went by since: as Alertmanager drops a resolved alert from its
    /// group after a flush, it is listed in that flush's notification only.
    #[serde(default)]
    reported: bool,
    /// Its last state changes, while its route's flap suppression is on (the last
    /// `flap_changes` of them: what [`Holds::flapping`] reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    changes: Option<Box<[i64]>>,
}

impl Entry {
    /// Records a change between firing and resolved at `at`, keeping the last `keep` times.
    fn changed(&mut self, at: i64, keep: usize) {
        self.flips = self.flips.saturating_add(1);
        if keep > 0 {
            // A boxed slice: one word on every alert that never changes, which is most of them.
            let mut changes = self.changes.take().map(Vec::from).unwrap_or_default();
            if changes.len() >= keep {
                changes.drain(..=changes.len() - keep);
            }
            changes.push(at);
            self.changes = Some(changes.into_boxed_slice());
        }
    }

    fn flapping(&self, holds: &Holds, now: i64) -> bool {
        self.changes.as_ref().is_some_and(|c| holds.flapping(c, now))
    }
}

/// Annotations an alert keeps for notifications (a group holds up to [`MAX_TRACKED_ALERTS`]).
const MAX_ANNOTATION_BYTES: usize = 2_048;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OpenIncident {
    id: String,
    version: i64,
    first_seen: i64,
    last_notified_at: i64,
    notified_severity: Rank,
    /// Announced at least once: an incident whose alerts were all muted is recorded but not
    /// announced, and its first announcement, once something unmuted fires, opens it.
    #[serde(default = "announced")]
    announced: bool,
}

/// Incidents in changelogs written before mutes were all announced at once.
fn announced() -> bool {
    true
}

/// Serialisable, because open groups are mirrored to the `quench-state` changelog: the group
/// in one record, its alerts in [`BUCKETS`] more (see [`super::changelog`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Group {
    key: GroupKey,
    /// The changelog format this record was written in ([`super::changelog::FORMAT`]); records
    /// written before formats were numbered have none, and are format 1.
    #[serde(default = "quench_schemas::state_format::first")]
    pub(super) format: u32,
    /// The route's id, to ask whether its time intervals mute it (older changelogs: none).
    #[serde(default)]
    route: String,
    tenant: String,
    group_labels: BTreeMap<String, String>,
    timing: Timing,
    created_at: i64,
    next_flush: i64,
    /// In bucket records; changelogs written before buckets carry them here, and still load.
    #[serde(default, skip_serializing)]
    pub(super) alerts: HashMap<u64, Entry>,
    /// Buckets that hold alerts in the changelog as last written (bit `b` for bucket `b`).
    #[serde(default)]
    pub(super) written_buckets: u32,
    /// Buckets changed since they were last written.
    #[serde(skip)]
    pub(super) changed_buckets: u32,
    /// [`Group::make_room`] found nothing to forget, and nothing has resolved or flushed since.
    #[serde(skip)]
    full: bool,
    /// Distinct alerts no longer (or never) tracked one by one: forgotten once resolved and
    /// recorded, or beyond [`MAX_TRACKED_ALERTS`]; with the tracked ones, `distinct_alerts`.
    #[serde(default)]
    untracked_alerts: i64,
    /// The highest severity and latest end among forgotten alerts, for the resolved incident.
    #[serde(default)]
    forgotten_severity: Rank,
    #[serde(default)]
    forgotten_ended_at: Option<i64>,
    /// Labels with one value across every alert seen so far.
    common_labels: BTreeMap<String, String>,
    alert_count: i64,
    first_starts_at: i64,
    last_seen: i64,
    incident: Option<OpenIncident>,
    /// Something changed since the last flush (a re-send, a resolution...).
    dirty: bool,
    /// What the classifier reads: the distinct alert names (the first few) and the first alert's
    /// summary and description. Defaults let changelogs written before classification load.
    #[serde(default)]
    alertnames: Vec<String>,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    description: String,
    /// The first alert's rule expression, from its `generatorURL`.
    #[serde(default)]
    expr: String,
    /// When a person acknowledged the incident (through `incident-actions`).
    #[serde(default)]
    acknowledged_at: Option<i64>,
    /// When a person resolved it; the group ends at its next flush whatever still fires.
    #[serde(default)]
    resolved_by_person_at: Option<i64>,
    /// An acknowledgement not announced yet.
    #[serde(default)]
    acknowledgement_due: bool,
    /// Times its alerts changed between firing and resolved in this incident, and when last.
    #[serde(default)]
    state_changes: i64,
    #[serde(default)]
    last_change: i64,
    /// Flap suppression holds its notifications until its alerts are stable again.
    #[serde(default)]
    flap_held: bool,
    /// It was held for flapping at some point: the incident says it flaps.
    #[serde(default)]
    flapped: bool,
    /// The transient pause holds its first announcement until this event time.
    #[serde(default)]
    transient_until: Option<i64>,
    /// A flap hold ended: the next announcement says how often the alerts changed.
    #[serde(default)]
    flaps_due: bool,
    /// What correlation decided when its incident opened.
    #[serde(default)]
    correlation: Option<Membership>,
}

/// Bounds on what a group keeps for the classifier: the changelog carries it for every open group.
const MAX_ALERTNAMES: usize = 8;
const MAX_TEXT: usize = 512;

fn bounded(text: Option<&String>) -> String {
    text.map(|t| t.chars().take(MAX_TEXT).collect()).unwrap_or_default()
}

/// Deterministic incident id from the group key (which holds the tenant) and the start of the
/// incident's first window, so that a replay or a restarted worker names the same incident the
/// same way. 128 bits of SHA-256 rather than a 64-bit hash: the id alone locates an incident for
/// actions, the directory and PagerDuty, so two tenants' incidents must never share one.
pub fn incident_id(key: &GroupKey, window_start: i64) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new().chain_update(key.0.as_bytes()).chain_update(window_start.to_be_bytes()).finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("inc-{hex}")
}

fn ms(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// When a group whose first alert started at `starts_at` first flushes, seen at `now`.
/// Alertmanager flushes at once when the first alert is older than group_wait: waiting longer
/// would only delay an alert that has already been firing for a while.
fn first_flush(timing: &Timing, starts_at: i64, now: i64) -> i64 {
    let wait = ms(timing.group_wait);
    if starts_at.saturating_add(wait) <= now {
        now
    } else {
        now.saturating_add(wait)
    }
}

impl Group {
    /// A group opened by `first`, which is of a transient kind when `transient` (see
    /// [`Holds::transient_pause`]).
    pub fn new(
        key: GroupKey,
        route: String,
        first: &Alert,
        group_labels: BTreeMap<String, String>,
        timing: Timing,
        now: i64,
        transient: bool,
    ) -> Self {
        let next_flush = first_flush(&timing, first.starts_at, now);
        let pause = timing.holds.transient_pause_ms();
        let transient_until = (transient && pause > 0).then(|| next_flush.saturating_add(pause));
        Self {
            key,
            route,
            tenant: first.tenant.clone(),
            group_labels,
            timing,
            created_at: now,
            next_flush: transient_until.unwrap_or(next_flush),
            format: super::changelog::FORMAT,
            alerts: HashMap::new(),
            written_buckets: 0,
            changed_buckets: 0,
            full: false,
            untracked_alerts: 0,
            forgotten_severity: Rank::UNKNOWN,
            forgotten_ended_at: None,
            common_labels: first.labels.clone(),
            alert_count: 0,
            first_starts_at: first.starts_at,
            last_seen: now,
            incident: None,
            dirty: false,
            alertnames: Vec::new(),
            summary: bounded(first.annotations.get("summary").or_else(|| first.annotations.get("message"))),
            description: bounded(first.annotations.get("description")),
            expr: bounded(first.generator_url.as_deref().and_then(expr_of_generator_url).as_ref()),
            acknowledged_at: None,
            resolved_by_person_at: None,
            acknowledgement_due: false,
            state_changes: 0,
            last_change: now,
            flap_held: false,
            flapped: false,
            transient_until,
            flaps_due: false,
            correlation: None,
        }
    }

    /// The id of the group's open incident, if it has one.
    pub fn incident_id(&self) -> Option<&str> {
        self.incident.as_ref().map(|open| open.id.as_str())
    }

    /// Applies what a person did at `at`; false when it changes nothing (a repeat, a comment).
    pub fn act(&mut self, kind: ActionKind, at: i64) -> bool {
        let changed = match kind {
            ActionKind::Acknowledge if self.acknowledged_at.is_none() && self.resolved_by_person_at.is_none() => {
                self.acknowledged_at = Some(at);
                self.acknowledgement_due = true;
                true
            }
            ActionKind::Resolve if self.resolved_by_person_at.is_none() => {
                self.resolved_by_person_at = Some(at);
                true
            }
            _ => false,
        };
        self.dirty |= changed;
        changed
    }

    pub fn key(&self) -> &GroupKey {
        &self.key
    }

    /// Newest event time seen in the group, to restart a restored partition's clock from.
    pub fn last_seen(&self) -> i64 {
        self.last_seen
    }

    pub fn next_flush(&self) -> i64 {
        self.next_flush
    }

    /// Alerts tracked one by one (what the worker's memory holds).
    pub fn fingerprints(&self) -> usize {
        self.alerts.len()
    }

    fn distinct_alerts(&self) -> i64 {
        self.alerts.len() as i64 + self.untracked_alerts
    }

    /// Records an alert observation. A re-send of a known alert only bumps counters and last_seen.
    /// Returns the incident that a new alert beyond [`MAX_TRACKED_ALERTS`] joins: it is counted
    /// but not tracked, so it must be recorded on `incident-alerts` now.
    /// An alert of a kind that is not transient (`transient` false) ends the group's transient
    /// pause: the group is due when it would have been without it.
    pub fn ingest(
        &mut self,
        alert: &Alert,
        fingerprint: u64,
        now: i64,
        scale: &Scale,
        transient: bool,
    ) -> Option<String> {
        let firing = alert.status == AlertStatus::Firing && alert.ends_at.is_none_or(|end| end > now);
        let keep = self.timing.holds.kept_changes();
        let severity = scale.rank(alert.labels.get("severity").map(String::as_str));
        let mut untracked = false;
        match self.alerts.get_mut(&fingerprint) {
            Some(entry) => {
                self.changed_buckets |= 1 << bucket(fingerprint);
                if entry.firing != firing {
                    entry.changed(now, keep);
                    self.state_changes += 1;
                    self.last_change = self.last_change.max(now);
                    entry.firing = firing;
                    if firing {
                        // Firing again: a new start, and a resolution to report later.
                        entry.starts_at = alert.starts_at;
                        entry.reported = false;
                    }
                    // A resolution may have made room for alerts that were not tracked.
                    self.full &= firing;
                }
                entry.ends_at = alert.ends_at;
                entry.last_seen = entry.last_seen.max(now);
                entry.severity = severity;
                entry.stateful = alert.stateful;
            }
            None => {
                if !transient && self.incident.is_none() {
                    // A new alert of another kind ends the pause (a re-send does not: the group
                    // decided when it opened): due when it would have been without it.
                    if let Some(until) = self.transient_until.take() {
                        self.next_flush = until.saturating_sub(self.timing.holds.transient_pause_ms()).max(now);
                    }
                }
                self.common_labels.retain(|name, value| alert.labels.get(name) == Some(value));
                if let Some(name) = alert.labels.get("alertname") {
                    if self.alertnames.len() < MAX_ALERTNAMES && !self.alertnames.contains(name) {
                        self.alertnames.push(name.clone());
                    }
                }
                if self.alerts.len() >= MAX_TRACKED_ALERTS && !self.make_room() {
                    self.untracked_alerts += 1;
                    untracked = true;
                } else {
                    let entry = Entry {
                        firing,
                        notified: false,
                        ends_at: alert.ends_at,
                        last_seen: now,
                        flips: 0,
                        severity,
                        recorded: false,
                        stateful: alert.stateful,
                        labels: Packed::pack(&alert.labels),
                        annotations: Packed::pack_within(&alert.annotations, MAX_ANNOTATION_BYTES),
                        starts_at: alert.starts_at,
                        reported: false,
                        changes: None,
                    };
                    self.alerts.insert(fingerprint, entry);
                    self.changed_buckets |= 1 << bucket(fingerprint);
                }
            }
        }
        self.alert_count += 1;
        self.first_starts_at = self.first_starts_at.min(alert.starts_at);
        self.last_seen = self.last_seen.max(now);
        self.dirty = true;
        // The id the group's incident has, or will have at its first flush.
        untracked.then(|| self.pending_incident_id())
    }

    /// The times an `incident-alerts` record of this group's incident carries.
    pub fn seen(&self) -> (i64, i64) {
        (self.incident.as_ref().map_or(self.first_starts_at, |open| open.first_seen), self.last_seen)
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The route the group is on.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// The id the group's incident has, or will have at its first flush.
    pub fn pending_incident_id(&self) -> String {
        self.incident_id().map_or_else(|| incident_id(&self.key, self.created_at), str::to_string)
    }

    /// Evaluates the group at event time `now`, asking `check` whether its route is muted (time
    /// intervals) and which of its alerts are (inhibition, silences). Returns false when the
    /// group is finished (its incident resolved, or it never became one) and can be dropped.
    pub fn flush(&mut self, now: i64, out: &mut Vec<Flush>, scale: &Scale, check: &Check) -> bool {
        self.expire(now);
        if self.incident.is_some()
            && self.resolved_by_person_at.is_none()
            && now.saturating_sub(self.created_at) >= ms(self.timing.max_incident_age)
            && self.alerts.values().any(|e| e.firing)
        {
            self.close_aged(now, out, scale);
            return true;
        }
        self.update_flap_hold(now);
        if let Some(until) = self.transient_until.filter(|until| self.incident.is_none() && now < *until) {
            // Inside the transient pause (a reload made the group due early).
            self.next_flush = until;
            return true;
        }
        // The pause is over at the first flush past it: what resolved by then was transient.
        let paused = self.transient_until.take().is_some();
        let mutes = self.mutes(now, check);
        let any_firing = self.alerts.values().any(|e| e.firing);
        if !any_firing && self.incident.is_some() && self.unsteady(now) {
            // With flap suppression, a resolution waits until the group is stable: an alert that
            // fires again meanwhile stays in this incident, where its changes are counted, instead
            // of ending it and opening another at every cycle (where no count could see it flap).
            self.next_flush = now.saturating_add(ms(self.timing.group_interval));
            return true;
        }
        // Muted alerts are left out of what is announced, as Alertmanager's mute stage filters
        // them before its dedup stage.
        let firing: Vec<&Entry> =
            self.alerts.iter().filter(|(fp, e)| e.firing && !mutes.contains_key(*fp)).map(|(_, e)| e).collect();
        let severity = firing.iter().map(|e| e.severity).max().unwrap_or_default();
        let reason = match &self.incident {
            None if !any_firing && !paused => return false,
            // Held by the transient pause and resolved within it: recorded, never announced.
            None if !any_firing => None,
            // Everything that fires is muted: the incident is recorded, not announced.
            None if firing.is_empty() => None,
            None => Some(RoutingReason::Opened),
            Some(open) if !any_firing || self.resolved_by_person_at.is_some() => {
                open.announced.then_some(RoutingReason::Resolved)
            }
            Some(_) if self.acknowledgement_due => Some(RoutingReason::Acknowledged),
            Some(open) if !open.announced => (!firing.is_empty()).then_some(RoutingReason::Opened),
            // Everything that fires is muted. Alertmanager's pipeline stops when its mute stage
            // leaves nothing, so nothing changes; when resolved alerts remain, its dedup stage
            // sends the resolution (to send_resolved receivers) and its notification log forgets
            // what fired, so what fires unmuted later is news again.
            Some(_) if firing.is_empty() => {
                if self.alerts.values().any(|e| !e.firing && !e.reported) {
                    self.alerts.values_mut().for_each(|e| e.notified = false);
                    check.sends_resolved(&self.route).then_some(RoutingReason::AlertsResolved)
                } else {
                    None
                }
            }
            Some(open) => {
                if firing.iter().any(|e| !e.notified) {
                    Some(RoutingReason::AlertsAdded)
                } else if severity > open.notified_severity {
                    Some(RoutingReason::SeverityChanged)
                } else if check.sends_resolved(&self.route) && self.alerts.values().any(|e| !e.firing && !e.reported) {
                    Some(RoutingReason::AlertsResolved)
                } else if now.saturating_sub(open.last_notified_at) > ms(self.timing.repeat_interval) {
                    // Strictly later, as Alertmanager's dedup stage compares with the time it
                    // logged the last notification (after delivering it): on group_interval
                    // ticks, the repeat comes at the first tick past repeat_interval.
                    Some(RoutingReason::Repeat)
                } else {
                    None
                }
            }
        };
        self.next_flush = now.saturating_add(ms(self.timing.group_interval));
        // Alertmanager's time intervals: while the route is muted nothing is announced and
        // nothing counts as notified, so the first flush after the mute announces what is due
        // then; an incident opens only then, and a resolution waits too (with the group, which
        // remembers what was last notified: an alert firing again before the mute ends is no news).
        let muted = check.route_muted(&self.route, now);
        let reason = match reason {
            Some(_) if muted && self.incident.is_none() => return true,
            Some(RoutingReason::Resolved) if muted => return true,
            // Flapping: the incident is recorded (flapping, its changes counted), not announced.
            _ if muted || self.flap_held => None,
            reason => reason,
        };
        if reason.is_none() && !self.dirty {
            return true;
        }
        self.dirty = false;
        let open = self.incident.get_or_insert_with(|| OpenIncident {
            id: incident_id(&self.key, self.created_at),
            version: 0,
            first_seen: self.first_starts_at,
            last_notified_at: now,
            notified_severity: severity,
            announced: false,
        });
        open.version += 1;
        let mut incident = self.snapshot(now, scale);
        record_mutes(&mut incident, &mutes);
        incident.transient = paused && incident.status == IncidentStatus::Resolved;
        // Every alert now belongs to a written incident; those new to it go to `incident-alerts`.
        let mut new_fingerprints = Vec::new();
        for (fingerprint, entry) in self.alerts.iter_mut().filter(|(_, e)| !e.recorded) {
            entry.recorded = true;
            new_fingerprints.push(*fingerprint);
        }
        new_fingerprints.sort_unstable();
        // Flags changed throughout (notified, recorded, expiries): rewrite every bucket, which
        // happens at most once a group_interval.
        self.changed_buckets = ALL_BUCKETS;
        self.full = false;
        if reason.is_some() {
            self.acknowledgement_due = false;
            let open = self.incident.as_mut().expect("just set");
            open.last_notified_at = now;
            open.notified_severity = severity;
            open.announced = true;
            for (fingerprint, entry) in &mut self.alerts {
                entry.notified = entry.firing && !mutes.contains_key(fingerprint);
            }
        }
        let resolved = incident.status == IncidentStatus::Resolved;
        let subject = self.subject(&incident);
        let notice = reason.map(|_| self.notice(&mutes));
        // Alertmanager drops resolved alerts from a group once a flush went through, announced
        // or not: they are listed no more.
        self.alerts.values_mut().filter(|e| !e.firing).for_each(|e| e.reported = true);
        // The notification after a flap hold says how often the alerts changed.
        let flaps = if reason.is_some() && std::mem::take(&mut self.flaps_due) { self.state_changes } else { 0 };
        let correlated = self.correlation.clone();
        let linking = self.timing.linking;
        out.push(Flush {
            incident,
            subject,
            announce: reason,
            at: now,
            new_fingerprints,
            notice,
            flaps,
            correlated,
            linking,
        });
        !resolved
    }

    /// Flap suppression ([`Holds`]): holds the group while one of its alerts flaps, and lets go
    /// once none has changed for `flap_stable` (or a reload turned it off, or a person resolved
    /// the incident), with everything that fires then as news: one notification says where it
    /// settled, and how often it changed.
    fn update_flap_hold(&mut self, now: i64) {
        let holds = self.timing.holds;
        let off = holds.flap_changes == 0 || self.resolved_by_person_at.is_some();
        if !off && self.alerts.values().any(|e| e.flapping(&holds, now)) {
            self.flapped = true;
            // Recorded at this flush: the incident says it flaps.
            self.dirty |= !self.flap_held;
            self.flap_held = true;
        } else if self.flap_held && (off || holds.stable(self.last_change, now)) {
            self.flap_held = false;
            self.flaps_due = true;
            self.alerts.values_mut().for_each(|e| e.notified = false);
        }
    }

    /// Flap suppression is on and an alert changed within `flap_stable` (a person's resolution
    /// is announced at once).
    fn unsteady(&self, now: i64) -> bool {
        let holds = self.timing.holds;
        holds.flap_changes > 0
            && self.resolved_by_person_at.is_none()
            && (self.flap_held || !holds.stable(self.last_change, now))
    }

    /// What an announcement lists: the group's key in Alertmanager's format, its labels, and
    /// its alerts that are not muted, firing, or resolved and not listed before (at most
    /// [`RoutingEvent::MAX_ALERTS`], by fingerprint).
    fn notice(&mut self, mutes: &HashMap<u64, Muted>) -> Notice {
        let mut listed: Vec<(&u64, &mut Entry)> = self
            .alerts
            .iter_mut()
            .filter(|(fp, e)| if e.firing { !mutes.contains_key(*fp) } else { !e.reported })
            .collect();
        listed.sort_unstable_by_key(|(fp, _)| **fp);
        let truncated = listed.len().saturating_sub(RoutingEvent::MAX_ALERTS);
        let alerts = listed
            .into_iter()
            .take(RoutingEvent::MAX_ALERTS)
            .map(|(fingerprint, entry)| {
                entry.reported |= !entry.firing;
                EventAlert {
                    fingerprint: format!("{fingerprint:016x}"),
                    status: if entry.firing { "firing" } else { "resolved" }.into(),
                    labels: entry.labels.unpack(),
                    annotations: entry.annotations.unpack(),
                    starts_at: entry.starts_at,
                    ends_at: (!entry.firing).then_some(entry.ends_at).flatten(),
                }
            })
            .collect();
        Notice {
            route: self.route.clone(),
            group_key: alertmanager_group_key(&self.route, &self.group_labels),
            group_labels: self.group_labels.clone(),
            alerts,
            truncated_alerts: truncated as i64,
        }
    }

    /// Closes an incident older than `max_incident_age` whose alerts still fire, and starts the
    /// group afresh with them, so that its next flush (due now) opens a new incident.
    fn close_aged(&mut self, now: i64, out: &mut Vec<Flush>, scale: &Scale) {
        let open = self.incident.as_mut().expect("checked by the caller");
        open.version += 1;
        let mut incident = self.snapshot(now, scale);
        incident.status = IncidentStatus::Resolved;
        incident.resolved_at = Some(now);
        let subject = self.subject(&incident);
        let mut new_fingerprints: Vec<u64> =
            self.alerts.iter().filter(|(_, e)| !e.recorded).map(|(fingerprint, _)| *fingerprint).collect();
        new_fingerprints.sort_unstable();
        let notice = Some(self.notice(&HashMap::new()));
        out.push(Flush {
            incident,
            subject,
            announce: Some(RoutingReason::Resolved),
            at: now,
            new_fingerprints,
            notice,
            flaps: 0,
            correlated: self.correlation.clone(),
            linking: self.timing.linking,
        });

        // What still fires makes the new incident; what resolved stays with the old one.
        self.alerts.retain(|_, e| e.firing);
        for entry in self.alerts.values_mut() {
            entry.notified = false;
            entry.recorded = false;
        }
        self.incident = None;
        self.created_at = now;
        self.alert_count = self.alerts.len() as i64;
        self.first_starts_at = now;
        self.untracked_alerts = 0;
        self.forgotten_severity = Rank::UNKNOWN;
        self.forgotten_ended_at = None;
        self.acknowledged_at = None;
        self.acknowledgement_due = false;
        self.state_changes = 0;
        self.flap_held = false;
        self.flapped = false;
        self.flaps_due = false;
        self.transient_until = None;
        // A new incident: correlation decides for it afresh.
        self.correlation = None;
        self.changed_buckets = ALL_BUCKETS;
        self.dirty = true;
        self.next_flush = now;
    }

    /// Takes its route's timings from reloaded rules, as Alertmanager does: a reload rebuilds
    /// its aggregation groups, which flush at once when their alerts are older than group_wait
    /// (the notification log, here the notified flags, keeps that from repeating anything) and
    /// then tick at the new group_interval.
    pub fn retime(&mut self, timing: Timing, now: i64) {
        self.next_flush = first_flush(&timing, self.first_starts_at, now);
        self.timing = timing;
    }

    pub fn correlated(&mut self, membership: Membership) {
        self.correlation = Some(membership);
    }

    pub fn membership(&self) -> Option<&Membership> {
        self.correlation.as_ref()
    }

    /// Makes the next flush, when due, emit the incident again.
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Makes the next flush, due now, emit the incident again (a person's action).
    pub fn touch(&mut self, now: i64) {
        self.dirty = true;
        self.next_flush = self.next_flush.min(now);
    }

    /// Makes room for new alerts by forgetting every resolved alert that the incident already
    /// recorded (their counts stay); false when every tracked alert still fires or is not
    /// recorded yet. A failed search is not repeated until a flush or a resolution could have
    /// made room, so that a storm into a full group costs no scan per alert.
    fn make_room(&mut self) -> bool {
        if self.full {
            return false;
        }
        let forgettable: Vec<u64> =
            self.alerts.iter().filter(|(_, e)| !e.firing && e.recorded).map(|(fingerprint, _)| *fingerprint).collect();
        for fingerprint in &forgettable {
            let entry = self.alerts.remove(fingerprint).expect("just found");
            self.changed_buckets |= 1 << bucket(*fingerprint);
            self.untracked_alerts += 1;
            self.forgotten_severity = self.forgotten_severity.max(entry.severity);
            self.forgotten_ended_at = self.forgotten_ended_at.max(entry.ends_at);
        }
        self.full = forgettable.is_empty();
        !self.full
    }

    fn subject(&self, incident: &Incident) -> Subject {
        Subject {
            id: incident.incident_id.clone(),
            tenant: self.tenant.clone(),
            severity: incident.severity.clone(),
            alertnames: self.alertnames.clone(),
            labels: self.common_labels.clone(),
            summary: self.summary.clone(),
            description: self.description.clone(),
            alerts: usize::try_from(self.distinct_alerts()).unwrap_or(usize::MAX),
            expr: self.expr.clone(),
            pending_for: String::new(),
        }
    }

    /// Alerts past their ends_at, or silent for resolve_timeout without one, are resolved.
    fn expire(&mut self, now: i64) {
        let timeout = ms(self.timing.resolve_timeout);
        let keep = self.timing.holds.kept_changes();
        for entry in self.alerts.values_mut().filter(|e| e.firing) {
            let ended = match entry.ends_at {
                Some(end) => end <= now,
                None => !entry.stateful && entry.last_seen.saturating_add(timeout) <= now,
            };
            if ended {
                // `notified` stays: it is the last announcement's firing set, which only the
                // next announcement changes.
                entry.firing = false;
                let end = *entry.ends_at.get_or_insert(entry.last_seen.saturating_add(timeout));
                entry.changed(end.min(now), keep);
                self.state_changes += 1;
                self.last_change = self.last_change.max(end.min(now));
                self.dirty = true;
            }
        }
    }

    /// Why each firing alert is muted at `now`, by fingerprint; empty when nothing can mute.
    fn mutes(&self, now: i64, check: &Check) -> HashMap<u64, Muted> {
        if !check.any() {
            return HashMap::new();
        }
        self.alerts
            .iter()
            .filter(|(_, e)| e.firing)
            .filter_map(|(fp, e)| Some((*fp, check.alert(&self.tenant, &e.labels, now)?)))
            .collect()
    }

    fn snapshot(&self, now: i64, scale: &Scale) -> Incident {
        let open = self.incident.as_ref().expect("snapshot of an open incident");
        let firing = self.alerts.values().filter(|e| e.firing).count();
        let severity = self.alerts.values().filter(|e| e.firing).map(|e| e.severity).max().unwrap_or_default();
        let mut fingerprints: Vec<u64> = self.alerts.keys().copied().collect();
        fingerprints.sort_unstable();
        fingerprints.truncate(MAX_LISTED_FINGERPRINTS);
        let resolved_at = self.resolved_by_person_at.or_else(|| {
            (firing == 0).then(|| {
                let ended = self.alerts.values().filter_map(|e| e.ends_at).max();
                ended.max(self.forgotten_ended_at).unwrap_or(now).min(now)
            })
        });
        let severity = if firing == 0 {
            self.alerts.values().map(|e| e.severity).max().unwrap_or_default().max(self.forgotten_severity)
        } else {
            severity
        };

        Incident {
            incident_id: open.id.clone(),
            group_key: self.key.0.clone(),
            tenant: self.tenant.clone(),
            status: match (resolved_at, self.acknowledged_at) {
                (Some(_), _) => IncidentStatus::Resolved,
                (None, Some(_)) => IncidentStatus::Acknowledged,
                (None, None) => IncidentStatus::Open,
            },
            title: self.title(),
            summary: String::new(),
            severity: scale.name(severity).into(),
            priority: None,
            category: None,
            confidence: None,
            classified_by: None,
            first_seen: open.first_seen,
            last_seen: self.last_seen,
            acknowledged_at: self.acknowledged_at,
            resolved_at,
            alert_count: self.alert_count,
            distinct_alerts: self.distinct_alerts(),
            fingerprints: fingerprints.iter().map(|fp| format!("{fp:016x}")).collect(),
            common_labels: self.common_labels.clone(),
            flapping: self.flapped || self.alerts.values().any(|e| e.flips >= FLAPPING_FLIPS),
            version: open.version,
            muted_alerts: 0,
            silenced_by: Vec::new(),
            inhibited_by: Vec::new(),
            state_changes: self.state_changes,
            transient: false,
            parent_incident_id: None,
            correlation: None,
        }
    }

    /// `AlertName (cluster=eu-1, service=pg)`, from the common alert name and the group labels.
    fn title(&self) -> String {
        let name = self.common_labels.get("alertname").or_else(|| self.group_labels.get("alertname"));
        let rest: Vec<String> = self
            .group_labels
            .iter()
            .filter(|(k, _)| k.as_str() != "alertname")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        match (name, rest.is_empty()) {
            (Some(name), true) => name.clone(),
            (Some(name), false) => format!("{name} ({})", rest.join(", ")),
            (None, _) => format!("{} alerts ({})", self.alerts.len(), rest.join(", ")),
        }
    }
}

/// Puts on the incident how many of its firing alerts are muted, and by what.
fn record_mutes(incident: &mut Incident, mutes: &HashMap<u64, Muted>) {
    incident.muted_alerts = mutes.len() as i64;
    let mut silenced = BTreeSet::new();
    let mut inhibited = BTreeSet::new();
    for muted in mutes.values() {
        match muted {
            Muted::Silenced(id) => silenced.insert(id.clone()),
            Muted::Inhibited(incident_id) => inhibited.insert(incident_id.clone()),
        };
    }
    incident.silenced_by = silenced.into_iter().collect();
    incident.inhibited_by = inhibited.into_iter().collect();
}

/// The event that announces `incident` (classified, by then) for `reason` at event time `now`.
pub fn routing_event(incident: &Incident, reason: RoutingReason, now: i64) -> RoutingEvent {
    let reason_name = format!("{reason:?}").to_lowercase();
    RoutingEvent {
        event_id: format!("{}/{}/{reason_name}", incident.incident_id, incident.version),
        incident_id: incident.incident_id.clone(),
        reason,
        tenant: incident.tenant.clone(),
        status: incident.status,
        title: incident.title.clone(),
        summary: incident.summary.clone(),
        severity: incident.severity.clone(),
        priority: incident.priority.clone(),
        category: incident.category.clone(),
        alert_count: incident.alert_count,
        common_labels: incident.common_labels.clone(),
        // Empty here: the operator puts on what the group lists and stamps team, targets and
        // policy from the receiver and the routing rules (`crate::routing`), which may use what
        // the classifier decided.
        team: None,
        targets: Vec::new(),
        escalation_policy: None,
        incident_version: incident.version,
        emitted_at: now,
        receiver: None,
        group_key: String::new(),
        group_labels: BTreeMap::new(),
        alerts: Vec::new(),
        truncated_alerts: 0,
        flaps: 0,
        parent_incident_id: None,
        correlation: None,
    }
}
