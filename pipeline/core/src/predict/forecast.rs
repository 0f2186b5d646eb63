//! Forecasters: what to expect after each onset. Ours reads the learned precursors with their
//! lead times across the topology; the two baselines are the ones `quench predict eval` must
//! beat (periodic recurrence, and same-entity pair frequency).
//!
//! Each forecaster gives every prediction a probability; the evaluation (and `quench predict`)
//! keeps those at or above a threshold chosen on the training data ([`choose_threshold`]).

use std::collections::HashMap;

use super::{
    precursors::{Precursors, Scope},
    score::{score, Forecast},
    topology::Topology,
    Horizon, Onset, Seconds,
};

/// A prediction with the probability its forecaster gives it.
pub type Candidate = (Forecast, f64);

pub trait Forecaster {
    fn name(&self) -> &'static str;
    /// Learns from an onset (time order).
    fn learn(&mut self, onset: Onset);
    /// The predictions an onset leads to, from what was learned so far.
    fn predict(&self, onset: Onset, out: &mut Vec<Candidate>);
}

/// The threshold that maximises F1 against `onsets` of `kept` plus the `candidates` at or above
/// it, among at most 40 of the candidates' probabilities and "none of them" (infinity), so that a
/// forecaster added to others adds only what helps.
pub fn choose_threshold(kept: &[Forecast], candidates: &[Candidate], onsets: &[Onset], horizon: Horizon) -> f64 {
    let mut levels: Vec<f64> = candidates.iter().map(|&(_, p)| p).collect();
    levels.sort_by(f64::total_cmp);
    levels.dedup();
    let step = levels.len().div_ceil(40).max(1);
    let mut best = (score(kept, onsets, horizon).f1, f64::INFINITY);
    for &level in levels.iter().step_by(step) {
        let mut with: Vec<Forecast> = kept.to_vec();
        with.extend(candidates.iter().filter(|&&(_, p)| p >= level).map(|&(f, _)| f));
        let f1 = score(&with, onsets, horizon).f1;
        if f1 > best.0 {
            best = (f1, level);
        }
    }
    best.1
}

/// The thresholds of forecasters whose predictions are pooled, in order: each one's makes the
/// pool so far best on `onsets` (a forecaster that does not help adds nothing). Returns the
/// thresholds and the pooled predictions they keep.
pub fn pooled_thresholds(parts: &[&[Candidate]], onsets: &[Onset], horizon: Horizon) -> (Vec<f64>, Vec<Forecast>) {
    let mut kept = Vec::new();
    let thresholds = parts
        .iter()
        .map(|candidates| {
            let threshold = choose_threshold(&kept, candidates, onsets, horizon);
            kept.extend(candidates.iter().filter(|&&(_, p)| p >= threshold).map(|&(f, _)| f));
            threshold
        })
        .collect();
    (thresholds, kept)
}

/// Precursor forecasting: after an onset of A on D, expect each kind B that followed A on D (or
/// on an entity linked to D, expected there) in the part of the horizon where B's learned lead
/// times put the most mass. A prediction may be issued later than the onset, when the lead
/// times say B comes later than the horizon reaches (the prediction is still made from what was
/// known at the onset).
#[derive(Debug, Clone)]
pub struct PrecursorForecaster {
    learner: Precursors,
    horizon: Horizon,
    /// Onsets of A needed before its edges predict anything.
    pub min_support: u64,
}

impl PrecursorForecaster {
    pub fn new(horizon: Horizon, topology: Topology) -> Self {
        Self { learner: Precursors::new(2 * horizon.lead_max, horizon.bucket(), topology), horizon, min_support: 5 }
    }

    pub fn learner(&self) -> &Precursors {
        &self.learner
    }

    /// Counts the onsets whose follow-up time ended by `now` (at the end of a history).
    pub fn learn_until(&mut self, now: Seconds) {
        self.learner.advance(now);
    }

