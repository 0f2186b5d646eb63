//! One partition of the stream worker as a pure operator: alerts, actions and ticks in, with the
//! time as an argument; incident states, routing events and changelog entries out (an alert that
//! cannot be placed comes back as an error, for the dead-letter topic). The Kafka shell
//! (`quench run`) polls, decodes and ships [`Outputs`] in one transaction with the consumed
//! offsets; on a rebalance it drops the operator and restores a new one from the changelog, so
//! nothing here outlives a transaction that did not commit.
//!
//! An alert goes through these stages, in order:
//! 1. **place**: the route tree puts it in its group on every route it lands on;
//! 2. **inhibition sources**: an alert that an inhibition rule's source matchers match is
//!    recorded in the shared [`Sources`], and published for other workers;
//! 3. **holds**: whether its kind is transient ([`Transients`]), for its route's transient
//!    pause; flap suppression is decided by the window, from each alert's state changes;
//! 4. **window**: Alertmanager's group_wait / group_interval / repeat_interval / resolve_timeout,
//!    with the mute stage ([`crate::mute`]: time intervals, inhibition, silences) asked at
//!    each flush which alerts may be announced.
//!
//! What the windows flush then goes through:
//! 5. **correlate** ([`crate::correlate`], when on): an incident that just opened is linked
//!    under the incident of another group of this partition, or becomes a root; the decision
//!    stays with its group, in the changelog;
//! 6. **classify**, through [`Classify`], which the shell implements (cache, local classifier,
//!    the LLM in the background); answers that stand in for the LLM's are tracked, and their
//!    incidents emitted again when it answers ([`Operator::refined`]);
//! 7. **announce**: routing events derived from the classified incident, with its parent;
//! 8. **destinations**: the routing rules stamp team, targets and escalation policy.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use quench_schemas::{
    fingerprint::alert_fingerprint, severity::Scale, Alert, Classification, Incident, IncidentAction, IncidentAlerts,
    IncidentStatus, RoutingEvent, RoutingReason, RoutingTarget, Subject,
};

use crate::{
    clock::Clock,
    correlate::{Associations, Correlator, Link, Membership, Opened},
    mute::{Check, InhibitRule, Mutes, Source},
    routing::RoutingRules,
    rules::{GroupKey, Linking, RouteTree},
    window::{changelog, routing_event, transient::Transients, Flush, Group, Notice, Windows},
};

/// Classification as the operator needs it. The shell implements it over the classifier, which
/// does I/O (an LLM) that the core must not.
pub trait Classify {
    /// Answers, one per subject and in order, without waiting for an LLM; an answer that
    /// [`Classification::awaits_llm`] is replaced when the LLM answers its signature.
    fn classify_now(&self, subjects: &[Subject]) -> anyhow::Result<Vec<Classification>>;
    /// The key under which answers are kept: one per kind of incident.
    fn signature(&self, subject: &Subject) -> String;
}

/// Everything one commit carries for a partition.
#[derive(Debug, Default)]
pub struct Outputs {
    /// Latest incident states, for the compacted `incidents` topic.
    pub incidents: Vec<Incident>,
    /// Announcements, for `incident-routing`.
    pub routing: Vec<RoutingEvent>,
    /// Alerts that joined incidents, for `incident-alerts`.
    pub incident_alerts: Vec<IncidentAlerts>,
    /// New alerts counted but not tracked, their groups being at
    /// [`crate::window::MAX_TRACKED_ALERTS`].
    pub untracked: usize,
    /// Records for the `quench-state` changelog (see [`crate::window::changelog`]): key, and
    /// value or `None` for a tombstone.
    pub changes: Vec<changelog::Record>,
    /// Inhibition sources that changed, for the inhibition sources topic.
    pub sources: Vec<Source>,
}

