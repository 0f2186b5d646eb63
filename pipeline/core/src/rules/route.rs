use std::{collections::BTreeMap, path::Path, time::Duration};

use quench_schemas::Alert;

use crate::mute::InhibitRule;

use super::receiver::Receiver;
use serde::{Deserialize, Serialize};

use super::{
    duration,
    holds::Holds,
    interval::TimeInterval,
    linking::Linking,
    matcher::{is_label_name, Matcher},
};

/// The timings of a route, with Alertmanager's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// How long a new group waits for more alerts before its first notification.
    pub group_wait: Duration,
    /// How often a group is re-evaluated for changes after its first notification.
    pub group_interval: Duration,
    /// How long before an unchanged, still-firing incident is notified again.
    pub repeat_interval: Duration,
    /// After how long an alert without `ends_at` that is not re-sent counts as resolved.
    pub resolve_timeout: Duration,
    /// After how long an incident whose alerts never all resolve is closed and a new one opened
    /// for what still fires (a source that never sends resolutions, a condition that never
    /// clears): an incident is a bounded stretch of time, for people and for analytics.
    #[serde(default = "default_max_incident_age")]
    pub max_incident_age: Duration,
    /// Quench's flap and transient holds (off unless configured; older changelogs: off).
    #[serde(default)]
    pub holds: Holds,
    /// Its part in correlation across groups (older changelogs: the global settings).
    #[serde(default)]
    pub linking: Linking,
}

fn default_max_incident_age() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
            resolve_timeout: Duration::from_secs(300),
            max_incident_age: default_max_incident_age(),
            holds: Holds::default(),
            linking: Linking::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// Group by these labels' values.
    Labels(Vec<String>),
    /// `...`: every distinct label set is its own group.
    All,
}

/// One node of the route tree, with inherited settings resolved.
#[derive(Debug, Clone)]
pub struct Route {
    /// The path of matcher sets from the root (`{}`, `{}/{team="dba"}`), as Alertmanager keys
    /// its routes: part of the group key, so that the same labels on two routes make two groups,
    /// and independent of the routes' order, so that reordering a rules file opens no new
    /// incident. Siblings with the same matchers are told apart by a `~2`, `~3` suffix in order.
    pub id: String,
    matchers: Vec<Matcher>,
    pub group_by: GroupBy,
    pub timing: Timing,
    /// The receiver notified for this route's groups (inherited; Alertmanager files name one on
    /// every route, Quench's TOML may name none).
    pub receiver: Option<String>,
    /// Time intervals (by name) that mute this route, and outside of which it is muted; not
    /// inherited, as in Alertmanager.
    pub mute_time_intervals: Vec<String>,
    pub active_time_intervals: Vec<String>,
    continue_matching: bool,
    children: Vec<Route>,
}

/// Which group an alert belongs to: route, tenant and the values of the route's group_by labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupKey(pub String);

/// Where an alert goes on one route: its group, the labels that define the group, and the
/// route's timings.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// The route's id, which a re-keyed record carries so that the worker need not match again.
    pub route: String,
    pub key: GroupKey,
    pub group_labels: BTreeMap<String, String>,
    pub timing: Timing,
}

impl Route {
    /// The routes an alert lands on: Alertmanager's depth-first match where the first matching
    /// child wins unless it has `continue`, and a route with no matching child takes the alert.
    pub fn matching<'a>(&'a self, labels: &BTreeMap<String, String>, out: &mut Vec<&'a Route>) -> bool {
        if !self.matchers.iter().all(|m| m.matches(labels)) {
            return false;
        }
        let before = out.len();
        for child in &self.children {
            if child.matching(labels, out) && !child.continue_matching {
                break;
            }
        }
        if out.len() == before {
            out.push(self);
        }
        true
    }

    /// The routes below this one, in order.
    pub fn children(&self) -> &[Route] {
        &self.children
    }

    /// The alert's group key as Alertmanager writes it: the route's key, then the group labels
    /// (`{}/{env="prod"}:{alertname="X", cluster="c"}`).
    pub fn alertmanager_group_key(&self, labels: &BTreeMap<String, String>) -> String {
        let (_, group_labels) = self.group_key("", labels);
        alertmanager_group_key(&self.id, &group_labels)
    }

    /// The group key of an alert on this route, and the labels that define the group. A
    /// `group_by` label the alert lacks is left out, as in Alertmanager: such alerts group
    /// together by the labels they have.
    pub fn group_key(&self, tenant: &str, labels: &BTreeMap<String, String>) -> (GroupKey, BTreeMap<String, String>) {
        let group_labels: BTreeMap<String, String> = match &self.group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => {
                names.iter().filter_map(|name| Some((name.clone(), labels.get(name)?.clone()))).collect()
            }
        };
        let mut key = format!("{}|{tenant}|", self.id);
        for (i, (name, value)) in group_labels.iter().enumerate() {
            if i > 0 {
                key.push(',');
            }
            key.push_str(&format!("{name}={value:?}"));
        }
        (GroupKey(key), group_labels)
    }
}

