use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use quench_schemas::{Alert, AlertStatus, IncidentStatus, RoutingReason};

use super::*;
use quench_schemas::fingerprint::fingerprint;

use crate::{
    mute::Mutes,
    rules::{Holds, RouteTree, Timing},
};

const S: i64 = 1_000;
const T0: i64 = 1_764_000_000_000;

fn timing() -> Timing {
    Timing {
        group_wait: Duration::from_secs(30),
        group_interval: Duration::from_secs(300),
        repeat_interval: Duration::from_secs(3_600),
        resolve_timeout: Duration::from_secs(600),
        max_incident_age: Duration::from_secs(7 * 24 * 3600),
        ..Timing::default()
    }
}

fn alert(name: &str, instance: &str, severity: &str, starts_at: i64) -> Alert {
    Alert {
        source: "test".into(),
        status: AlertStatus::Firing,
        labels: BTreeMap::from([
            ("alertname".into(), name.into()),
            ("instance".into(), instance.into()),
            ("severity".into(), severity.into()),
        ]),
        annotations: BTreeMap::new(),
        starts_at,
        ends_at: None,
        received_at: starts_at,
        generator_url: None,
        fingerprint: None,
        tenant: "default".into(),
        stateful: false,
    }
}

fn resolved(mut alert: Alert, at: i64) -> Alert {
    alert.status = AlertStatus::Resolved;
    alert.ends_at = Some(at);
    alert
}

/// Routes with the default tree (group by alertname) and feeds the core, as the worker does.
struct Harness {
    tree: RouteTree,
    mutes: Mutes,
    windows: Windows,
    /// The route's holds, and whether the alerts sent are of transient kinds.
    holds: Holds,
    transient: bool,
}

impl Harness {
    fn new() -> Self {
        Self {
            tree: RouteTree::default(),
            mutes: Mutes::default(),
            windows: Windows::default(),
            holds: Holds::default(),
            transient: false,
        }
    }

    fn send(&mut self, alert: &Alert, now: i64) {
        let timing = Timing { holds: self.holds, ..timing() };
        let placement = Placement { timing, ..self.tree.place(alert, None).remove(0) };
        self.windows.ingest(alert, fingerprint(&alert.labels), placement, now, self.transient);
    }

    fn tick(&mut self, now: i64) -> (Vec<quench_schemas::Incident>, Vec<quench_schemas::RoutingEvent>) {
        let mut out = Vec::new();
        self.windows.tick(now, &mut out, &Check { rules: &self.tree, mutes: &self.mutes });
        let mut incidents = Vec::new();
        let mut events = Vec::new();
        for flush in out {
            if let Some(reason) = flush.announce {
                let mut event = routing_event(&flush.incident, reason, flush.at);
                event.flaps = flush.flaps;
                events.push(event);
            }
            incidents.push(flush.incident);
        }
        (incidents, events)
    }
}

fn reasons(events: &[quench_schemas::RoutingEvent]) -> Vec<RoutingReason> {
    events.iter().map(|e| e.reason).collect()
}

#[test]
fn alerts_within_group_wait_form_one_incident_announced_once() {
    let mut h = Harness::new();
    h.send(&alert("PgDown", "db-1", "critical", T0), T0);
    h.send(&alert("PgDown", "db-2", "critical", T0 + 5 * S), T0 + 5 * S);
    assert_eq!(h.tick(T0 + 29 * S), (vec![], vec![]), "nothing before group_wait");
    let (incidents, events) = h.tick(T0 + 30 * S);
    assert_eq!(reasons(&events), [RoutingReason::Opened]);
    assert_eq!(incidents.len(), 1);
    let incident = &incidents[0];
    assert_eq!(incident.alert_count, 2);
    assert_eq!(incident.fingerprints.len(), 2);
    assert_eq!(incident.status, IncidentStatus::Open);
    assert_eq!(incident.severity, "critical");
    assert_eq!(incident.title, "PgDown");
    assert_eq!(incident.common_labels.get("instance"), None, "instance differs between the alerts");
    assert_eq!(events[0].event_id, format!("{}/1/opened", incident.incident_id));
}

#[test]
fn an_alert_older_than_group_wait_flushes_at_once() {
    let mut h = Harness::new();
    h.send(&alert("DiskFull", "h1", "warning", T0 - 120 * S), T0);
    let (_, events) = h.tick(T0);
    assert_eq!(reasons(&events), [RoutingReason::Opened]);
}

#[test]
fn an_alert_resolved_within_group_wait_never_notifies() {
    let mut h = Harness::new();
    let a = alert("Blip", "h1", "warning", T0);
    h.send(&a, T0);
    h.send(&resolved(a, T0 + 10 * S), T0 + 10 * S);
    assert_eq!(h.tick(T0 + 30 * S), (vec![], vec![]));
    assert_eq!(h.windows.open_groups(), 0, "the group is gone");
}