impl Outputs {
    pub fn is_empty(&self) -> bool {
        self.incidents.is_empty()
            && self.routing.is_empty()
            && self.changes.is_empty()
            && self.incident_alerts.is_empty()
            && self.sources.is_empty()
    }
}

/// Why an alert goes into no group: the partition holds as many open groups as it may (a storm
/// of distinct group keys must not grow a worker's memory without bound). It goes to the
/// dead-letter topic with this reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooManyGroups {
    pub limit: usize,
    /// The tenant whose own limit it is, or `None` for the partition's.
    pub tenant: Option<String>,
}

impl std::fmt::Display for TooManyGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tenant {
            None => write!(f, "the partition already holds {} open groups (worker.max_open_groups)", self.limit),
            Some(tenant) => write!(
                f,
                "tenant `{tenant}` already holds {} open groups on the partition (worker.max_open_groups_per_tenant)",
                self.limit
            ),
        }
    }
}

pub struct Operator {
    windows: Windows,
    /// Open groups this partition may hold.
    max_groups: usize,
    /// At most this many open groups per tenant (so one tenant's storm of distinct groups cannot
    /// take the partition's `max_groups` from the others).
    max_groups_per_tenant: usize,
    clock: Clock,
    /// What the windows flushed since the last [`Operator::flush`].
    flushed: Vec<Flush>,
    /// By signature, the groups whose open incident (by id) has an answer that stands in for
    /// the LLM's.
    awaiting_llm: HashMap<String, HashMap<GroupKey, String>>,
    /// Inhibition sources changed since the last [`Operator::flush`].
    sources: Vec<Source>,
    /// Whether flushes write the changelog (a replay keeps none: it is rebuilt by replaying).
    changelog: bool,
    /// Alert kinds that usually resolve by themselves.
    transients: Transients,
    /// Correlation across this partition's groups, when on.
    correlator: Option<Correlator>,
}

impl Operator {
    /// A partition's operator with its open groups, as read back from the changelog, ranking
    /// alerts' severities on `scale`; event time trails the newest event by `lateness` and
    /// follows the wall clock after `idle_timeout`.
    pub fn restore(
        groups: Vec<Group>,
        scale: Scale,
        lateness: Duration,
        idle_timeout: Duration,
        wall: Instant,
    ) -> Self {
        let newest = groups.iter().map(Group::last_seen).max();
        let mut windows = Windows::new(scale);
        for group in groups {
            windows.restore(group);
        }
        Self {
            windows,
            max_groups: usize::MAX,
            max_groups_per_tenant: usize::MAX,
            clock: Clock::new(newest, lateness, idle_timeout, wall),
            flushed: Vec::new(),
            awaiting_llm: HashMap::new(),
            sources: Vec::new(),
            changelog: true,
            transients: Transients::default(),
            correlator: None,
        }
    }

    /// Which kinds go together, as learned again (correlation only).
    pub fn set_associations(&mut self, associations: Associations) {
        if let Some(correlator) = &mut self.correlator {
            correlator.set_associations(associations);
        }
    }

    /// Correlates the incidents of this partition's groups as they open, starting from what the
    /// restored groups decided.
    pub fn with_correlator(mut self, mut correlator: Correlator) -> Self {
        correlator.restore(self.windows.memberships());
        self.correlator = Some(correlator);
        self
    }

    /// The transient kinds in force from now on (configured, and as last learned from history).
    /// A group decides when it opens, and keeps its decision in the changelog.
    pub fn set_transients(&mut self, transients: Transients) {
        self.transients = transients;
    }

    /// Flushes write no changelog: for `quench replay`, which a crash simply runs again, and
    /// which spent most of its time serialising groups it never reads back.
    pub fn without_changelog(mut self) -> Self {
        self.changelog = false;
        self
    }

    /// At most `limit` open groups on this partition; alerts that would open more are refused.
    pub fn with_max_groups(mut self, limit: usize) -> Self {
        self.max_groups = limit;
        self
    }

