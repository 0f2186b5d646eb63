//! The live predictor behind `quench predict`: fitted on history, then fed alerts as they come.
//! After each onset it checks the predictions waiting for that kind on that entity (came true),
//! learns from the onset, and issues what the learned precursors expect next; `expire` says
//! which predictions' windows passed without their onset (missed).
//!
//! Kinds and entities are the caller's strings (the shell puts the tenant in both, so tenants
//! never share what is learned).

use std::collections::HashMap;

use super::{
    forecast::{choose_threshold, Candidate, Forecaster, PrecursorForecaster},
    onset::Onsets,
    precursors::Scope,
    topology::Topology,
    Horizon, Interner, Seconds,
};

/// A prediction, with what it rests on.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    pub kind: String,
    pub entity: String,
    pub issued: Seconds,
    /// The expected onset is after `window.0` and at or before `window.1`.
    pub window: (Seconds, Seconds),
    pub probability: f64,
    pub expected_lead: Seconds,
    pub evidence_kind: String,
    pub evidence_entity: String,
    pub evidence_fingerprint: String,
    /// Onsets of the evidence kind the edge was learned over.
    pub support: u64,
}

/// A learned precursor edge: onsets of `effect` followed `probability` of the `support` onsets
/// of `cause` (on the same entity, or a linked one), after `lead_p50` seconds in the middle.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnedEdge {
    pub cause: String,
    pub effect: String,
    pub linked: bool,
    pub probability: f64,
    /// The share that came in the prediction horizon's best-placed window.
    pub window_probability: f64,
    pub support: u64,
    pub lead_p50: Seconds,
}

/// What an alert or the passing of time did to predictions.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Issued(Expectation),
    /// The onset came at the given time, inside the window.
    CameTrue(Expectation, Seconds),
    Missed(Expectation),
}

pub struct Live {
    horizon: Horizon,
    kinds: Interner,
    entities: Interner,
    onsets: Onsets,
    forecaster: PrecursorForecaster,
    threshold: f64,
    pending: HashMap<(u32, u32), Vec<Expectation>>,
}

impl Live {
    /// Learns from `history` ((kind, entity, time), in time order). The probability a prediction
    /// needs is `threshold`, or else the one that predicts the history best (as the evaluation
    /// chooses it on its training split).
    pub fn fit(
        history: &[(String, String, Seconds)],
        horizon: Horizon,
        quiet: Seconds,
        links: &str,
        threshold: Option<f64>,
    ) -> Result<Self, String> {
        let mut entities = Interner::default();
        let topology = Topology::parse(links, &mut entities)?;
        let mut live = Self {
            horizon,
            kinds: Interner::default(),
            entities,
            onsets: Onsets::new(quiet),
            forecaster: PrecursorForecaster::new(horizon, topology),
            threshold: f64::INFINITY,
            pending: HashMap::new(),
        };
        let mut seen = Vec::new();
        for (kind, entity, at) in history {
            let (kind, entity) = (live.kinds.id(kind), live.entities.id(entity));
            if let Some(onset) = live.onsets.observe(kind, entity, *at) {
                live.forecaster.learn(onset);
                seen.push(onset);
            }
        }
        live.threshold = match threshold {
            Some(threshold) => threshold,
            None => {
                if let Some(last) = seen.last() {
                    live.forecaster.learn_until(last.at + 2 * horizon.lead_max + 1);
                }
                let mut candidates: Vec<Candidate> = Vec::new();
                seen.iter().for_each(|&onset| live.forecaster.predict(onset, &mut candidates));
                choose_threshold(&[], &candidates, &seen, horizon)
            }
        };
        Ok(live)
    }

    /// Takes what `refitted` learned (its statistics, threshold and onset memory, which cover
    /// the history up to the refit), keeping this predictor's waiting predictions.
    pub fn adopt(&mut self, refitted: Live) {
        let pending = std::mem::take(&mut self.pending);
        *self = Self { pending: HashMap::new(), ..refitted };
        // Ids changed with the interners: re-key what waits by name.
        for expectation in pending.into_values().flatten() {
            let key = (self.kinds.id(&expectation.kind), self.entities.id(&expectation.entity));
            self.pending.entry(key).or_default().push(expectation);
        }
    }

    /// The probability a prediction needs (infinite when the history taught nothing useful).
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// The edges learned, for root-cause hints and people.
    pub fn edges(&self) -> Vec<LearnedEdge> {
        let learner = self.forecaster.learner();
        learner
            .edges()
            .map(|(cause, effect, scope, edge)| {
                let support = learner.counted(cause);
                LearnedEdge {
                    cause: self.kinds.name(cause).to_string(),
                    effect: self.kinds.name(effect).to_string(),
                    linked: scope == Scope::Linked,
                    probability: edge.followed as f64 / support.max(1) as f64,
                    window_probability: self.forecaster.best_window(cause, edge).1,
                    support,
                    lead_p50: edge.median_lead(),
                }
            })
            .collect()
    }

