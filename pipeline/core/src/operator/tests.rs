use std::{cell::RefCell, time::Duration};

use quench_schemas::{ActionKind, AlertStatus, RoutingReason, FALLBACK};

use super::*;
use crate::testing::alert;

const S: i64 = 1_000;
const T0: i64 = 1_764_000_000_000;

/// group_wait 30 s, group_interval 5 min: the default tree's timings with short waits.
const RULES: &str = "[route]\ngroup_by = [\"alertname\"]\ngroup_wait = \"30s\"\ngroup_interval = \"5m\"\n";

const ROUTING: &str = "
default: { team: ops, targets: [{ channel: slack, target: ops }] }
routes:
  - match: { category: database, severity: critical }
    team: dba
    targets: [{ channel: pagerduty, target: dba }]
    escalation_policy: dba-critical
";

/// A FAKE classifier (unit tests only): answers every subject with `by`, as a database outage.
struct Fake {
    by: RefCell<String>,
    asked: RefCell<usize>,
}

impl Fake {
    fn new(by: &str) -> Self {
        Self { by: RefCell::new(by.into()), asked: RefCell::new(0) }
    }
}

impl Classify for Fake {
    fn classify_now(&self, subjects: &[Subject]) -> anyhow::Result<Vec<Classification>> {
        *self.asked.borrow_mut() += subjects.len();
        Ok(subjects
            .iter()
            .map(|s| Classification {
                severity: "critical".into(),
                priority: "P1".into(),
                category: "database".into(),
                confidence: 0.9,
                summary: format!("{} is down", s.alertnames.join(", ")),
                classified_by: self.by.borrow().clone(),
            })
            .collect())
    }

    fn signature(&self, subject: &Subject) -> String {
        subject.alertnames.join(",")
    }
}

/// An operator on a fresh partition, its rules, and a wall clock that the test moves: lateness
/// 0, and an idle partition's event time follows the wall clock at once.
struct Harness {
    operator: Operator,
    rules: RouteTree,
    mutes: Mutes,
    routing: RoutingRules,
    start: Instant,
}

impl Harness {
    fn new() -> Self {
        let start = Instant::now();
        Self {
            operator: Operator::restore(Vec::new(), Scale::default(), Duration::ZERO, Duration::ZERO, start),
            rules: RouteTree::parse(RULES).unwrap(),
            mutes: Mutes::default(),
            routing: RoutingRules::parse(ROUTING).unwrap(),
            start,
        }
    }

    /// The wall-clock instant at event time `at` (event time and wall clock start together).
    fn wall(&self, at: i64) -> Instant {
        self.start + Duration::from_millis((at - T0) as u64)
    }

    fn send(&mut self, alert: &Alert) -> Result<bool, TooManyGroups> {
        let wall = self.wall(alert.received_at);
        self.operator.alert(alert, None, &self.rules, &mut self.mutes, wall)
    }

    /// The consumer ran dry, then the wall clock reached event time `at`: flush.
    fn flush_at(&mut self, at: i64, classifier: &Fake) -> Outputs {
        self.operator.caught_up();
        let check = Check { rules: &self.rules, mutes: &self.mutes };
        self.operator.flush(self.wall(at), check, classifier, &self.routing).unwrap()
    }
}

