//! The evaluation protocol of `quench predict eval`: predictions against the onsets that came.
//!
//! A prediction (kind B, entity D, issued at t) is a hit when an onset of B on D falls in
//! (t + lead_min, t + lead_max]. Predictions of the same (B, D) whose windows overlap count as
//! one (their windows merged), so that repeating a prediction neither pads precision nor costs
//! it. Recall counts the onsets that some prediction covered, that is, foresaw at least
//! `lead_min` ahead; the lead of an onset is from the earliest prediction that covered it.

use std::collections::HashMap;

use serde::Serialize;

use super::{Horizon, Onset, Seconds};

/// A prediction: `kind` expected on `entity` within the horizon after `issued`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forecast {
    pub kind: u32,
    pub entity: u32,
    pub issued: Seconds,
}

/// Precision, recall and lead times of a set of predictions.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Score {
    /// Predictions after merging overlapping ones of the same (kind, entity).
    pub predictions: usize,
    pub hits: usize,
    pub onsets: usize,
    pub foreseen: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub lead_p10_s: Option<Seconds>,
    pub lead_p50_s: Option<Seconds>,
    pub lead_p90_s: Option<Seconds>,
}

/// Scores `forecasts` (any order) against `onsets` (the onsets of the evaluated span).
pub fn score(forecasts: &[Forecast], onsets: &[Onset], horizon: Horizon) -> Score {
    let mut issued: HashMap<(u32, u32), Vec<Seconds>> = HashMap::new();
    for f in forecasts {
        issued.entry((f.kind, f.entity)).or_default().push(f.issued);
    }
    let mut came: HashMap<(u32, u32), Vec<Seconds>> = HashMap::new();
    for o in onsets {
        came.entry((o.kind, o.entity)).or_default().push(o.at);
    }
    for times in issued.values_mut().chain(came.values_mut()) {
        times.sort_unstable();
    }

    let (mut predictions, mut hits) = (0, 0);
    for (key, times) in &issued {
        let arrivals = came.get(key).map_or(&[][..], Vec::as_slice);
        let mut i = 0;
        while i < times.len() {
            // One merged window: (first + lead_min, last + lead_max] over a run of overlapping ones.
            let start = times[i] + horizon.lead_min;
            let mut end = times[i] + horizon.lead_max;
            i += 1;
            while i < times.len() && times[i] + horizon.lead_min < end {
                end = times[i] + horizon.lead_max;
                i += 1;
            }
            predictions += 1;
            let first_after = arrivals.partition_point(|&at| at <= start);
            if arrivals.get(first_after).is_some_and(|&at| at <= end) {
                hits += 1;
            }
        }
    }

    let mut leads = Vec::new();
    for o in onsets {
        let Some(times) = issued.get(&(o.kind, o.entity)) else { continue };
        // The earliest prediction whose window holds the onset: issued at or after at - lead_max.
        let earliest = times.partition_point(|&t| t < o.at - horizon.lead_max);
        if let Some(&t) = times.get(earliest).filter(|&&t| horizon.covers(t, o.at)) {
            leads.push(o.at - t);
        }
    }
    leads.sort_unstable();
    let percentile = |p: f64| (!leads.is_empty()).then(|| leads[((leads.len() - 1) as f64 * p).round() as usize]);
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let (precision, recall) = (ratio(hits, predictions), ratio(leads.len(), onsets.len()));
    let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
    Score {
        predictions,
        hits,
        onsets: onsets.len(),
        foreseen: leads.len(),
        precision,
        recall,
        f1,
        lead_p10_s: percentile(0.1),
        lead_p50_s: percentile(0.5),
        lead_p90_s: percentile(0.9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forecast(issued: Seconds) -> Forecast {
        Forecast { kind: 1, entity: 2, issued }
    }

    fn onset(at: Seconds) -> Onset {
        Onset { kind: 1, entity: 2, at }
    }

    #[test]
    fn overlapping_predictions_count_once_and_the_lead_is_from_the_earliest() {
        // Windows (400, 1900], (1000, 2500] merge; (5000, 6500] is apart.
        let forecasts = [forecast(100), forecast(700), forecast(4700)];
        let score = score(&forecasts, &[onset(2000), onset(9000)], Horizon::default());
        assert_eq!((score.predictions, score.hits), (2, 1));
        assert_eq!((score.onsets, score.foreseen), (2, 1));
        assert_eq!(score.lead_p50_s, Some(1300), "from the prediction at 700: 100's window ended at 1900");
        assert!((score.precision - 0.5).abs() < 1e-9 && (score.recall - 0.5).abs() < 1e-9);
        assert!((score.f1 - 0.5).abs() < 1e-9);
    }

    #[test]
    fn an_onset_less_than_lead_min_ahead_or_of_another_entity_is_not_foreseen() {
        let late = score(&[forecast(1000)], &[onset(1300)], Horizon::default());
        assert_eq!((late.hits, late.foreseen), (0, 0), "300 s ahead is not more than 5 minutes");
        let other = score(&[forecast(0)], &[Onset { entity: 3, ..onset(600) }], Horizon::default());
        assert_eq!((other.hits, other.foreseen, other.f1), (0, 0, 0.0));
    }
}
