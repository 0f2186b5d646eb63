//! What classification decides between: a severity scale, categories with descriptions (what an
//! LLM is told and what the local classifier may answer), and the severity × impact matrix that
//! gives the priority.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use quench_schemas::severity::Scale;

use crate::catalog::Catalog;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "TaxonomyTable", into = "TaxonomyTable")]
pub struct Taxonomy {
    /// The deployment's one severity scale, which the worker's windows rank alerts on too.
    pub scale: Scale,
    /// Empty means the built-in catalog's categories, with their descriptions.
    pub categories: Vec<CategoryDescription>,
    pub priority: PriorityMatrix,
}

/// `[classify.taxonomy]` as written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TaxonomyTable {
    /// Most severe first.
    severities: Vec<String>,
    /// Other words for levels of the scale, as alert labels and labelled examples spell them
    /// (`warning = "medium"`). Names on the scale always map to themselves.
    severity_aliases: BTreeMap<String, String>,
    categories: Vec<CategoryDescription>,
    priority: PriorityMatrix,
}

impl From<TaxonomyTable> for Taxonomy {
    fn from(table: TaxonomyTable) -> Self {
        let aliases =
            table.severity_aliases.into_iter().map(|(word, level)| (word.to_ascii_lowercase(), level)).collect();
        Self { scale: Scale::new(table.severities, aliases), categories: table.categories, priority: table.priority }
    }
}

impl From<Taxonomy> for TaxonomyTable {
    fn from(taxonomy: Taxonomy) -> Self {
        Self {
            severities: taxonomy.scale.levels().to_vec(),
            severity_aliases: taxonomy.scale.aliases().clone(),
            categories: taxonomy.categories,
            priority: taxonomy.priority,
        }
    }
}

impl Default for TaxonomyTable {
    fn default() -> Self {
        Taxonomy::default().into()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryDescription {
    pub name: String,
    pub description: String,
}

/// Impact is `high` from `high_alerts` distinct alerts in the incident, `medium` from
/// `medium_alerts`, `low` below; `matrix` gives, per severity, the priority for high, medium
/// and low impact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PriorityMatrix {
    pub high_alerts: usize,
    pub medium_alerts: usize,
    pub matrix: BTreeMap<String, [String; 3]>,
}

impl Default for PriorityMatrix {
    fn default() -> Self {
        let row = |p: [&str; 3]| p.map(String::from);
        Self {
            high_alerts: 10,
            medium_alerts: 3,
            matrix: BTreeMap::from([
                ("critical".to_string(), row(["P1", "P1", "P2"])),
                ("high".to_string(), row(["P2", "P2", "P3"])),
                ("medium".to_string(), row(["P3", "P3", "P4"])),
                ("low".to_string(), row(["P4", "P5", "P5"])),
            ]),
        }
    }
}

impl Taxonomy {
    /// The shared corpus's taxonomy, which `quench eval classify` scores against; its categories
    /// are the built-in catalog's.
    pub fn corpus() -> Self {
        let row = |p: [&str; 3]| p.map(String::from);
        Self {
            scale: Scale::new(["critical", "warning", "info"].map(String::from).to_vec(), BTreeMap::new()),
            categories: Vec::new(),
            priority: PriorityMatrix {
                matrix: BTreeMap::from([
                    ("critical".to_string(), row(["P1", "P1", "P2"])),
                    ("warning".to_string(), row(["P3", "P3", "P4"])),
                    ("info".to_string(), row(["P4", "P5", "P5"])),
                ]),
                ..PriorityMatrix::default()
            },
        }
    }

    /// Takes the catalog's categories when none are configured.
    pub fn fill_categories(&mut self, catalog: &Catalog) {
        if self.categories.is_empty() {
            self.categories = catalog
                .categories()
                .iter()
                .map(|c| CategoryDescription { name: c.name.clone(), description: c.description.clone() })
                .collect();
        }
    }

    /// `Err((key, message))` naming the key under `classify.taxonomy`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let levels = self.scale.levels();
        if levels.is_empty() {
            return Err(("severities".into(), "must list at least one severity".into()));
        }
        for (alias, level) in self.scale.aliases() {
            if !levels.contains(level) {
                return Err((format!("severity_aliases.{alias}"), format!("`{level}` is not one of `severities`")));
            }
        }
        for severity in levels {
            if !self.priority.matrix.contains_key(severity) {
                return Err((
                    format!("priority.matrix.{severity}"),
                    "every severity needs a row of three priorities".into(),
                ));
            }
        }
        if self.priority.medium_alerts > self.priority.high_alerts {
            return Err(("priority.medium_alerts".into(), "must not exceed priority.high_alerts".into()));
        }
        Ok(())
    }

    /// The level of the scale that `word` names, if any.
    pub fn severity(&self, word: &str) -> Option<&str> {
        self.scale.level(word)
    }

    pub fn has_category(&self, name: &str) -> bool {
        self.categories.iter().any(|c| c.name == name)
    }

    /// The priority of an incident of `severity` (on the scale) with `alerts` distinct alerts.
    pub fn priority(&self, severity: &str, alerts: usize) -> String {
        let impact = if alerts >= self.priority.high_alerts {
            0
        } else if alerts >= self.priority.medium_alerts {
            1
        } else {
            2
        };
        self.priority.matrix.get(severity).map(|row| row[impact].clone()).unwrap_or_else(|| "P3".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_follows_severity_and_impact() {
        let taxonomy = Taxonomy::default();
        assert!(taxonomy.validate().is_ok());
        assert_eq!(taxonomy.priority("critical", 1), "P2");
        assert_eq!(taxonomy.priority("critical", 12), "P1");
        assert_eq!(taxonomy.priority("medium", 4), "P3");
        assert_eq!(taxonomy.priority("low", 1), "P5");
    }

    #[test]
    fn aliases_map_label_words_onto_the_scale() {
        let taxonomy = Taxonomy::default();
        assert_eq!(taxonomy.severity("Warning"), Some("medium"));
        assert_eq!(taxonomy.severity("critical"), Some("critical"));
        assert_eq!(taxonomy.severity("sev-x"), None);
    }

    #[test]
    fn validation_names_the_broken_key() {
        let parse = |text: &str| toml::from_str::<Taxonomy>(text).unwrap();
        let taxonomy = parse("[severity_aliases]\nsev1 = \"urgent\"");
        assert_eq!(taxonomy.validate().unwrap_err().0, "severity_aliases.sev1");
        let taxonomy = parse("severities = [\"critical\", \"high\", \"medium\", \"low\", \"trivial\"]");
        assert_eq!(taxonomy.validate().unwrap_err().0, "priority.matrix.trivial");
    }
}
