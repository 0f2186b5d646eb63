//! Which alert kinds are transient: they usually resolve by themselves within a few minutes, so
//! a route with a `transient_pause` holds their groups that long before announcing them
//! (PagerDuty calls it auto-pause). Kinds come from configuration and are learned from history
//! (the shell reads ClickHouse's `alerts` periodically and calls [`Transients::learn`]).

use std::collections::{BTreeSet, HashMap, HashSet};

/// How many finished episodes of one kind history must hold before it is judged.
pub const MIN_EPISODES: u64 = 5;

/// The share of a kind's episodes that must have resolved within the pause for it to count.
pub const MIN_SHORT_SHARE: f64 = 0.8;

/// One kind's finished episodes in history: how many, and how many ended within the pause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindHistory {
    pub tenant: String,
    pub alertname: String,
    pub episodes: u64,
    pub short: u64,
}

/// The transient kinds: configured alert names (every tenant) and learned (tenant, alert name).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transients {
    configured: BTreeSet<String>,
    learned: HashMap<String, HashSet<String>>,
}

impl Transients {
    pub fn configured(names: impl IntoIterator<Item = String>) -> Self {
        Self { configured: names.into_iter().collect(), learned: HashMap::new() }
    }

    /// Replaces the learned kinds with those of `history` whose episodes mostly ended within the
    /// pause; returns how many kinds that is.
    pub fn learn(&mut self, history: &[KindHistory]) -> usize {
        self.learned.clear();
        let mut kinds = 0;
        for kind in history {
            if kind.episodes >= MIN_EPISODES && kind.short as f64 >= MIN_SHORT_SHARE * kind.episodes as f64 {
                kinds +=
                    usize::from(self.learned.entry(kind.tenant.clone()).or_default().insert(kind.alertname.clone()));
            }
        }
        kinds
    }

    /// Whether an alert of `tenant` named `alertname` is of a transient kind.
    pub fn contains(&self, tenant: &str, alertname: Option<&str>) -> bool {
        let Some(name) = alertname else { return false };
        self.configured.contains(name) || self.learned.get(tenant).is_some_and(|names| names.contains(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(tenant: &str, name: &str, episodes: u64, short: u64) -> KindHistory {
        KindHistory { tenant: tenant.into(), alertname: name.into(), episodes, short }
    }

    #[test]
    fn kinds_that_mostly_resolve_within_the_pause_are_learned_per_tenant() {
        let mut transients = Transients::configured(["CronJobSlow".to_string()]);
        let learned = transients.learn(&[
            kind("a", "CpuSpike", 10, 9),
            kind("a", "DiskFull", 10, 2),
            kind("a", "RareBlip", 4, 4),
            kind("b", "Latency", 5, 4),
        ]);
        assert_eq!(learned, 2);
        assert!(transients.contains("a", Some("CpuSpike")));
        assert!(!transients.contains("b", Some("CpuSpike")), "learned for tenant a only");
        assert!(!transients.contains("a", Some("DiskFull")), "mostly long");
        assert!(!transients.contains("a", Some("RareBlip")), "too few episodes to judge");
        assert!(transients.contains("b", Some("Latency")), "exactly 80%");
        assert!(transients.contains("z", Some("CronJobSlow")), "configured: every tenant");
        assert!(!transients.contains("a", None));
        transients.learn(&[]);
        assert!(!transients.contains("a", Some("CpuSpike")), "a new history replaces the old");
    }
}
