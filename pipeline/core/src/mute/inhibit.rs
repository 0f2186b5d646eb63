//! Inhibition, as Alertmanager decides it: an alert that matches a rule's target matchers is
//! muted while an alert matching its source matchers fires with the same values of the rule's
//! `equal` labels (a label missing on both sides counts as equal: both are empty). An alert that
//! matches both sides is not muted by alerts that also match both, so that a rule never mutes
//! every alert of a kind by its own members.
//!
//! Sources are kept apart from the groups because an alert's source may sit on another
//! partition or worker: each operator publishes the source alerts it sees, with the event times
//! they fire between, and every worker reads them all.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::rules::Matcher;

/// One `inhibit_rules` entry.
#[derive(Debug, Clone)]
pub struct InhibitRule {
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    pub equal: Vec<String>,
}

impl InhibitRule {
    fn matches(matchers: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
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

/// Every source alert known, by key.
#[derive(Debug, Default)]
pub struct Sources {
    by_key: HashMap<String, Source>,
}

impl Sources {
    /// Records a source's latest state; false when it changes nothing (a re-send of an alert
    /// with no end), which then needs no record on the topic.
    pub fn update(&mut self, source: Source) -> bool {
        let key = source.key();
        if self.by_key.get(&key) == Some(&source) {
            return false;
        }
        self.by_key.insert(key, source);
        true
    }

    /// Forgets the source with this key (a tombstone on the topic).
    pub fn remove(&mut self, key: &str) {
        self.by_key.remove(key);
    }

    /// Forgets sources that stopped firing before `before`, so that memory follows what fires.
    /// Returns their keys, for tombstones.
    pub fn expire(&mut self, before: i64) -> Vec<String> {
        let ended: Vec<String> =
            self.by_key.iter().filter(|(_, s)| s.until.is_some_and(|u| u < before)).map(|(k, _)| k.clone()).collect();
        for key in &ended {
            self.by_key.remove(key);
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
        labels: &BTreeMap<String, String>,
        at: i64,
    ) -> Option<&'a str> {
        if self.by_key.is_empty() {
            return None;
        }
        let mut found: Option<&str> = None;
        for rule in rules.iter().filter(|rule| InhibitRule::matches(&rule.target, labels)) {
            let two_sided = InhibitRule::matches(&rule.source, labels);
            let inhibits = |source: &&Source| {
                source.tenant == tenant
                    && source.fires_at(at)
                    && rule.equal.iter().all(|name| source.labels.get(name) == labels.get(name))
                    && InhibitRule::matches(&rule.source, &source.labels)
                    && !(two_sided && InhibitRule::matches(&rule.target, &source.labels))
            };
            for source in self.by_key.values().filter(inhibits) {
                if found.is_none_or(|id| source.incident_id.as_str() < id) {
                    found = Some(&source.incident_id);
                }
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
    }
}
