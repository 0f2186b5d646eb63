//! The live predictor behind `quench predict`: fitted on history, then fed alerts as they come.
//! After each onset it checks the predictions waiting for that kind on that entity (came true),
//! learns from the onset, and issues what the learned precursors expect next; as time passes
//! (`tick`), it issues what the recurrence hazard expects of series that have been silent for
//! their usual while, and says which predictions' windows passed without their onset (missed).
//! The same two forecasters, pooled the same way, are what `quench predict eval` measures.
//!
//! Kinds and entities are the caller's strings (the shell puts the tenant in both, so tenants
//! never share what is learned).

use std::collections::HashMap;

use super::{
    forecast::{pooled_thresholds, Candidate, Forecaster, PrecursorForecaster},
    hazard::{self, Recurrences},
    onset::Onsets,
    precursors::Scope,
    score::Forecast,
    topology::Topology,
    Horizon, Interner, Onset, Seconds,
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
    settings: Settings,
    kinds: Interner,
    entities: Interner,
    onsets: Onsets,
    forecaster: PrecursorForecaster,
    recurrences: Recurrences,
    /// The probability a recurrence prediction needs, then a precursor prediction.
    thresholds: (f64, f64),
    pending: HashMap<(u32, u32), Vec<Expectation>>,
    /// The latest time seen (alerts' and ticks'): an alert that started more than the quiet
    /// spell before it is a re-send of an old one, never an onset.
    clock: Seconds,
}

impl Live {
    /// Learns from `history` ((kind, entity, time), in time order) up to `now`. The probability a
    /// prediction needs is `threshold`, or else the one that predicts the history best (as the
    /// evaluation chooses it on its training split).
    pub fn fit(
        history: &[(String, String, Seconds)],
        now: Seconds,
        settings: Settings,
        links: &str,
    ) -> Result<Self, String> {
        let horizon = settings.horizon;
        let mut entities = Interner::default();
        let topology = Topology::parse(links, &mut entities)?;
        let mut live = Self {
            settings,
            kinds: Interner::default(),
            entities,
            onsets: Onsets::new(settings.quiet),
            forecaster: PrecursorForecaster::new(horizon, topology),
            recurrences: Recurrences::new(horizon),
            thresholds: (f64::INFINITY, f64::INFINITY),
            pending: HashMap::new(),
            clock: now,
        };
        let mut asked = Vec::new();
        let alarms = live.intern(history);
        for &(kind, entity, at) in &alarms {
            live.recurrences.due(at - 1, &mut asked);
            live.recurrences.observe(kind, entity, at);
            live.onsets.observe(kind, entity, at);
        }
        // What the history's checkpoints asked is history too.
        live.recurrences.due(now, &mut asked);
        live.learn(&alarms, now);
        Ok(live)
    }

    /// Learns the precursors and thresholds again from `history` up to `now`. The interned ids,
    /// the onset memory, the recurrence statistics (learned online all along) and the waiting
    /// predictions carry on.
    pub fn refit(&mut self, history: &[(String, String, Seconds)], now: Seconds) {
        let alarms = self.intern(history);
        let topology = self.forecaster.learner().topology().clone();
        self.forecaster = PrecursorForecaster::new(self.settings.horizon, topology);
        self.learn(&alarms, now);
    }

    fn intern(&mut self, history: &[(String, String, Seconds)]) -> Vec<(u32, u32, Seconds)> {
        history.iter().map(|(kind, entity, at)| (self.kinds.id(kind), self.entities.id(entity), *at)).collect()
    }

    /// Feeds the precursor learner the onsets of `alarms` (its own onset memory: the live one
    /// must not forget what it saw since the history was read) and chooses the thresholds.
    fn learn(&mut self, alarms: &[(u32, u32, Seconds)], now: Seconds) {
        let horizon = self.settings.horizon;
        let mut onsets = Onsets::new(self.settings.quiet);
        let seen: Vec<Onset> =
            alarms.iter().filter_map(|&(kind, entity, at)| onsets.observe(kind, entity, at)).collect();
        seen.iter().for_each(|&onset| self.forecaster.learn(onset));
        self.forecaster.learn_until(now);
        self.thresholds = match self.settings.threshold {
            Some(threshold) => (threshold, threshold),
            None => {
                let (recurring, _) = hazard::candidates(alarms, now, horizon);
                let mut following: Vec<Candidate> = Vec::new();
                seen.iter().for_each(|&onset| self.forecaster.predict(onset, &mut following));
                let (thresholds, _) = pooled_thresholds(&[&recurring, &following], &seen, horizon);
                (thresholds[0], thresholds[1])
            }
        };
    }