#[test]
fn a_flushed_incident_is_classified_before_its_routing_event_is_derived_and_routed() {
    let mut h = Harness::new();
    let classifier = Fake::new("local");
    h.send(&alert("PgDown", "db-1", T0)).unwrap();
    h.send(&alert("PgDown", "db-2", T0 + S)).unwrap();
    let out = h.flush_at(T0 + 10 * S, &classifier);
    assert!(out.incidents.is_empty() && out.routing.is_empty(), "nothing before group_wait");
    assert_eq!(
        out.changes.iter().filter(|(key, _)| !key.starts_with('#')).count(),
        1,
        "the new group goes to the changelog (its alerts in records of their own)"
    );

    let out = h.flush_at(T0 + 31 * S, &classifier);
    assert_eq!(out.incidents.len(), 1);
    let incident = &out.incidents[0];
    assert_eq!((incident.alert_count, incident.severity.as_str()), (2, "critical"));
    assert_eq!(incident.classified_by.as_deref(), Some("local"));
    assert_eq!(incident.summary, "PgDown is down");
    let [event] = &out.routing[..] else { panic!("one announcement: {:?}", out.routing) };
    assert_eq!(event.reason, RoutingReason::Opened);
    assert_eq!(
        (event.severity.as_str(), event.priority.as_deref(), event.category.as_deref(), event.summary.as_str()),
        ("critical", Some("P1"), Some("database"), "PgDown is down"),
        "the event carries the classification it was derived after"
    );
    assert_eq!(event.team.as_deref(), Some("dba"), "routing rules decided on the classification");
    assert_eq!(event.escalation_policy.as_deref(), Some("dba-critical"));
    assert_eq!(event.targets.len(), 1);
    assert_eq!(*classifier.asked.borrow(), 1, "one subject per flushed incident");
}

#[test]
fn an_alert_lacking_a_group_by_label_groups_by_the_labels_it_has() {
    let mut h = Harness::new();
    h.rules = RouteTree::parse("[route]\ngroup_by = [\"cluster\"]\ngroup_wait = \"30s\"\n").unwrap();
    h.send(&alert("PgDown", "db-1", T0)).unwrap();
    h.send(&alert("DiskFull", "db-2", T0)).unwrap();
    let out = h.flush_at(T0 + 31 * S, &Fake::new("local"));
    let [incident] = &out.incidents[..] else { panic!("one group, as in Alertmanager: {:?}", out.incidents) };
    assert_eq!(incident.alert_count, 2);
}

#[test]
fn alerts_that_would_open_more_groups_than_the_partition_may_hold_are_refused() {
    let mut h = Harness::new();
    h.operator = std::mem::replace(
        &mut h.operator,
        Operator::restore(Vec::new(), Scale::default(), Duration::ZERO, Duration::ZERO, h.start),
    )
    .with_max_groups(2);
    h.send(&alert("A", "h1", T0)).unwrap();
    h.send(&alert("B", "h1", T0)).unwrap();
    assert_eq!(h.send(&alert("C", "h1", T0)).unwrap_err(), TooManyGroups { limit: 2, tenant: None });
    h.send(&alert("A", "h2", T0)).expect("an open group still takes alerts");
    assert_eq!(h.operator.open_groups(), 2);
}

#[test]
fn a_tenant_cannot_open_more_groups_than_its_own_limit_and_others_still_can() {
    let mut h = Harness::new();
    h.operator = std::mem::replace(
        &mut h.operator,
        Operator::restore(Vec::new(), Scale::default(), Duration::ZERO, Duration::ZERO, h.start),
    )
    .with_max_groups_per_tenant(1);
    let of = |tenant: &str, name: &str| Alert { tenant: tenant.into(), ..alert(name, "h1", T0) };
    h.send(&of("a", "A")).unwrap();
    let refused = h.send(&of("a", "B")).unwrap_err();
    assert_eq!(refused, TooManyGroups { limit: 1, tenant: Some("a".into()) });
    assert!(refused.to_string().contains("worker.max_open_groups_per_tenant"), "{refused}");
    h.send(&of("b", "B")).expect("another tenant's storm is not this one's");
    h.send(&of("a", "A")).expect("an open group still takes alerts");
    assert_eq!(h.operator.open_groups(), 2);
}

#[test]
fn alerts_behind_the_watermark_are_reported_late_and_still_counted() {
    let mut h = Harness::new();
    assert!(!h.send(&alert("PgDown", "db-1", T0 + 10 * S)).unwrap());
    let late = alert("PgDown", "db-2", T0);
    let wall = h.wall(T0 + 10 * S);
    assert!(h.operator.alert(&late, None, &h.rules, &mut h.mutes, wall).unwrap(), "older than the newest event");
    let out = h.flush_at(T0 + 41 * S, &Fake::new("local"));
    assert_eq!(out.incidents[0].alert_count, 2);
}