/// A group's key as Alertmanager writes it, from its route's id and its group labels.
pub fn alertmanager_group_key(route: &str, group_labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = group_labels.iter().map(|(name, value)| format!("{name}={value:?}")).collect();
    format!("{route}:{{{}}}", pairs.join(", "))
}

/// The whole tree, loaded from a rules file.
#[derive(Debug, Clone)]
pub struct RouteTree {
    pub root: Route,
    /// Named time intervals that routes mute or activate by.
    pub intervals: BTreeMap<String, TimeInterval>,
    /// Alertmanager's `inhibit_rules` (see [`crate::mute`]).
    pub inhibit_rules: Vec<InhibitRule>,
    /// An Alertmanager file's receivers, by name.
    pub receivers: BTreeMap<String, Receiver>,
    /// An Alertmanager file's `global` receiver settings (`slack_api_url`, `smtp_from`, …).
    pub receiver_defaults: serde_yaml::Mapping,
    /// What the file holds that the pipeline reads but does not apply yet, to say at start-up
    /// and in `quench rules check`.
    pub notes: Vec<String>,
}

impl RouteTree {
    /// Loads a rules file: an Alertmanager configuration (`.yml`, `.yaml`) as it is, or
    /// Quench's TOML route tree (the same route model, in TOML).
    pub fn load(path: &Path) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read rules file {}: {e}", path.display()))?;
        let parsed =
            if Self::is_alertmanager_file(path) { Self::parse_alertmanager(&text) } else { Self::parse(&text) };
        parsed.map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Whether `path` names an Alertmanager configuration (`.yml`, `.yaml`), not Quench's TOML.
    pub fn is_alertmanager_file(path: &Path) -> bool {
        path.extension().is_some_and(|e| e == "yml" || e == "yaml")
    }

    /// Parses an Alertmanager configuration file's text.
    pub fn parse_alertmanager(text: &str) -> Result<Self, String> {
        super::alertmanager::parse(text)
    }

