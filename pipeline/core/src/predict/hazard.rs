//! Recurrence hazard: how likely a kind is to start again on an entity in the next window, given
//! how long it has been silent there. Checkpoints every 25 minutes after each alarm of a series
//! (kind, entity) ask "does the next alarm come in (t + 5 min, t + 30 min]?"; their windows tile
//! without overlap. The answer's frequency is learned per series and silence age, shrunk towards
//! the kind's, which is shrunk towards every kind's (a series seen a few times borrows from its
//! kind). Online: a checkpoint counts once its window is over.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap, VecDeque},
};

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

/// The hazard model run forward in time, as `quench predict` runs it and as the evaluation walks
/// its test split: alarms come in time order, [`Recurrences::due`] asks the checkpoints reached,
/// each with the counts known at its moment, and a checkpoint counts once its window is over.
#[derive(Debug)]
pub struct Recurrences {
    horizon: Horizon,
    counts: Counts,
    /// Per series: its last alarm and its unanswered checkpoints.
    series: HashMap<(u32, u32), Series>,
    /// Each series' next checkpoint: (time, kind, entity, the series' last alarm, number), the
    /// soonest first, so that asking costs what is due, not one look at every series. An entry
    /// whose series has alarmed since (its last alarm changed) is stale and skipped.
    next: BinaryHeap<Reverse<Due>>,
    /// Checkpoints asked, in time order, with their answer once the series' next alarm gave it.
    waiting: VecDeque<(Checkpoint, Option<bool>)>,
    /// How many checkpoints have left `waiting` (the sequence number of its front).
    settled: u64,
}

/// A series' next checkpoint: time, kind, entity, the series' last alarm, checkpoint number.
type Due = (Seconds, u32, u32, Seconds, i64);

#[derive(Debug)]
struct Series {
    last: Seconds,
    asked: Vec<u64>,
}

impl Recurrences {
    pub fn new(horizon: Horizon) -> Self {
        Self {
            horizon,
            counts: Counts::default(),
            series: HashMap::new(),
            next: BinaryHeap::new(),
            waiting: VecDeque::new(),
            settled: 0,
        }
    }

    /// An alarm of a series: answers the series' waiting checkpoints and starts its silence
    /// again. An alarm not newer than the series' last one (re-sent, late) changes nothing.
    pub fn observe(&mut self, kind: u32, entity: u32, at: Seconds) {
        let series = self.series.entry((kind, entity)).or_insert(Series { last: Seconds::MIN, asked: Vec::new() });
        if at <= series.last {
            return;
        }
        for seq in series.asked.drain(..) {
            if let Some((checkpoint, answer)) =
                seq.checked_sub(self.settled).and_then(|i| self.waiting.get_mut(i as usize))
            {
                *answer = Some(self.horizon.covers(checkpoint.at, at));
            }
        }
        series.last = at;
        self.next.push(Reverse((at + step(self.horizon), kind, entity, at, 1)));
    }

    /// Asks every checkpoint reached by `now`, in time order, each with the counts known at its
    /// moment; adds the predictions (with their hazard) to `out`.
    pub fn due(&mut self, now: Seconds, out: &mut Vec<Candidate>) {
        let step = step(self.horizon);
        while let Some(&Reverse((at, kind, entity, last, k))) = self.next.peek() {
            if at > now {
                break;
            }
            self.next.pop();
            if self.series.get(&(kind, entity)).is_none_or(|s| s.last != last) {
                continue;
            }
            if k < MAX_CHECKPOINTS {
                self.next.push(Reverse((at + step, kind, entity, last, k + 1)));
            }
            self.settle(at);
            let checkpoint = Checkpoint { kind, entity, at, bin: bin(k), hit: false };
            out.push((Forecast { kind, entity, issued: at }, self.counts.hazard(&checkpoint)));
            let seq = self.settled + self.waiting.len() as u64;
            self.waiting.push_back((checkpoint, None));
            if let Some(series) = self.series.get_mut(&(kind, entity)) {
                series.asked.push(seq);
            }
        }
    }

    /// Counts the checkpoints whose window ended by `now`.
    fn settle(&mut self, now: Seconds) {
        while self.waiting.front().is_some_and(|(c, _)| c.at + self.horizon.lead_max <= now) {
            let (mut checkpoint, answer) = self.waiting.pop_front().expect("checked");
            self.settled += 1;
            checkpoint.hit = answer == Some(true);
            self.counts.add(&checkpoint);
        }
    }
}

/// Predictions of the training split (scored with what the whole training split taught, for
/// choosing the threshold) and of the rest (each scored with what was known at its time, by
/// running [`Recurrences`] over the whole recording).
pub fn candidates(
    alarms: &[(u32, u32, Seconds)],
    split: Seconds,
    horizon: Horizon,
) -> (Vec<Candidate>, Vec<Candidate>) {
    let end = alarms.last().map_or(0, |a| a.2);
    let known_in_training: Vec<Checkpoint> =
        checkpoints(alarms, end, horizon).into_iter().filter(|c| c.at + horizon.lead_max <= split).collect();
    let mut counts = Counts::default();
    known_in_training.iter().for_each(|c| counts.add(c));
    let training = known_in_training
        .iter()
        .map(|c| (Forecast { kind: c.kind, entity: c.entity, issued: c.at }, counts.hazard(c)))
        .collect();

    let mut running = Recurrences::new(horizon);
    let mut asked = Vec::new();
    for &(kind, entity, at) in alarms {
        // Checkpoints before the alarm, not at it: a series is asked only while silent.
        running.due(at - 1, &mut asked);
        running.observe(kind, entity, at);
    }
    running.due(end, &mut asked);
    asked.retain(|(f, _)| f.issued >= split);
    (training, asked)
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
