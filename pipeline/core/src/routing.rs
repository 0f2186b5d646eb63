//! Routing rules: which team hears about an incident, on which channels, under which escalation
//! policy. A YAML file (`worker.routing`), reloaded like the windowing rules; the first route whose
//! matchers all hold decides, else `default`. The worker stamps every routing event with the
//! decision, after classification, so routes can use the category, severity and priority.
//!
//! ```yaml
//! default: { team: ops, targets: [{ channel: teams, target: ops }] }
//! routes:
//!   - match: { category: database, severity: [critical, high], labels: { env: "prod|staging" } }
//!     team: dba
//!     targets: [{ channel: pagerduty, target: dba }, { channel: slack, target: dba }]
//!     escalation_policy: dba-critical
//! ```
//!
//! A target is the name of one configured under `[notify.<channel>]` (`[notify.slack.dba]`); the
//! notifier dead-letters deliveries to names it does not know. With an Alertmanager rules file,
//! an event's targets are first its route's receiver's integrations, then these.

use std::{collections::BTreeMap, path::Path};

use quench_schemas::{Channel, RoutingEvent, RoutingTarget};
use serde::Deserialize;

use crate::rules::Matcher;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    pub team: Option<String>,
    #[serde(default)]
    pub targets: Vec<Target>,
    pub escalation_policy: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// slack, pagerduty, teams, email or webhook.
    pub channel: Channel,
    /// The name of a target configured under `[notify.<channel>]`.
    pub target: String,
}

