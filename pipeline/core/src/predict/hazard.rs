//! Recurrence hazard: how likely a kind is to start again on an entity in the next window, given
//! how long it has been silent there. Checkpoints every 25 minutes after each alarm of a series
//! (kind, entity) ask "does the next alarm come in (t + 5 min, t + 30 min]?"; their windows tile
//! without overlap. The answer's frequency is learned per series and silence age, shrunk towards
//! the kind's, which is shrunk towards every kind's (a series seen a few times borrows from its
//! kind). Online: a checkpoint counts once its window is over.

use std::collections::HashMap;

use super::{forecast::Candidate, score::Forecast, Horizon, Seconds};

/// Checkpoint spacing: the window's length, so that consecutive windows tile.
pub fn step(horizon: Horizon) -> Seconds {
    horizon.lead_max - horizon.lead_min
}
/// Checkpoints after one alarm, at most (120 × 25 minutes is about two days).
pub const MAX_CHECKPOINTS: i64 = 120;
/// Pseudo-counts of the shrinkage towards the broader estimate.
pub const ALPHA: f64 = 20.0;

/// Age bins by checkpoint number: fine while young, and one bin holding the day's return (the
/// 57th checkpoint's window holds 24 hours of silence).
const BIN_STARTS: [i64; 14] = [1, 2, 3, 4, 6, 9, 14, 23, 41, 56, 57, 58, 81, 121];
const BINS: usize = BIN_STARTS.len() - 1;

fn bin(checkpoint: i64) -> usize {
    BIN_STARTS.partition_point(|&start| start <= checkpoint) - 1
}

/// One question: does the series' next alarm come in the window of a prediction issued `at`?
#[derive(Debug, Clone, Copy)]
struct Checkpoint {
    kind: u32,
    entity: u32,
    at: Seconds,
    bin: usize,
    hit: bool,
}

/// Successes and trials.
type Tally = (u64, u64);

#[derive(Debug, Default)]
struct Counts {
    all: [Tally; BINS],
    kind: HashMap<(u32, usize), Tally>,
    series: HashMap<(u32, u32, usize), Tally>,
}

impl Counts {
    fn add(&mut self, c: &Checkpoint) {
        for tally in [
            &mut self.all[c.bin],
            self.kind.entry((c.kind, c.bin)).or_default(),
            self.series.entry((c.kind, c.entity, c.bin)).or_default(),
        ] {
            tally.0 += u64::from(c.hit);
            tally.1 += 1;
        }
    }

    fn hazard(&self, c: &Checkpoint) -> f64 {
        let (s, n) = self.all[c.bin];
        let all = (s as f64 + 1.0) / (n as f64 + 2.0);
        let shrink = |(s, n): Tally, prior: f64| (s as f64 + ALPHA * prior) / (n as f64 + ALPHA);
        let kind = shrink(self.kind.get(&(c.kind, c.bin)).copied().unwrap_or_default(), all);
        shrink(self.series.get(&(c.kind, c.entity, c.bin)).copied().unwrap_or_default(), kind)
    }
}

/// Every checkpoint of `alarms` ((kind, entity, start), time order) up to `end`, by time.
fn checkpoints(alarms: &[(u32, u32, Seconds)], end: Seconds, horizon: Horizon) -> Vec<Checkpoint> {
    let mut series: HashMap<(u32, u32), Vec<Seconds>> = HashMap::new();
    for &(kind, entity, at) in alarms {
        series.entry((kind, entity)).or_default().push(at);
    }
    let step = step(horizon);
    let mut out = Vec::new();
    for (&(kind, entity), times) in &series {
        for (i, &at) in times.iter().enumerate() {
            let next = times.get(i + 1).copied();
            for k in 1..=MAX_CHECKPOINTS {
                let t = at + k * step;
                if t > end || next.is_some_and(|n| t >= n) {
                    break;
                }
                let hit = next.is_some_and(|n| horizon.covers(t, n));
                out.push(Checkpoint { kind, entity, at: t, bin: bin(k), hit });
            }
        }
    }
    out.sort_by_key(|c| (c.at, c.kind, c.entity));
    out
}

/// Predictions of the training split (scored with what the whole training split taught, for
/// choosing the threshold) and of the rest (each scored with what was known at its time).
pub fn candidates(
    alarms: &[(u32, u32, Seconds)],
    split: Seconds,
    horizon: Horizon,
) -> (Vec<Candidate>, Vec<Candidate>) {
    let end = alarms.last().map_or(0, |a| a.2);
    let all = checkpoints(alarms, end, horizon);
    let candidate = |c: &Checkpoint, p: f64| (Forecast { kind: c.kind, entity: c.entity, issued: c.at }, p);

    let known_in_training: Vec<&Checkpoint> = all.iter().filter(|c| c.at + horizon.lead_max <= split).collect();
    let mut counts = Counts::default();
    known_in_training.iter().for_each(|c| counts.add(c));
    let training = known_in_training.iter().map(|c| candidate(c, counts.hazard(c))).collect();

    let mut counts = Counts::default();
    let mut known = 0;
    let mut test = Vec::new();
    for c in all.iter().filter(|c| c.at >= split) {
        while known < all.len() && all[known].at + horizon.lead_max <= c.at {
            counts.add(&all[known]);
            known += 1;
        }
        test.push(candidate(c, counts.hazard(c)));
    }
    (training, test)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_that_returns_daily_is_expected_in_the_window_holding_its_return() {
        // Kind 0 on entity 0 every 24 hours for 20 days; the first 12 days train.
        let alarms: Vec<(u32, u32, Seconds)> = (0..20).map(|day| (0, 0, day * 86_400)).collect();
        let (training, test) = candidates(&alarms, 12 * 86_400, Horizon::default());
        let best = |set: &[Candidate]| set.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
        let (forecast, probability) = best(&test);
        assert_eq!(forecast.issued % 86_400, 57 * 1500, "the 57th checkpoint's window holds the return");
        assert!(probability > 0.5, "{probability}");
        assert!(best(&training).1 > 0.5);
        assert!(test.iter().all(|c| c.0.issued >= 12 * 86_400));
    }
}