    /// Feeds one alert (in time order); returns the predictions it confirmed and issued.
    pub fn observe(&mut self, kind: &str, entity: &str, at: Seconds, fingerprint: &str) -> Vec<Event> {
        let (kind_id, entity_id) = (self.kinds.id(kind), self.entities.id(entity));
        let Some(onset) = self.onsets.observe(kind_id, entity_id, at) else { return Vec::new() };
        let mut events = Vec::new();
        if let Some(waiting) = self.pending.get_mut(&(kind_id, entity_id)) {
            let (came, rest): (Vec<_>, Vec<_>) = waiting.drain(..).partition(|e| e.window.0 < at && at <= e.window.1);
            *waiting = rest;
            events.extend(came.into_iter().map(|e| Event::CameTrue(e, at)));
        }
        self.forecaster.learn(onset);
        let mut candidates = Vec::new();
        self.forecaster.predict(onset, &mut candidates);
        for (forecast, probability) in candidates.into_iter().filter(|&(_, p)| p >= self.threshold) {
            let key = (forecast.kind, forecast.entity);
            let scope = if onset.entity == forecast.entity { Scope::Same } else { Scope::Linked };
            let expected_lead =
                self.forecaster.learner().edge(onset.kind, forecast.kind, scope).map_or(0, |edge| edge.median_lead());
            let support = self.forecaster.learner().counted(onset.kind);
            let window = (forecast.issued + self.horizon.lead_min, forecast.issued + self.horizon.lead_max);
            let waiting = self.pending.entry(key).or_default();
            // A prediction whose window overlaps one still waiting adds nothing (the evaluation
            // counts such repeats once).
            if waiting.iter().any(|e| window.0 < e.window.1 && e.window.0 < window.1) {
                continue;
            }
            let expectation = Expectation {
                kind: self.kinds.name(forecast.kind).to_string(),
                entity: self.entities.name(forecast.entity).to_string(),
                issued: at,
                window,
                probability,
                expected_lead,
                evidence_kind: kind.to_string(),
                evidence_entity: entity.to_string(),
                evidence_fingerprint: fingerprint.to_string(),
                support,
            };
            waiting.push(expectation.clone());
            events.push(Event::Issued(expectation));
        }
        events
    }

    /// The predictions whose window ended before `now` without their onset.
    pub fn expire(&mut self, now: Seconds) -> Vec<Event> {
        let mut events = Vec::new();
        for waiting in self.pending.values_mut() {
            let (over, rest): (Vec<_>, Vec<_>) = waiting.drain(..).partition(|e| e.window.1 < now);
            *waiting = rest;
            events.extend(over.into_iter().map(Event::Missed));
        }
        self.pending.retain(|_, waiting| !waiting.is_empty());
        self.onsets.expire(now);
        events
    }

    /// Predictions waiting for their onset.
    pub fn pending(&self) -> usize {
        self.pending.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history() -> Vec<(String, String, Seconds)> {
        // On ten hosts, LinkDown then, 4 s later, PacketLoss; hosts a minute apart.
        let mut out = Vec::new();
        for host in 0..10 {
            out.push(("LinkDown".to_string(), format!("h{host}"), host * 60));
            out.push(("PacketLoss".to_string(), format!("h{host}"), host * 60 + 4));
        }
        out
    }

    #[test]
    fn a_learned_precursor_predicts_its_follower_which_comes_true_or_is_missed() {
        let horizon = Horizon { lead_min: 1, lead_max: 10 };
        let mut live = Live::fit(&history(), horizon, 20, "", None).unwrap();
        assert!(live.threshold() <= 1.0, "history taught something: {}", live.threshold());

        let issued = live.observe("LinkDown", "h-new", 1000, "fp1");
        let [Event::Issued(expected)] = &issued[..] else { panic!("{issued:?}") };
        assert_eq!((expected.kind.as_str(), expected.entity.as_str()), ("PacketLoss", "h-new"));
        assert_eq!((expected.window, expected.support), ((1001, 1010), 10));
        assert!(expected.probability > 0.9, "{expected:?}");
        assert!(live.observe("LinkDown", "h-new", 1002, "fp1").is_empty(), "a repeat is no onset");

        let came = live.observe("PacketLoss", "h-new", 1004, "fp2");
        assert!(matches!(&came[..], [Event::CameTrue(e, 1004)] if e.entity == "h-new"), "{came:?}");

        live.observe("LinkDown", "h-other", 2000, "fp3");
        assert_eq!(live.pending(), 1);
        assert!(live.expire(2010).is_empty(), "the window is still open at its end");
        let missed = live.expire(2011);
        assert!(matches!(&missed[..], [Event::Missed(e)] if e.entity == "h-other"), "{missed:?}");
        assert_eq!(live.pending(), 0);
    }
}
