//! Alertmanager's configuration file (`alertmanager.yml`), read as it is into Quench's one route
//! model: the route tree with its receivers (names defined once, routes naming only defined
//! receivers and intervals), `global.resolve_timeout` and the receivers' global defaults,
//! Alertmanager's defaults (a route without `group_by` puts all its alerts in one group), the
//! time intervals that mute routes, and the inhibition rules. Go templates are not executed:
//! [`RouteTree::notes`](super::RouteTree) says so, for `quench rules check` and start-up.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use serde::Deserialize;

use crate::mute::InhibitRule;

use super::{
    duration,
    interval::{PartSpec, TimeInterval},
    matcher::{is_label_name, Matcher},
    receiver::Receiver,
    route::{GroupBy, Inherited, RouteSpec, RouteTree},
    Timing,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    global: Global,
    route: RouteSpec,
    #[serde(default)]
    receivers: Vec<Named>,
    #[serde(default)]
    inhibit_rules: Vec<InhibitSpec>,
    #[serde(default)]
    time_intervals: Vec<Interval>,
    /// The older name of `time_intervals`.
    #[serde(default)]
    mute_time_intervals: Vec<Interval>,
    #[serde(default)]
    templates: Vec<String>,
}

#[derive(Default, Deserialize)]
struct Global {
    #[serde(default, deserialize_with = "duration::optional")]
    resolve_timeout: Option<Duration>,
    /// `smtp_*`, `slack_api_url`, `pagerduty_url`, …: defaults of the receivers' settings.
    #[serde(flatten)]
    receiver_defaults: serde_yaml::Mapping,
}

/// A receiver: its name, and its settings.
#[derive(Deserialize)]
struct Named {
    name: String,
    #[serde(flatten)]
    settings: serde_yaml::Mapping,
}

/// Alertmanager's `global` settings besides `resolve_timeout`: receivers' defaults.
const GLOBAL_KEYS: &[&str] = &[
    "http_config",
    "smtp_from",
    "smtp_hello",
    "smtp_smarthost",
    "smtp_auth_username",
    "smtp_auth_password",
    "smtp_auth_password_file",
    "smtp_auth_secret",
    "smtp_auth_identity",
    "smtp_require_tls",
    "slack_api_url",
    "slack_api_url_file",
    "victorops_api_key",
    "victorops_api_key_file",
    "victorops_api_url",
    "pagerduty_url",
    "opsgenie_api_key",
    "opsgenie_api_key_file",
    "opsgenie_api_url",
    "wechat_api_url",
    "wechat_api_secret",
    "wechat_api_corp_id",
    "telegram_api_url",
    "webex_api_url",
];

/// An inhibition rule, new and legacy forms; read and checked as Alertmanager checks it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InhibitSpec {
    #[serde(default)]
    source_matchers: Vec<String>,
    #[serde(default)]
    target_matchers: Vec<String>,
    #[serde(default)]
    source_match: BTreeMap<String, String>,
    #[serde(default)]
    source_match_re: BTreeMap<String, String>,
    #[serde(default)]
    target_match: BTreeMap<String, String>,
    #[serde(default)]
    target_match_re: BTreeMap<String, String>,
    #[serde(default)]
    equal: Vec<String>,
}