    /// Takes back predictions that were waiting when a previous process stopped: they come
    /// true or are missed as if this process had issued them.
    pub fn resume(&mut self, expectation: Expectation) {
        let key = (self.kinds.id(&expectation.kind), self.entities.id(&expectation.entity));
        self.pending.entry(key).or_default().push(expectation);
    }

    /// The probability a recurrence prediction needs, then a precursor prediction (infinite
    /// when the history taught nothing useful).
    pub fn thresholds(&self) -> (f64, f64) {
        self.thresholds
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
        let mut events = self.ask(at - 1);
        let (kind_id, entity_id) = (self.kinds.id(kind), self.entities.id(entity));
        self.recurrences.observe(kind_id, entity_id, at);
        let stale = at + self.settings.quiet < self.clock;
        self.clock = self.clock.max(at);
        if stale {
            return events;
        }
        let Some(onset) = self.onsets.observe(kind_id, entity_id, at) else { return events };
        if let Some(waiting) = self.pending.get_mut(&(kind_id, entity_id)) {
            let (came, rest): (Vec<_>, Vec<_>) = waiting.drain(..).partition(|e| e.window.0 < at && at <= e.window.1);
            *waiting = rest;
            events.extend(came.into_iter().map(|e| Event::CameTrue(e, at)));
        }
        self.forecaster.learn(onset);
        let mut candidates = Vec::new();
        self.forecaster.predict(onset, &mut candidates);
        let threshold = self.thresholds.1;
        for (forecast, probability) in candidates.into_iter().filter(|&(_, p)| p >= threshold) {
            let scope = if onset.entity == forecast.entity { Scope::Same } else { Scope::Linked };
            let learner = self.forecaster.learner();
            let evidence = Evidence {
                kind: onset.kind,
                entity: onset.entity,
                fingerprint,
                support: learner.counted(onset.kind),
                expected_lead: learner.edge(onset.kind, forecast.kind, scope).map_or(0, |edge| edge.median_lead()),
            };
            events.extend(self.issue(forecast, probability, at, evidence));
        }
        events
    }

    /// The passing of time: asks the recurrence checkpoints reached by `now`, and says which
    /// predictions' windows ended without their onset. An alert may arrive late (delivery,
    /// `for:` clauses): a window is given up one horizon (`lead_max`) after it ended.
    pub fn tick(&mut self, now: Seconds) -> Vec<Event> {
        self.clock = self.clock.max(now);
        let mut events = self.ask(now);
        let lateness = self.settings.horizon.lead_max;
        for waiting in self.pending.values_mut() {
            let (over, rest): (Vec<_>, Vec<_>) = waiting.drain(..).partition(|e| e.window.1 + lateness < now);
            *waiting = rest;
            events.extend(over.into_iter().map(Event::Missed));
        }
        self.pending.retain(|_, waiting| !waiting.is_empty());
        self.onsets.expire(now);
        events
    }

    /// Issues the recurrence predictions of the checkpoints reached by `now` (a series that has
    /// been silent as long as it usually is before it starts again).
    fn ask(&mut self, now: Seconds) -> Vec<Event> {
        let mut asked = Vec::new();
        self.recurrences.due(now, &mut asked);
        let mut events = Vec::new();
        let threshold = self.thresholds.0;
        for (forecast, probability) in asked.into_iter().filter(|&(_, p)| p >= threshold) {
            // The evidence of a recurrence is the series itself.
            let evidence = Evidence {
                kind: forecast.kind,
                entity: forecast.entity,
                fingerprint: "",
                support: 0,
                expected_lead: (self.settings.horizon.lead_min + self.settings.horizon.lead_max) / 2,
            };
            events.extend(self.issue(forecast, probability, forecast.issued, evidence));
        }
        events
    }