#[test]
fn re_sent_alerts_bump_counters_without_routing_events() {
    let mut h = Harness::new();
    let a = alert("PgDown", "db-1", "critical", T0);
    h.send(&a, T0);
    h.tick(T0 + 30 * S);
    for i in 1..=10 {
        h.send(&a, T0 + 30 * S + i * 15 * S);
    }
    let (incidents, events) = h.tick(T0 + 330 * S);
    assert!(events.is_empty(), "re-sends are not news: {events:?}");
    assert_eq!(incidents.len(), 1, "one coalesced incident update");
    assert_eq!(incidents[0].alert_count, 11);
    assert_eq!(incidents[0].version, 2);
    assert_eq!(incidents[0].last_seen, T0 + 180 * S);
}

#[test]
fn new_alerts_are_announced_only_at_group_interval_ticks() {
    let mut h = Harness::new();
    h.send(&alert("PgDown", "db-1", "critical", T0), T0);
    h.tick(T0 + 30 * S);
    h.send(&alert("PgDown", "db-2", "critical", T0 + 40 * S), T0 + 40 * S);
    assert_eq!(h.tick(T0 + 329 * S), (vec![], vec![]), "not before the next group_interval tick");
    let (incidents, events) = h.tick(T0 + 330 * S);
    assert_eq!(reasons(&events), [RoutingReason::AlertsAdded]);
    assert_eq!(incidents[0].fingerprints.len(), 2);
}

#[test]
fn a_firing_incident_repeats_after_repeat_interval() {
    let mut h = Harness::new();
    let a = alert("PgDown", "db-1", "critical", T0);
    h.send(&a, T0);
    h.tick(T0 + 30 * S);
    let mut repeats = Vec::new();
    // Keep it alive with re-sends, tick every group_interval for two and a half hours.
    for k in 1..=30 {
        let now = T0 + 30 * S + k * 300 * S;
        h.send(&a, now - S);
        let (_, events) = h.tick(now);
        assert!(events.iter().all(|e| e.reason == RoutingReason::Repeat));
        if !events.is_empty() {
            repeats.push(k);
        }
    }
    // Alertmanager repeats at the first group_interval tick strictly past repeat_interval (1 h):
    // 1 h 05 min after the first notification, then 1 h 05 min after that.
    assert_eq!(repeats, [13, 26]);
}

#[test]
fn resolving_every_alert_resolves_the_incident_and_a_new_firing_opens_a_new_one() {
    let mut h = Harness::new();
    let a = alert("PgDown", "db-1", "critical", T0);
    h.send(&a, T0);
    let (opened, _) = h.tick(T0 + 30 * S);
    h.send(&resolved(a.clone(), T0 + 60 * S), T0 + 60 * S);
    let (incidents, events) = h.tick(T0 + 330 * S);
    assert_eq!(reasons(&events), [RoutingReason::Resolved]);
    assert_eq!(incidents[0].status, IncidentStatus::Resolved);
    assert_eq!(incidents[0].resolved_at, Some(T0 + 60 * S));
    assert_eq!(h.windows.open_groups(), 0);

    h.send(&alert("PgDown", "db-1", "critical", T0 + 400 * S), T0 + 400 * S);
    let (again, events) = h.tick(T0 + 430 * S);
    assert_eq!(reasons(&events), [RoutingReason::Opened]);
    assert_ne!(again[0].incident_id, opened[0].incident_id);
}

#[test]
fn alerts_without_ends_at_resolve_after_resolve_timeout() {
    let mut h = Harness::new();
    h.send(&alert("PgDown", "db-1", "critical", T0), T0);
    h.tick(T0 + 30 * S);
    assert!(h.tick(T0 + 330 * S).1.is_empty(), "still within resolve_timeout");
    let (incidents, events) = h.tick(T0 + 630 * S);
    assert_eq!(reasons(&events), [RoutingReason::Resolved]);
    assert_eq!(incidents[0].resolved_at, Some(T0 + 600 * S));
}

#[test]
fn a_rise_in_severity_is_announced() {
    let mut h = Harness::new();
    let warn = alert("PgSlow", "db-1", "warning", T0);
    h.send(&warn, T0);
    h.tick(T0 + 30 * S);
    let mut crit = warn.clone();
    crit.labels.insert("severity".into(), "critical".into());
    // Same alertname, new label value: a new fingerprint in the same group, so alerts_added wins.
    h.send(&crit, T0 + 40 * S);
    let (incidents, events) = h.tick(T0 + 330 * S);
    assert_eq!(reasons(&events), [RoutingReason::AlertsAdded]);
    assert_eq!(incidents[0].severity, "critical");
}

#[test]
fn incident_ids_are_deterministic_across_workers() {
    let run = || {
        let mut h = Harness::new();
        h.send(&alert("PgDown", "db-1", "critical", T0), T0);
        h.tick(T0 + 30 * S).0[0].incident_id.clone()
    };
    assert_eq!(run(), run());
    assert!(run().starts_with("inc-"));
}