#[test]
fn incidents_answered_in_place_of_the_llm_are_emitted_again_once_it_answers_without_a_new_announcement() {
    let mut h = Harness::new();
    // The alert stays firing without re-sends: only the LLM's answer changes the incident.
    h.rules = RouteTree::parse(&format!("{RULES}resolve_timeout = \"1h\"\n")).unwrap();
    let classifier = Fake::new(FALLBACK);
    h.send(&alert("PgDown", "db-1", T0)).unwrap();
    let first = h.flush_at(T0 + 31 * S, &classifier);
    assert_eq!(first.incidents[0].classified_by.as_deref(), Some(FALLBACK));
    assert_eq!(h.operator.refined(&["OtherAlert".to_string()]), 0, "not waiting for that one");

    *classifier.by.borrow_mut() = "anthropic/claude".into();
    assert_eq!(h.operator.refined(&["PgDown".to_string()]), 1);
    let early = h.flush_at(T0 + 40 * S, &classifier);
    assert!(early.incidents.is_empty(), "the update waits for group_interval, as any other: {early:?}");
    let again = h.flush_at(T0 + 331 * S, &classifier);
    let [incident] = &again.incidents[..] else { panic!("{again:?}") };
    assert_eq!(incident.classified_by.as_deref(), Some("anthropic/claude"));
    assert_eq!(incident.version, first.incidents[0].version + 1);
    assert!(again.routing.is_empty(), "a better classification is an update, not a new notification");
    assert_eq!(h.operator.refined(&["PgDown".to_string()]), 0, "no longer waiting");
}

#[test]
fn an_llm_answer_for_an_ended_incident_does_not_hurry_the_next_group_of_its_key() {
    let mut h = Harness::new();
    let classifier = Fake::new(FALLBACK);
    let mut a = alert("PgDown", "db-1", T0);
    h.send(&a).unwrap();
    h.flush_at(T0 + 31 * S, &classifier);
    a.status = AlertStatus::Resolved;
    a.ends_at = Some(T0 + 40 * S);
    a.received_at = T0 + 40 * S;
    h.send(&a).unwrap();
    let ended = h.flush_at(T0 + 331 * S, &Fake::new("local"));
    assert_eq!(ended.incidents[0].status, IncidentStatus::Resolved);
    // The same key opens a new group, which must wait out its group_wait (30 s).
    h.send(&alert("PgDown", "db-2", T0 + 400 * S)).unwrap();
    assert_eq!(h.operator.refined(&["PgDown".to_string()]), 0, "the incident it waited for has ended");
    assert!(h.flush_at(T0 + 401 * S, &classifier).incidents.is_empty(), "no early flush of the new group");
}

#[test]
fn an_acknowledgement_is_announced_at_the_next_flush_and_a_resolution_ends_the_group() {
    let mut h = Harness::new();
    let classifier = Fake::new("local");
    h.send(&alert("PgDown", "db-1", T0)).unwrap();
    let id = h.flush_at(T0 + 31 * S, &classifier).incidents[0].incident_id.clone();
    let action = |kind, at| IncidentAction {
        action_id: format!("a-{at}"),
        incident_id: id.clone(),
        kind,
        actor: "alice".into(),
        comment: None,
        at,
        tenant: "default".into(),
        token: "ops-bot".into(),
    };
    assert!(h.operator.action(&action(ActionKind::Acknowledge, T0 + 40 * S), h.wall(T0 + 40 * S)));
    let out = h.flush_at(T0 + 40 * S, &classifier);
    assert_eq!(out.routing.iter().map(|e| e.reason).collect::<Vec<_>>(), [RoutingReason::Acknowledged]);
    assert_eq!(out.incidents[0].status, IncidentStatus::Acknowledged);

    assert!(h.operator.action(&action(ActionKind::Resolve, T0 + 50 * S), h.wall(T0 + 50 * S)));
    let out = h.flush_at(T0 + 50 * S, &classifier);
    assert_eq!(out.routing.iter().map(|e| e.reason).collect::<Vec<_>>(), [RoutingReason::Resolved]);
    assert!(
        !out.changes.is_empty() && out.changes.iter().all(|(_, value)| value.is_none()),
        "tombstones for the ended group"
    );
    assert_eq!(h.operator.open_groups(), 0);
}