/// One value or a list of values, any of which matches.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn contains(&self, value: Option<&str>) -> bool {
        let Some(value) = value else { return false };
        match self {
            Self::One(v) => v == value,
            Self::Many(vs) => vs.iter().any(|v| v == value),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchFile {
    category: Option<OneOrMany>,
    severity: Option<OneOrMany>,
    priority: Option<OneOrMany>,
    tenant: Option<OneOrMany>,
    /// Shorthand for `matchers: ['service="..."']`.
    service: Option<String>,
    /// Label name → regular expression over the whole value: shorthand for `name=~"..."`.
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// Alertmanager matchers over the incident's common labels, as in the windowing rules.
    #[serde(default)]
    matchers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    #[serde(rename = "match")]
    matchers: MatchFile,
    #[serde(flatten)]
    destination: Destination,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    default: Destination,
    #[serde(default)]
    routes: Vec<RouteFile>,
}

struct Route {
    category: Option<OneOrMany>,
    severity: Option<OneOrMany>,
    priority: Option<OneOrMany>,
    tenant: Option<OneOrMany>,
    /// Over the incident's common labels, with Alertmanager's semantics (the windowing rules'
    /// matcher): a label the incident lacks matches as the empty string.
    labels: Vec<Matcher>,
    destination: Destination,
}

#[derive(Default)]
pub struct RoutingRules {
    default: Destination,
    routes: Vec<Route>,
}

impl RoutingRules {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let file: RulesFile = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        let routes = file
            .routes
            .into_iter()
            .enumerate()
            .map(|(i, route)| {
                let MatchFile { category, severity, priority, tenant, service, labels, matchers } = route.matchers;
                let mut all: Vec<Matcher> = service.iter().map(|s| Matcher::equal("service", s)).collect();
                for (name, pattern) in labels {
                    all.push(
                        Matcher::regex(&name, &pattern).map_err(|e| format!("routes[{i}].match.labels.{name}: {e}"))?,
                    );
                }
                for (j, text) in matchers.iter().enumerate() {
                    all.extend(Matcher::parse_list(text).map_err(|e| format!("routes[{i}].match.matchers[{j}]: {e}"))?);
                }
                let labels = all;
                Ok(Route { category, severity, priority, tenant, labels, destination: route.destination })
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { default: file.default, routes })
    }

    /// The destination of an incident's routing event.
    pub fn destination(&self, event: &RoutingEvent) -> &Destination {
        let holds = |m: &Option<OneOrMany>, value: Option<&str>| m.as_ref().is_none_or(|m| m.contains(value));
        self.routes
            .iter()
            .find(|r| {
                holds(&r.category, event.category.as_deref())
                    && holds(&r.severity, Some(&event.severity))
                    && holds(&r.priority, event.priority.as_deref())
                    && holds(&r.tenant, Some(&event.tenant))
                    && r.labels.iter().all(|m| m.matches(&event.common_labels))
            })
            .map_or(&self.default, |r| &r.destination)
    }

    /// Stamps `event` with its destination.
    pub fn apply(&self, event: &mut RoutingEvent) {
        let destination = self.destination(event);
        event.team.clone_from(&destination.team);
        event.escalation_policy.clone_from(&destination.escalation_policy);
        // After the receiver's integrations, which an Alertmanager rules file put there.
        for target in &destination.targets {
            let target = RoutingTarget::new(target.channel.as_str(), target.target.clone());
            if !event.targets.iter().any(|t| t.channel == target.channel && t.target == target.target) {
                event.targets.push(target);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use quench_schemas::{IncidentStatus, RoutingReason};

    use super::*;

    const RULES: &str = r##"
default:
  team: ops
  targets: [{ channel: slack, target: ops }]
routes:
  - match: { category: database, severity: [critical, high], labels: { env: "prod|staging" } }
    team: dba
    targets:
      - { channel: pagerduty, target: dba }
      - { channel: slack, target: dba }
    escalation_policy: dba-critical
  - match: { service: "billing-api", tenant: acme }
    team: payments
    targets: [{ channel: webhook, target: payments }]
"##;

    fn event(category: &str, severity: &str, labels: &[(&str, &str)]) -> RoutingEvent {
        RoutingEvent {
            event_id: "e".into(),
            incident_id: "i".into(),
            reason: RoutingReason::Opened,
            tenant: "acme".into(),
            status: IncidentStatus::Open,
            title: "t".into(),
            summary: String::new(),
            severity: severity.into(),
            priority: Some("P2".into()),
            category: Some(category.into()),
            alert_count: 1,
            common_labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            team: None,
            targets: Vec::new(),
            escalation_policy: None,
            incident_version: 1,
            emitted_at: 0,
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

    #[test]
    fn the_first_matching_route_decides_else_the_default() {
        let rules = RoutingRules::parse(RULES).unwrap();
        let mut e = event("database", "critical", &[("env", "prod")]);
        rules.apply(&mut e);
        assert_eq!(e.team.as_deref(), Some("dba"));
        assert_eq!(e.escalation_policy.as_deref(), Some("dba-critical"));
        assert_eq!(e.targets[0], RoutingTarget::new("pagerduty", "dba"));
        let mut e = event("database", "medium", &[("env", "prod")]);
        rules.apply(&mut e);
        assert_eq!(e.team.as_deref(), Some("ops"), "severity not in the list");
        let mut e = event("database", "critical", &[("env", "production")]);
        rules.apply(&mut e);
        assert_eq!(e.team.as_deref(), Some("ops"), "label patterns match the whole value");
        let mut e = event("runtime", "low", &[("service", "billing-api")]);
        rules.apply(&mut e);
        assert_eq!(e.team.as_deref(), Some("payments"));
        assert_eq!(e.targets[0].channel, "webhook");
    }

    /// Routing uses the windowing rules' matcher: Alertmanager's syntax and semantics, where a label
    /// the incident lacks is the empty string (before, a missing label never matched).
    #[test]
    fn label_matchers_are_alertmanagers() {
        let rules = RoutingRules::parse(
            "routes:\n  - match: { matchers: ['env!=\"prod\"', 'team=~\"db|\"'] }\n    team: not-prod\n",
        )
        .unwrap();
        let mut e = event("database", "critical", &[]);
        rules.apply(&mut e);
        assert_eq!(e.team.as_deref(), Some("not-prod"), "no env and no team: both match as empty");
        let mut e = event("database", "critical", &[("env", "prod")]);
        rules.apply(&mut e);
        assert_eq!(e.team, None, "the default");
        let e = RoutingRules::parse("routes:\n  - match: { matchers: ['env=~\"(\"'] }\n").err().unwrap();
        assert!(e.contains("routes[0].match.matchers[0]"), "{e}");
    }

    #[test]
    fn mistakes_are_named() {
        let e = RoutingRules::parse("routes:\n  - match: { colour: red }\n    team: x\n").err().unwrap();
        assert!(e.contains("colour"), "{e}");
        let e = RoutingRules::parse("routes:\n  - match: { labels: { env: \"(\" } }\n").err().unwrap();
        assert!(e.contains("routes[0].match.labels.env"), "{e}");
        let e = RoutingRules::parse("default: { targets: [{ channel: fax, target: x }] }\n").err().unwrap();
        assert!(e.contains("fax"), "{e}");
    }
}
