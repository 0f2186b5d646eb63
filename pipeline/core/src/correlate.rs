//! Cross-group correlation: an incident of one group is linked under the incident of another
//! (its parent) when both are tied by topology, and their kinds go together in history or their
//! alerts' templates read alike, within a short time. The parent's root stays the root: a storm whose alerts land in many groups
//! becomes one parent incident with children, each link explaining itself ("same cluster `c1`,
//! NodeUnreachable follows LinkDown in 95% of history, 40 s apart").
//!
//! - *Which kinds go together* is read off the precursor learner of [`crate::predict`] (the same
//!   statistics that predict and explain root causes), fed onsets whose entity is the tenant:
//!   how often kind B starts within the window after kind A, and how much more often than B's
//!   own rate would give by chance (the lift).
//! - *Topology*: a label value both incidents carry (under any label names: `namespace=checkout`
//!   and `service=checkout` tie), or a link of the dependency map (`orders-db:5432,checkout`).
//! - *Text*: the similarity of their alert names and summaries ([`similarity`]), for kinds that
//!   history has not seen together (new rules, rare storms); two kinds, not one kind at two
//!   places, which the route's `group_by` keeps apart on purpose.
//! - *Time*: their first alerts within the window.
//!
//! Deterministic: the same incidents in the same order with the same learned associations give
//! the same links.

mod similarity;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use quench_schemas::{Incident, Subject};

use crate::rules::Linking;

use crate::predict::{
    precursors::{Precursors, Scope},
    topology::Topology,
    Interner, Onset, Seconds,
};

/// Labels whose values say nothing about where an alert is.
const NOT_TOPOLOGY: &[&str] = &["alertname", "severity", "priority", "team", "receiver", "prometheus", "job"];

/// When two incidents are linked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Their first alerts at most this far apart, seconds.
    pub window_s: Seconds,
    /// The later kind follows the earlier one in at least this share of the earlier one's onsets...
    pub min_confidence: f64,
    /// ...this many times more often than its own rate gives by chance...
    pub min_lift: f64,
    /// ...seen at least this many times; or their templates' similarity at least this (0 to 1;
    /// above 1: text alone never links).
    pub min_support: u64,
    pub min_similarity: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self { window_s: 180, min_confidence: 0.3, min_lift: 3.0, min_support: 3, min_similarity: 0.6 }
    }
}

/// Which alert kinds go together, learned from history.
#[derive(Debug, Clone, Default)]
pub struct Associations {
    kinds: Interner,
    /// (earlier kind, later kind) -> (confidence, lift).
    pairs: HashMap<(u32, u32), (f64, f64)>,
}

impl Associations {
    /// Learns from onsets (tenant, kind, start in ms), in any order, with `settings`' window.
    pub fn learn(onsets: &[(String, String, i64)], settings: &Settings) -> Self {
        let mut kinds = Interner::default();
        let mut tenants = Interner::default();
        let mut ordered: Vec<Onset> = onsets
            .iter()
            .map(|(tenant, kind, at)| Onset { kind: kinds.id(kind), entity: tenants.id(tenant), at: at / 1000 })
            .collect();
        ordered.sort_by_key(|o| o.at);
        let (Some(first), Some(last)) = (ordered.first().map(|o| o.at), ordered.last().map(|o| o.at)) else {
            return Self::default();
        };
        let window = settings.window_s.max(1);
        let mut learner = Precursors::new(window, window, Topology::default());
        let mut per_kind: HashMap<u32, u64> = HashMap::new();
        let mut tenants_of: HashMap<u32, std::collections::HashSet<u32>> = HashMap::new();
        for onset in ordered {
            *per_kind.entry(onset.kind).or_default() += 1;
            tenants_of.entry(onset.kind).or_default().insert(onset.entity);
            learner.observe(onset);
        }
        learner.advance(last + window + 1);
        // Windows in the history: B's chance of starting in one of them at random.
        let windows = ((last - first) as f64 / window as f64).max(1.0);
        let mut pairs = HashMap::new();
        for (cause, effect, scope, edge) in learner.edges() {
            if scope != Scope::Same || cause == effect || edge.followed < settings.min_support {
                continue;
            }
            let confidence = edge.followed as f64 / learner.counted(cause).max(1) as f64;
            // Per tenant that has the kind: the learner counts followers within a tenant.
            let chance = (per_kind[&effect] as f64 / (windows * tenants_of[&effect].len() as f64)).min(1.0);
            pairs.insert((cause, effect), (confidence, confidence / chance));
        }
        Self { kinds, pairs }
    }