#[test]
fn the_same_alert_in_two_tenants_makes_two_incidents_with_different_ids() {
    let mut h = Harness::new();
    let mut a = alert("PgDown", "db-1", "critical", T0);
    a.tenant = "a".into();
    let b = Alert { tenant: "b".into(), ..a.clone() };
    h.send(&a, T0);
    h.send(&b, T0);
    let (incidents, _) = h.tick(T0 + 30 * S);
    let ids: Vec<_> = incidents.iter().map(|i| (i.tenant.as_str(), i.incident_id.as_str())).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_ne!(ids[0].1, ids[1].1);
    assert!(ids.iter().all(|(_, id)| id.len() == "inc-".len() + 32), "128-bit ids: {ids:?}");
}

#[test]
fn an_alert_that_keeps_flipping_marks_the_incident_flapping() {
    let mut h = Harness::new();
    let a = alert("Flappy", "h1", "warning", T0);
    h.send(&a, T0);
    h.tick(T0 + 30 * S);
    let mut now = T0 + 30 * S;
    for _ in 0..2 {
        now += 10 * S;
        h.send(&resolved(a.clone(), now), now);
        now += 10 * S;
        h.send(&a, now);
    }
    let (incidents, _) = h.tick(T0 + 330 * S);
    assert!(incidents[0].flapping);
}

#[test]
fn a_touched_group_emits_its_incident_again_with_what_the_classifier_reads() {
    let mut h = Harness::new();
    let mut first = alert("PgDown", "db-1", "critical", T0);
    first.annotations.insert("summary".into(), "Postgres down on db-1".into());
    h.send(&first, T0);
    h.send(&alert("PgDown", "db-2", "critical", T0), T0);
    let mut out = Vec::new();
    h.windows.tick(T0 + 30 * S, &mut out, &Check { rules: &h.tree, mutes: &h.mutes });
    let [Flush { incident, subject, .. }] = &out[..] else { panic!("one incident in {out:?}") };
    assert_eq!(subject.id, incident.incident_id);
    assert_eq!(subject.alertnames, ["PgDown"]);
    assert_eq!(subject.summary, "Postgres down on db-1");
    assert_eq!(subject.alerts, 2);
    assert_eq!(h.tick(T0 + 31 * S), (vec![], vec![]), "nothing changed");
    let key = GroupKey(incident.group_key.clone());
    h.windows.touch(&key, T0 + 31 * S);
    let (incidents, events) = h.tick(T0 + 31 * S);
    assert_eq!(incidents.len(), 1, "the incident is emitted again");
    assert!(events.is_empty(), "without notifying anyone again");
}

#[test]
fn acknowledging_and_resolving_by_hand_are_announced_with_their_times() {
    let mut h = Harness::new();
    h.send(&alert("PgDown", "db-1", "critical", T0), T0);
    let (incidents, _) = h.tick(T0 + 30 * S);
    let id = incidents[0].incident_id.clone();
    assert!(!h.windows.act("inc-unknown", quench_schemas::ActionKind::Acknowledge, T0 + 40 * S, T0 + 40 * S));
    assert!(h.windows.act(&id, quench_schemas::ActionKind::Acknowledge, T0 + 40 * S, T0 + 40 * S));
    assert!(!h.windows.act(&id, quench_schemas::ActionKind::Acknowledge, T0 + 41 * S, T0 + 41 * S), "once");
    let (incidents, events) = h.tick(T0 + 40 * S);
    assert_eq!(reasons(&events), [RoutingReason::Acknowledged]);
    assert_eq!((incidents[0].status, incidents[0].acknowledged_at), (IncidentStatus::Acknowledged, Some(T0 + 40 * S)));
    // More alerts keep it acknowledged, so its escalation stays stopped.
    h.send(&alert("PgDown", "db-2", "critical", T0 + 50 * S), T0 + 50 * S);
    let (_, events) = h.tick(T0 + 340 * S);
    assert_eq!((reasons(&events), events[0].status), (vec![RoutingReason::AlertsAdded], IncidentStatus::Acknowledged));
    assert!(h.windows.act(&id, quench_schemas::ActionKind::Resolve, T0 + 350 * S, T0 + 350 * S));
    let (incidents, events) = h.tick(T0 + 350 * S);
    assert_eq!(reasons(&events), [RoutingReason::Resolved]);
    assert_eq!((incidents[0].status, incidents[0].resolved_at), (IncidentStatus::Resolved, Some(T0 + 350 * S)));
    assert_eq!(h.windows.open_groups(), 0, "resolved by hand ends the group while its alerts still fire");
}

#[test]
fn a_custom_severity_scale_is_the_incidents_scale() {
    let scale = quench_schemas::severity::Scale::new(
        ["sev1", "sev2", "sev3"].map(String::from).to_vec(),
        BTreeMap::from([("critical".to_string(), "sev1".to_string())]),
    );
    let mut h = Harness { windows: Windows::new(scale), ..Harness::new() };
    h.send(&alert("PgSlow", "db-1", "sev3", T0), T0);
    h.send(&alert("DiskFull", "h1", "high", T0), T0);
    let (incidents, _) = h.tick(T0 + 30 * S);
    let severity = |name: &str| incidents.iter().find(|i| i.title == name).unwrap().severity.clone();
    assert_eq!(severity("PgSlow"), "sev3");
    assert_eq!(severity("DiskFull"), "unknown", "`high` is a word of the default scale, not of this one");
    h.send(&alert("PgSlow", "db-2", "Critical", T0 + 40 * S), T0 + 40 * S);
    let (incidents, _) = h.tick(T0 + 330 * S);
    assert_eq!(incidents[0].severity, "sev1", "an alias of the custom scale, ranked above sev3");
}

