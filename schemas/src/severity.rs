//! The one severity scale of a deployment: what incidents' `severity` fields, routing events,
//! the window's "severity went up" and the classifier's answers all use. It is the classifier's
//! taxonomy (`[classify.taxonomy] severities` and `severity_aliases`): a custom taxonomy changes
//! the window's scale too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Ordered levels, most severe first, and the other words alert labels and examples use for
/// them (`warning` for `medium`). Words are matched without regard to case or surrounding space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    levels: Vec<String>,
    aliases: BTreeMap<String, String>,
}

/// How severe a level is: higher is more severe; [`Rank::UNKNOWN`] (below every level) for a
/// word that is not on the scale or no severity at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(from = "StoredRank")]
pub struct Rank(pub u8);

/// A rank as the worker's changelog holds it: a number, or, in records written before the scale
/// was configurable, the name of a level of the fixed scale, whose ranks the default scale keeps.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredRank {
    Number(u8),
    Fixed(FixedLevel),
}

#[derive(Deserialize)]
enum FixedLevel {
    Unknown,
    Low,
    Medium,
    High,
    Critical,
}

impl From<StoredRank> for Rank {
    fn from(stored: StoredRank) -> Self {
        match stored {
            StoredRank::Number(rank) => Rank(rank),
            StoredRank::Fixed(level) => Rank(level as u8),
        }
    }
}

impl Rank {
    pub const UNKNOWN: Rank = Rank(0);
}

impl Scale {
    pub fn new(levels: Vec<String>, aliases: BTreeMap<String, String>) -> Self {
        Self { levels, aliases }
    }

    /// Most severe first.
    pub fn levels(&self) -> &[String] {
        &self.levels
    }

    pub fn aliases(&self) -> &BTreeMap<String, String> {
        &self.aliases
    }

    /// The level that `word` names, if any.
    pub fn level(&self, word: &str) -> Option<&str> {
        // Asked for every alert: the label is lower case already nearly always, and then needs
        // no copy.
        let word = word.trim();
        let lowered;
        let word = match word.bytes().any(|b| b.is_ascii_uppercase()) {
            true => {
                lowered = word.to_ascii_lowercase();
                lowered.as_str()
            }
            false => word,
        };
        match self.levels.iter().find(|level| level.as_str() == word) {
            Some(level) => Some(level),
            None => self.aliases.get(word).map(String::as_str),
        }
    }

    /// The rank of the level that `word` names (an alert's `severity` label, say).
    pub fn rank(&self, word: Option<&str>) -> Rank {
        let Some(level) = word.and_then(|w| self.level(w)) else { return Rank::UNKNOWN };
        let index = self.levels.iter().position(|l| l == level).expect("aliases name levels");
        Rank(u8::try_from(self.levels.len() - index).unwrap_or(u8::MAX))
    }

    /// The name of a rank: its level, or `unknown`.
    pub fn name(&self, rank: Rank) -> &str {
        match usize::from(rank.0).checked_sub(1).and_then(|i| self.levels.len().checked_sub(i + 1)) {
            Some(index) => &self.levels[index],
            None => "unknown",
        }
    }
}

impl Default for Scale {
    /// Four levels and the words rule authors commonly use for them.
    fn default() -> Self {
        let aliases = [
            ("critical", ["crit", "page", "emergency", "fatal", "disaster", "p1"].as_slice()),
            ("high", &["error", "err", "major", "severe", "p2"]),
            ("medium", &["warning", "warn", "minor", "average", "p3"]),
            ("low", &["info", "information", "informational", "notice", "debug", "none", "p4", "p5"]),
        ];
        Self {
            levels: aliases.iter().map(|(level, _)| level.to_string()).collect(),
            aliases: aliases
                .iter()
                .flat_map(|(level, words)| words.iter().map(|w| (w.to_string(), level.to_string())))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_map_onto_ranked_levels() {
        let scale = Scale::default();
        assert_eq!(scale.level(" Warning "), Some("medium"));
        assert_eq!(scale.level("sev-x"), None);
        assert!(scale.rank(Some("page")) > scale.rank(Some("error")));
        assert!(scale.rank(Some("info")) > scale.rank(None));
        assert_eq!(scale.rank(Some("sev-x")), Rank::UNKNOWN);
        for word in ["critical", "high", "medium", "low"] {
            assert_eq!(scale.name(scale.rank(Some(word))), word);
        }
        assert_eq!(scale.name(Rank::UNKNOWN), "unknown");
        assert_eq!(scale.name(Rank(9)), "unknown");
    }

    #[test]
    fn ranks_read_back_from_numbers_and_from_changelogs_of_the_fixed_scale() {
        let scale = Scale::default();
        let rank: Rank = serde_json::from_str(&serde_json::to_string(&Rank(3)).unwrap()).unwrap();
        assert_eq!(rank, Rank(3));
        for (stored, level) in [("Critical", "critical"), ("High", "high"), ("Medium", "medium"), ("Low", "low")] {
            let rank: Rank = serde_json::from_str(&format!("{stored:?}")).unwrap();
            assert_eq!(scale.name(rank), level);
        }
        assert_eq!(serde_json::from_str::<Rank>("\"Unknown\"").unwrap(), Rank::UNKNOWN);
    }

    #[test]
    fn a_custom_scale_ranks_its_own_words() {
        let scale = Scale::new(
            ["sev1", "sev2", "sev3"].map(String::from).to_vec(),
            BTreeMap::from([("critical".to_string(), "sev1".to_string())]),
        );
        assert!(scale.rank(Some("critical")) > scale.rank(Some("sev2")));
        assert_eq!(scale.name(scale.rank(Some("Critical"))), "sev1");
        assert_eq!(scale.rank(Some("high")), Rank::UNKNOWN, "not a word of this scale");
    }
}