    /// How often `later` followed `earlier`, and the lift; `None` when never seen together.
    pub fn get(&self, earlier: &str, later: &str) -> Option<(f64, f64)> {
        self.pairs.get(&(self.kinds.get(earlier)?, self.kinds.get(later)?)).copied()
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// Links between entities that no label shows: `a,b` lines (service dependencies and the like).
#[derive(Debug, Clone, Default)]
pub struct Dependencies {
    names: Interner,
    links: Topology,
}

impl Dependencies {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut names = Interner::default();
        let links = Topology::parse(text, &mut names)?;
        Ok(Self { names, links })
    }

    fn linked(&self, a: &str, b: &str) -> bool {
        match (self.names.get(a), self.names.get(b)) {
            (Some(a), Some(b)) => self.links.neighbours(a).contains(&b),
            _ => false,
        }
    }
}

/// An incident as correlation sees it, when it first appears.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Opened {
    pub incident_id: String,
    pub tenant: String,
    /// Its alert name (the common one).
    pub kind: String,
    /// Its first alert's start, ms.
    pub at: i64,
    /// The labels all its alerts share.
    pub labels: BTreeMap<String, String>,
    /// Its alert names and summary, for text similarity (changelogs before it: empty).
    #[serde(default)]
    pub text: String,
}

impl Opened {
    /// The incident when first announced; its kind is its alerts' common name, else the first
    /// of the names the classifier reads.
    pub fn of(incident: &Incident, subject: &Subject) -> Self {
        let kind = incident.common_labels.get("alertname").or(subject.alertnames.first());
        Self {
            incident_id: incident.incident_id.clone(),
            tenant: incident.tenant.clone(),
            kind: kind.cloned().unwrap_or_default(),
            at: incident.first_seen,
            labels: incident.common_labels.clone(),
            text: format!("{} {}", subject.alertnames.join(" "), subject.summary),
        }
    }
}

/// `child` goes under `parent`, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Link {
    pub parent: String,
    pub child: String,
    pub explanation: String,
}

/// What correlation decided for an incident when it opened: kept with its group (in the
/// changelog), so that a restored worker knows the recent incidents and their roots.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Membership {
    pub opened: Opened,
    /// Its link to its parent; `None` for a root.
    pub link: Option<Link>,
}

#[derive(Clone)]
struct Member {
    opened: Opened,
    /// The root incident of its cluster (its own id when it is the root).
    root: String,
    words: BTreeSet<String>,
}

impl Member {
    fn new(opened: Opened, root: String) -> Self {
        let words = similarity::words(&opened.text);
        Self { opened, root, words }
    }
}

/// Links incidents as they open, in event-time order.
#[derive(Clone)]
pub struct Correlator {
    settings: Settings,
    associations: Associations,
    dependencies: Dependencies,
    recent: VecDeque<Member>,
    /// The latest first-alert time seen: incidents do not open in that order (group_wait differs
    /// per route, starts come from senders), so what is kept trails it by two windows.
    latest: i64,
}

impl Correlator {
    pub fn new(settings: Settings, associations: Associations, dependencies: Dependencies) -> Self {
        Self { settings, associations, dependencies, recent: VecDeque::new(), latest: i64::MIN }
    }