/// 60,000 distinct alerts into one group (one POST of them, or a storm with churning labels).
fn storm(h: &mut Harness, n: usize, at: i64) {
    for i in 0..n {
        h.send(&alert("Storm", &format!("host-{i}"), "warning", at), at);
    }
}

#[test]
fn a_storm_into_one_group_is_bounded_in_memory_in_its_records_and_counted_exactly() {
    let mut h = Harness::new();
    storm(&mut h, 60_000, T0);
    assert_eq!(h.windows.open_fingerprints(), MAX_TRACKED_ALERTS, "alerts beyond the bound are not tracked");
    let untracked = h.windows.take_untracked();
    assert_eq!(untracked.iter().map(|j| j.fingerprints.len()).sum::<usize>(), 10_000, "but recorded as they come");

    let mut out = Vec::new();
    h.windows.tick(T0 + 30 * S, &mut out, &Check { rules: &h.tree, mutes: &h.mutes });
    let [flush] = &out[..] else { panic!("one incident: {out:?}") };
    assert_eq!(flush.incident.incident_id, untracked[0].incident_id, "the untracked joined the same incident");
    assert_eq!((flush.incident.alert_count, flush.incident.distinct_alerts), (60_000, 60_000));
    assert_eq!(flush.incident.fingerprints.len(), MAX_LISTED_FINGERPRINTS);
    assert_eq!(flush.new_fingerprints.len(), MAX_TRACKED_ALERTS, "the tracked ones, recorded at the flush");

    let records = h.windows.take_changes().unwrap();
    let largest = records.iter().filter_map(|(_, value)| value.as_ref().map(Vec::len)).max().unwrap();
    assert!(largest < 512 * 1024, "a changelog record of {largest} bytes; Kafka's limit is 1 MB");
    let groups = changelog::read(records.into_iter().map(|(key, value)| (key, value.unwrap()))).unwrap();
    let mut restored = Harness::new();
    for group in groups {
        restored.windows.restore(group);
    }
    assert_eq!(restored.windows.open_fingerprints(), MAX_TRACKED_ALERTS, "every tracked alert restored");
    restored.send(&alert("Storm", "host-1", "warning", T0 + 40 * S), T0 + 40 * S);
    let (incidents, events) = restored.tick(T0 + 330 * S);
    assert_eq!(
        (incidents[0].alert_count, incidents[0].distinct_alerts),
        (60_001, 60_000),
        "a re-send of a tracked alert"
    );
    assert!(events.is_empty(), "nothing new to announce");
}

#[test]
fn resolved_alerts_already_recorded_make_room_and_keep_the_counts() {
    let mut h = Harness::new();
    storm(&mut h, MAX_TRACKED_ALERTS - 1, T0);
    h.send(&alert("Storm", "stays", "critical", T0), T0);
    let mut out = Vec::new();
    h.windows.tick(T0 + 30 * S, &mut out, &Check { rules: &h.tree, mutes: &h.mutes });
    for i in 0..MAX_TRACKED_ALERTS - 1 {
        h.send(&resolved(alert("Storm", &format!("host-{i}"), "warning", T0), T0 + 40 * S), T0 + 40 * S);
    }
    h.windows.tick(T0 + 330 * S, &mut out, &Check { rules: &h.tree, mutes: &h.mutes });
    storm_named(&mut h, "later", 1_000, T0 + 400 * S);
    h.send(&alert("Storm", "stays", "critical", T0), T0 + 400 * S);
    assert_eq!(h.windows.open_fingerprints(), 1 + 1_000, "the recorded resolved alerts were forgotten");
    assert!(h.windows.take_untracked().is_empty(), "so the new ones are tracked");
    let (incidents, _) = h.tick(T0 + 630 * S);
    assert_eq!(incidents[0].distinct_alerts, (MAX_TRACKED_ALERTS + 1_000) as i64);
    assert_eq!(incidents[0].severity, "critical");
}

fn storm_named(h: &mut Harness, prefix: &str, n: usize, at: i64) {
    for i in 0..n {
        h.send(&alert("Storm", &format!("{prefix}-{i}"), "warning", at), at);
    }
}