    /// Parses Quench's TOML route tree.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: RulesFile = toml::from_str(text).map_err(|e| e.to_string())?;
        Self::from_spec(file.route, &Inherited::default(), &|_| true, BTreeMap::new())
    }

    /// Builds the tree from its root's spec, with the root's defaults; `known` says whether a
    /// receiver name is defined; `intervals` are the time intervals routes may name.
    pub(super) fn from_spec(
        root: RouteSpec,
        defaults: &Inherited,
        known: &dyn Fn(&str) -> bool,
        intervals: BTreeMap<String, TimeInterval>,
    ) -> Result<Self, String> {
        // Alertmanager refuses both: the root takes every alert, and nothing comes after it.
        if !root.matchers.is_empty() || !root.match_equal.is_empty() || !root.match_re.is_empty() {
            return Err("the root route must not have matchers: it takes every alert".into());
        }
        if root.continue_matching {
            return Err("the root route cannot have continue".into());
        }
        if !root.mute_time_intervals.is_empty() || !root.active_time_intervals.is_empty() {
            return Err("the root route cannot have mute or active time intervals".into());
        }
        let known_interval = |name: &str| intervals.contains_key(name);
        let root = build(root, "0", None, defaults, &Known { receiver: known, interval: &known_interval })?;
        Ok(Self {
            root,
            intervals,
            inhibit_rules: Vec::new(),
            receivers: BTreeMap::new(),
            receiver_defaults: serde_yaml::Mapping::new(),
            notes: Vec::new(),
        })
    }

    /// Whether the route with this id is muted at `at` (epoch ms): inside one of its mute
    /// intervals, or outside all of its active ones. A route a reload removed is not.
    pub fn muted(&self, route: &str, at: i64) -> bool {
        // Asked at every flush: a tree without intervals answers without looking the route up.
        if self.intervals.is_empty() {
            return false;
        }
        let Some(route) = self.route(route) else { return false };
        let inside = |names: &[String]| names.iter().any(|n| self.intervals.get(n).is_some_and(|i| i.contains(at)));
        inside(&route.mute_time_intervals)
            || (!route.active_time_intervals.is_empty() && !inside(&route.active_time_intervals))
    }

    /// The route with this id, if the tree has it.
    pub fn route(&self, id: &str) -> Option<&Route> {
        fn find<'a>(route: &'a Route, id: &str) -> Option<&'a Route> {
            if route.id == id {
                return Some(route);
            }
            // Ids extend their parent's, so only the child whose id prefixes `id` can hold it.
            route.children.iter().filter(|child| id.starts_with(&child.id)).find_map(|child| find(child, id))
        }
        find(&self.root, id)
    }

    /// Where an alert goes: its group on every route it lands on. The one placement function,
    /// used by the worker, the re-keying stage and the producers' keys, so that all agree.
    /// `route` is the route a re-keyed record names; one that a reload removed is matched again.
    pub fn place(&self, alert: &Alert, route: Option<&str>) -> Vec<Placement> {
        let routes = match route.and_then(|id| self.route(id)) {
            Some(route) => vec![route],
            None => self.routes_for(&alert.labels),
        };
        routes
            .into_iter()
            .map(|route| {
                let (key, group_labels) = route.group_key(&alert.tenant, &alert.labels);
                Placement { route: route.id.clone(), key, group_labels, timing: route.timing }
            })
            .collect()
    }

    /// Whether an alert can land on several routes (a route with `continue`), and so belong to
    /// groups with different keys: then no one Kafka key per alert puts every group's alerts in one
    /// partition, and the worker must re-key each placement (one record per group) first.
    pub fn places_on_several_routes(&self) -> bool {
        fn any_continue(route: &Route) -> bool {
            route.children.iter().any(|child| child.continue_matching || any_continue(child))
        }
        any_continue(&self.root)
    }

    /// The Kafka key producers give an alert: its group key on its first route, so that one
    /// group's alerts share a partition and the worker needs no re-keying stage.
    pub fn partition_key(&self, alert: &Alert) -> String {
        self.place(alert, None).into_iter().next().expect("at least the root").key.0
    }

    /// Every route the alert lands on (at least the root, whose matchers are ignored as in
    /// Alertmanager, where the root route matches every alert).
    pub fn routes_for<'a>(&'a self, labels: &BTreeMap<String, String>) -> Vec<&'a Route> {
        let mut out = Vec::with_capacity(1);
        for child in &self.root.children {
            if child.matching(labels, &mut out) && !child.continue_matching {
                break;
            }
        }
        if out.is_empty() {
            out.push(&self.root);
        }
        out
    }
}

