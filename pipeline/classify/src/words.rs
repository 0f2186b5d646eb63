//! A softmax regression over the distinct words of a subject: which words tell the classes
//! apart, learned from the labelled examples. Unlike naive Bayes it weighs words against each
//! other, so a word every class uses ("high", "down") learns a weight near zero and cannot pull
//! an alert towards the class with the fewest words. Small enough to fit in milliseconds, so
//! the classifier fits one per fold of its examples for the out-of-fold scores its calibration
//! needs.

use std::collections::HashMap;

/// Passes over the examples.
const EPOCHS: usize = 10;
/// AdaGrad's base step.
const STEP: f32 = 0.5;
/// L2 penalty per update: weights of words seen once stay small.
const PENALTY: f32 = 1e-3;

/// Log probabilities are clamped to at least this: "very unlikely" says enough, and one word
/// cannot swing the calibrated model on its own.
pub const FLOOR: f32 = -12.0;

#[derive(Debug, Clone, Default)]
pub struct WordModel {
    classes: usize,
    index: HashMap<String, usize>,
    /// Per word, per class.
    weights: Vec<f32>,
    bias: Vec<f32>,
}

impl WordModel {
    /// Fits to `documents` (distinct words, class) over `classes` classes.
    pub fn fit(documents: &[(Vec<String>, usize)], classes: usize) -> Self {
        let mut model = Self { classes, index: HashMap::new(), weights: Vec::new(), bias: vec![0.0; classes] };
        let documents: Vec<(Vec<usize>, usize)> = documents
            .iter()
            .map(|(words, class)| {
                let ids = words
                    .iter()
                    .map(|w| {
                        let next = model.index.len();
                        *model.index.entry(w.clone()).or_insert(next)
                    })
                    .collect();
                (ids, *class)
            })
            .collect();
        model.weights = vec![0.0; model.index.len() * classes];
        let mut squares = vec![1e-6f32; model.weights.len()];
        let mut bias_squares = vec![1e-6f32; classes];
        let n = documents.len();
        // A fixed stride through the documents: every epoch in another order, every run the same.
        let stride = (1..n.max(2)).rev().find(|s| gcd(*s, n) == 1 && *s <= n / 2 + 1).unwrap_or(1);
        for epoch in 0..EPOCHS {
            for k in 0..n {
                let (ids, class) = &documents[(epoch + k * stride) % n];
                let p = model.probabilities_of(ids);
                for c in 0..classes {
                    let gradient = p[c] - f32::from(u8::from(c == *class));
                    bias_squares[c] += gradient * gradient;
                    model.bias[c] -= STEP * gradient / bias_squares[c].sqrt();
                    for id in ids {
                        let at = id * classes + c;
                        let g = gradient + PENALTY * model.weights[at];
                        squares[at] += g * g;
                        model.weights[at] -= STEP * g / squares[at].sqrt();
                    }
                }
            }
        }
        model
    }

    /// `log P(class | words)` per class, at least [`FLOOR`]; the classes' priors alone when no
    /// word is known.
    pub fn log_probabilities(&self, words: &[String]) -> Vec<f32> {
        let ids: Vec<usize> = words.iter().filter_map(|w| self.index.get(w).copied()).collect();
        self.probabilities_of(&ids).into_iter().map(|p| p.ln().max(FLOOR)).collect()
    }

    fn probabilities_of(&self, ids: &[usize]) -> Vec<f32> {
        let mut scores = self.bias.clone();
        for id in ids {
            for (c, score) in scores.iter_mut().enumerate() {
                *score += self.weights[id * self.classes + c];
            }
        }
        let top = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exps: Vec<f32> = scores.iter().map(|s| (s - top).exp()).collect();
        let sum: f32 = exps.iter().sum();
        exps.into_iter().map(|e| e / sum).collect()
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn telling_words_get_weight_and_shared_words_do_not() {
        let documents: Vec<(Vec<String>, usize)> = [
            ("replication lag high", 0),
            ("query slow high", 0),
            ("deadlock query", 0),
            ("consumer lag high", 1),
            ("queue backlog high", 1),
            ("consumer topic", 1),
        ]
        .iter()
        .map(|(text, class)| (words(text), *class))
        .collect();
        let model = WordModel::fit(&documents, 2);
        let p = model.log_probabilities(&words("replication unknownword"));
        assert!(p[0] > p[1] && p[0] <= 0.0, "{p:?}");
        assert!(model.log_probabilities(&words("consumer"))[1].exp() > 0.8);
        let high = model.log_probabilities(&words("high"));
        assert!((high[0].exp() - 0.5).abs() < 0.2, "a word both use says little: {high:?}");
        let none = model.log_probabilities(&words("never seen"));
        assert!((none[0].exp() - 0.5).abs() < 0.1, "no known word: the priors: {none:?}");
    }
}
