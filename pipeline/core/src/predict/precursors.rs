//! The learner: for each alert kind A, how often an onset of kind B follows an onset of A on the
//! same entity or on a linked one, and after how long (a lead-time histogram). Online: onsets
//! come in time order, and an onset of A is counted once `max_lead` has passed after it, when
//! everything that could follow it is known. The same statistics serve prediction (which kinds
//! to expect, when), the causal graph and root-cause hints.

use std::collections::{HashMap, VecDeque};

use super::{topology::Topology, Onset, Seconds};

/// Where the follower started: on the precursor's entity, or on one linked to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Same,
    Linked,
}

/// What followed kind A's onsets: for how many of them a B onset came, and when (the first B
/// onset after each A onset, in buckets of `width` seconds; `at_once` for the same second).
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub followed: u64,
    pub at_once: u64,
    pub width: Seconds,
    pub buckets: Vec<u32>,
}

impl Edge {
    fn new(width: Seconds, buckets: usize) -> Self {
        Self { followed: 0, at_once: 0, width, buckets: vec![0; buckets] }
    }

    fn record(&mut self, lead: Seconds) {
        self.followed += 1;
        if lead <= 0 {
            self.at_once += 1;
            return;
        }
        let index = ((lead - 1) / self.width) as usize;
        let last = self.buckets.len() - 1;
        self.buckets[index.min(last)] += 1;
    }

    /// How many of the followers came more than `from` and at most `to` seconds after (both
    /// multiples of `width`).
    pub fn followed_within(&self, from: Seconds, to: Seconds) -> u64 {
        let (first, last) = ((from / self.width) as usize, (to / self.width) as usize);
        let counted: u64 = self.buckets.iter().take(last).skip(first).map(|&n| u64::from(n)).sum();
        counted + if from < 0 { self.at_once } else { 0 }
    }

    /// The median lead, seconds (the middle of its bucket).
    pub fn median_lead(&self) -> Seconds {
        let half = self.followed.div_ceil(2);
        let mut seen = self.at_once;
        if seen >= half {
            return 0;
        }
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += u64::from(n);
            if seen >= half {
                return i as Seconds * self.width + self.width / 2;
            }
        }
        self.buckets.len() as Seconds * self.width
    }
}

/// An onset still inside its follow-up time, with what followed it so far.
#[derive(Debug, Clone)]
struct Open {
    onset: Onset,
    followers: Vec<(u32, Scope, Seconds)>,
}

/// The learned statistics, updated online.
#[derive(Debug, Clone)]
pub struct Precursors {
    max_lead: Seconds,
    /// Lead-time histogram bucket width.
    width: Seconds,
    topology: Topology,
    /// Onsets of each kind whose follow-up time has passed.
    counted: HashMap<u32, u64>,
    /// By cause, then by (effect, scope).
    edges: HashMap<u32, HashMap<(u32, Scope), Edge>>,
    /// Onsets within the last `max_lead`, per entity, oldest first: a new onset looks only at
    /// its own entity's and its neighbours', whatever the total rate.
    open: HashMap<u32, VecDeque<Open>>,
    /// The entities of the open onsets, oldest first, to close them in time order.
    opened: VecDeque<(Seconds, u32)>,
}

