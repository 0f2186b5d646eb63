//! The causal graph between alert kinds, learned from alarms: which kinds go together, then
//! which of the two comes first.
//!
//! Two kinds are associated when their alarms on the same entity fall within a minute of each
//! other often, relative to how often they fall within an hour (c / sqrt(n + 1), which ranks
//! pairs of a bursty stream better than a lift over an independence rate). The most associated
//! 70% of all pairs of kinds are kept. Their direction comes from episode order: the alarms of an
//! entity split into episodes at half-hour silences, and a kind that appears earlier in the
//! episodes it is part of (on average, as a share of the episode's kinds) is the cause. Tuned on
//! the two shared telecom sets (see the README, "Prediction"), with one configuration for all.
//!
//! The experts' graphs there are dense and transitive, so no pruning to a minimal graph is done.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use super::{Interner, Seconds};

/// Alarms this close count as together.
pub const TOGETHER: Seconds = 60;
/// ... out of those this close.
pub const NEARBY: Seconds = 3600;
/// The share of all pairs of kinds kept, most associated first.
pub const KEEP: f64 = 0.7;
/// A silence this long on an entity ends an episode.
pub const EPISODE_GAP: Seconds = 1800;

/// Directed edges (cause, effect) between the interned kinds `0..kinds` of `alarms`
/// ((kind, entity, start), in time order).
pub fn learn(alarms: &[(u32, u32, Seconds)], kinds: usize) -> BTreeSet<(u32, u32)> {
    let mut by_entity: HashMap<u32, Vec<(Seconds, u32)>> = HashMap::new();
    for &(kind, entity, at) in alarms {
        by_entity.entry(entity).or_default().push((at, kind));
    }

    // Association of each unordered pair of kinds: (together, nearby).
    let mut pairs: HashMap<(u32, u32), (u64, u64)> = HashMap::new();
    let (mut position, mut episodes) = (vec![0.0; kinds], vec![0u64; kinds]);
    for series in by_entity.values() {
        for (i, &(at, kind)) in series.iter().enumerate() {
            for &(later, other) in series[i + 1..].iter().take_while(|&&(t, _)| t - at <= NEARBY) {
                if other != kind {
                    let counts = pairs.entry((kind.min(other), kind.max(other))).or_default();
                    counts.1 += 1;
                    counts.0 += u64::from(later - at <= TOGETHER);
                }
            }
        }
        let mut start = 0;
        for end in 1..=series.len() {
            if end == series.len() || series[end].0 - series[end - 1].0 > EPISODE_GAP {
                episode_positions(&series[start..end], &mut position, &mut episodes);
                start = end;
            }
        }
    }

    let mut ranked: Vec<((u32, u32), f64)> = pairs
        .iter()
        .map(|(&pair, &(together, nearby))| (pair, together as f64 / (nearby as f64 + 1.0).sqrt()))
        .filter(|&(_, strength)| strength > 0.0)
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let keep = (KEEP * (kinds * kinds.saturating_sub(1) / 2) as f64).round() as usize;
    let mean = |kind: u32| position[kind as usize] / episodes[kind as usize].max(1) as f64;
    ranked
        .into_iter()
        .take(keep)
        .filter_map(|((a, b), _)| match mean(a).total_cmp(&mean(b)) {
            std::cmp::Ordering::Less => Some((a, b)),
            std::cmp::Ordering::Greater => Some((b, a)),
            std::cmp::Ordering::Equal => None,
        })
        .collect()
}

/// Adds each kind's place in one episode: the share of the episode's other kinds that appeared
/// before it (ties count half).
fn episode_positions(episode: &[(Seconds, u32)], position: &mut [f64], episodes: &mut [u64]) {
    let mut first: Vec<(u32, Seconds)> = Vec::new();
    for &(at, kind) in episode {
        if !first.iter().any(|&(k, _)| k == kind) {
            first.push((kind, at));
        }
    }
    if first.len() < 2 {
        return;
    }
    let others = (first.len() - 1) as f64;
    for &(kind, at) in &first {
        let earlier = first.iter().filter(|&&(_, t)| t < at).count() as f64;
        let tied = first.iter().filter(|&&(_, t)| t == at).count() as f64 - 1.0;
        position[kind as usize] += (earlier + 0.5 * tied) / others;
        episodes[kind as usize] += 1;
    }
}

/// Directed-edge precision, recall and F1 against the experts' graph.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DagScore {
    pub learned: usize,
    pub expected: usize,
    pub correct: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// Scores `graph` against `cause,effect` lines (a header line is skipped).
pub fn score(graph: &BTreeSet<(u32, u32)>, expected: &str, kinds: &Interner) -> Result<DagScore, String> {
    let mut truth = BTreeSet::new();
    for (number, line) in expected.lines().enumerate() {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if line.trim().is_empty() || (number == 0 && fields[0].parse::<f64>().is_err()) {
            continue;
        }
        let [cause, effect] = fields[..] else {
            return Err(format!("causal edges line {}: expected cause,effect", number + 1));
        };
        truth.insert((cause.to_string(), effect.to_string()));
    }
    let learned: BTreeSet<(String, String)> =
        graph.iter().map(|&(c, e)| (kinds.name(c).to_string(), kinds.name(e).to_string())).collect();
    let correct = learned.intersection(&truth).count();
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let (precision, recall) = (ratio(correct, learned.len()), ratio(correct, truth.len()));
    let f1 = if correct == 0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
    Ok(DagScore { learned: learned.len(), expected: truth.len(), correct, precision, recall, f1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_that_come_together_are_linked_in_the_order_they_come() {
        // On four entities, kind 0 then kind 1 ten seconds later; kind 2 alone, hours apart.
        let mut alarms = Vec::new();
        for entity in 0..4 {
            let base = entity as Seconds * 10_000;
            alarms.extend([(0, entity, base), (1, entity, base + 10), (2, entity, base + 5_000)]);
        }
        alarms.sort_by_key(|&(_, _, at)| at);
        let graph = learn(&alarms, 3);
        assert_eq!(graph, BTreeSet::from([(0, 1)]));
        let mut kinds = Interner::default();
        (0..3).for_each(|k| _ = kinds.id(&k.to_string()));
        let scored = score(&graph, "cause_alarm_id,effect_alarm_id\n0,1\n1,2\n", &kinds).unwrap();
        assert_eq!((scored.correct, scored.precision, scored.recall), (1, 1.0, 0.5));
    }
}
