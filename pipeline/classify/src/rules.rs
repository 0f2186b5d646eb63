//! Users' own classification rules, applied on top of the local classifier: the first rule whose
//! pattern matches decides the category and/or the severity, with full confidence.

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::subject::Subject;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A regular expression over the subject: alert names, `label=value` pairs, summary and
    /// description, one per line. `(?i)` makes it case-insensitive.
    pub pattern: String,
    pub category: Option<String>,
    pub severity: Option<String>,
}

pub struct Rule {
    pattern: Regex,
    pub category: Option<String>,
    pub severity: Option<String>,
}

impl Rule {
    pub fn compile(config: &RuleConfig) -> Result<Self, String> {
        if config.category.is_none() && config.severity.is_none() {
            return Err("a rule must set `category`, `severity` or both".into());
        }
        let pattern = Regex::new(&config.pattern).map_err(|e| format!("`pattern` is not a regular expression: {e}"))?;
        Ok(Self { pattern, category: config.category.clone(), severity: config.severity.clone() })
    }

    pub fn matches(&self, subject: &Subject) -> bool {
        self.pattern.is_match(&rule_text(subject))
    }
}

fn rule_text(subject: &Subject) -> String {
    let mut lines = subject.alertnames.clone();
    lines.extend(subject.labels.iter().map(|(k, v)| format!("{k}={v}")));
    lines.push(subject.summary.clone());
    lines.push(subject.description.clone());
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn rules_match_names_labels_and_texts() {
        let labels = BTreeMap::from([("alertname".into(), "PaymentsSlow".into()), ("team".into(), "billing".into())]);
        let subject = Subject::from_alert("i", &labels, &BTreeMap::new());
        let rule = |pattern: &str| {
            Rule::compile(&RuleConfig { pattern: pattern.into(), category: Some("payments".into()), severity: None })
                .unwrap()
        };
        assert!(rule("(?m)^team=billing$").matches(&subject));
        assert!(rule("(?i)paymentsslow").matches(&subject));
        assert!(!rule("team=search").matches(&subject));
        let error = Rule::compile(&RuleConfig { pattern: "(".into(), category: None, severity: Some("low".into()) });
        assert!(error.err().unwrap().contains("pattern"));
    }
}