#[test]
fn every_alert_of_an_incident_is_recorded_once_across_flushes() {
    let mut h = Harness::new();
    let mut recorded = Vec::new();
    for round in 0..3 {
        let at = T0 + round * 300 * S;
        storm_named(&mut h, &format!("round{round}"), 100, at);
        h.send(&alert("Storm", "round0-0", "warning", at), at);
        let mut out = Vec::new();
        h.windows.tick(at + 30 * S, &mut out, &Check { rules: &h.tree, mutes: &h.mutes });
        recorded.extend(out.into_iter().flat_map(|f| f.new_fingerprints));
    }
    let distinct: std::collections::HashSet<u64> = recorded.iter().copied().collect();
    assert_eq!((recorded.len(), distinct.len()), (300, 300));
}

#[test]
fn a_changelog_written_before_buckets_still_restores() {
    let mut h = Harness::new();
    h.send(&alert("PgDown", "db-1", "critical", T0), T0);
    let records = h.windows.take_changes().unwrap();
    let mut group: serde_json::Value = serde_json::from_slice(records[0].1.as_ref().unwrap()).unwrap();
    let bucket: serde_json::Value = serde_json::from_slice(records[1].1.as_ref().unwrap()).unwrap();
    group["alerts"] = bucket;
    group.as_object_mut().unwrap().remove("written_buckets");
    let old = vec![(records[0].0.clone(), serde_json::to_vec(&group).unwrap())];
    let mut restored = Harness::new();
    for group in changelog::read(old).unwrap() {
        restored.windows.restore(group);
    }
    assert_eq!(restored.windows.open_fingerprints(), 1);
    restored.windows.changed.insert(GroupKey(records[0].0.clone()));
    let rewritten = restored.windows.take_changes().unwrap();
    assert_eq!(rewritten.len(), 2, "the next write moves its alerts into a bucket record: {rewritten:?}");
}

#[test]
fn an_incident_that_never_resolves_is_closed_at_max_incident_age_and_a_new_one_opened() {
    let mut h = Harness::new();
    let send = |h: &mut Harness, at: i64| {
        let alert = alert("DiskFull", "h1", "warning", T0);
        let placement = Placement {
            timing: Timing { max_incident_age: Duration::from_secs(3_600), ..timing() },
            ..h.tree.place(&alert, None).remove(0)
        };
        h.windows.ingest(&alert, fingerprint(&alert.labels), placement, at, false);
    };
    let mut incidents = Vec::new();
    let mut events = Vec::new();
    // Re-sent every 5 minutes for two hours, never resolved.
    for minute in (0..120).step_by(5) {
        let at = T0 + minute * 60 * S;
        send(&mut h, at);
        let (i, e) = h.tick(at + 30 * S);
        incidents.extend(i);
        events.extend(e);
    }
    let opened: Vec<&str> =
        events.iter().filter(|e| e.reason == RoutingReason::Opened).map(|e| e.incident_id.as_str()).collect();
    assert_eq!(opened.len(), 2, "{:?}", reasons(&events));
    assert_ne!(opened[0], opened[1], "the new incident has an id of its own");
    let closed = incidents.iter().find(|i| i.incident_id == opened[0] && i.status == IncidentStatus::Resolved);
    let closed = closed.expect("the first incident was closed");
    assert!(closed.resolved_at.unwrap() - closed.first_seen >= 3_600 * S);
    let last = incidents.iter().rev().find(|i| i.incident_id == opened[1]).unwrap();
    assert_eq!((last.status, last.distinct_alerts), (IncidentStatus::Open, 1), "what still fires moved to it");
}

#[test]
fn an_alert_firing_again_inside_its_incident_is_announced_again() {
    let mut h = Harness::new();
    let a = alert("PgDown", "db-1", "critical", T0);
    let b = alert("PgDown", "db-2", "critical", T0);
    h.send(&a, T0);
    h.send(&b, T0);
    let (_, events) = h.tick(T0 + 30 * S);
    assert_eq!(reasons(&events), [RoutingReason::Opened]);
    h.send(&resolved(a.clone(), T0 + 40 * S), T0 + 40 * S);
    h.send(&b, T0 + 40 * S);
    let (_, events) = h.tick(T0 + 330 * S);
    assert!(events.is_empty(), "a resolution alone is no news while others fire: {events:?}");
    h.send(&a, T0 + 400 * S);
    h.send(&b, T0 + 400 * S);
    let (_, events) = h.tick(T0 + 630 * S);
    assert!(events.is_empty(), "a was firing in the last notification: no news, as in Alertmanager: {events:?}");

    // Resolved at a notification (c joined), a firing again is news: it was not in that one.
    h.send(&resolved(a.clone(), T0 + 700 * S), T0 + 700 * S);
    h.send(&alert("PgDown", "db-3", "critical", T0 + 700 * S), T0 + 700 * S);
    let (_, events) = h.tick(T0 + 930 * S);
    assert_eq!(reasons(&events), [RoutingReason::AlertsAdded]);
    h.send(&a, T0 + 1_000 * S);
    let (_, events) = h.tick(T0 + 1_230 * S);
    assert_eq!(reasons(&events), [RoutingReason::AlertsAdded], "the firing set is not within the last notified one");
}

