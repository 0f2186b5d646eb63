//! Stored alerts through the operator at full speed, in virtual time: what `quench replay` runs
//! to show what a rules change would have done to real history before it is deployed.
//!
//! The wall clock the operator sees is derived from the alerts' receive times, so timers
//! (group_wait, group_interval, resolve_timeout) fire when they would have; after the last alert
//! the clock runs on for `settle`, so that open groups flush and resolve. Classification is by the
//! alerts' own `severity` label: replay measures grouping and notifications, not the classifier.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use quench_schemas::{severity::Scale, Alert, AlertStatus, Classification, RoutingReason, Subject};
use serde::Serialize;

use crate::{
    correlate::{Correlator, Link},
    mute::{Check, Mutes},
    operator::{Classify, Operator, Outputs},
    routing::RoutingRules,
    rules::RouteTree,
    window::transient::{KindHistory, Transients},
};

/// How often, in virtual time, the operator's outputs are taken (the worker commits about as often).
const FLUSH_EVERY: Duration = Duration::from_secs(1);

struct BySeverityLabel;

impl Classify for BySeverityLabel {
    fn classify_now(&self, subjects: &[Subject]) -> anyhow::Result<Vec<Classification>> {
        Ok(subjects
            .iter()
            .map(|s| Classification {
                severity: s.labels.get("severity").cloned().unwrap_or_else(|| "warning".into()),
                priority: String::new(),
                category: String::new(),
                confidence: 0.0,
                summary: String::new(),
                classified_by: "replay".into(),
            })
            .collect())
    }

    fn signature(&self, subject: &Subject) -> String {
        subject.alertnames.join(",")
    }
}

/// What the rules made of the alerts.
#[derive(Debug, Default, Serialize)]
pub struct Replayed {
    /// Alert records.
    pub alerts: usize,
    /// By incident id: its group key and its alerts' fingerprints.
    pub incidents: BTreeMap<String, Incident>,
    /// Routing events in order: incident id, why, when (ms).
    pub notifications: Vec<(String, RoutingReason, i64)>,
    /// Alerts no route took in (none with a tree that has a root route).
    pub unplaced: usize,
    /// Incidents linked under a parent by correlation, in the order they opened.
    pub links: Vec<Link>,
}

/// Quench's additions to Alertmanager's grouping that a replay applies (none by default): the
/// transient kinds for routes with a `transient_pause`, and correlation across groups.
#[derive(Default)]
pub struct Additions {
    pub transients: Transients,
    pub correlator: Option<Correlator>,
}

#[derive(Debug, Default, Serialize)]
pub struct Incident {
    pub group_key: String,
    pub fingerprints: BTreeSet<String>,
    /// Its alerts' earliest start and latest receive time (ms), in its latest state.
    pub first_seen: i64,
    pub last_seen: i64,
}

impl Replayed {
    fn take(&mut self, out: Outputs) {
        for incident in out.incidents {
            if let Some(parent) =
                incident.parent_incident_id.clone().filter(|_| !self.incidents.contains_key(&incident.incident_id))
            {
                let explanation = incident.correlation.clone().unwrap_or_default();
                self.links.push(Link { parent, child: incident.incident_id.clone(), explanation });
            }
            let entry = self.incidents.entry(incident.incident_id).or_default();
            entry.group_key = incident.group_key;
            (entry.first_seen, entry.last_seen) = (incident.first_seen, incident.last_seen);
        }
        for joined in out.incident_alerts {
            self.incidents.entry(joined.incident_id).or_default().fingerprints.extend(joined.fingerprints);
        }
        self.notifications.extend(out.routing.into_iter().map(|e| (e.incident_id, e.reason, e.emitted_at)));
    }

    /// Notifications that page: those of incidents not linked under a parent (a child's are
    /// updates in its parent's thread).
    pub fn pages(&self) -> usize {
        let children: BTreeSet<&str> = self.links.iter().map(|l| l.child.as_str()).collect();
        self.notifications.iter().filter(|(id, _, _)| !children.contains(id.as_str())).count()
    }

    /// 1 - incidents / alert records, as the demo counts it. (Over a long range an alert that
    /// fires again and again opens many incidents, so incidents / distinct alerts can exceed 1.)
    pub fn reduction(&self) -> f64 {
        if self.alerts == 0 {
            0.0
        } else {
            1.0 - self.incidents.len() as f64 / self.alerts as f64
        }
    }
}