    /// A prediction, unless one still waiting for the same kind and entity overlaps its window
    /// (the evaluation counts such repeats once) or its window is already over.
    fn issue(&mut self, forecast: Forecast, probability: f64, now: Seconds, evidence: Evidence) -> Option<Event> {
        let window =
            (forecast.issued + self.settings.horizon.lead_min, forecast.issued + self.settings.horizon.lead_max);
        let waiting = self.pending.entry((forecast.kind, forecast.entity)).or_default();
        if window.1 <= now || waiting.iter().any(|e| window.0 < e.window.1 && e.window.0 < window.1) {
            return None;
        }
        let expectation = Expectation {
            kind: self.kinds.name(forecast.kind).to_string(),
            entity: self.entities.name(forecast.entity).to_string(),
            issued: forecast.issued,
            window,
            probability,
            expected_lead: evidence.expected_lead,
            evidence_kind: self.kinds.name(evidence.kind).to_string(),
            evidence_entity: self.entities.name(evidence.entity).to_string(),
            evidence_fingerprint: evidence.fingerprint.to_string(),
            support: evidence.support,
        };
        waiting.push(expectation.clone());
        Some(Event::Issued(expectation))
    }

    /// Predictions waiting for their onset.
    pub fn pending(&self) -> usize {
        self.pending.values().map(Vec::len).sum()
    }
}

/// What a prediction rests on.
struct Evidence<'a> {
    kind: u32,
    entity: u32,
    fingerprint: &'a str,
    support: u64,
    expected_lead: Seconds,
}

/// How the live predictor is set up.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub horizon: Horizon,
    /// Silence that makes the next alert of a series an onset.
    pub quiet: Seconds,
    /// The probability a prediction needs; `None`: the one that predicts the history best.
    pub threshold: Option<f64>,
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

    fn settings() -> Settings {
        Settings { horizon: Horizon { lead_min: 1, lead_max: 10 }, quiet: 20, threshold: None }
    }

    #[test]
    fn a_learned_precursor_predicts_its_follower_which_comes_true_or_is_missed() {
        let mut live = Live::fit(&history(), 900, settings(), "").unwrap();
        assert!(live.thresholds().1 <= 1.0, "history taught something: {:?}", live.thresholds());
        assert!(live.thresholds().0.is_infinite(), "nothing ever recurred: {:?}", live.thresholds());

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
        assert!(live.tick(2020).is_empty(), "an alert may still come late, one horizon after the window");
        let missed = live.tick(2021);
        assert!(matches!(&missed[..], [Event::Missed(e)] if e.entity == "h-other"), "{missed:?}");
        assert_eq!(live.pending(), 0);
        // Its onset forgotten (older than the quiet spell), a re-send of the first LinkDown is
        // still no news.
        assert!(live.observe("LinkDown", "h-new", 1000, "fp1").is_empty());
    }

    #[test]
    fn a_series_that_returns_every_minute_is_expected_again_after_its_usual_silence() {
        // Kind Beat on one host every 60 s for an hour, the last at 3540: with a (1 s, 10 s]
        // horizon, checkpoints come every 9 s of silence, and the one at 3594 holds the next beat.
        let history: Vec<_> = (0..60).map(|i| ("Beat".to_string(), "h".to_string(), i * 60)).collect();
        let mut live = Live::fit(&history, 3_541, settings(), "").unwrap();
        assert!(live.thresholds().0 <= 1.0, "{:?}", live.thresholds());
        assert!(live.tick(3_593).is_empty(), "earlier checkpoints rarely saw a beat");
        let events = live.tick(3_594);
        let [Event::Issued(expected)] = &events[..] else { panic!("{events:?}") };
        assert_eq!(
            (expected.kind.as_str(), expected.window, expected.evidence_kind.as_str()),
            ("Beat", (3_595, 3_604), "Beat")
        );
        let came = live.observe("Beat", "h", 3_600, "fp");
        assert!(matches!(&came[..], [Event::CameTrue(_, 3_600)]), "{came:?}");
    }
}
