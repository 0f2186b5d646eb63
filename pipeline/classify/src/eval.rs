//! Scoring predictions against expectations: accuracy, macro-F1 and a confusion matrix; and
//! whether the confidence reported means something (calibration error and AUROC).

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

/// Confidences reported and whether each answer was right.
#[derive(Debug, Default)]
pub struct Calibration {
    pairs: Vec<(f32, bool)>,
}

#[derive(Debug, Serialize)]
pub struct CalibrationSummary {
    /// Expected calibration error over ten equal-width bins: the answers' share in each bin
    /// times the gap between its mean confidence and its accuracy.
    pub ece: f64,
    /// The probability that a right answer has a higher confidence than a wrong one (ties count
    /// half): 0.5 for a constant confidence, 1 when confidence separates them.
    pub auroc: f64,
    pub mean: f64,
}

impl Calibration {
    pub fn add(&mut self, confidence: f32, right: bool) {
        self.pairs.push((confidence, right));
    }

    pub fn summary(&self) -> CalibrationSummary {
        let n = self.pairs.len().max(1) as f64;
        let mut bins = [(0.0f64, 0.0f64); 10];
        for (confidence, right) in &self.pairs {
            let bin = &mut bins[((confidence.clamp(0.0, 1.0) * 10.0) as usize).min(9)];
            bin.0 += f64::from(*confidence);
            bin.1 += f64::from(u8::from(*right));
        }
        // Per bin, its share k/n times |sum of confidences - rights| / k.
        let ece = bins.iter().map(|(confidences, rights)| (confidences - rights).abs() / n).sum();
        // Rank statistic: ascending order, ties get their average rank.
        let mut order: Vec<(f32, bool)> = self.pairs.clone();
        order.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (mut rank_sum, mut i) = (0.0f64, 0);
        while i < order.len() {
            let j = (i + 1..order.len()).find(|j| order[*j].0 != order[i].0).unwrap_or(order.len());
            let average = (i + j + 1) as f64 / 2.0;
            rank_sum += average * order[i..j].iter().filter(|p| p.1).count() as f64;
            i = j;
        }
        let right = order.iter().filter(|p| p.1).count() as f64;
        let wrong = order.len() as f64 - right;
        let auroc =
            if right > 0.0 && wrong > 0.0 { (rank_sum - right * (right + 1.0) / 2.0) / (right * wrong) } else { 0.5 };
        let mean = self.pairs.iter().map(|p| f64::from(p.0)).sum::<f64>() / n;
        CalibrationSummary { ece, auroc, mean }
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

    #[test]
    fn calibration_error_and_auroc_tell_meaningful_confidence_from_constant() {
        let mut constant = Calibration::default();
        let mut meaningful = Calibration::default();
        for i in 0..100 {
            let right = i % 10 < 7;
            constant.add(0.7, right);
            meaningful.add(if right { 0.9 } else { 0.3 }, right);
        }
        let constant = constant.summary();
        assert!(constant.ece < 1e-6 && (constant.auroc - 0.5).abs() < 1e-9, "{constant:?}");
        let meaningful = meaningful.summary();
        assert!((meaningful.auroc - 1.0).abs() < 1e-9, "{meaningful:?}");
        // 70 answers at 0.9 all right (gap 0.1), 30 at 0.3 all wrong (gap 0.3): 0.07 + 0.09.
        assert!((meaningful.ece - 0.16).abs() < 1e-6, "{meaningful:?}");
    }
}