/// Replays `alerts` (any order; they are taken by receive time) through `rules` and `routing`,
/// with Quench's `additions`.
pub fn replay(
    alerts: &[Alert],
    rules: &RouteTree,
    routing: &RoutingRules,
    settle: Duration,
    additions: Additions,
) -> anyhow::Result<Replayed> {
    let Additions { transients, correlator } = additions;
    let mut order: Vec<&Alert> = alerts.iter().collect();
    order.sort_by_key(|a| a.received_at);
    let mut replayed = Replayed { alerts: alerts.len(), ..Replayed::default() };
    let Some(first) = order.first().map(|a| a.received_at) else { return Ok(replayed) };
    let base = Instant::now();
    let wall = |at: i64| base + Duration::from_millis(u64::try_from(at.saturating_sub(first)).unwrap_or(0));
    let mut operator =
        Operator::restore(Vec::new(), Scale::default(), Duration::ZERO, Duration::ZERO, base).without_changelog();
    if let Some(correlator) = correlator {
        operator = operator.with_correlator(correlator);
    }
    operator.set_transients(transients);
    let mut mutes = Mutes::default();
    let mut flushed = base;
    for alert in order {
        let now = wall(alert.received_at);
        if operator.alert(alert, None, rules, &mut mutes, now).is_err() {
            replayed.unplaced += 1;
        }
        if now.duration_since(flushed) >= FLUSH_EVERY {
            flushed = now;
            replayed.take(operator.flush(now, Check { rules, mutes: &mutes }, &BySeverityLabel, routing)?);
        }
    }
    operator.caught_up();
    let end = flushed.max(wall(alerts.iter().map(|a| a.received_at).max().unwrap_or(first))) + settle;
    let mut now = flushed;
    while now < end {
        now = (now + FLUSH_EVERY).min(end);
        replayed.take(operator.flush(now, Check { rules, mutes: &mutes }, &BySeverityLabel, routing)?);
    }
    Ok(replayed)
}

/// Each firing episode's start in `alerts` (its first record): (tenant, alert name, ms), what
/// correlation learns which kinds go together from.
pub fn onsets(alerts: &[Alert]) -> Vec<(String, String, i64)> {
    let mut seen = BTreeSet::new();
    alerts
        .iter()
        .filter(|a| a.status == AlertStatus::Firing && seen.insert((a.tenant.clone(), a.labels.clone(), a.starts_at)))
        .map(|a| (a.tenant.clone(), a.labels.get("alertname").cloned().unwrap_or_default(), a.starts_at))
        .collect()
}

/// Per tenant and alert name, the episodes of `alerts` that resolved, and how many of them
/// within `max_ms`: what the transient kinds are learned from.
pub fn durations(alerts: &[Alert], max_ms: i64) -> Vec<KindHistory> {
    let mut kinds: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for alert in alerts.iter().filter(|a| a.status == AlertStatus::Resolved) {
        let name = alert.labels.get("alertname").cloned().unwrap_or_default();
        let counts = kinds.entry((alert.tenant.clone(), name)).or_default();
        counts.0 += 1;
        counts.1 += u64::from(alert.ends_at.is_some_and(|end| end - alert.starts_at <= max_ms));
    }
    kinds
        .into_iter()
        .map(|((tenant, alertname), (episodes, short))| KindHistory { tenant, alertname, episodes, short })
        .collect()
}

/// How a candidate's result differs from the current one's.
#[derive(Debug, Default, Serialize)]
pub struct Diff {
    /// Current incidents whose alerts the candidate spread over several incidents.
    pub split: usize,
    /// Candidate incidents that hold alerts of several current incidents.
    pub merged: usize,
    /// Notifications per reason, current and candidate, where they differ.
    pub notifications: BTreeMap<String, (usize, usize)>,
    /// A few examples: group keys of split and merged incidents.
    pub examples: Vec<String>,
}

/// Fingerprint → the incidents that hold it.
fn owners(r: &Replayed) -> BTreeMap<&str, BTreeSet<&str>> {
    let mut by_fingerprint: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (id, incident) in &r.incidents {
        for fingerprint in &incident.fingerprints {
            by_fingerprint.entry(fingerprint.as_str()).or_default().insert(id.as_str());
        }
    }
    by_fingerprint
}