    /// At most `limit` open groups of one tenant on this partition.
    pub fn with_max_groups_per_tenant(mut self, limit: usize) -> Self {
        self.max_groups_per_tenant = limit;
        self
    }

    /// Takes one alert, read at wall time `wall`; `route` is the route a re-keyed record names.
    /// A source of an inhibition rule is recorded in `mutes`. Returns whether the alert was late
    /// (behind the watermark), or why it cannot be placed.
    pub fn alert(
        &mut self,
        alert: &Alert,
        route: Option<&str>,
        rules: &RouteTree,
        mutes: &mut Mutes,
        wall: Instant,
    ) -> Result<bool, TooManyGroups> {
        let late = self.clock.observe(alert.received_at, wall);
        // Timers fire as event time passes them, before the alert is added: when a backlog is
        // replayed, each group is evaluated at its due time, not at the end of the backlog.
        self.tick(wall, Check { rules, mutes });
        let placements = rules.place(alert, route);
        let opening = placements.iter().filter(|p| !self.windows.is_open(&p.key)).count();
        if opening > 0 && self.windows.open_groups() + opening > self.max_groups {
            return Err(TooManyGroups { limit: self.max_groups, tenant: None });
        }
        // Counted only when a group would open and a tenant limit is set: a scan of the open
        // groups, rare next to the alerts that join open ones.
        if opening > 0
            && self.max_groups_per_tenant < usize::MAX
            && self.windows.open_groups_of(&alert.tenant) + opening > self.max_groups_per_tenant
        {
            return Err(TooManyGroups { limit: self.max_groups_per_tenant, tenant: Some(alert.tenant.clone()) });
        }
        let fingerprint = alert_fingerprint(alert);
        // Its incident is named on the alerts it inhibits: the group on its first route.
        let source_of = InhibitRule::any_source(&rules.inhibit_rules, &alert.labels)
            .then(|| (placements[0].key.clone(), placements[0].timing));
        let transient = self.transients.contains(&alert.tenant, alert.labels.get("alertname").map(String::as_str));
        for placement in placements {
            self.windows.ingest(alert, fingerprint, placement, alert.received_at, transient);
        }
        if let Some((key, timing)) = source_of {
            let source = Source {
                tenant: alert.tenant.clone(),
                fingerprint: format!("{fingerprint:016x}"),
                labels: alert.labels.clone(),
                incident_id: self.windows.incident_of(&key).expect("just placed"),
                starts_at: alert.starts_at,
                until: alert.ends_at.or_else(|| {
                    let timeout = i64::try_from(timing.resolve_timeout.as_millis()).unwrap_or(i64::MAX);
                    (!alert.stateful).then(|| alert.received_at.saturating_add(timeout))
                }),
            };
            if mutes.sources.update(source.clone()) {
                self.sources.push(source);
            }
        }
        Ok(late)
    }

    /// Applies a person's acknowledgement or resolution to the incident it names, announced at
    /// the next flush. False when no open group of this partition has that incident, or nothing
    /// changed.
    pub fn action(&mut self, action: &IncidentAction, wall: Instant) -> bool {
        let now = self.clock.watermark(wall).unwrap_or(action.at);
        self.windows.act(&action.incident_id, action.kind, action.at, now)
    }

    /// New rules are in force from wall time `wall`: open groups take their routes' new timings.
    pub fn retime(&mut self, rules: &RouteTree, wall: Instant) {
        if let Some(now) = self.clock.watermark(wall) {
            self.windows.retime(rules, now);
        }
    }

    /// The consumer had nothing more to give: an idle partition's event time may now follow the
    /// wall clock.
    pub fn caught_up(&mut self) {
        self.clock.caught_up();
    }