#[test]
fn an_alert_whose_sender_reports_resolutions_does_not_time_out() {
    // Alertmanager's webhook re-sends a firing alert only at repeat_interval (4 h by default),
    // with endsAt Go's zero time: it once resolved after resolve_timeout and every repeat
    // opened a new incident.
    let mut h = Harness::new();
    let mut a = alert("PgDown", "db-1", "critical", T0);
    a.stateful = true;
    h.send(&a, T0);
    let (incidents, _) = h.tick(T0 + 30 * S);
    let id = incidents[0].incident_id.clone();
    let (incidents, events) = h.tick(T0 + 2 * 3_600 * S);
    assert!(incidents.iter().all(|i| i.status == IncidentStatus::Open), "still open after 2 h of silence");
    assert!(events.iter().all(|e| e.reason == RoutingReason::Repeat));
    h.send(&resolved(a, T0 + 3 * 3_600 * S), T0 + 3 * 3_600 * S);
    let (incidents, _) = h.tick(T0 + 3 * 3_600 * S + 300 * S);
    assert_eq!((incidents[0].incident_id.as_str(), incidents[0].status), (id.as_str(), IncidentStatus::Resolved));
}

#[test]
fn an_announcement_lists_its_firing_alerts_and_each_resolved_one_once() {
    let mut h = Harness::new();
    let notice = |h: &mut Harness, now: i64| {
        let mut out = Vec::new();
        h.windows.tick(now, &mut out, &Check { rules: &h.tree, mutes: &h.mutes });
        let notice = out.into_iter().find_map(|f| f.notice).expect("an announcement");
        let mut listed: Vec<(String, String)> =
            notice.alerts.iter().map(|a| (a.labels["instance"].clone(), a.status.clone())).collect();
        listed.sort();
        (notice.group_key, listed)
    };
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter().map(|(i, s)| (i.to_string(), s.to_string())).collect()
    };
    let b = alert("Down", "b", "warning", T0);
    h.send(&alert("Down", "a", "warning", T0), T0);
    h.send(&b, T0);
    let (key, listed) = notice(&mut h, T0 + 30 * S);
    assert_eq!(key, "{}:{alertname=\"Down\"}", "Alertmanager's group key");
    assert_eq!(listed, pairs(&[("a", "firing"), ("b", "firing")]));
    h.send(&resolved(b, T0 + 60 * S), T0 + 60 * S);
    h.send(&alert("Down", "c", "warning", T0 + 61 * S), T0 + 61 * S);
    let (_, listed) = notice(&mut h, T0 + 330 * S);
    assert_eq!(listed, pairs(&[("a", "firing"), ("b", "resolved"), ("c", "firing")]));
    h.send(&alert("Down", "d", "warning", T0 + 400 * S), T0 + 400 * S);
    h.send(&alert("Down", "a", "warning", T0), T0 + 400 * S);
    h.send(&alert("Down", "c", "warning", T0 + 61 * S), T0 + 400 * S);
    let (_, listed) = notice(&mut h, T0 + 630 * S);
    assert_eq!(listed, pairs(&[("a", "firing"), ("c", "firing"), ("d", "firing")]), "b was listed resolved once");
}

/// Flap suppression on: 4 changes within 10 minutes flap; stable after 15 minutes.
fn flap_holds() -> Holds {
    Holds {
        flap_changes: 4,
        flap_window: Duration::from_secs(600),
        flap_stable: Duration::from_secs(900),
        ..Holds::default()
    }
}

/// Sends `a` resolving and firing again `cycles` times, a minute apart, from `from`; returns
/// the time of the last change.
fn flap(h: &mut Harness, a: &Alert, from: i64, cycles: usize) -> i64 {
    let mut now = from;
    for _ in 0..cycles {
        now += 60 * S;
        h.send(&resolved(a.clone(), now), now);
        now += 60 * S;
        h.send(a, now);
    }
    now
}

#[test]
fn a_flapping_alert_is_held_and_announced_once_when_stable_with_how_often_it_changed() {
    let mut h = Harness::new();
    h.holds = flap_holds();
    let a = alert("Flappy", "h1", "warning", T0);
    h.send(&a, T0);
    assert_eq!(reasons(&h.tick(T0 + 30 * S).1), [RoutingReason::Opened]);
    // Resolves and fires again every minute for 8 minutes: 8 changes.
    let last = flap(&mut h, &a, T0 + 30 * S, 4);
    let mut announced = Vec::new();
    let mut flapping_recorded = false;
    let mut t = T0 + 330 * S;
    while t <= last + 900 * S {
        h.send(&a, t); // re-sent, as Prometheus does, before resolve_timeout
        let (incidents, events) = h.tick(t);
        flapping_recorded |= incidents.iter().any(|i| i.flapping && i.state_changes == 8);
        announced.extend(events.into_iter().map(|e| (t, e.reason, e.flaps)));
        t += 300 * S;
    }
    assert!(announced.is_empty(), "held while flapping and until stable for 15 min: {announced:?}");
    assert!(flapping_recorded, "the incident is recorded as flapping, with its changes");
    h.send(&a, t);
    let (incidents, events) = h.tick(t);
    assert_eq!(
        events.iter().map(|e| (e.reason, e.flaps)).collect::<Vec<_>>(),
        [(RoutingReason::AlertsAdded, 8)],
        "one notification once stable, saying how often it changed"
    );
    assert!(incidents[0].flapping && incidents[0].status == IncidentStatus::Open);
    h.send(&a, t + 300 * S);
    assert!(h.tick(t + 300 * S).1.is_empty(), "and nothing more while it keeps firing");
}