pub fn diff(current: &Replayed, candidate: &Replayed) -> Diff {
    let (now, then) = (owners(current), owners(candidate));
    // Incidents of `side` whose fingerprints the other side keeps in more than one incident.
    let spread = |side: &Replayed, other: &BTreeMap<&str, BTreeSet<&str>>, examples: &mut Vec<String>, what: &str| {
        let mut count = 0;
        for incident in side.incidents.values() {
            let elsewhere: BTreeSet<&str> = incident
                .fingerprints
                .iter()
                .flat_map(|f| other.get(f.as_str()).into_iter().flatten().copied())
                .collect();
            if elsewhere.len() > 1 {
                count += 1;
                if examples.len() < 10 {
                    examples.push(format!("{what}: {} ({} incidents)", incident.group_key, elsewhere.len()));
                }
            }
        }
        count
    };
    let mut examples = Vec::new();
    let split = spread(current, &then, &mut examples, "split");
    let merged = spread(candidate, &now, &mut examples, "merged");
    let per_reason = |r: &Replayed| {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for (_, reason, _) in &r.notifications {
            *counts.entry(format!("{reason:?}")).or_default() += 1;
        }
        counts
    };
    let (a, b) = (per_reason(current), per_reason(candidate));
    let notifications = a
        .keys()
        .chain(b.keys())
        .map(|reason| (reason.clone(), (a.get(reason).copied().unwrap_or(0), b.get(reason).copied().unwrap_or(0))))
        .filter(|(_, (x, y))| x != y)
        .collect();
    Diff { split, merged, notifications, examples }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::alert;

    fn tree(group_by: &str) -> RouteTree {
        RouteTree::parse(&format!(
            "[route]\ngroup_by = [{group_by}]\ngroup_wait = \"30s\"\ngroup_interval = \"5m\"\nresolve_timeout = \"5m\"\n"
        ))
        .unwrap()
    }

    #[test]
    fn grouping_by_fewer_labels_merges_incidents_and_sends_fewer_notifications() {
        // Two kinds on three hosts within a minute, then nothing for an hour.
        let t0 = 1_764_000_000_000;
        let alerts: Vec<Alert> = ["DiskFull", "HighLoad"]
            .iter()
            .enumerate()
            .flat_map(|(k, name)| (0..3).map(move |h| alert(name, &format!("h{h}"), t0 + (k as i64 * 3 + h) * 5_000)))
            .collect();
        let routing = RoutingRules::default();
        let settle = Duration::from_secs(3600);
        let by_instance =
            replay(&alerts, &tree("\"alertname\", \"instance\""), &routing, settle, Additions::default()).unwrap();
        let by_name = replay(&alerts, &tree("\"alertname\""), &routing, settle, Additions::default()).unwrap();
        assert_eq!((by_instance.alerts, by_instance.incidents.len(), by_name.incidents.len()), (6, 6, 2));
        let opened = |r: &Replayed| r.notifications.iter().filter(|n| n.1 == RoutingReason::Opened).count();
        assert_eq!((opened(&by_instance), opened(&by_name)), (6, 2));
        // Every incident resolved within the settle time (resolve_timeout 5 minutes).
        let resolved = |r: &Replayed| r.notifications.iter().filter(|n| n.1 == RoutingReason::Resolved).count();
        assert_eq!((resolved(&by_instance), resolved(&by_name)), (6, 2));
        assert_eq!((by_instance.reduction(), by_name.reduction()), (0.0, 1.0 - 2.0 / 6.0));

        let change = diff(&by_instance, &by_name);
        assert_eq!((change.split, change.merged), (0, 2));
        assert_eq!(change.notifications["Opened"], (6, 2));
        let back = diff(&by_name, &by_instance);
        assert_eq!((back.split, back.merged), (2, 0));
    }

    #[test]
    fn alerts_an_hour_apart_each_make_their_incident_though_nothing_ticked_between() {
        let t0 = 1_764_000_000_000;
        let alerts = vec![alert("A", "h0", t0), alert("A", "h1", t0 + 3_600_000)];
        let tree = RouteTree::parse("[route]\ngroup_by = [\"alertname\", \"instance\"]\ngroup_wait = \"30s\"\ngroup_interval = \"5m\"\nresolve_timeout = \"5m\"\n").unwrap();
        let r =
            replay(&alerts, &tree, &RoutingRules::default(), Duration::from_secs(3600), Additions::default()).unwrap();
        assert_eq!(r.incidents.len(), 2, "{:?}", r.notifications);
    }
}