#[test]
fn a_restored_operator_continues_the_groups_of_the_changelog() {
    let mut h = Harness::new();
    let classifier = Fake::new("local");
    h.send(&alert("PgDown", "db-1", T0)).unwrap();
    let out = h.flush_at(T0 + 10 * S, &classifier);
    let groups = changelog::read(out.changes.into_iter().map(|(key, value)| (key, value.unwrap()))).unwrap();

    let mut restored = Harness::new();
    restored.operator =
        Operator::restore(groups, Scale::default(), Duration::ZERO, Duration::ZERO, restored.wall(T0 + 10 * S));
    restored.send(&alert("PgDown", "db-2", T0 + 20 * S)).unwrap();
    let out = restored.flush_at(T0 + 31 * S, &classifier);
    assert_eq!(out.incidents[0].alert_count, 2, "the restored group kept its first alert");
    assert_eq!(out.routing.len(), 1, "and opens its incident once");
}

#[test]
fn a_route_muted_by_a_time_interval_announces_nothing_until_the_interval_ends() {
    let mut h = Harness::new();
    // T0 is 16:00 UTC: the route is muted until 16:10.
    h.rules = RouteTree::parse_alertmanager(
        "global: {resolve_timeout: 1h}\nroute:\n  receiver: r\n  group_by: [alertname]\n  group_wait: 30s\n  group_interval: 5m\n  routes:\n    \
         - matchers: [alertname=\"PgDown\"]\n      mute_time_intervals: [maintenance]\nreceivers: [{name: r}]\n\
         time_intervals:\n  - name: maintenance\n    time_intervals: [{times: [{start_time: '16:00', end_time: '16:10'}]}]\n",
    )
    .unwrap();
    let classifier = Fake::new("local");
    h.send(&alert("PgDown", "db-1", T0)).unwrap();
    h.send(&alert("DiskFull", "db-1", T0)).unwrap();
    let out = h.flush_at(T0 + 31 * S, &classifier);
    let reasons = |out: &Outputs| out.routing.iter().map(|e| (e.title.clone(), e.reason)).collect::<Vec<_>>();
    assert_eq!(reasons(&out), [("DiskFull".to_string(), RoutingReason::Opened)], "the other route is not muted");
    let out = h.flush_at(T0 + 331 * S, &classifier);
    assert!(out.routing.is_empty(), "16:05: still muted: {:?}", reasons(&out));
    let out = h.flush_at(T0 + 631 * S, &classifier);
    assert_eq!(reasons(&out), [("PgDown".to_string(), RoutingReason::Opened)], "announced once the mute ended");
}

#[test]
fn an_inhibited_alert_is_recorded_on_its_incident_with_the_source_incident_and_not_announced() {
    let mut h = Harness::new();
    h.rules = RouteTree::parse_alertmanager(
        "route:\n  receiver: r\n  group_by: [alertname]\n  group_wait: 30s\n  group_interval: 5m\n\
         receivers: [{name: r}]\n\
         inhibit_rules:\n  - source_matchers: [alertname=\"NodeDown\"]\n    target_matchers: [alertname=\"PgDown\"]\n    \
         equal: [instance]\n",
    )
    .unwrap();
    let classifier = Fake::new("local");
    h.send(&alert("NodeDown", "db-1", T0)).unwrap();
    h.send(&alert("PgDown", "db-1", T0)).unwrap();
    h.send(&alert("PgDown", "db-2", T0)).unwrap();
    let out = h.flush_at(T0 + 31 * S, &classifier);
    let source = out.incidents.iter().find(|i| i.title == "NodeDown").expect("the source's incident");
    let target = out.incidents.iter().find(|i| i.title == "PgDown").expect("the target's incident");
    assert_eq!(target.muted_alerts, 1, "db-1's PgDown is inhibited, db-2's is not");
    assert_eq!(target.inhibited_by, std::slice::from_ref(&source.incident_id), "by the incident of the source");
    let [_, pg] = &out.routing[..] else { panic!("both groups announce: {:?}", out.routing) };
    let listed: Vec<&str> = pg.alerts.iter().map(|a| a.labels["instance"].as_str()).collect();
    assert_eq!(listed, ["db-2"], "the inhibited alert is not in the notification");
}

