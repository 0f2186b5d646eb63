//! Alertmanager's notification semantics as data: every scenario in `tests/conformance/` (see
//! its README) is played through the pure operator in virtual time, one second at a time, and
//! the announcements it makes must be the scenario's notifications, in order, each within its
//! time window.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use quench_core::{
    mute::{Check, Mutes, Silence, SilenceMatcher},
    operator::{Classify, Operator},
    routing::RoutingRules,
    rules::{duration, Matcher, RouteTree},
};
use quench_schemas::{severity::Scale, Alert, AlertStatus, Classification, RoutingEvent, Subject};
use serde::Deserialize;

/// Time 0 of every scenario: 2025-11-24T16:00:00Z, a Monday.
const T0: i64 = 1_764_000_000_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    about: String,
    config: String,
    until: String,
    alerts: Vec<Sent>,
    #[serde(default)]
    silences: Vec<SentSilence>,
    /// The configuration reloaded at a time.
    #[serde(default)]
    reloads: Vec<Reload>,
    notifications: Vec<Expected>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reload {
    at: String,
    config: String,
}

/// A silence made at `at`, muting from `starts` (default: `at`) to `ends`, expired early at
/// `expired` if given.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SentSilence {
    at: String,
    matchers: String,
    #[serde(default)]
    starts: Option<String>,
    ends: String,
    #[serde(default)]
    expired: Option<String>,
}

impl SentSilence {
    fn silence(&self, id: usize) -> Silence {
        let matchers = Matcher::parse_list(&self.matchers).unwrap_or_else(|e| panic!("silence matchers: {e}"));
        Silence {
            id: format!("silence-{id}"),
            matchers: matchers
                .iter()
                .map(|m| SilenceMatcher {
                    name: m.name().into(),
                    value: m.value().into(),
                    is_regex: m.is_regex(),
                    is_equal: m.is_equal(),
                })
                .collect(),
            starts_at: T0 + ms(self.starts.as_deref().unwrap_or(&self.at)),
            ends_at: T0 + ms(&self.ends),
            created_at: T0 + ms(&self.at),
            updated_at: T0 + ms(&self.at),
            created_by: "conformance".into(),
            comment: String::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sent {
    at: String,
    labels: BTreeMap<String, String>,
    #[serde(default)]
    started: Option<String>,
    #[serde(default)]
    resolved: bool,
    #[serde(default = "stateful")]
    stateful: bool,
}

fn stateful() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    at: (String, String),
    reason: String,
    #[serde(default)]
    group: BTreeMap<String, String>,
    #[serde(default)]
    alerts: Option<i64>,
}

/// Answers without an LLM: classification does not decide when anything is announced.
struct Constant;

impl Classify for Constant {
    fn classify_now(&self, subjects: &[Subject]) -> anyhow::Result<Vec<Classification>> {
        Ok(subjects
            .iter()
            .map(|_| Classification {
                severity: "warning".into(),
                priority: "P3".into(),
                category: "application".into(),
                confidence: 1.0,
                summary: String::new(),
                classified_by: "conformance".into(),
            })
            .collect())
    }

    fn signature(&self, subject: &Subject) -> String {
        subject.id.clone()
    }
}

fn ms(text: &str) -> i64 {
    duration::parse(text).unwrap_or_else(|e| panic!("{e}")).as_millis() as i64
}

/// `AlertsAdded` as the scenarios write it: `alerts_added`.
fn reason_name(event: &RoutingEvent) -> String {
    let mut name = String::new();
    for (i, c) in format!("{:?}", event.reason).chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_lowercase());
    }
    name
}