    /// Everything to commit: ticks the windows, classifies what they flushed, derives the routing
    /// events from the classified incidents and stamps their destinations, and takes the changed
    /// groups.
    pub fn flush(
        &mut self,
        wall: Instant,
        check: Check,
        classifier: &dyn Classify,
        routing: &RoutingRules,
    ) -> anyhow::Result<Outputs> {
        self.tick(wall, check);
        let flushed = std::mem::take(&mut self.flushed);
        let mut out = Outputs { sources: std::mem::take(&mut self.sources), ..Outputs::default() };
        if !flushed.is_empty() {
            let subjects: Vec<Subject> = flushed.iter().map(|f| f.subject.clone()).collect();
            let answers = classifier.classify_now(&subjects)?;
            anyhow::ensure!(
                answers.len() == subjects.len(),
                "the classifier answered {} of {}",
                answers.len(),
                subjects.len()
            );
            for (
                Flush { mut incident, subject, announce, at, new_fingerprints, notice, flaps, correlated, linking },
                answer,
            ) in flushed.into_iter().zip(answers)
            {
                let link = self.correlate(&incident, &subject, announce, correlated, &linking);
                if let Some(link) = &link {
                    incident.parent_incident_id = Some(link.parent.clone());
                    incident.correlation = Some(link.explanation.clone());
                }
                let joined = IncidentAlerts {
                    tenant: incident.tenant.clone(),
                    incident_id: incident.incident_id.clone(),
                    first_seen: incident.first_seen,
                    last_seen: incident.last_seen,
                    fingerprints: new_fingerprints.iter().map(|fp| format!("{fp:016x}")).collect(),
                };
                split(joined, &mut out.incident_alerts);
                self.track_llm(&incident, &subject, &answer, classifier);
                classify(&mut incident, answer);
                if let Some(reason) = announce {
                    let mut event = routing_event(&incident, reason, at);
                    event.flaps = flaps;
                    // Notified in the parent's thread, or (the route says) as an incident of its own
                    // that names the related one.
                    match (&link, linking.separately) {
                        (Some(link), true) => {
                            event.correlation = Some(format!("related to {}: {}", link.parent, link.explanation))
                        }
                        _ => {
                            event.parent_incident_id = incident.parent_incident_id.clone();
                            event.correlation = incident.correlation.clone();
                        }
                    }
                    if let Some(notice) = notice {
                        list(&mut event, notice, check.rules);
                    }
                    routing.apply(&mut event);
                    out.routing.push(event);
                }
                out.incidents.push(incident);
            }
        }
        for joined in self.windows.take_untracked() {
            out.untracked += joined.fingerprints.len();
            split(joined, &mut out.incident_alerts);
        }
        if self.changelog {
            out.changes = self.windows.take_changes()?;
        } else {
            self.windows.discard_changes();
        }
        Ok(out)
    }

    /// The LLM answered these signatures: the incidents that waited for them are emitted again at
    /// their group's next flush (group_interval, as any other update), classified by it: an
    /// update, not a new announcement. A group that ended and opened again under the same key
    /// is another incident, left alone. Returns how many will be.
    pub fn refined(&mut self, signatures: &[String]) -> usize {
        let mut refined = 0;
        for signature in signatures {
            for (key, incident_id) in self.awaiting_llm.remove(signature).unwrap_or_default() {
                refined += usize::from(self.windows.refine(&key, &incident_id));
            }
        }
        refined
    }

    /// The event time up to which this partition's windows flush; `None` before any event.
    pub fn watermark(&self, wall: Instant) -> Option<i64> {
        self.clock.watermark(wall)
    }

    pub fn open_groups(&self) -> usize {
        self.windows.open_groups()
    }

    /// Alerts (distinct fingerprints) held across the open groups.
    pub fn open_fingerprints(&self) -> usize {
        self.windows.open_fingerprints()
    }

    fn tick(&mut self, wall: Instant, check: Check) {
        if let Some(watermark) = self.clock.watermark(wall) {
            self.windows.tick(watermark, &mut self.flushed, &check);
        }
    }

