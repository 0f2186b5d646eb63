//! The calibrated model that weighs the classifier's evidence: a conditional logit, where each
//! class has the same kinds of evidence (its catalog score, its neighbours' votes, its word
//! model's probability…), one weight per kind is shared by all classes, and each class has a bias
//! (its prior). Fitted by Newton's method on out-of-fold evidence, so that its probabilities are
//! what the evidence is worth on services it has not seen: the confidence it reports.

/// Ridge penalty towards the prior weights: keeps weights finite when one kind of evidence
/// separates the training rows, and leaves the prior where there are no rows (a taxonomy whose
/// categories no example has).
const PENALTY: f64 = 1.0;

/// Evidence for one subject: per class, one value per kind.
pub type Evidence = Vec<Vec<f32>>;

#[derive(Debug, Clone, Default)]
pub struct Logit {
    /// One weight per kind of evidence, then one bias per class.
    weights: Vec<f64>,
    /// What the weights are drawn towards: `prior` per kind, zero biases.
    prior: Vec<f64>,
    kinds: usize,
}

impl Logit {
    /// Fits weights to `rows` (evidence, true class), starting from and drawn towards `prior`
    /// (one weight per kind of evidence).
    pub fn fit(rows: &[(Evidence, usize)], classes: usize, prior: &[f64]) -> Self {
        let kinds = prior.len();
        let prior: Vec<f64> = prior.iter().copied().chain(std::iter::repeat_n(0.0, classes)).collect();
        let mut model = Self { weights: prior.clone(), prior, kinds };
        if rows.is_empty() {
            return model;
        }
        let mut loss = model.loss(rows);
        for _ in 0..50 {
            let step = model.newton_step(rows, classes);
            let before = model.weights.clone();
            let mut scale = 1.0;
            // Halve the step until the loss falls: Newton's step can overshoot far from the optimum.
            let next = loop {
                model.weights = before.iter().zip(&step).map(|(w, d)| w - scale * d).collect();
                let next = model.loss(rows);
                if next <= loss {
                    break next;
                }
                scale /= 2.0;
                if scale < 1e-3 {
                    model.weights = before;
                    return model;
                }
            };
            let converged = loss - next < 1e-7 * rows.len() as f64;
            loss = next;
            if converged {
                break;
            }
        }
        model
    }

    /// The probability of each class.
    pub fn probabilities(&self, evidence: &[Vec<f32>]) -> Vec<f32> {
        self.probabilities_f64(evidence).into_iter().map(|p| p as f32).collect()
    }

    fn probabilities_f64(&self, evidence: &[Vec<f32>]) -> Vec<f64> {
        let scores: Vec<f64> = evidence
            .iter()
            .enumerate()
            .map(|(c, values)| {
                let bias = self.weights.get(self.kinds + c).copied().unwrap_or(0.0);
                bias + values.iter().zip(&self.weights).map(|(v, w)| f64::from(*v) * w).sum::<f64>()
            })
            .collect();
        let top = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exps: Vec<f64> = scores.iter().map(|s| (s - top).exp()).collect();
        let sum: f64 = exps.iter().sum();
        exps.into_iter().map(|e| e / sum).collect()
    }

    /// Negative log-likelihood plus the penalty.
    fn loss(&self, rows: &[(Evidence, usize)]) -> f64 {
        let nll: f64 = rows.iter().map(|(e, class)| -self.probabilities_f64(e)[*class].max(1e-12).ln()).sum();
        nll + 0.5 * PENALTY * self.weights.iter().zip(&self.prior).map(|(w, p)| (w - p).powi(2)).sum::<f64>()
    }

    /// The Newton step H⁻¹g of the penalised loss.
    fn newton_step(&self, rows: &[(Evidence, usize)], classes: usize) -> Vec<f64> {
        let d = self.weights.len();
        let mut gradient: Vec<f64> = self.weights.iter().zip(&self.prior).map(|(w, p)| PENALTY * (w - p)).collect();
        let mut hessian = vec![vec![0.0; d]; d];
        (0..d).for_each(|i| hessian[i][i] = PENALTY);
        for (evidence, class) in rows {
            let p = self.probabilities_f64(evidence);
            // The row's design vector for class c: its evidence, then a one-hot bias.
            let z = |c: usize| {
                let mut z: Vec<f64> = evidence[c].iter().map(|v| f64::from(*v)).collect();
                z.resize(self.kinds, 0.0);
                z.extend((0..classes).map(|k| if k == c { 1.0 } else { 0.0 }));
                z
            };
            let zs: Vec<Vec<f64>> = (0..classes).map(z).collect();
            let mean: Vec<f64> = (0..d).map(|i| (0..classes).map(|c| p[c] * zs[c][i]).sum()).collect();
            for i in 0..d {
                gradient[i] += mean[i] - zs[*class][i];
                for j in 0..d {
                    let second: f64 = (0..classes).map(|c| p[c] * zs[c][i] * zs[c][j]).sum();
                    hessian[i][j] += second - mean[i] * mean[j];
                }
            }
        }
        solve(hessian, gradient)
    }
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting (`a` is positive definite
/// here, thanks to the penalty).
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|x, y| a[*x][col].abs().total_cmp(&a[*y][col].abs())).expect("rows left");
        a.swap(col, pivot);
        b.swap(col, pivot);
        let (above, below) = a.split_at_mut(col + 1);
        let pivot_row = &above[col];
        for (offset, row) in below.iter_mut().enumerate() {
            let factor = row[col] / pivot_row[col];
            for (value, pivot_value) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                *value -= factor * pivot_value;
            }
            b[col + 1 + offset] -= factor * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let rest: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - rest) / a[row][row];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_that_predicts_the_class_gets_weight_and_noise_does_not() {
        // Two classes; kind 0 points at the true class 80% of the time, kind 1 is noise.
        let rows: Vec<(Evidence, usize)> = (0..500)
            .map(|i| {
                let class = i % 2;
                let pointed = if i % 5 == 0 { 1 - class } else { class };
                let noise = (i / 2) % 2;
                let evidence =
                    (0..2).map(|c| vec![f32::from(u8::from(c == pointed)), f32::from(u8::from(c == noise))]).collect();
                (evidence, class)
            })
            .collect();
        let model = Logit::fit(&rows, 2, &[0.0, 0.0]);
        assert!(model.weights[0] > 1.0, "{:?}", model.weights);
        assert!(model.weights[1].abs() < 0.3, "{:?}", model.weights);
        // Calibrated: evidence right 80% of the time gives about 0.8.
        let p = model.probabilities(&[vec![1.0, 0.0], vec![0.0, 1.0]]);
        assert!((p[0] - 0.8).abs() < 0.05, "{p:?}");
    }

    #[test]
    fn without_rows_the_prior_decides() {
        let model = Logit::fit(&[], 3, &[0.0]);
        assert_eq!(model.probabilities(&[vec![1.0], vec![0.0], vec![0.5]]), vec![1.0 / 3.0; 3]);
        let model = Logit::fit(&[], 3, &[2.0]);
        let p = model.probabilities(&[vec![1.0], vec![0.0], vec![0.5]]);
        assert!(p[0] > p[2] && p[2] > p[1], "{p:?}");
    }
}