/// LinkDown, NodeUnreachable 20 s later in the same cluster (history says it follows), and
/// LinkDown again after both groups flushed once, all flushed as one backlog, under a route
/// grouping by alertname with `route_extra`.
fn link_down_then_node_unreachable(route_extra: &str) -> Outputs {
    use crate::correlate::{Associations, Correlator, Dependencies, Settings};
    // History: every hour, LinkDown then NodeUnreachable 20 s later.
    let history: Vec<(String, String, i64)> = (0..24)
        .flat_map(|h| {
            let at = T0 - 48 * 3_600 * S + h * 3_600 * S;
            [("default".into(), "LinkDown".into(), at), ("default".into(), "NodeUnreachable".into(), at + 20 * S)]
        })
        .collect();
    let settings = Settings::default();
    let correlator = Correlator::new(settings, Associations::learn(&history, &settings), Dependencies::default());
    let mut h = Harness::new();
    h.rules = RouteTree::parse(&format!(
        "[route]\ngroup_by = [\"alertname\"]\ngroup_wait = \"30s\"\ngroup_interval = \"1m\"\n{route_extra}"
    ))
    .unwrap();
    h.operator = Operator::restore(Vec::new(), Scale::default(), Duration::ZERO, Duration::ZERO, h.start)
        .with_correlator(correlator);
    let classifier = Fake::new("local");
    let mut sent = |name: &str, at: i64| {
        let mut a = alert(name, "n1", at);
        a.labels.insert("cluster".into(), "c1".into());
        h.send(&a).unwrap();
    };
    sent("LinkDown", T0);
    sent("NodeUnreachable", T0 + 20 * S);
    // A backlog: both groups flush (and the first one flushes again) before the outputs are taken.
    sent("LinkDown", T0 + 120 * S);
    h.flush_at(T0 + 121 * S, &classifier)
}

#[test]
fn an_incident_is_linked_once_when_first_announced_and_never_under_itself() {
    let out = link_down_then_node_unreachable("");
    let parents: Vec<(String, Option<String>)> =
        out.incidents.iter().map(|i| (i.title.clone(), i.parent_incident_id.clone())).collect();
    let link_down = out.incidents.iter().find(|i| i.title == "LinkDown").unwrap().incident_id.clone();
    for (title, parent) in &parents {
        match title.as_str() {
            "LinkDown" => assert_eq!(parent, &None, "a root, never its own child: {parents:?}"),
            _ => assert_eq!(parent.as_ref(), Some(&link_down), "{parents:?}"),
        }
    }
    let child = out.routing.iter().find(|e| e.title == "NodeUnreachable").expect("announced");
    assert!(child.correlation.as_deref().unwrap().starts_with("same cluster `c1`"), "{child:?}");
    assert_eq!(child.parent_incident_id.as_ref(), Some(&link_down), "in the parent's thread");
}

#[test]
fn a_route_may_have_its_linked_incidents_notified_on_their_own() {
    let out = link_down_then_node_unreachable("correlate_separately = true\n");
    let link_down = out.incidents.iter().find(|i| i.title == "LinkDown").unwrap().incident_id.clone();
    let incident = out.incidents.iter().find(|i| i.title == "NodeUnreachable").unwrap();
    assert_eq!(incident.parent_incident_id.as_ref(), Some(&link_down), "linked on the record");
    let child = out.routing.iter().find(|e| e.title == "NodeUnreachable").expect("announced");
    assert_eq!(child.parent_incident_id, None, "notified as an incident of its own");
    let related = child.correlation.as_deref().unwrap();
    assert!(related.starts_with(&format!("related to {link_down}: same cluster `c1`")), "{related}");
}