    /// The incident's link to its parent: as decided when it was first announced (kept with its
    /// group), or decided now if it is announced for the first time. An incident recorded but
    /// not announced (muted, held) is no one's parent and no one's child until it is; one of a
    /// backlog flushed twice before this runs finds the first decision on its group.
    fn correlate(
        &mut self,
        incident: &Incident,
        subject: &Subject,
        announce: Option<RoutingReason>,
        decided: Option<Membership>,
        linking: &Linking,
    ) -> Option<Link> {
        let key = GroupKey(incident.group_key.clone());
        if let Some(membership) = decided.or_else(|| self.windows.membership(&key, &incident.incident_id).cloned()) {
            return membership.link;
        }
        let correlator = self.correlator.as_mut()?;
        if announce != Some(RoutingReason::Opened) {
            return None;
        }
        let opened = Opened::of(incident, subject);
        let link = correlator.observe(opened.clone(), linking);
        self.windows.correlated(&key, Membership { opened, link: link.clone() });
        link
    }

    /// Keeps, by signature, the groups whose open incident awaits the LLM. Signatures cost a
    /// template each, so they are computed only while something waits.
    fn track_llm(
        &mut self,
        incident: &Incident,
        subject: &Subject,
        answer: &Classification,
        classifier: &dyn Classify,
    ) {
        let waiting = answer.awaits_llm() && incident.status != IncidentStatus::Resolved;
        if !waiting && self.awaiting_llm.is_empty() {
            return;
        }
        let signature = classifier.signature(subject);
        let key = GroupKey(incident.group_key.clone());
        if waiting {
            self.awaiting_llm.entry(signature).or_default().insert(key, incident.incident_id.clone());
        } else if let Some(groups) = self.awaiting_llm.get_mut(&signature) {
            groups.remove(&key);
            if groups.is_empty() {
                self.awaiting_llm.remove(&signature);
            }
        }
    }
}

/// `joined` in records of at most [`IncidentAlerts::MAX_FINGERPRINTS`] fingerprints.
fn split(mut joined: IncidentAlerts, out: &mut Vec<IncidentAlerts>) {
    while joined.fingerprints.len() > IncidentAlerts::MAX_FINGERPRINTS {
        let rest = joined.fingerprints.split_off(IncidentAlerts::MAX_FINGERPRINTS);
        out.push(IncidentAlerts {
            tenant: joined.tenant.clone(),
            incident_id: joined.incident_id.clone(),
            first_seen: joined.first_seen,
            last_seen: joined.last_seen,
            fingerprints: std::mem::replace(&mut joined.fingerprints, rest),
        });
    }
    if !joined.fingerprints.is_empty() {
        out.push(joined);
    }
}

/// Puts on the event what its group lists, its route's receiver, and the receiver's integrations
/// as targets.
fn list(event: &mut RoutingEvent, notice: Notice, rules: &RouteTree) {
    event.receiver = rules.route(&notice.route).and_then(|route| route.receiver.clone());
    if let Some(receiver) = event.receiver.as_ref().and_then(|name| rules.receivers.get(name)) {
        event.targets = receiver
            .integrations
            .iter()
            .map(|i| RoutingTarget {
                send_resolved: i.send_resolved,
                ..RoutingTarget::new(i.channel.as_str(), &i.target)
            })
            .collect();
    }
    event.group_key = notice.group_key;
    event.group_labels = notice.group_labels;
    event.alerts = notice.alerts;
    event.truncated_alerts = notice.truncated_alerts;
}

/// Puts the classifier's answer on the incident, which its routing events are then derived from.
fn classify(incident: &mut Incident, answer: Classification) {
    incident.severity = answer.severity;
    incident.priority = Some(answer.priority);
    incident.category = Some(answer.category);
    incident.confidence = Some(answer.confidence);
    incident.summary = answer.summary;
    incident.classified_by = Some(answer.classified_by);
}

#[cfg(test)]
mod tests;
