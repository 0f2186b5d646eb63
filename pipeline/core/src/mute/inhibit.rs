//! Inhibition, as Alertmanager decides it: an alert that matches a rule's target matchers is
//! muted while an alert matching its source matchers fires with the same values of the rule's
//! `equal` labels (a label missing on both sides counts as equal: both are empty). An alert that
//! matches both sides is not muted by alerts that also match both, so that a rule never mutes
//! every alert of a kind by its own members.
//!
//! Sources are kept apart from the groups because an alert's source may sit on another
//! partition or worker: each operator publishes the source alerts it sees, with the event times
//! they fire between, and every worker reads them all.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    hash::{DefaultHasher, Hash, Hasher},
};

use serde::{Deserialize, Serialize};

use crate::rules::{Labels, Matcher};

/// One `inhibit_rules` entry.
#[derive(Debug, Clone)]
pub struct InhibitRule {
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    pub equal: Vec<String>,
}

impl InhibitRule {
    fn matches(matchers: &[Matcher], labels: &impl Labels) -> bool {
        matchers.iter().all(|m| m.matches(labels))
    }

    /// Whether these labels are a source of any of `rules`.
    pub fn any_source(rules: &[Self], labels: &BTreeMap<String, String>) -> bool {
        rules.iter().any(|rule| Self::matches(&rule.source, labels))
    }
}

/// A source alert as the inhibition sources topic holds it (keyed by tenant and fingerprint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub tenant: String,
    /// Alertmanager's fingerprint, in hex.
    pub fingerprint: String,
    pub labels: BTreeMap<String, String>,
    /// The incident it belongs to (named on the incidents it mutes).
    pub incident_id: String,
    /// Event time it fires from.
    pub starts_at: i64,
    /// Event time it stops firing: its end, or for a sender that never says, its last re-send
    /// plus `resolve_timeout`; none while it fires with no end in sight.
    pub until: Option<i64>,
}

impl Source {
    /// The topic's key.
    pub fn key(&self) -> String {
        format!("{}|{}", self.tenant, self.fingerprint)
    }

    fn fires_at(&self, at: i64) -> bool {
        self.starts_at <= at && self.until.is_none_or(|until| at < until)
    }
}

/// Every source alert known, by key, and indexed by each of its labels: a target is compared
/// only with the sources that share its value of one of a rule's `equal` labels, in the order of
/// their incidents, until one inhibits it — not with every source (a storm of critical alerts
/// makes thousands, and each firing warning was compared with them all at each flush of its
/// group: four fifths of a worker's time with one inhibition rule).
#[derive(Debug, Default)]
pub struct Sources {
    by_key: HashMap<String, Source>,
    /// [`label_hash`] of tenant, label name and value → (incident id, key) of the sources with
    /// that label. Hashes rather than the strings: a lookup allocates nothing, and a collision
    /// only adds candidates, which are checked in full.
    by_label: HashMap<u64, BTreeSet<(String, String)>>,
    /// (incident id, key) of every source, for rules without an `equal` label to narrow by.
    ordered: BTreeSet<(String, String)>,
}

fn label_hash(tenant: &str, name: &str, value: &str) -> u64 {
    // SipHash with fixed keys: the same in every process, though nothing relies on that.
    let mut hasher = DefaultHasher::new();
    (tenant, name, value).hash(&mut hasher);
    hasher.finish()
}

impl Sources {
    /// Records a source's latest state; false when it changes nothing (a re-send of an alert
    /// with no end), which then needs no record on the topic.
    pub fn update(&mut self, source: Source) -> bool {
        let key = source.key();
        if let Some(known) = self.by_key.get_mut(&key) {
            if *known == source {
                return false;
            }
            // A re-send with a later end keeps its place in the index (a fingerprint names its
            // labels; the incident may be a new one).
            if known.labels == source.labels && known.incident_id == source.incident_id {
                *known = source;
                return true;
            }
        }
        self.remove(&key);
        let entry = (source.incident_id.clone(), key.clone());
        for (name, value) in &source.labels {
            self.by_label.entry(label_hash(&source.tenant, name, value)).or_default().insert(entry.clone());
        }
        self.ordered.insert(entry);
        self.by_key.insert(key, source);
        true
    }

