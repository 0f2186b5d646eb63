//! Scoring predictions against expectations: accuracy, macro-F1 and a confusion matrix.

use std::collections::BTreeMap;

use serde::Serialize;

/// Expected and predicted labels of one kind (category or severity).
#[derive(Debug, Default)]
pub struct Scores {
    pairs: Vec<(String, String)>,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub total: usize,
    pub correct: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
    /// expected → predicted → count.
    pub confusion: BTreeMap<String, BTreeMap<String, usize>>,
}

impl Scores {
    pub fn add(&mut self, expected: &str, predicted: &str) {
        self.pairs.push((expected.to_string(), predicted.to_string()));
    }

    pub fn summary(&self) -> Summary {
        let total = self.pairs.len();
        let correct = self.pairs.iter().filter(|(e, p)| e == p).count();
        let mut confusion: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for (e, p) in &self.pairs {
            *confusion.entry(e.clone()).or_default().entry(p.clone()).or_default() += 1;
        }
        // Macro-F1 over the expected labels: a label never expected has no recall to speak of.
        let f1s: Vec<f64> = confusion
            .keys()
            .map(|label| {
                let tp = self.pairs.iter().filter(|(e, p)| e == label && p == label).count() as f64;
                let predicted = self.pairs.iter().filter(|(_, p)| p == label).count() as f64;
                let expected = self.pairs.iter().filter(|(e, _)| e == label).count() as f64;
                let precision = if predicted > 0.0 { tp / predicted } else { 0.0 };
                let recall = if expected > 0.0 { tp / expected } else { 0.0 };
                if precision + recall > 0.0 {
                    2.0 * precision * recall / (precision + recall)
                } else {
                    0.0
                }
            })
            .collect();
        Summary {
            total,
            correct,
            accuracy: if total > 0 { correct as f64 / total as f64 } else { 0.0 },
            macro_f1: if f1s.is_empty() { 0.0 } else { f1s.iter().sum::<f64>() / f1s.len() as f64 },
            confusion,
        }
    }
}

impl Summary {
    /// The confusion matrix as text: one row per expected label, one column per predicted label.
    pub fn matrix(&self) -> String {
        let mut columns: Vec<&String> = self.confusion.values().flat_map(|row| row.keys()).collect();
        columns.sort();
        columns.dedup();
        let width = columns.iter().map(|c| c.len()).max().unwrap_or(4).max(5);
        let first = self.confusion.keys().map(String::len).max().unwrap_or(8).max(18);
        let mut out = format!("{:first$}", "expected \\ predicted");
        for c in &columns {
            out.push_str(&format!(" {:>width$}", abbreviate(c, width)));
        }
        out.push('\n');
        for (expected, row) in &self.confusion {
            out.push_str(&format!("{expected:first$}"));
            for c in &columns {
                out.push_str(&format!(" {:>width$}", row.get(*c).copied().unwrap_or(0)));
            }
            out.push('\n');
        }
        out
    }
}

fn abbreviate(label: &str, width: usize) -> String {
    label.chars().take(width).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_macro_f1_and_confusion_are_computed() {
        let mut scores = Scores::default();
        for (e, p) in [("db", "db"), ("db", "db"), ("db", "mq"), ("mq", "mq")] {
            scores.add(e, p);
        }
        let summary = scores.summary();
        assert_eq!((summary.total, summary.correct), (4, 3));
        assert!((summary.accuracy - 0.75).abs() < 1e-9);
        // db: precision 1, recall 2/3 → 0.8; mq: precision 1/2, recall 1 → 2/3.
        assert!((summary.macro_f1 - (0.8 + 2.0 / 3.0) / 2.0).abs() < 1e-9);
        assert_eq!(summary.confusion["db"]["mq"], 1);
        assert!(summary.matrix().lines().nth(1).unwrap().starts_with("db"));
    }
}