    /// Which kinds go together, as learned again: links decided before stay.
    pub fn set_associations(&mut self, associations: Associations) {
        self.associations = associations;
    }

    /// Takes back what a restored partition's groups decided (any order).
    pub fn restore<'a>(&mut self, memberships: impl IntoIterator<Item = &'a Membership>) {
        for membership in memberships {
            let root = membership.link.as_ref().map_or(&membership.opened.incident_id, |l| &l.parent);
            self.latest = self.latest.max(membership.opened.at);
            self.insert(Member::new(membership.opened.clone(), root.clone()));
        }
    }

    /// Takes an incident that just opened, of a route with `linking`'s thresholds: the link to
    /// its parent, if it has one.
    pub fn observe(&mut self, opened: Opened, linking: &Linking) -> Option<Link> {
        let window_ms = self.settings.window_s * 1000;
        self.latest = self.latest.max(opened.at);
        while self.recent.front().is_some_and(|m| m.opened.at < self.latest.saturating_sub(2 * window_ms)) {
            self.recent.pop_front();
        }
        let root = opened.incident_id.clone();
        let new = Member::new(opened, root);
        let id = &new.opened.incident_id;
        let best = self
            .recent
            .iter()
            .filter(|m| &m.opened.incident_id != id && &m.root != id)
            .filter(|m| m.opened.tenant == new.opened.tenant && (m.opened.at - new.opened.at).abs() <= window_ms)
            .filter_map(|m| Some((m, self.tie(m, &new, linking)?)))
            .max_by(|(_, (a, _)), (_, (b, _))| a.total_cmp(b));
        let link =
            best.map(|(member, (_, explanation))| Link { parent: member.root.clone(), child: id.clone(), explanation });
        let root = link.as_ref().map_or_else(|| id.clone(), |l| l.parent.clone());
        self.insert(Member { root, ..new });
        link
    }

    /// Kept in order of first-alert time, then id, whatever order they come in (a restore's
    /// included), so that ties between equally good parents break the same way every time.
    fn insert(&mut self, member: Member) {
        let order = |m: &Member| (m.opened.at, m.opened.incident_id.clone());
        let at = self.recent.partition_point(|m| order(m) <= order(&member));
        self.recent.insert(at, member);
    }

    /// How strongly `member` and `new` are tied (the surer of history's confidence and the
    /// text similarity), and the explanation; `None` when they are not.
    fn tie(&self, member: &Member, new: &Member, linking: &Linking) -> Option<(f64, String)> {
        let min_confidence = linking.min_confidence.unwrap_or(self.settings.min_confidence);
        let min_similarity = linking.min_similarity.unwrap_or(self.settings.min_similarity);
        let (earlier, later) = if member.opened.at <= new.opened.at {
            (&member.opened, &new.opened)
        } else {
            (&new.opened, &member.opened)
        };
        let history = self
            .associations
            .get(&earlier.kind, &later.kind)
            .filter(|(confidence, lift)| *confidence >= min_confidence && *lift >= self.settings.min_lift)
            .map(|(confidence, _)| confidence);
        // Of two kinds only: one kind at two places is what the route's group_by keeps apart.
        let text = Some(similarity::similarity(&member.words, &new.words))
            .filter(|similarity| earlier.kind != later.kind && *similarity >= min_similarity);
        if history.is_none() && text.is_none() {
            return None;
        }
        let mut why = vec![self.shared_place(&member.opened, &new.opened)?];
        if let Some(confidence) = history {
            why.push(format!("{} follows {} in {:.0}% of history", later.kind, earlier.kind, confidence * 100.0));
        }
        if let Some(similarity) = text {
            why.push(format!("template similarity {similarity:.2}"));
        }
        why.push(format!("{} s apart", (later.at - earlier.at) / 1000));
        Some((history.unwrap_or(0.0).max(text.unwrap_or(0.0)), why.join(", ")))
    }

    /// What ties two incidents' places: a value both carry, or a dependency between two.
    fn shared_place(&self, a: &Opened, b: &Opened) -> Option<String> {
        let values = |o: &Opened| -> Vec<(String, String)> {
            o.labels
                .iter()
                .filter(|(name, value)| !NOT_TOPOLOGY.contains(&name.as_str()) && !value.is_empty())
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect()
        };
        let (va, vb) = (values(a), values(b));
        for (name_a, value_a) in &va {
            for (name_b, value_b) in &vb {
                if value_a == value_b {
                    return Some(if name_a == name_b {
                        format!("same {name_a} `{value_a}`")
                    } else {
                        format!("`{value_a}` as {name_a} and as {name_b}")
                    });
                }
                if self.dependencies.linked(value_a, value_b) {
                    return Some(format!("`{value_a}` and `{value_b}` linked in the dependency map"));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn opened(id: &str, kind: &str, at: i64, labels: &[(&str, &str)]) -> Opened {
        Opened {
            incident_id: id.into(),
            tenant: "t".into(),
            kind: kind.into(),
            at,
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            text: kind.into(),
        }
    }

    /// A day of history: every hour LinkDown then NodeUnreachable 30 s later; a DiskFull every
    /// 7 minutes, unrelated to anything.
    fn history() -> Vec<(String, String, i64)> {
        let mut onsets = Vec::new();
        for hour in 0..24 {
            onsets.push(("t".into(), "LinkDown".into(), hour * 60 * MIN));
            onsets.push(("t".into(), "NodeUnreachable".into(), hour * 60 * MIN + 30_000));
        }
        for i in 0..200 {
            onsets.push(("t".into(), "DiskFull".into(), i * 7 * MIN + 11_000));
        }
        onsets
    }

    #[test]
    fn kinds_that_follow_each_other_are_learned_with_their_lift() {
        let associations = Associations::learn(&history(), &Settings::default());
        let (confidence, lift) = associations.get("LinkDown", "NodeUnreachable").unwrap();
        assert!(confidence > 0.95 && lift > 10.0, "{confidence} {lift}");
        let by_chance = associations.get("LinkDown", "DiskFull").map_or(0.0, |(_, lift)| lift);
        assert!(by_chance < 3.0, "DiskFull comes every 7 minutes anyway: lift {by_chance}");
    }

    #[test]
    fn incidents_tied_by_place_and_history_are_linked_with_an_explanation() {
        let associations = Associations::learn(&history(), &Settings::default());
        let mut correlator = Correlator::new(Settings::default(), associations, Dependencies::default());
        let t0 = 100 * 24 * 60 * MIN;
        assert_eq!(
            correlator
                .observe(opened("a", "LinkDown", t0, &[("cluster", "c1"), ("device", "sw-2")]), &Linking::default()),
            None
        );
        let link = correlator.observe(
            opened("b", "NodeUnreachable", t0 + 40_000, &[("cluster", "c1"), ("node", "n7")]),
            &Linking::default(),
        );
        assert_eq!(
            link,
            Some(Link {
                parent: "a".into(),
                child: "b".into(),
                explanation: "same cluster `c1`, NodeUnreachable follows LinkDown in 100% of history, 40 s apart"
                    .into()
            })
        );
        // Another cluster: no shared place. Unrelated kind: no history. Too late: out of the window.
        assert_eq!(
            correlator.observe(opened("c", "NodeUnreachable", t0 + 50_000, &[("cluster", "c2")]), &Linking::default()),
            None
        );
        assert_eq!(
            correlator.observe(opened("d", "DiskFull", t0 + 60_000, &[("cluster", "c1")]), &Linking::default()),
            None
        );
        assert_eq!(
            correlator
                .observe(opened("e", "NodeUnreachable", t0 + 10 * MIN, &[("cluster", "c1")]), &Linking::default()),
            None
        );
    }

    #[test]
    fn alike_templates_link_kinds_that_history_never_saw_together() {
        let mut correlator = Correlator::new(Settings::default(), Associations::default(), Dependencies::default());
        let t0 = 100 * 24 * 60 * MIN;
        let ceph = |id: &str, kind: &str, summary: &str, node: &str| Opened {
            text: format!("{kind} {summary}"),
            ..opened(id, kind, t0 + 20_000 * i64::from(id.as_bytes()[0] - b'a'), &[("node", node)])
        };
        assert_eq!(
            correlator.observe(
                ceph("a", "CephOsdDown", "Ceph OSD down (instance {{ $labels.instance }})", "n7"),
                &Linking::default()
            ),
            None
        );
        let link = correlator
            .observe(
                ceph("b", "CephOsdReweighted", "Ceph OSD down and reweighted (instance n7:9283)", "n7"),
                &Linking::default(),
            )
            .unwrap();
        assert_eq!(link.explanation, "same node `n7`, template similarity 0.67, 20 s apart");
        assert_eq!(
            correlator.observe(ceph("c", "DiskFull", "Disk full on n7", "n7"), &Linking::default()),
            None,
            "unlike"
        );
        assert_eq!(
            correlator.observe(ceph("d", "CephOsdDown", "Ceph OSD down", "n9"), &Linking::default()),
            None,
            "elsewhere"
        );
    }

    #[test]
    fn a_route_raises_or_lowers_the_thresholds_for_its_incidents() {
        let associations = Associations::learn(&history(), &Settings::default());
        let mut correlator = Correlator::new(Settings::default(), associations, Dependencies::default());
        let t0 = 100 * 24 * 60 * MIN;
        correlator.observe(opened("a", "LinkDown", t0, &[("cluster", "c1")]), &Linking::default());
        let strict = Linking { min_confidence: Some(1.01), ..Linking::default() };
        let b = opened("b", "NodeUnreachable", t0 + 40_000, &[("cluster", "c1")]);
        assert_eq!(correlator.observe(b.clone(), &strict), None, "history's 100% is below 101%");
        let c = Opened { incident_id: "c".into(), ..b };
        assert!(correlator.observe(c, &Linking::default()).is_some(), "the global 30% lets it join");
    }

    #[test]
    fn a_dependency_map_ties_what_no_label_shows_and_children_join_the_root() {
        let mut onsets = Vec::new();
        for hour in 0..24 {
            for (kind, after) in [("PostgresDown", 0), ("HighLatency", 40_000), ("HighErrorRate", 90_000)] {
                onsets.push(("t".to_string(), kind.to_string(), hour * 60 * MIN + after));
            }
        }
        let associations = Associations::learn(&onsets, &Settings::default());
        let dependencies = Dependencies::parse("orders-db:5432,checkout\n").unwrap();
        let mut correlator = Correlator::new(Settings::default(), associations, dependencies);
        let t0 = 100 * 24 * 60 * MIN;
        correlator.observe(opened("db", "PostgresDown", t0, &[("instance", "orders-db:5432")]), &Linking::default());
        let latency = correlator
            .observe(opened("lat", "HighLatency", t0 + 40_000, &[("service", "checkout")]), &Linking::default())
            .unwrap();
        assert_eq!(latency.parent, "db");
        assert!(latency.explanation.starts_with("`orders-db:5432` and `checkout` linked in the dependency map"));
        let errors = correlator
            .observe(opened("err", "HighErrorRate", t0 + 90_000, &[("service", "checkout")]), &Linking::default())
            .unwrap();
        assert_eq!(errors.parent, "db", "under the root, through its sibling: {errors:?}");
        let elsewhere =
            correlator.observe(opened("x", "HighLatency", t0 + 50_000, &[("service", "search")]), &Linking::default());
        assert_eq!(elsewhere, None, "search does not call orders-db");
    }
}