impl Default for RouteTree {
    fn default() -> Self {
        Self::parse("[route]\n").expect("the default rules parse")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    route: RouteSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RouteSpec {
    pub(super) receiver: Option<String>,
    matchers: Vec<String>,
    /// Alertmanager's legacy forms: equality and (anchored) regex per label.
    #[serde(rename = "match", deserialize_with = "values_required")]
    match_equal: BTreeMap<String, String>,
    #[serde(deserialize_with = "values_required")]
    match_re: BTreeMap<String, String>,
    group_by: Option<Vec<String>>,
    #[serde(deserialize_with = "duration::optional")]
    group_wait: Option<Duration>,
    #[serde(deserialize_with = "duration::optional")]
    group_interval: Option<Duration>,
    #[serde(deserialize_with = "duration::optional")]
    repeat_interval: Option<Duration>,
    #[serde(deserialize_with = "duration::optional")]
    resolve_timeout: Option<Duration>,
    #[serde(deserialize_with = "duration::optional")]
    max_incident_age: Option<Duration>,
    /// Quench's holds ([`Holds`]), inherited as the timers are.
    flap_changes: Option<u16>,
    #[serde(deserialize_with = "duration::optional")]
    flap_window: Option<Duration>,
    #[serde(deserialize_with = "duration::optional")]
    flap_stable: Option<Duration>,
    #[serde(deserialize_with = "duration::optional")]
    transient_pause: Option<Duration>,
    /// Its part in correlation ([`Linking`]), inherited as the timers are.
    correlate_min_confidence: Option<f64>,
    correlate_min_similarity: Option<f64>,
    correlate_separately: Option<bool>,
    #[serde(rename = "continue")]
    continue_matching: bool,
    /// Names of time intervals (Alertmanager's): read and checked against the file's intervals.
    pub(super) mute_time_intervals: Vec<String>,
    pub(super) active_time_intervals: Vec<String>,
    pub(super) routes: Vec<RouteSpec>,
}

/// A label-to-value map whose values must be given: YAML's `service:` with nothing after it is
/// null, which Alertmanager refuses rather than reading as "".
fn values_required<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error> {
    BTreeMap::<String, Option<String>>::deserialize(deserializer)?
        .into_iter()
        .map(|(label, value)| {
            value
                .map(|v| (label.clone(), v))
                .ok_or_else(|| serde::de::Error::custom(format!("match/match_re: label `{label}` needs a value")))
        })
        .collect()
}

/// What a child takes from its parent unless it says otherwise.
pub(super) struct Inherited {
    pub(super) group_by: GroupBy,
    pub(super) timing: Timing,
    pub(super) receiver: Option<String>,
}

impl Default for Inherited {
    fn default() -> Self {
        // Alertmanager's default (no group_by) puts every alert of a route into one group; for
        // incidents in Quench's own TOML, one per alert name is the useful starting point.
        // Alertmanager files keep Alertmanager's default.
        Self { group_by: GroupBy::Labels(vec!["alertname".into()]), timing: Timing::default(), receiver: None }
    }
}

fn parse_matchers(spec: &RouteSpec, position: &str) -> Result<Vec<Matcher>, String> {
    let mut all = Vec::new();
    for text in &spec.matchers {
        all.extend(Matcher::parse_list(text).map_err(|e| format!("route {position}: {e}"))?);
    }
    all.extend(spec.match_equal.iter().map(|(name, value)| Matcher::equal(name, value)));
    for (name, pattern) in &spec.match_re {
        all.push(Matcher::regex(name, pattern).map_err(|e| format!("route {position}: match_re.{name}: {e}"))?);
    }
    Ok(all)
}

/// A route's matchers as one canonical string, `{a="1",b=~"x"}`, sorted as Alertmanager sorts
/// them (name, value, match type), so that the order they are written in does not matter.
fn matcher_set(matchers: &[Matcher]) -> String {
    let mut sorted: Vec<&Matcher> = matchers.iter().collect();
    sorted.sort_by(|a, b| a.cmp_alertmanager(b));
    let matchers: Vec<String> = sorted.iter().map(|m| m.to_string()).collect();
    format!("{{{}}}", matchers.join(","))
}

/// Builds the route at `position` (`0.2.1`, which errors name because a user finds a route by
/// its place in the file); `child` is its parent's id and its own matchers, `None` for the root.
/// Which names a file defines: receivers and time intervals.
struct Known<'a> {
    receiver: &'a dyn Fn(&str) -> bool,
    interval: &'a dyn Fn(&str) -> bool,
}

fn build(
    spec: RouteSpec,
    position: &str,
    child: Option<(String, Vec<Matcher>)>,
    parent: &Inherited,
    known: &Known,
) -> Result<Route, String> {
    let (id, matchers) = match child {
        Some(child) => child,
        None => {
            let matchers = parse_matchers(&spec, position)?;
            (matcher_set(&matchers), matchers)
        }
    };
    let group_by = match spec.group_by {
        Some(labels) if labels.iter().any(|l| l == "...") => {
            if labels.len() > 1 {
                return Err(format!("route {position}: group_by \"...\" groups by every label; list nothing else"));
            }
            GroupBy::All
        }
        Some(labels) => {
            let mut seen = std::collections::BTreeSet::new();
            for label in &labels {
                if !is_label_name(label) {
                    return Err(format!("route {position}: group_by `{label}` is not a label name"));
                }
                if !seen.insert(label) {
                    return Err(format!("route {position}: group_by lists `{label}` twice"));
                }
            }
            GroupBy::Labels(labels)
        }
        None => parent.group_by.clone(),
    };
    let timing = Timing {
        group_wait: spec.group_wait.unwrap_or(parent.timing.group_wait),
        group_interval: spec.group_interval.unwrap_or(parent.timing.group_interval),
        repeat_interval: spec.repeat_interval.unwrap_or(parent.timing.repeat_interval),
        resolve_timeout: spec.resolve_timeout.unwrap_or(parent.timing.resolve_timeout),
        max_incident_age: spec.max_incident_age.unwrap_or(parent.timing.max_incident_age),
        holds: Holds {
            flap_changes: spec.flap_changes.unwrap_or(parent.timing.holds.flap_changes),
            flap_window: spec.flap_window.unwrap_or(parent.timing.holds.flap_window),
            flap_stable: spec.flap_stable.unwrap_or(parent.timing.holds.flap_stable),
            transient_pause: spec.transient_pause.unwrap_or(parent.timing.holds.transient_pause),
        },
        linking: Linking {
            min_confidence: spec.correlate_min_confidence.or(parent.timing.linking.min_confidence),
            min_similarity: spec.correlate_min_similarity.or(parent.timing.linking.min_similarity),
            separately: spec.correlate_separately.unwrap_or(parent.timing.linking.separately),
        },
    };
    timing.holds.check(position)?;
    timing.linking.check(position)?;
    if timing.group_interval.is_zero() {
        return Err(format!("route {position}: group_interval must be greater than 0"));
    }
    if timing.repeat_interval.is_zero() {
        return Err(format!("route {position}: repeat_interval must be greater than 0"));
    }
    if timing.max_incident_age < timing.group_interval {
        return Err(format!("route {position}: max_incident_age must be at least group_interval"));
    }
    let receiver = spec.receiver.or_else(|| parent.receiver.clone());
    if let Some(name) = receiver.as_deref().filter(|name| !(known.receiver)(name)) {
        return Err(format!("route {position}: receiver `{name}` is not defined under receivers"));
    }
    let (mute_time_intervals, active_time_intervals) = (spec.mute_time_intervals, spec.active_time_intervals);
    if let Some(name) = mute_time_intervals.iter().chain(&active_time_intervals).find(|n| !(known.interval)(n)) {
        return Err(format!("route {position}: time interval `{name}` is not defined"));
    }
    let inherited = Inherited { group_by: group_by.clone(), timing, receiver: receiver.clone() };
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut children = Vec::with_capacity(spec.routes.len());
    for (i, child) in spec.routes.into_iter().enumerate() {
        let position = format!("{position}.{i}");
        let matchers = parse_matchers(&child, &position)?;
        let mut child_id = format!("{id}/{}", matcher_set(&matchers));
        let twins = seen.entry(child_id.clone()).or_default();
        *twins += 1;
        if *twins > 1 {
            child_id.push_str(&format!("~{twins}"));
        }
        children.push(build(child, &position, Some((child_id, matchers)), &inherited, known)?);
    }
    Ok(Route {
        id,
        matchers,
        group_by,
        timing,
        receiver,
        mute_time_intervals,
        active_time_intervals,
        continue_matching: spec.continue_matching,
        children,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const RULES: &str = r#"
        [route]
        group_by = ["alertname"]
        group_wait = "10s"

        [[route.routes]]
        matchers = ['team="dba"']
        group_by = ["alertname", "cluster"]
        continue = true

        [[route.routes]]
        matchers = ['severity=~"critical|page"']
        repeat_interval = "1h"

        [[route.routes.routes]]
        matchers = ['service="postgres"']
        group_wait = "0s"

        [[route.routes]]
        matchers = ['team="web"']
    "#;

    const DBA: &str = r#"{}/{team="dba"}"#;
    const CRITICAL: &str = r#"{}/{severity=~"critical|page"}"#;
    const PG: &str = r#"{}/{severity=~"critical|page"}/{service="postgres"}"#;

    fn ids(tree: &RouteTree, l: &BTreeMap<String, String>) -> Vec<String> {
        tree.routes_for(l).iter().map(|r| r.id.clone()).collect()
    }

    #[test]
    fn first_match_wins_unless_continue_and_deepest_match_takes_the_alert() {
        let tree = RouteTree::parse(RULES).unwrap();
        assert_eq!(
            ids(&tree, &labels(&[("team", "dba"), ("severity", "critical"), ("service", "postgres")])),
            [DBA, PG]
        );
        assert_eq!(ids(&tree, &labels(&[("severity", "page")])), [CRITICAL]);
        assert_eq!(
            ids(&tree, &labels(&[("team", "web"), ("severity", "critical")])),
            [CRITICAL],
            "first non-continue match stops"
        );
        assert_eq!(ids(&tree, &labels(&[("team", "ops")])), ["{}"], "no child matches: the root takes it");
    }

    #[test]
    fn routes_are_found_by_id() {
        let tree = RouteTree::parse(RULES).unwrap();
        assert_eq!(tree.route(PG).unwrap().timing.group_wait, Duration::ZERO);
        assert_eq!(tree.route("{}").unwrap().id, "{}");
        assert!(tree.route("{}/{team=\"ops\"}").is_none());
        assert!(tree.route("0.1").is_none());
    }

    #[test]
    fn reordering_routes_or_their_matchers_keeps_ids_and_group_keys() {
        const REORDERED: &str = r#"
            [route]
            group_by = ["alertname"]
            group_wait = "10s"

            [[route.routes]]
            matchers = ['team="web"']

            [[route.routes]]
            matchers = ['severity=~"critical|page"']
            repeat_interval = "1h"

            [[route.routes.routes]]
            matchers = ['service="postgres"']
            group_wait = "0s"

            [[route.routes]]
            matchers = ['team="dba"']
            group_by = ["alertname", "cluster"]
            continue = true
        "#;
        let (before, after) = (RouteTree::parse(RULES).unwrap(), RouteTree::parse(REORDERED).unwrap());
        let alert = labels(&[("alertname", "PgDown"), ("severity", "critical"), ("service", "postgres")]);
        let key = |tree: &RouteTree| tree.routes_for(&alert)[0].group_key("acme", &alert).0;
        assert_eq!(key(&before), key(&after));
        assert_eq!(after.route(PG).unwrap().timing.group_wait, Duration::ZERO);

        let written_otherwise = RouteTree::parse("[route]\n[[route.routes]]\nmatchers = ['b=\"2\"', 'a=~\"1\"']\n");
        let written = RouteTree::parse("[route]\n[[route.routes]]\nmatchers = ['a=~\"1\"', 'b=\"2\"']\n");
        assert_eq!(written_otherwise.unwrap().root.children[0].id, written.unwrap().root.children[0].id);
    }

    #[test]
    fn sibling_routes_with_the_same_matchers_get_ids_of_their_own() {
        let tree = RouteTree::parse(
            "[route]\n[[route.routes]]\nmatchers = ['team=\"dba\"']\n[[route.routes]]\nmatchers = ['team=\"dba\"']\n",
        )
        .unwrap();
        let ids: Vec<&str> = tree.root.children.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, [DBA, "{}/{team=\"dba\"}~2"]);
        assert_eq!(tree.route(ids[1]).unwrap().id, ids[1]);
    }

    #[test]
    fn children_inherit_unless_they_override() {
        let tree = RouteTree::parse(RULES).unwrap();
        let pg = tree.routes_for(&labels(&[("severity", "critical"), ("service", "postgres")]))[0];
        assert_eq!(pg.timing.group_wait, Duration::ZERO);
        assert_eq!(pg.timing.repeat_interval, Duration::from_secs(3600), "from its parent");
        assert_eq!(pg.timing.group_interval, Duration::from_secs(300), "Alertmanager's default");
        assert_eq!(pg.group_by, GroupBy::Labels(vec!["alertname".into()]));
    }

    #[test]
    fn group_keys_depend_on_route_tenant_and_group_labels_only() {
        let tree = RouteTree::parse(RULES).unwrap();
        let a = labels(&[("team", "dba"), ("alertname", "PgDown"), ("cluster", "eu"), ("instance", "db-1")]);
        let b = labels(&[("team", "dba"), ("alertname", "PgDown"), ("cluster", "eu"), ("instance", "db-2")]);
        let route = tree.routes_for(&a)[0];
        let (key_a, group_labels) = route.group_key("acme", &a);
        assert_eq!(key_a, route.group_key("acme", &b).0);
        assert_ne!(key_a, route.group_key("other", &b).0);
        assert_eq!(group_labels, labels(&[("alertname", "PgDown"), ("cluster", "eu")]));
        // Alertmanager groups an alert lacking a group_by label by the labels it has.
        let (key_c, group_labels) = route.group_key("acme", &labels(&[("team", "dba"), ("alertname", "PgDown")]));
        assert_eq!(group_labels, labels(&[("alertname", "PgDown")]));
        assert_ne!(key_c, key_a);
    }

    #[test]
    fn matchers_in_every_form_alertmanager_accepts() {
        let tree = RouteTree::parse(
            r#"
            [route]
            [[route.routes]]
            matchers = ['{team="dba", env=~"prod|staging"}']
            [[route.routes]]
            match = { team = "web" }
            match_re = { env = "prod.*" }
            "#,
        )
        .unwrap();
        let dba = labels(&[("team", "dba"), ("env", "staging")]);
        let web = labels(&[("team", "web"), ("env", "production")]);
        assert_eq!(tree.routes_for(&dba)[0].id, r#"{}/{env=~"prod|staging",team="dba"}"#);
        assert_eq!(tree.routes_for(&web)[0].id, r#"{}/{env=~"prod.*",team="web"}"#);
        assert_eq!(ids(&tree, &labels(&[("team", "web"), ("env", "dev")])), ["{}"], "match_re is anchored");
    }

    #[test]
    fn holds_are_off_unless_set_and_inherited_as_the_timers_are() {
        let tree = RouteTree::parse(
            "[route]\nflap_changes = 4\nflap_window = \"10m\"\nflap_stable = \"15m\"\n\
             [[route.routes]]\nmatchers = ['team=\"dba\"']\ntransient_pause = \"5m\"\n",
        )
        .unwrap();
        let dba = &tree.root.children()[0].timing.holds;
        assert_eq!((dba.flap_changes, dba.flap_window.as_secs(), dba.flap_stable.as_secs()), (4, 600, 900));
        assert_eq!((tree.root.timing.holds.transient_pause, dba.transient_pause.as_secs()), (Duration::ZERO, 300));
        assert_eq!(RouteTree::default().root.timing.holds, Holds::default(), "off by default");
        let err = RouteTree::parse("[route]\nflap_changes = 3\n").unwrap_err();
        assert!(err.contains("flap_window and flap_stable"), "{err}");
    }

    #[test]
    fn a_routes_part_in_correlation_is_inherited_and_checked() {
        let tree = RouteTree::parse(
            "[route]\ncorrelate_min_confidence = 0.5\n\
             [[route.routes]]\nmatchers = ['team=\"dba\"']\ncorrelate_separately = true\n",
        )
        .unwrap();
        let dba = tree.root.children()[0].timing.linking;
        assert_eq!(dba, Linking { min_confidence: Some(0.5), min_similarity: None, separately: true });
        assert_eq!(RouteTree::default().root.timing.linking, Linking::default(), "the global settings");
        let err = RouteTree::parse("[route]\ncorrelate_min_confidence = 1.5\n").unwrap_err();
        assert!(err.contains("correlate_min_confidence must be between 0 and 1"), "{err}");
    }

    #[test]
    fn bad_rules_fail_with_the_route_and_reason() {
        assert!(RouteTree::parse("[route]\ngroup_wait = \"soon\"\n").unwrap_err().contains("soon"));
        assert!(RouteTree::parse("[route]\n[[route.routes]]\nmatchers = ['team']\n")
            .unwrap_err()
            .contains("route 0.0"));
        assert!(RouteTree::parse("[route]\ngroup_intervl = \"1m\"\n").unwrap_err().contains("group_intervl"));
        assert!(RouteTree::parse("[route]\nrepeat_interval = \"0s\"\n").unwrap_err().contains("repeat_interval"));
        // Alertmanager's refusals, which were accepted silently.
        assert!(RouteTree::parse("[route]\nmatchers = ['team=\"x\"']\n").unwrap_err().contains("root"));
        assert!(RouteTree::parse("[route]\ncontinue = true\n").unwrap_err().contains("continue"));
        assert!(RouteTree::parse("[route]\ngroup_by = [\"...\", \"env\"]\n").unwrap_err().contains("every label"));
        assert!(RouteTree::parse("[route]\ngroup_by = [\"env\", \"env\"]\n").unwrap_err().contains("twice"));
        assert!(RouteTree::parse("[route]\ngroup_by = [\"1env\"]\n").unwrap_err().contains("not a label name"));
    }
}