/// Plays a scenario; the announcements made, with the second they were made at.
fn play(scenario: &Scenario) -> Vec<(i64, RoutingEvent)> {
    let mut rules = RouteTree::parse_alertmanager(&scenario.config).unwrap_or_else(|e| panic!("config: {e}"));
    let routing = RoutingRules::parse("default: { team: conformance, targets: [{ channel: webhook, target: r }] }")
        .expect("routing rules parse");
    let start = Instant::now();
    let wall = |at: i64| start + Duration::from_millis(at as u64);
    let mut operator = Operator::restore(Vec::new(), Scale::default(), Duration::ZERO, Duration::ZERO, start);
    let mut mutes = Mutes::default();
    let mut sent = scenario.alerts.iter().peekable();
    let mut announced = Vec::new();
    for second in 0..=ms(&scenario.until) / 1_000 {
        let now = second * 1_000;
        for (id, sent) in scenario.silences.iter().enumerate() {
            let mut silence = sent.silence(id);
            match sent.expired.as_deref().map(ms) {
                Some(expired) if expired == now => {
                    silence.ends_at = T0 + expired;
                    silence.updated_at = T0 + expired;
                }
                _ if ms(&sent.at) == now => {}
                _ => continue,
            }
            mutes.silences.upsert(silence).unwrap_or_else(|e| panic!("silence: {e}"));
        }
        for reload in scenario.reloads.iter().filter(|r| ms(&r.at) == now) {
            rules = RouteTree::parse_alertmanager(&reload.config).unwrap_or_else(|e| panic!("reload: {e}"));
            operator.retime(&rules, wall(now));
        }
        while let Some(alert) = sent.next_if(|a| ms(&a.at) <= now) {
            let at = ms(&alert.at);
            let received = T0 + at;
            let alert = Alert {
                source: "conformance".into(),
                status: if alert.resolved { AlertStatus::Resolved } else { AlertStatus::Firing },
                labels: alert.labels.clone(),
                annotations: BTreeMap::new(),
                starts_at: received - alert.started.as_deref().map_or(0, ms),
                ends_at: alert.resolved.then_some(received),
                received_at: received,
                generator_url: None,
                fingerprint: None,
                tenant: "default".into(),
                stateful: alert.stateful,
            };
            operator.alert(&alert, None, &rules, &mut mutes, wall(at)).expect("room for every group");
        }
        operator.caught_up();
        let out =
            operator.flush(wall(now), Check { rules: &rules, mutes: &mutes }, &Constant, &routing).expect("flush");
        announced.extend(out.routing.into_iter().map(|event| (now, event)));
    }
    announced
}

fn check(path: &Path) -> Result<(), String> {
    let scenario: Scenario =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).map_err(|e| format!("unreadable: {e}"))?;
    if !scenario.alerts.windows(2).all(|pair| ms(&pair[0].at) <= ms(&pair[1].at)) {
        return Err("alerts must be listed in time order".into());
    }
    let announced = play(&scenario);
    let shown: Vec<String> = announced
        .iter()
        .map(|(at, e)| format!("{}s {} {:?} alerts={}", at / 1_000, reason_name(e), e.common_labels, e.alert_count))
        .collect();
    let fail = |why: String| Err(format!("{} ({why}); announced: {shown:#?}", scenario.about));
    if announced.len() != scenario.notifications.len() {
        return fail(format!("{} notifications expected, {} made", scenario.notifications.len(), announced.len()));
    }
    for (i, ((at, event), expected)) in announced.iter().zip(&scenario.notifications).enumerate() {
        let (from, to) = (ms(&expected.at.0), ms(&expected.at.1));
        let labels_match = expected.group.iter().all(|(k, v)| event.common_labels.get(k) == Some(v));
        let count_matches = expected.alerts.is_none_or(|n| n == event.alert_count);
        if !(from..=to).contains(at) || reason_name(event) != expected.reason || !labels_match || !count_matches {
            return fail(format!(
                "notification {i}: expected {} in [{}, {}] with {:?} alerts={:?}",
                expected.reason, expected.at.0, expected.at.1, expected.group, expected.alerts
            ));
        }
    }
    Ok(())
}

#[test]
fn every_scenario_makes_alertmanagers_notifications() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    let failures: Vec<String> = files
        .iter()
        .filter_map(|file| check(file).err().map(|e| format!("{}: {e}", file.file_name().unwrap().to_string_lossy())))
        .collect();
    assert!(failures.is_empty(), "{} of {} scenarios differ:\n{}", failures.len(), files.len(), failures.join("\n\n"));
}
