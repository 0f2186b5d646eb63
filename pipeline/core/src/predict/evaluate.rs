//! `quench predict eval`: the learner and the two baselines on an alarm recording, under one
//! protocol. Learn on the first 60% of the recording by time, then walk the last 40% in time
//! order, predicting after each onset from what was learned before it and learning from it.

use serde::Serialize;

use super::{
    causal::{self, DagScore},
    forecast::{pooled_thresholds, Candidate, Forecaster, PairFrequency, PrecursorForecaster, Recurrence},
    hazard,
    onset::Onsets,
    score::{score, Score},
    topology::Topology,
    Horizon, Interner, Onset, Seconds,
};

/// How long a kind must be quiet on an entity for its next alarm to be an onset.
pub const QUIET: Seconds = 1800;
/// The share of the recording (by time) learned from before predictions are scored.
pub const TRAINING_SHARE: f64 = 0.6;

/// An alarm recording: `alarm_id,device_id,start_timestamp,end_timestamp` per line (seconds).
#[derive(Debug, Default)]
pub struct Recording {
    pub kinds: Interner,
    pub entities: Interner,
    /// (kind, entity, start), sorted by start.
    pub alarms: Vec<(u32, u32, Seconds)>,
}

impl Recording {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut recording = Self::default();
        for (number, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            if line.trim().is_empty() || (number == 0 && fields[0].parse::<f64>().is_err()) {
                continue;
            }
            if fields.len() < 3 {
                return Err(format!("alarms line {}: expected alarm_id,device_id,start_timestamp[,end]", number + 1));
            }
            let start: f64 = fields[2]
                .parse()
                .map_err(|_| format!("alarms line {}: start_timestamp {:?}", number + 1, fields[2]))?;
            let (kind, entity) = (recording.kinds.id(fields[0]), recording.entities.id(fields[1]));
            recording.alarms.push((kind, entity, start as Seconds));
        }
        if recording.alarms.is_empty() {
            return Err("no alarms in the file".into());
        }
        recording.alarms.sort_by_key(|&(kind, entity, at)| (at, kind, entity));
        Ok(recording)
    }

    /// Every onset, in time order, and the moment the training split ends.
    pub fn onsets(&self) -> (Vec<Onset>, Seconds) {
        let mut detector = Onsets::new(QUIET);
        let onsets = self.alarms.iter().filter_map(|&(kind, entity, at)| detector.observe(kind, entity, at)).collect();
        let (first, last) = (self.alarms[0].2, self.alarms[self.alarms.len() - 1].2);
        (onsets, first + ((last - first) as f64 * TRAINING_SHARE) as Seconds)
    }
}

/// One forecaster's result.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub name: &'static str,
    /// The probability a prediction needs, chosen on the training split (per component).
    pub thresholds: Vec<f64>,
    #[serde(flatten)]
    pub score: Score,
}

#[derive(Debug, Serialize)]
pub struct Evaluation {
    pub alarms: usize,
    pub training_onsets: usize,
    pub test_onsets: usize,
    /// Recurrence hazard and precursors together: what `quench predict` does.
    pub ours: Outcome,
    /// Each of ours' two parts alone.
    pub parts: Vec<Outcome>,
    pub baselines: Vec<Outcome>,
    /// The learned causal graph against the experts', when given.
    pub dag: Option<DagScore>,
    pub learned_edges: Vec<(String, String)>,
}

/// Candidates of the training split (from what the whole split taught) and of the rest (each
/// from what was learned before it), from a forecaster that works after onsets.
pub fn onset_candidates(
    forecaster: &mut dyn Forecaster,
    onsets: &[Onset],
    boundary: usize,
) -> (Vec<Candidate>, Vec<Candidate>) {
    let (training, test) = onsets.split_at(boundary);
    training.iter().for_each(|&onset| forecaster.learn(onset));
    let mut before = Vec::new();
    training.iter().for_each(|&onset| forecaster.predict(onset, &mut before));
    let mut after = Vec::new();
    for &onset in test {
        forecaster.learn(onset);
        forecaster.predict(onset, &mut after);
    }
    (before, after)
}

/// Scores the union of several forecasters' predictions: each part's threshold is the one that
/// makes the union so far best on the training split (a part that does not help adds nothing).
fn outcome(
    name: &'static str,
    parts: &[&(Vec<Candidate>, Vec<Candidate>)],
    onsets: &[Onset],
    boundary: usize,
    horizon: Horizon,
) -> Outcome {
    let (training, test) = onsets.split_at(boundary);
    let before: Vec<&[Candidate]> = parts.iter().map(|(before, _)| before.as_slice()).collect();
    let (thresholds, _) = pooled_thresholds(&before, training, horizon);
    let kept: Vec<_> = parts
        .iter()
        .zip(&thresholds)
        .flat_map(|((_, after), &threshold)| after.iter().filter(move |&&(_, p)| p >= threshold).map(|&(f, _)| f))
        .collect();
    Outcome { name, thresholds, score: score(&kept, test, horizon) }
}

/// The whole evaluation: ours, both baselines, and the causal graph learned from the training
/// split (scored against `causal`, the experts' `cause,effect` pairs, when given).
pub fn evaluate(recording: &Recording, topology: Topology, causal: Option<&str>) -> Result<Evaluation, String> {
    let horizon = Horizon::default();
    let (onsets, split) = recording.onsets();
    let boundary = onsets.partition_point(|o| o.at < split);
    let training_alarms = recording.alarms.partition_point(|a| a.2 < split);
    let graph = causal::learn(&recording.alarms[..training_alarms], recording.kinds.len());
    let dag = causal.map(|text| causal::score(&graph, text, &recording.kinds)).transpose()?;

    let hazard = hazard::candidates(&recording.alarms, split, horizon);
    let precursors = onset_candidates(&mut PrecursorForecaster::new(horizon, topology), &onsets, boundary);
    let recurrence = onset_candidates(&mut Recurrence::new(horizon), &onsets, boundary);
    let pairs = onset_candidates(&mut PairFrequency::new(horizon), &onsets, boundary);
    let name = |kind: u32| recording.kinds.name(kind).to_string();
    Ok(Evaluation {
        alarms: recording.alarms.len(),
        training_onsets: boundary,
        test_onsets: onsets.len() - boundary,
        ours: outcome("hazard + precursors", &[&hazard, &precursors], &onsets, boundary, horizon),
        parts: vec![
            outcome("recurrence hazard", &[&hazard], &onsets, boundary, horizon),
            outcome("precursors", &[&precursors], &onsets, boundary, horizon),
        ],
        baselines: vec![
            outcome("periodic recurrence", &[&recurrence], &onsets, boundary, horizon),
            outcome("pair frequency", &[&pairs], &onsets, boundary, horizon),
        ],
        dag,
        learned_edges: graph.iter().map(|&(cause, effect)| (name(cause), name(effect))).collect(),
    })
}