    /// Forgets the source with this key (a tombstone on the topic).
    pub fn remove(&mut self, key: &str) {
        let Some(source) = self.by_key.remove(key) else { return };
        let entry = (source.incident_id, key.to_string());
        for (name, value) in &source.labels {
            let hash = label_hash(&source.tenant, name, value);
            if let Some(entries) = self.by_label.get_mut(&hash) {
                entries.remove(&entry);
                if entries.is_empty() {
                    self.by_label.remove(&hash);
                }
            }
        }
        self.ordered.remove(&entry);
    }

    /// Forgets sources that stopped firing before `before`, so that memory follows what fires.
    /// Returns their keys, for tombstones.
    pub fn expire(&mut self, before: i64) -> Vec<String> {
        let ended: Vec<String> =
            self.by_key.iter().filter(|(_, s)| s.until.is_some_and(|u| u < before)).map(|(k, _)| k.clone()).collect();
        for key in &ended {
            self.remove(key);
        }
        ended
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The incident of a source that inhibits an alert of `tenant` with these labels at `at`
    /// under one of `rules` (the smallest incident id, so that every worker names the same one).
    pub fn inhibiting<'a>(
        &'a self,
        rules: &[InhibitRule],
        tenant: &str,
        labels: &impl Labels,
        at: i64,
    ) -> Option<&'a str> {
        if self.by_key.is_empty() {
            return None;
        }
        let mut found: Option<&str> = None;
        for rule in rules.iter().filter(|rule| InhibitRule::matches(&rule.target, labels)) {
            let two_sided = InhibitRule::matches(&rule.source, labels);
            let inhibits = |source: &&Source| {
                source.fires_at(at)
                    && source.tenant == tenant
                    && rule.equal.iter().all(|name| source.labels.label(name) == labels.label(name))
                    && InhibitRule::matches(&rule.source, &source.labels)
                    && !(two_sided && InhibitRule::matches(&rule.target, &source.labels))
            };
            // A source must have the target's value of every `equal` label it has: those with
            // one of them are the candidates. Without one (no `equal`, or labels missing on the
            // target, which the source must then miss too) every source is.
            // Candidates come in incident order: the first that inhibits is this rule's answer,
            // and none after the one found under an earlier rule can beat it.
            let candidates = match rule.equal.iter().find_map(|name| Some((name, labels.label(name)?))) {
                Some((name, value)) => match self.by_label.get(&label_hash(tenant, name, value)) {
                    Some(entries) => entries,
                    None => continue,
                },
                None => &self.ordered,
            };
            let first = candidates
                .iter()
                .take_while(|(incident, _)| found.is_none_or(|id| incident.as_str() < id))
                .find(|(_, key)| self.by_key.get(key).is_some_and(|source| inhibits(&source)));
            if let Some((incident, _)) = first {
                found = Some(incident);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn source(fingerprint: &str, pairs: &[(&str, &str)], starts_at: i64, until: Option<i64>) -> Source {
        Source {
            tenant: "t".into(),
            fingerprint: fingerprint.into(),
            labels: labels(pairs),
            incident_id: format!("inc-{fingerprint}"),
            starts_at,
            until,
        }
    }

    fn rule(source: &str, target: &str, equal: &[&str]) -> InhibitRule {
        InhibitRule {
            source: Matcher::parse_list(source).unwrap(),
            target: Matcher::parse_list(target).unwrap(),
            equal: equal.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_firing_source_with_equal_labels_inhibits_the_target() {
        let rules = [rule("severity=critical", "severity=warning", &["instance"])];
        let mut sources = Sources::default();
        sources.update(source("1", &[("severity", "critical"), ("instance", "a")], 10, Some(100)));
        let warning_a = labels(&[("severity", "warning"), ("instance", "a")]);
        assert_eq!(sources.inhibiting(&rules, "t", &warning_a, 50), Some("inc-1"));
        assert_eq!(sources.inhibiting(&rules, "t", &warning_a, 5), None, "the source had not started");
        assert_eq!(sources.inhibiting(&rules, "t", &warning_a, 100), None, "the source ended");
        assert_eq!(sources.inhibiting(&rules, "other", &warning_a, 50), None, "another tenant");
        let warning_b = labels(&[("severity", "warning"), ("instance", "b")]);
        assert_eq!(sources.inhibiting(&rules, "t", &warning_b, 50), None, "instance differs");
    }

    #[test]
    fn an_equal_label_missing_on_both_sides_counts_as_equal() {
        let rules = [rule("alertname=NodeDown", "severity=warning", &["cluster"])];
        let mut sources = Sources::default();
        sources.update(source("1", &[("alertname", "NodeDown")], 0, None));
        assert!(sources.inhibiting(&rules, "t", &labels(&[("severity", "warning")]), 1).is_some());
        let with_cluster = labels(&[("severity", "warning"), ("cluster", "eu")]);
        assert!(sources.inhibiting(&rules, "t", &with_cluster, 1).is_none(), "missing on one side only");
    }

    #[test]
    fn alerts_matching_both_sides_do_not_inhibit_each_other() {
        let rules = [rule("severity=~critical|warning", "severity=~critical|warning", &["alertname"])];
        let mut sources = Sources::default();
        sources.update(source("1", &[("alertname", "X"), ("severity", "critical")], 0, None));
        let other = labels(&[("alertname", "X"), ("severity", "warning")]);
        assert_eq!(sources.inhibiting(&rules, "t", &other, 1), None);
        // A source that matches only the source side still inhibits a two-sided target.
        let rules = [rule("severity=~critical|warning", "severity=warning", &["alertname"])];
        assert_eq!(sources.inhibiting(&rules, "t", &other, 1), Some("inc-1"));
    }

    #[test]
    fn an_unchanged_source_needs_no_record_and_ended_ones_are_forgotten() {
        let mut sources = Sources::default();
        assert!(sources.update(source("1", &[("a", "b")], 0, None)));
        assert!(!sources.update(source("1", &[("a", "b")], 0, None)));
        assert!(sources.update(source("1", &[("a", "b")], 0, Some(10))));
        assert_eq!(sources.expire(5), Vec::<String>::new());
        assert_eq!(sources.expire(11), vec!["t|1".to_string()]);
        assert!(sources.is_empty());
        assert!(sources.by_label.is_empty() && sources.ordered.is_empty(), "the index forgets what expired");
    }

    #[test]
    fn a_source_whose_equal_label_changed_is_found_under_its_new_value_only() {
        let rules = [rule("severity=critical", "severity=warning", &["instance"])];
        let mut sources = Sources::default();
        sources.update(source("1", &[("severity", "critical"), ("instance", "a")], 0, None));
        sources.update(source("2", &[("severity", "critical"), ("instance", "c")], 0, None));
        sources.update(source("1", &[("severity", "critical"), ("instance", "b")], 0, None));
        let warning = |instance| labels(&[("severity", "warning"), ("instance", instance)]);
        assert_eq!(sources.inhibiting(&rules, "t", &warning("a"), 1), None);
        assert_eq!(sources.inhibiting(&rules, "t", &warning("b"), 1), Some("inc-1"));
        assert_eq!(sources.inhibiting(&rules, "t", &warning("c"), 1), Some("inc-2"));
        sources.remove("t|2");
        assert_eq!(sources.inhibiting(&rules, "t", &warning("c"), 1), None);
    }

    #[test]
    fn the_smallest_incident_of_the_inhibiting_sources_is_named_across_rules() {
        let rules =
            [rule("severity=critical", "severity=warning", &["service"]), rule("team=db", "severity=warning", &[])];
        let mut sources = Sources::default();
        let with = |incident: &str, fingerprint: &str, pairs: &[(&str, &str)], until| Source {
            incident_id: incident.into(),
            ..source(fingerprint, pairs, 0, until)
        };
        sources.update(with("inc-5", "1", &[("severity", "critical"), ("service", "a")], None));
        sources.update(with("inc-3", "2", &[("severity", "critical"), ("service", "a")], Some(10)));
        sources.update(with("inc-4", "3", &[("team", "db")], None));
        let warning = labels(&[("severity", "warning"), ("service", "a")]);
        assert_eq!(sources.inhibiting(&rules, "t", &warning, 5), Some("inc-3"));
        assert_eq!(sources.inhibiting(&rules, "t", &warning, 20), Some("inc-4"), "inc-3's source ended");
        // The source of inc-5 now belongs to a new, earlier-named incident.
        sources.update(with("inc-1", "1", &[("severity", "critical"), ("service", "a")], None));
        assert_eq!(sources.inhibiting(&rules, "t", &warning, 20), Some("inc-1"));
        assert_eq!(sources.ordered.len(), 3, "the old place is forgotten");
    }
}