impl Precursors {
    /// Learns leads up to `max_lead` seconds in buckets of `width`, across the links of
    /// `topology`.
    pub fn new(max_lead: Seconds, width: Seconds, topology: Topology) -> Self {
        Self {
            max_lead,
            width: width.max(1),
            topology,
            counted: HashMap::new(),
            edges: HashMap::new(),
            open: HashMap::new(),
            opened: VecDeque::new(),
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    pub fn max_lead(&self) -> Seconds {
        self.max_lead
    }

    /// Adds an onset (in time order): it follows the open onsets of its entity and of the linked
    /// ones, and opens its own follow-up time.
    pub fn observe(&mut self, onset: Onset) {
        self.advance(onset.at);
        let linked = self.topology.neighbours(onset.entity).iter().map(|&n| (n, Scope::Linked));
        for (entity, scope) in std::iter::once((onset.entity, Scope::Same)).chain(linked) {
            for open in self.open.get_mut(&entity).into_iter().flatten() {
                if !open.followers.iter().any(|&(kind, s, _)| kind == onset.kind && s == scope) {
                    open.followers.push((onset.kind, scope, onset.at - open.onset.at));
                }
            }
        }
        self.opened.push_back((onset.at, onset.entity));
        self.open.entry(onset.entity).or_default().push_back(Open { onset, followers: Vec::new() });
    }

    /// Counts the onsets whose follow-up time ended by `now`.
    pub fn advance(&mut self, now: Seconds) {
        let (width, buckets) = (self.width, (self.max_lead / self.width) as usize + 1);
        while self.opened.front().is_some_and(|&(at, _)| at + self.max_lead < now) {
            let (_, entity) = self.opened.pop_front().expect("checked");
            let queue = self.open.get_mut(&entity).expect("an opened onset is open");
            let done = queue.pop_front().expect("an opened onset is open");
            if queue.is_empty() {
                self.open.remove(&entity);
            }
            *self.counted.entry(done.onset.kind).or_default() += 1;
            for (kind, scope, lead) in done.followers {
                self.edges
                    .entry(done.onset.kind)
                    .or_default()
                    .entry((kind, scope))
                    .or_insert_with(|| Edge::new(width, buckets))
                    .record(lead);
            }
        }
    }

    /// How many onsets of `kind` have been counted (their follow-up time over).
    pub fn counted(&self, kind: u32) -> u64 {
        self.counted.get(&kind).copied().unwrap_or(0)
    }

    pub fn edge(&self, cause: u32, effect: u32, scope: Scope) -> Option<&Edge> {
        self.edges.get(&cause)?.get(&(effect, scope))
    }

    /// Every learned edge: (cause, effect, scope) and what followed.
    pub fn edges(&self) -> impl Iterator<Item = (u32, u32, Scope, &Edge)> {
        self.edges.iter().flat_map(|(&cause, effects)| effects.iter().map(move |(&(e, s), edge)| (cause, e, s, edge)))
    }

    /// The kinds that followed `cause`, with their edges (unordered).
    pub fn effects_of(&self, cause: u32) -> impl Iterator<Item = (u32, Scope, &Edge)> {
        self.edges.get(&cause).into_iter().flatten().map(|(&(e, s), edge)| (e, s, edge))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn onset(kind: u32, entity: u32, at: Seconds) -> Onset {
        Onset { kind, entity, at }
    }

    #[test]
    fn an_onset_is_counted_with_its_first_follower_of_each_kind_once_its_follow_up_time_is_over() {
        let mut topology = Topology::default();
        topology.link(1, 2);
        let mut learner = Precursors::new(3600, 30, topology);
        learner.observe(onset(10, 1, 0));
        learner.observe(onset(30, 2, 60)); // on a linked entity
        learner.observe(onset(40, 9, 100)); // on an unrelated one
        learner.observe(onset(20, 1, 600)); // on the same entity, 600 s later
        learner.observe(onset(20, 1, 900)); // a second B: only the first counts
        assert_eq!(learner.counted(10), 0, "still open");
        learner.advance(3601);
        assert_eq!(learner.counted(10), 1);
        let edge = learner.edge(10, 20, Scope::Same).unwrap();
        assert_eq!((edge.followed, edge.median_lead()), (1, 585));
        assert_eq!(edge.followed_within(300, 1800), 1);
        assert_eq!(edge.followed_within(600, 1800), 0, "600 s is not after 600 s");
        assert!(learner.edge(10, 30, Scope::Linked).is_some());
        assert!(learner.edge(10, 40, Scope::Same).is_none() && learner.edge(10, 40, Scope::Linked).is_none());
    }
}