impl InhibitSpec {
    /// The rule, checked as Alertmanager checks it: both forms of matchers on each side.
    fn build(self) -> Result<InhibitRule, String> {
        let names = self.source_match.keys().chain(self.target_match.keys()).chain(&self.equal);
        if let Some(name) = names.into_iter().find(|name| !is_label_name(name)) {
            return Err(format!("`{name}` is not a label name"));
        }
        let side = |matchers: &[String], equal: &BTreeMap<String, String>, regex: &BTreeMap<String, String>| {
            let mut out = Vec::new();
            for text in matchers {
                out.extend(Matcher::parse_list(text)?);
            }
            out.extend(equal.iter().map(|(label, value)| Matcher::equal(label, value)));
            for (label, pattern) in regex {
                out.push(Matcher::regex(label, pattern).map_err(|e| format!("match_re.{label}: {e}"))?);
            }
            Ok::<_, String>(out)
        };
        Ok(InhibitRule {
            source: side(&self.source_matchers, &self.source_match, &self.source_match_re)?,
            target: side(&self.target_matchers, &self.target_match, &self.target_match_re)?,
            equal: self.equal,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Interval {
    name: String,
    time_intervals: Vec<PartSpec>,
}

/// Parses an Alertmanager configuration into the route tree.
pub fn parse(text: &str) -> Result<RouteTree, String> {
    let file: File = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    if let Some(key) =
        file.global.receiver_defaults.keys().filter_map(|k| k.as_str()).find(|k| !GLOBAL_KEYS.contains(k))
    {
        return Err(format!("global: unknown key `{key}`"));
    }
    let receivers = unique("receivers", file.receivers.iter().map(|r| &r.name))?;
    let named = file.time_intervals.into_iter().chain(file.mute_time_intervals);
    let mut intervals = BTreeMap::new();
    for Interval { name, time_intervals } in named {
        let interval = TimeInterval::parse(time_intervals).map_err(|e| format!("time interval `{name}`: {e}"))?;
        if intervals.insert(name.clone(), interval).is_some() {
            return Err(format!("time_intervals: `{name}` is defined twice"));
        }
    }
    if file.route.receiver.is_none() {
        return Err("route: the root route must name a receiver".into());
    }
    let mut inhibit_rules = Vec::new();
    for (i, rule) in file.inhibit_rules.into_iter().enumerate() {
        inhibit_rules.push(rule.build().map_err(|e| format!("inhibit_rules[{i}]: {e}"))?);
    }
    let defaults = Inherited {
        group_by: GroupBy::Labels(Vec::new()),
        timing: Timing {
            resolve_timeout: file.global.resolve_timeout.unwrap_or(Duration::from_secs(300)),
            // Alertmanager never closes a group that still fires; Quench's max_incident_age is
            // an addition, off unless a route sets it.
            max_incident_age: Duration::MAX,
            ..Timing::default()
        },
        receiver: None,
    };
    let mut tree = RouteTree::from_spec(file.route, &defaults, &|name| receivers.contains(name), intervals)?;
    tree.inhibit_rules = inhibit_rules;
    tree.receiver_defaults = file.global.receiver_defaults;
    let mut templated = Vec::new();
    for Named { name, settings } in file.receivers {
        let receiver = Receiver::parse(&name, &settings)?;
        if receiver.integrations.iter().any(|i| serde_yaml::to_string(&i.settings).is_ok_and(|s| s.contains("{{"))) {
            templated.push(name.clone());
        }
        tree.receivers.insert(name, receiver);
    }
    if !file.templates.is_empty() || !templated.is_empty() {
        tree.notes.push(format!(
            "Go templates are not executed (receivers using them: {}); Quench's own messages are sent",
            if templated.is_empty() { "none".to_string() } else { templated.join(", ") }
        ));
    }
    Ok(tree)
}

fn unique<'a>(key: &str, names: impl IntoIterator<Item = &'a String>) -> Result<BTreeSet<String>, String> {
    let mut seen = BTreeSet::new();
    for name in names {
        if !seen.insert(name.clone()) {
            return Err(format!("{key}: `{name}` is defined twice"));
        }
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const FILE: &str = r#"
global:
  resolve_timeout: 2m
  smtp_smarthost: mail.example.org:587
route:
  receiver: default
  group_by: [alertname, cluster]
  routes:
    - matchers: ['team="dba"', 'env=~"prod|staging"']
      receiver: dba
      group_wait: 10s
      continue: true
    - match: {service: api}
      match_re: {severity: "critical|page"}
      receiver: api-pager
      mute_time_intervals: [weekends]
      group_by: ['...']
receivers:
  - name: default
  - name: dba
    email_configs: [{to: dba@example.org}]
  - name: api-pager
    pagerduty_configs: [{routing_key: x}]
time_intervals:
  - name: weekends
    time_intervals: [{weekdays: [saturday, sunday]}]
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [cluster]
"#;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn receivers(tree: &RouteTree, pairs: &[(&str, &str)]) -> Vec<String> {
        tree.routes_for(&labels(pairs)).iter().map(|r| r.receiver.clone().unwrap()).collect()
    }

    #[test]
    fn an_alertmanager_file_routes_to_its_receivers_with_its_defaults() {
        let tree = parse(FILE).unwrap();
        assert_eq!(
            receivers(&tree, &[("team", "dba"), ("env", "prod"), ("service", "api"), ("severity", "page")]),
            ["dba", "api-pager"]
        );
        assert_eq!(receivers(&tree, &[("team", "dba"), ("env", "dev")]), ["default"]);
        let dba = &tree.routes_for(&labels(&[("team", "dba"), ("env", "prod")]))[0];
        assert_eq!(dba.timing.group_wait, Duration::from_secs(10));
        assert_eq!(dba.timing.resolve_timeout, Duration::from_secs(120), "global.resolve_timeout");
        assert_eq!(dba.group_by, GroupBy::Labels(vec!["alertname".into(), "cluster".into()]), "inherited");
        assert!(tree.notes.is_empty(), "everything is applied: {:?}", tree.notes);
        assert_eq!(tree.inhibit_rules.len(), 1);
        let api = &tree.routes_for(&labels(&[("service", "api"), ("severity", "page")]))[0];
        assert_eq!(api.mute_time_intervals, ["weekends"]);
        assert!(tree.muted(&api.id, 1_795_910_400_000), "Sunday 2026-11-29 is a weekend");
        assert!(!tree.muted(&api.id, 1_795_996_800_000), "Monday 2026-11-30 is not");
        assert!(!tree.muted(&tree.root.id, 1_795_910_400_000), "the root has no intervals");
    }

    #[test]
    fn without_group_by_a_route_is_one_group_as_in_alertmanager() {
        let tree = parse("route: {receiver: r}\nreceivers: [{name: r}]\n").unwrap();
        assert_eq!(tree.root.group_by, GroupBy::Labels(vec![]));
        assert_eq!(tree.root.timing, Timing { max_incident_age: Duration::MAX, ..Timing::default() });
    }

    #[test]
    fn mistakes_are_refused_with_where_they_are() {
        let cases = [
            ("route: {receiver: nobody}\nreceivers: [{name: r}]\n", "receiver `nobody` is not defined"),
            ("route: {}\nreceivers: [{name: r}]\n", "the root route must name a receiver"),
            ("route: {receiver: r}\nreceivers: [{name: r}, {name: r}]\n", "`r` is defined twice"),
            (
                "route: {receiver: r, routes: [{mute_time_intervals: [never]}]}\nreceivers: [{name: r}]\n",
                "route 0.0: time interval `never` is not defined",
            ),
            ("route: {receiver: r, group_wiat: 1m}\nreceivers: [{name: r}]\n", "unknown field `group_wiat`"),
            ("route:\n  receiver: r\n  routes:\n    - matchers: ['a=\"b']\nreceivers: [{name: r}]\n", "route 0.0"),
            ("route: {receiver: r}\nreceivers: [{name: r}]\nsilences: []\n", "unknown field `silences`"),
            ("route: {receiver: r, group_wait: soon}\nreceivers: [{name: r}]\n", "line 1"),
            (
                "route: {receiver: r}\nreceivers: [{name: r}]\ninhibit_rules: [{source_matchers: ['a=\"b'], equal: [x]}]\n",
                "inhibit_rules[0]",
            ),
            (
                "route: {receiver: r}\nreceivers: [{name: r}]\ninhibit_rules: [{target_match_re: {a: '('}}]\n",
                "inhibit_rules[0]: match_re.a",
            ),
            ("route: {receiver: r}\nreceivers: [{name: r}]\ninhibit_rules: [{equal: ['not-a-label']}]\n", "not a label name"),
            ("route: {receiver: r}\nreceivers: [{name: r}]\ninhibit_rules: [{sauce_matchers: []}]\n", "sauce_matchers"),
            ("global: {resolve_timout: 5m}\nroute: {receiver: r}\nreceivers: [{name: r}]\n", "global: unknown key `resolve_timout`"),
        ];
        for (file, expected) in cases {
            let e = parse(file).unwrap_err();
            assert!(e.contains(expected), "{file}: {e}");
        }
    }
}