#[test]
fn without_flap_suppression_a_flapping_alert_is_announced_as_alertmanager_does() {
    let mut h = Harness::new();
    let a = alert("Flappy", "h1", "warning", T0);
    h.send(&a, T0);
    h.tick(T0 + 30 * S);
    flap(&mut h, &a, T0 + 30 * S, 1);
    // A resolution and a re-fire between two flushes: no news (Alertmanager's dedup stage).
    assert!(h.tick(T0 + 330 * S).1.is_empty());
    let now = T0 + 400 * S;
    h.send(&resolved(a.clone(), now), now);
    assert_eq!(reasons(&h.tick(T0 + 630 * S).1), [RoutingReason::Resolved], "resolved at once, no hold");
}

#[test]
fn a_flapping_alert_that_settles_resolved_resolves_its_incident_once() {
    let mut h = Harness::new();
    h.holds = flap_holds();
    let a = alert("Flappy", "h1", "warning", T0);
    h.send(&a, T0);
    h.tick(T0 + 30 * S);
    let last = flap(&mut h, &a, T0 + 30 * S, 3) + 60 * S;
    h.send(&resolved(a.clone(), last), last);
    let mut events = Vec::new();
    let mut t = T0 + 330 * S;
    while t <= last + 1_500 * S {
        events.extend(h.tick(t).1.into_iter().map(|e| (e.reason, e.flaps)));
        t += 300 * S;
    }
    assert_eq!(events, [(RoutingReason::Resolved, 7)], "the resolution waits until stable, then says so once");
}

#[test]
fn a_transient_kind_resolving_within_its_pause_is_recorded_as_transient_and_never_announced() {
    let mut h = Harness::new();
    h.holds = Holds { transient_pause: Duration::from_secs(300), ..Holds::default() };
    h.transient = true;
    let a = alert("CpuSpike", "h1", "warning", T0);
    h.send(&a, T0);
    assert_eq!(h.tick(T0 + 30 * S), (vec![], vec![]), "held beyond group_wait");
    h.send(&resolved(a, T0 + 200 * S), T0 + 200 * S);
    let (incidents, events) = h.tick(T0 + 330 * S);
    assert!(events.is_empty(), "never announced: {events:?}");
    let [incident] = &incidents[..] else { panic!("recorded: {incidents:?}") };
    assert!(incident.transient && incident.status == IncidentStatus::Resolved, "{incident:?}");
    assert_eq!(h.windows.open_groups(), 0, "and the group ended");
}

#[test]
fn a_transient_kind_still_firing_after_its_pause_is_announced_then() {
    let mut h = Harness::new();
    h.holds = Holds { transient_pause: Duration::from_secs(300), ..Holds::default() };
    h.transient = true;
    h.send(&alert("CpuSpike", "h1", "warning", T0), T0);
    assert!(h.tick(T0 + 329 * S).1.is_empty());
    let (incidents, events) = h.tick(T0 + 330 * S);
    assert_eq!(reasons(&events), [RoutingReason::Opened]);
    assert!(!incidents[0].transient);
}

#[test]
fn an_alert_of_another_kind_ends_the_transient_pause_of_its_group() {
    let mut h = Harness::new();
    h.tree = RouteTree::parse("[route]\ngroup_by = [\"instance\"]\n").unwrap();
    h.holds = Holds { transient_pause: Duration::from_secs(300), ..Holds::default() };
    h.transient = true;
    h.send(&alert("CpuSpike", "h1", "warning", T0), T0);
    h.transient = false;
    h.send(&alert("NodeDown", "h1", "critical", T0 + 10 * S), T0 + 10 * S);
    assert_eq!(reasons(&h.tick(T0 + 30 * S).1), [RoutingReason::Opened], "due at group_wait, as without the pause");
}

#[test]
fn with_flap_suppression_a_resolution_at_a_flush_waits_so_the_cycles_meet_in_one_incident() {
    let mut h = Harness::new();
    h.holds = flap_holds();
    let a = alert("Flappy", "h1", "warning", T0);
    h.send(&a, T0);
    assert_eq!(reasons(&h.tick(T0 + 30 * S).1), [RoutingReason::Opened]);
    // A 5-minute cycle that resolves just before each flush (group_interval 5 min).
    let mut events = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    for cycle in 0..3 {
        let tick = T0 + 330 * S + cycle * 300 * S;
        h.send(&resolved(a.clone(), tick - 10 * S), tick - 10 * S);
        let (incidents, out) = h.tick(tick);
        ids.extend(incidents.into_iter().map(|i| i.incident_id));
        events.extend(out.into_iter().map(|e| e.reason));
        h.send(&a, tick + 70 * S);
    }
    assert!(events.is_empty(), "no resolution and no reopening while it cycles: {events:?}");
    assert!(ids.len() <= 1, "one incident throughout: {ids:?}");
    // It stops, resolved: once stable, the resolution is announced once, with its changes.
    let end = T0 + 1_300 * S;
    h.send(&resolved(a.clone(), end), end);
    let mut settled = Vec::new();
    let mut t = T0 + 1_230 * S;
    while t <= end + 1_200 * S {
        settled.extend(h.tick(t).1.into_iter().map(|e| (e.reason, e.flaps)));
        t += 300 * S;
    }
    assert_eq!(settled, [(RoutingReason::Resolved, 7)]);
}

