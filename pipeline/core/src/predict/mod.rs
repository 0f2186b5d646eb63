//! Prediction: which alert kinds precede which others on the same or a linked entity, learned
//! from history, and what is expected next.
//!
//! Everything here works on *onsets*: an alert kind starting on an entity after a quiet spell
//! (an alert that keeps firing, or re-fires within the quiet spell, is not news). Kinds and
//! entities are interned to small integers by the caller ([`Interner`]), so the learner is the
//! same for a live stream (alert names and `instance`/`host`/… labels) and for an alarm CSV.
//!
//! - [`onset`]: onsets out of a stream of alerts;
//! - [`topology`]: which entities are linked (a topology file), and an alert's entity;
//! - [`precursors`]: the learner, online: for each kind A, how often an onset of B follows it on
//!   the same or a linked entity, and after how long;
//! - [`forecast`]: the forecasters after onsets (precursors and the two baselines);
//! - [`hazard`]: recurrence hazard, how likely a silent series is to start again;
//! - [`live`]: the predictor of `quench predict`, fitted on history and fed alerts;
//! - [`causal`]: the causal graph between kinds, read off the learner;
//! - [`score`]: the evaluation protocol of `quench predict eval`;
//! - [`evaluate`]: that evaluation on an alarm recording, ours against the baselines.

pub mod causal;
pub mod evaluate;
pub mod forecast;
pub mod hazard;
pub mod live;
pub mod onset;
pub mod precursors;
pub mod score;
pub mod topology;

use std::collections::HashMap;

/// Seconds, on the caller's clock (event time).
pub type Seconds = i64;

/// An alert kind starting on an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Onset {
    pub kind: u32,
    pub entity: u32,
    pub at: Seconds,
}

/// The horizon predictions are made for: an onset expected after `lead_min` and up to
/// `lead_max` seconds from when the prediction is issued. The defaults are the product's
/// promise: 5 to 30 minutes ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizon {
    pub lead_min: Seconds,
    pub lead_max: Seconds,
}

impl Default for Horizon {
    fn default() -> Self {
        Self { lead_min: 300, lead_max: 1800 }
    }
}

impl Horizon {
    /// Whether an onset at `at` is in the window of a prediction issued at `issued`.
    pub fn covers(&self, issued: Seconds, at: Seconds) -> bool {
        at > issued + self.lead_min && at <= issued + self.lead_max
    }

    /// The lead-time resolution learned: the largest divisor of both `lead_min` and `lead_max`
    /// that is at most a tenth of `lead_min` (30 s for the default horizon), so that every
    /// window edge falls on a bucket edge.
    pub fn bucket(&self) -> Seconds {
        let (mut a, mut b) = (self.lead_min.max(1), self.lead_max.max(1));
        while b != 0 {
            (a, b) = (b, a % b);
        }
        let cap = (self.lead_min / 10).max(1);
        (1..=cap).rev().find(|d| a % d == 0).unwrap_or(1)
    }
}

/// Names to dense ids and back (alert names, entities).
#[derive(Debug, Default, Clone)]
pub struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    pub fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.ids.insert(name.to_string(), id);
        self.names.push(name.to_string());
        id
    }

    pub fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lead_time_bucket_divides_both_edges_of_the_horizon() {
        assert_eq!(Horizon::default().bucket(), 30);
        assert_eq!(Horizon { lead_min: 1, lead_max: 10 }.bucket(), 1);
        assert_eq!(Horizon { lead_min: 250, lead_max: 1000 }.bucket(), 25);
        assert_eq!(Horizon { lead_min: 240, lead_max: 1790 }.bucket(), 10);
    }
}