    /// The delay and probability of the best-placed window for one learned edge.
    pub fn best_window(&self, cause: u32, edge: &super::precursors::Edge) -> (Seconds, f64) {
        let counted = self.learner.counted(cause).max(1) as f64;
        let h = self.horizon;
        let latest = self.learner.max_lead() - h.lead_max;
        (0..=latest / h.lead_min)
            .map(|i| i * h.lead_min)
            .map(|delay| (delay, edge.followed_within(delay + h.lead_min, delay + h.lead_max) as f64 / counted))
            .fold((0, 0.0), |best, next| if next.1 > best.1 { next } else { best })
    }
}

impl Forecaster for PrecursorForecaster {
    fn name(&self) -> &'static str {
        "precursors"
    }

    fn learn(&mut self, onset: Onset) {
        self.learner.observe(onset);
    }

    fn predict(&self, onset: Onset, out: &mut Vec<Candidate>) {
        if self.learner.counted(onset.kind) < self.min_support {
            return;
        }
        for (effect, scope, edge) in self.learner.effects_of(onset.kind) {
            let (delay, probability) = self.best_window(onset.kind, edge);
            if probability <= 0.0 {
                continue;
            }
            let issued = onset.at + delay;
            match scope {
                Scope::Same => out.push((Forecast { kind: effect, entity: onset.entity, issued }, probability)),
                Scope::Linked => {
                    for &entity in self.learner.topology().neighbours(onset.entity) {
                        out.push((Forecast { kind: effect, entity, issued }, probability));
                    }
                }
            }
        }
    }
}

/// Baseline: periodic recurrence. After an onset of B on D, expect the next one a median
/// inter-onset interval (of B on D, so far) later: the prediction is issued so that the
/// expected moment is in the middle of its window, or at the onset if that is later.
#[derive(Debug, Clone)]
pub struct Recurrence {
    horizon: Horizon,
    history: HashMap<(u32, u32), Vec<Seconds>>,
}

impl Recurrence {
    pub fn new(horizon: Horizon) -> Self {
        Self { horizon, history: HashMap::new() }
    }
}

impl Forecaster for Recurrence {
    fn name(&self) -> &'static str {
        "periodic recurrence"
    }

    fn learn(&mut self, onset: Onset) {
        self.history.entry((onset.kind, onset.entity)).or_default().push(onset.at);
    }

    fn predict(&self, onset: Onset, out: &mut Vec<Candidate>) {
        let Some(times) = self.history.get(&(onset.kind, onset.entity)).filter(|t| t.len() >= 2) else { return };
        let mut gaps: Vec<Seconds> = times.windows(2).map(|w| w[1] - w[0]).collect();
        gaps.sort_unstable();
        let median = gaps[gaps.len() / 2];
        let middle = (self.horizon.lead_min + self.horizon.lead_max) / 2;
        let issued = (onset.at + median - middle).max(onset.at);
        out.push((Forecast { kind: onset.kind, entity: onset.entity, issued }, 1.0));
    }
}

/// Baseline: same-entity pair frequency. After an onset of A on D, expect B on D with the
/// probability that an onset of B followed A's on the same entity within the horizon so far.
#[derive(Debug, Clone)]
pub struct PairFrequency {
    learner: Precursors,
    horizon: Horizon,
}

impl PairFrequency {
    pub fn new(horizon: Horizon) -> Self {
        Self { learner: Precursors::new(horizon.lead_max, horizon.bucket(), Topology::default()), horizon }
    }
}

impl Forecaster for PairFrequency {
    fn name(&self) -> &'static str {
        "pair frequency"
    }

    fn learn(&mut self, onset: Onset) {
        self.learner.observe(onset);
    }

    fn predict(&self, onset: Onset, out: &mut Vec<Candidate>) {
        let counted = self.learner.counted(onset.kind);
        if counted == 0 {
            return;
        }
        for (effect, _, edge) in self.learner.effects_of(onset.kind) {
            let probability =
                edge.followed_within(self.horizon.lead_min, self.horizon.lead_max) as f64 / counted as f64;
            if probability > 0.0 {
                out.push((Forecast { kind: effect, entity: onset.entity, issued: onset.at }, probability));
            }
        }
    }
}