/// Changelog records as the release before format numbers wrote them (format 1 without the
/// field; `testdata/`): what an older worker left in `quench-state` for the next one.
fn format_1_records() -> Vec<(String, Vec<u8>)> {
    include_str!("testdata/changelog-format-1.jsonl")
        .lines()
        .filter_map(|line| {
            let (key, value): (String, Option<String>) = serde_json::from_str(line).unwrap();
            Some((key, value?.into_bytes()))
        })
        .collect()
}

#[test]
fn a_changelog_of_the_release_before_format_numbers_restores_and_is_written_again_without_losing_a_field() {
    let records = format_1_records();
    let mut restored = Harness::new();
    for group in changelog::read(records.clone()).unwrap() {
        restored.windows.restore(group);
    }
    assert_eq!(restored.windows.open_fingerprints(), 3, "every alert of every group");
    for (key, _) in records.iter().filter(|(key, _)| !key.starts_with('#')) {
        restored.windows.changed.insert(GroupKey(key.clone()));
    }
    let rewritten: BTreeMap<String, serde_json::Value> = restored
        .windows
        .take_changes()
        .unwrap()
        .into_iter()
        .filter_map(|(key, value)| Some((key, serde_json::from_slice(&value?).unwrap())))
        .collect();
    // A group record is written whole at each change; its bucket records only when they change.
    let groups: Vec<_> = records.iter().filter(|(key, _)| !key.starts_with('#')).collect();
    assert_eq!(groups.len(), 2);
    for (key, value) in groups {
        let mut before: serde_json::Value = serde_json::from_slice(value).unwrap();
        assert!(before.get("format").is_none(), "the fixture is as the previous release wrote it");
        before["format"] = 1.into();
        assert_eq!(rewritten.get(key), Some(&before), "{key} written again as it was, numbered");
    }
}

#[test]
fn a_worker_refuses_a_changelog_record_of_a_later_format() {
    let mut records = format_1_records();
    let group = records.iter_mut().find(|(key, _)| !key.starts_with('#')).unwrap();
    let mut value: serde_json::Value = serde_json::from_slice(&group.1).unwrap();
    value["format"] = (changelog::FORMAT + 1).into();
    value["a_field_of_the_next_format"] = "kept only by a worker that knows it".into();
    group.1 = serde_json::to_vec(&value).unwrap();
    let refused = changelog::read(records).unwrap_err();
    assert!(refused.contains(&format!("format {}", changelog::FORMAT + 1)), "{refused}");
    assert!(refused.contains("finish the upgrade"), "{refused}");
}

#[test]
fn relocating_a_changelog_partition_moves_each_group_with_its_buckets_and_drops_orphan_buckets() {
    let mut records: HashMap<String, Vec<u8>> = format_1_records().into_iter().collect();
    records.insert("#3|{}|default|alertname=\"Gone\"".into(), b"{}".to_vec());
    let pg = "{}|default|alertname=\"PgDown\"";
    // PgDown's group goes to partition 5, every other stays in 0.
    let relocation = changelog::relocate(&records, 0, |g| if g.key().0 == pg { 5 } else { 0 }).unwrap();
    assert_eq!(relocation.incidents.len(), 1, "{:?}", relocation.incidents);
    assert!(relocation.incidents[0].0.starts_with("inc-") && relocation.incidents[0].1 == 5);
    let mut moved: Vec<(String, Option<i32>)> = relocation.records;
    moved.sort();
    let pg_buckets = records.keys().filter(|k| k.starts_with('#') && k.ends_with(pg)).count();
    assert!(pg_buckets > 0, "the fixture's PgDown group has buckets");
    assert_eq!(moved.iter().filter(|(_, to)| *to == Some(5)).count(), 1 + pg_buckets, "{moved:?}");
    assert!(moved.contains(&(pg.to_string(), Some(5))), "{moved:?}");
    assert!(moved.contains(&("#3|{}|default|alertname=\"Gone\"".to_string(), None)), "{moved:?}");
    assert_eq!(moved.len(), 2 + pg_buckets, "nothing else moves: {moved:?}");
    let staying = changelog::relocate(&records, 0, |_| 0).unwrap();
    assert_eq!(staying.records.len(), 1, "only the orphan bucket when every group stays");
    assert!(staying.incidents.is_empty());
}
