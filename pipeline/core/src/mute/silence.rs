//! Silences, as Alertmanager keeps them: matchers (all must match), a start and an end, who made
//! it and why. A silence mutes an alert at event time `t` when it is active then and was already
//! made: `created_at <= t` and `starts_at <= t < ends_at`. Expiring a silence moves its end to the
//! time it was expired, so a replay mutes what the first run muted and nothing after.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::rules::{Labels, Matcher};

/// A matcher as Alertmanager's API v2 writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SilenceMatcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    /// False for `!=` and `!~`; absent in clients older than Alertmanager 0.22, meaning true.
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

/// One silence, as the silences topic holds it (keyed by id; times in epoch ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at: i64,
    pub ends_at: i64,
    /// When it was made: it mutes nothing before, whatever its start.
    pub created_at: i64,
    /// When it last changed (made, extended, expired).
    pub updated_at: i64,
    pub created_by: String,
    pub comment: String,
}

impl Silence {
    /// Its matchers, checked: a silence must have one, and one that an empty label does not match
    /// (else it would silence every alert), as Alertmanager requires.
    pub fn compile(&self) -> Result<Vec<Matcher>, String> {
        let matchers = self
            .matchers
            .iter()
            .map(|m| Matcher::from_parts(&m.name, &m.value, m.is_regex, m.is_equal))
            .collect::<Result<Vec<_>, _>>()?;
        if matchers.is_empty() {
            return Err("a silence needs at least one matcher".into());
        }
        if matchers.iter().all(|m| m.matches(&BTreeMap::<String, String>::new())) {
            return Err("at least one matcher must not match the empty string (it would silence every alert)".into());
        }
        if self.ends_at < self.starts_at {
            return Err("endsAt is before startsAt".into());
        }
        Ok(matchers)
    }

    /// Whether it mutes alerts at event time `at`.
    pub fn active(&self, at: i64) -> bool {
        self.created_at <= at && self.starts_at <= at && at < self.ends_at
    }

    /// `pending`, `active` or `expired` at `at`, as Alertmanager's API names its states.
    pub fn state(&self, at: i64) -> &'static str {
        match () {
            _ if at >= self.ends_at => "expired",
            _ if at < self.starts_at => "pending",
            _ => "active",
        }
    }
}

/// Every silence known, by id, with its compiled matchers.
#[derive(Debug, Default)]
pub struct Silences {
    by_id: HashMap<String, (Silence, Vec<Matcher>)>,
}

impl Silences {
    /// Adds or replaces a silence; a silence whose matchers do not compile is refused.
    pub fn upsert(&mut self, silence: Silence) -> Result<(), String> {
        let matchers = silence.compile()?;
        self.by_id.insert(silence.id.clone(), (silence, matchers));
        Ok(())
    }

    /// Forgets a silence (a tombstone on the topic, once it expired long ago).
    pub fn remove(&mut self, id: &str) {
        self.by_id.remove(id);
    }

    pub fn get(&self, id: &str) -> Option<&Silence> {
        self.by_id.get(id).map(|(silence, _)| silence)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Silence> {
        self.by_id.values().map(|(silence, _)| silence)
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The id of a silence that mutes these labels at `at` (the smallest, so that every worker
    /// names the same one).
    pub fn silencing(&self, labels: &impl Labels, at: i64) -> Option<&str> {
        self.by_id
            .values()
            .filter(|(silence, matchers)| silence.active(at) && matchers.iter().all(|m| m.matches(labels)))
            .map(|(silence, _)| silence.id.as_str())
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silence(id: &str, matchers: &[(&str, &str, bool, bool)], created: i64, starts: i64, ends: i64) -> Silence {
        Silence {
            id: id.into(),
            matchers: matchers
                .iter()
                .map(|(name, value, is_regex, is_equal)| SilenceMatcher {
                    name: name.to_string(),
                    value: value.to_string(),
                    is_regex: *is_regex,
                    is_equal: *is_equal,
                })
                .collect(),
            starts_at: starts,
            ends_at: ends,
            created_at: created,
            updated_at: created,
            created_by: "alice".into(),
            comment: "maintenance".into(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_silence_mutes_matching_alerts_between_its_start_and_end_once_made() {
        let mut silences = Silences::default();
        silences
            .upsert(silence("s1", &[("team", "dba", false, true), ("env", "dev", false, false)], 50, 0, 100))
            .unwrap();
        let prod = labels(&[("team", "dba"), ("env", "prod")]);
        assert_eq!(silences.silencing(&prod, 60), Some("s1"));
        assert_eq!(silences.silencing(&prod, 40), None, "not before it was made, though it starts at 0");
        assert_eq!(silences.silencing(&prod, 100), None, "ended");
        assert_eq!(silences.silencing(&labels(&[("team", "dba"), ("env", "dev")]), 60), None, "env!=dev");
        assert_eq!(silences.silencing(&labels(&[("team", "web")]), 60), None);
    }

    #[test]
    fn regex_matchers_are_anchored_and_the_smallest_id_answers() {
        let mut silences = Silences::default();
        silences.upsert(silence("b", &[("instance", "db-.*", true, true)], 0, 0, 100)).unwrap();
        silences.upsert(silence("a", &[("instance", "db-1", false, true)], 0, 0, 100)).unwrap();
        assert_eq!(silences.silencing(&labels(&[("instance", "db-1")]), 1), Some("a"));
        assert_eq!(silences.silencing(&labels(&[("instance", "db-2")]), 1), Some("b"));
        assert_eq!(silences.silencing(&labels(&[("instance", "x-db-2")]), 1), None);
    }

    #[test]
    fn silences_that_would_mute_everything_or_end_before_they_start_are_refused() {
        let mut silences = Silences::default();
        assert!(silences.upsert(silence("x", &[], 0, 0, 1)).unwrap_err().contains("at least one matcher"));
        let empty = silence("x", &[("team", ".*", true, true)], 0, 0, 1);
        assert!(silences.upsert(empty).unwrap_err().contains("empty string"));
        let backwards = silence("x", &[("team", "dba", false, true)], 0, 5, 1);
        assert!(silences.upsert(backwards).unwrap_err().contains("before startsAt"));
        let bad = silence("x", &[("team", "(", true, true)], 0, 0, 1);
        assert!(silences.upsert(bad).unwrap_err().contains("not a regular expression"));
        assert!(silences.is_empty());
    }
}
