//! The noise harness's stream: alerts with ground truth. Storms whose root cause fires alerts in
//! several services and groups (a node, a database and its dependents, a network partition),
//! flapping alerts, transient alerts, re-sends and unrelated singletons, over a few hours.
//!
//! The answer is never in a label: related alerts share what real ones share (a node or cluster
//! label, sometimes nothing), and unrelated ones share a node or cluster by chance. Committed
//! with its seeds before any correlator is tuned on it (issue 17); change it only to make it
//! harder.
//!
//! The kinds of alert each part plays (`NodeDown`, `PostgresDown`...) are built in; with a corpus
//! ([`Kinds::from_corpus`]) each part plays an alert of the corpus instead, with its name and
//! texts, so that the same storms can be made of alerts of services never seen.

use std::collections::{BTreeMap, BTreeSet};

use quench_classify::corpus::CorpusAlert;
use quench_schemas::{fingerprint::alert_fingerprint, Alert, AlertStatus};

/// The parts alerts play in the stream, under their built-in names.
const PARTS: &[&str] = &[
    "NodeDown",
    "KubePodCrashLooping",
    "HighErrorRate",
    "PostgresDown",
    "HighLatency",
    "LinkDown",
    "NodeUnreachable",
    "NodeHighCPU",
    "DiskIOSaturation",
    "NetworkRetransmits",
    "ContainerThrottled",
    "NodeDiskFilling",
    "CertificateExpiring",
];

/// The alert each part plays: its name and annotations.
#[derive(Debug, Clone)]
pub struct Kinds(BTreeMap<&'static str, (String, BTreeMap<String, String>)>);

impl Default for Kinds {
    /// The built-in names, without texts.
    fn default() -> Self {
        Self(PARTS.iter().map(|part| (*part, (part.to_string(), BTreeMap::new()))).collect())
    }
}

impl Kinds {
    /// Each part played by a different alert of `corpus` (by name), drawn with `seed`.
    pub fn from_corpus(corpus: &[CorpusAlert], seed: u64) -> anyhow::Result<Self> {
        let mut seen = BTreeSet::new();
        let mut distinct: Vec<&CorpusAlert> =
            corpus.iter().filter(|a| a.labels.get("alertname").is_some_and(|name| seen.insert(name.clone()))).collect();
        anyhow::ensure!(
            distinct.len() >= PARTS.len(),
            "the corpus has {} distinct alert names; the stream needs {}",
            distinct.len(),
            PARTS.len()
        );
        let mut rng = Rng(seed);
        let mut kinds = BTreeMap::new();
        for part in PARTS {
            let alert = distinct.swap_remove(rng.range(0, distinct.len() as i64) as usize);
            kinds.insert(*part, (alert.labels["alertname"].clone(), alert.annotations.clone()));
        }
        Ok(Self(kinds))
    }
}

/// Alerts in the order received, each with the root cause it belongs to.
pub struct Stream {
    pub alerts: Vec<Alert>,
    /// By alert episode (fingerprint, start in ms): the root cause (storms share one; every other
    /// alert has its own). An alert that fires again later (the same labels) is another episode,
    /// perhaps of another cause.
    pub cause: BTreeMap<(u64, i64), u32>,
}

/// SplitMix64: a small, seedable generator, so that a seed names the same stream everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `low..high`.
    fn range(&mut self, low: i64, high: i64) -> i64 {
        low + (self.next() % (high - low).max(1) as u64) as i64
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as i64) as usize]
    }
}

const CLUSTERS: i64 = 4;
const NODES: i64 = 12;
const SERVICES: &[&str] = &["checkout", "cart", "search", "payments", "profile", "catalog", "auth", "shipping"];
/// Which services call which database.
const DATABASES: &[(&str, &[&str])] = &[
    ("orders-db", &["checkout", "payments", "shipping"]),
    ("users-db", &["auth", "profile"]),
    ("items-db", &["catalog", "search", "cart"]),
];
const MINUTE: i64 = 60_000;
/// How often a firing alert is sent again (Alertmanager's re-sends from Prometheus).
const RESEND: i64 = MINUTE;

struct Builder<'k> {
    kinds: &'k Kinds,
    rng: Rng,
    start: i64,
    events: Vec<(i64, Alert)>,
    cause: BTreeMap<(u64, i64), u32>,
    causes: u32,
}

impl Builder<'_> {
    /// One alert playing `part` from `at` to `until` (re-sent every minute, then resolved), of
    /// root cause `cause`.
    fn alert(&mut self, cause: u32, part: &str, labels: &[(&str, String)], at: i64, until: i64) {
        let (name, annotations) = &self.kinds.0[part];
        let mut labels: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        labels.insert("alertname".into(), name.clone());
        let mut alert = Alert::firing("noise", labels, at);
        alert.annotations = annotations.clone();
        self.cause.insert((alert_fingerprint(&alert), at), cause);
        let mut t = at;
        while t < until {
            self.events.push((t, Alert { received_at: t, ..alert.clone() }));
            t += RESEND;
        }
        alert.status = AlertStatus::Resolved;
        alert.ends_at = Some(until);
        alert.received_at = until;
        self.events.push((until, alert));
    }

    fn new_cause(&mut self) -> u32 {
        self.causes += 1;
        self.causes
    }

    fn node(&mut self) -> (String, String) {
        let cluster = self.rng.range(0, CLUSTERS);
        (format!("c{cluster}"), format!("c{cluster}-node-{}", self.rng.range(0, NODES)))
    }

    /// A node dies: the node, crashing pods on it (which carry no node label), then the errors
    /// of the services those pods serve (which carry neither node nor pod).
    fn node_failure(&mut self, at: i64) {
        let cause = self.new_cause();
        let (cluster, node) = self.node();
        let end = at + self.rng.range(10, 40) * MINUTE;
        self.alert(
            cause,
            "NodeDown",
            &[("cluster", cluster.clone()), ("node", node.clone()), ("severity", "critical".into())],
            at,
            end,
        );
        for _ in 0..self.rng.range(2, 5) {
            let service = *self.rng.pick(SERVICES);
            let pod = format!("{service}-{:x}", self.rng.next() % 0xfffff);
            let t = at + self.rng.range(5, 90) * 1000;
            self.alert(
                cause,
                "KubePodCrashLooping",
                &[
                    ("cluster", cluster.clone()),
                    ("namespace", service.into()),
                    ("pod", pod),
                    ("severity", "warning".into()),
                ],
                t,
                end,
            );
            let t = t + self.rng.range(20, 120) * 1000;
            self.alert(cause, "HighErrorRate", &[("service", service.into()), ("severity", "critical".into())], t, end);
        }
    }

    /// A database goes down: it, then latency and errors of the services that call it, which
    /// share no label with it.
    fn database_outage(&mut self, at: i64) {
        let cause = self.new_cause();
        let (database, callers) = *self.rng.pick(DATABASES);
        let cluster = format!("c{}", self.rng.range(0, CLUSTERS));
        let end = at + self.rng.range(5, 30) * MINUTE;
        self.alert(
            cause,
            "PostgresDown",
            &[("cluster", cluster), ("instance", format!("{database}:5432")), ("severity", "critical".into())],
            at,
            end,
        );
        for service in callers {
            let t = at + self.rng.range(30, 180) * 1000;
            let name = if self.rng.next().is_multiple_of(2) { "HighLatency" } else { "HighErrorRate" };
            self.alert(cause, name, &[("service", service.to_string()), ("severity", "warning".into())], t, end);
        }
    }

    /// A switch fails: the link, then the nodes behind it in its cluster.
    fn partition(&mut self, at: i64) {
        let cause = self.new_cause();
        let cluster = self.rng.range(0, CLUSTERS);
        let end = at + self.rng.range(5, 20) * MINUTE;
        let switch = format!("c{cluster}-sw-{}", self.rng.range(0, 3));
        self.alert(
            cause,
            "LinkDown",
            &[("cluster", format!("c{cluster}")), ("device", switch), ("severity", "critical".into())],
            at,
            end,
        );
        for _ in 0..self.rng.range(2, 4) {
            let node = format!("c{cluster}-node-{}", self.rng.range(0, NODES));
            let t = at + self.rng.range(10, 60) * 1000;
            self.alert(
                cause,
                "NodeUnreachable",
                &[("cluster", format!("c{cluster}")), ("node", node), ("severity", "critical".into())],
                t,
                end,
            );
        }
    }

    /// One alert firing and resolving every minute or so, several times: one cause.
    fn flapping(&mut self, at: i64) {
        let cause = self.new_cause();
        let (cluster, node) = self.node();
        let mut t = at;
        for _ in 0..self.rng.range(4, 9) {
            let up = self.rng.range(30, 90) * 1000;
            self.alert(
                cause,
                "NodeHighCPU",
                &[("cluster", cluster.clone()), ("node", node.clone()), ("severity", "warning".into())],
                t,
                t + up,
            );
            t += up + self.rng.range(30, 90) * 1000;
        }
    }

    /// Something that clears by itself within two minutes.
    fn transient(&mut self, at: i64) {
        let cause = self.new_cause();
        let (cluster, node) = self.node();
        let name = *self.rng.pick(&["DiskIOSaturation", "NetworkRetransmits", "ContainerThrottled"]);
        let end = at + self.rng.range(30, 120) * 1000;
        self.alert(cause, name, &[("cluster", cluster), ("node", node), ("severity", "warning".into())], at, end);
    }

    /// Unrelated to anything, on a node or service that a storm may also touch.
    fn singleton(&mut self, at: i64) {
        let cause = self.new_cause();
        let (cluster, node) = self.node();
        let end = at + self.rng.range(5, 30) * MINUTE;
        let (part, labels) = match self.rng.range(0, 3) {
            0 => ("NodeDiskFilling", vec![("cluster", cluster), ("node", node), ("severity", "warning".into())]),
            1 => (
                "CertificateExpiring",
                vec![("service", self.rng.pick(SERVICES).to_string()), ("severity", "info".into())],
            ),
            _ => (
                "HighErrorRate",
                vec![("service", self.rng.pick(SERVICES).to_string()), ("severity", "critical".into())],
            ),
        };
        self.alert(cause, part, &labels, at, end);
    }
}

/// The services that call each database, as `database,service` lines: the dependency map a user
/// keeps (correlation reads it; no alert label says it).
pub fn dependencies() -> String {
    DATABASES
        .iter()
        .flat_map(|(database, callers)| callers.iter().map(move |caller| format!("{database}:5432,{caller}\n")))
        .collect()
}

/// The stream of `seed`: `hours` of alerts starting at `start` (ms), of `kinds`.
pub fn generate(seed: u64, start: i64, hours: i64, kinds: &Kinds) -> Stream {
    let mut b = Builder { kinds, rng: Rng(seed), start, events: Vec::new(), cause: BTreeMap::new(), causes: 0 };
    let span = hours * 60 * MINUTE;
    // Per hour: 6 storms of the three kinds, 3 flapping alerts, 6 transients, 12 singletons.
    for _ in 0..hours * 27 {
        let at = b.start + b.rng.range(0, span);
        match b.rng.range(0, 27) {
            0..=1 => b.node_failure(at),
            2..=3 => b.database_outage(at),
            4..=5 => b.partition(at),
            6..=8 => b.flapping(at),
            9..=14 => b.transient(at),
            _ => b.singleton(at),
        }
    }
    b.events.sort_by_key(|(t, _)| *t);
    Stream { alerts: b.events.into_iter().map(|(_, a)| a).collect(), cause: b.cause }
}

/// How well incidents (sets of fingerprints) match the causes.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Grouping {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub bcubed_f1: f64,
    /// Pairs of alerts of different causes in one incident, as a share of the pairs in incidents.
    pub wrong_merges: f64,
    /// Episodes found in an incident (all of them, unless an incident's span missed one).
    pub placed: usize,
}

/// An incident as the scorer sees it: its alerts' fingerprints and its time span (ms).
pub struct Found {
    pub fingerprints: Vec<u64>,
    pub first_seen: i64,
    pub last_seen: i64,
}

/// Pairwise and BCubed scores of the incidents against `cause`: each episode belongs to the
/// incident holding its fingerprint whose span holds its start (the latest that opened before it).
pub fn grouping(incidents: &[Found], cause: &BTreeMap<(u64, i64), u32>) -> Grouping {
    let mut holding: BTreeMap<u64, Vec<(i64, i64, usize)>> = BTreeMap::new();
    for (i, found) in incidents.iter().enumerate() {
        for fp in &found.fingerprints {
            holding.entry(*fp).or_default().push((found.first_seen, found.last_seen, i));
        }
    }
    // Counts per (incident, cause), per incident and per cause, over the episodes placed.
    let mut both: BTreeMap<(usize, u32), u64> = BTreeMap::new();
    let (mut per_incident, mut per_cause): (BTreeMap<usize, u64>, BTreeMap<u32, u64>) = Default::default();
    for (&(fp, start), &c) in cause {
        let placed = holding.get(&fp).and_then(|spans| {
            spans.iter().filter(|(first, last, _)| *first <= start && start <= *last).max_by_key(|s| s.0).map(|s| s.2)
        });
        let Some(k) = placed else { continue };
        *both.entry((k, c)).or_default() += 1;
        *per_incident.entry(k).or_default() += 1;
        *per_cause.entry(c).or_default() += 1;
    }
    let pairs = |n: u64| (n * n.saturating_sub(1) / 2) as f64;
    let together: f64 = both.values().map(|&n| pairs(n)).sum();
    let predicted: f64 = per_incident.values().map(|&n| pairs(n)).sum();
    let actual: f64 = per_cause.values().map(|&n| pairs(n)).sum();
    let ratio = |a: f64, b: f64| if b == 0.0 { 1.0 } else { a / b };
    let (precision, recall) = (ratio(together, predicted), ratio(together, actual));
    let f = |p: f64, r: f64| if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) };
    let items: f64 = per_incident.values().sum::<u64>() as f64;
    let (mut bp, mut br) = (0.0, 0.0);
    for (&(k, c), &n) in &both {
        bp += n as f64 * n as f64 / per_incident[&k] as f64;
        br += n as f64 * n as f64 / per_cause[&c] as f64;
    }
    Grouping {
        precision,
        recall,
        f1: f(precision, recall),
        bcubed_f1: f(bp / items.max(1.0), br / items.max(1.0)),
        wrong_merges: if predicted == 0.0 { 0.0 } else { (predicted - together) / predicted },
        placed: items as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_names_one_stream_with_every_kind_of_noise() {
        let (a, b) = (generate(1, 0, 2, &Kinds::default()), generate(1, 0, 2, &Kinds::default()));
        assert_eq!(a.alerts, b.alerts, "deterministic");
        assert_ne!(generate(2, 0, 2, &Kinds::default()).alerts, a.alerts);
        let names: std::collections::BTreeSet<&str> = a.alerts.iter().map(|x| x.labels["alertname"].as_str()).collect();
        for name in ["NodeDown", "PostgresDown", "LinkDown", "NodeHighCPU", "HighErrorRate"] {
            assert!(names.contains(name), "{name} in {names:?}");
        }
        assert!(a.alerts.windows(2).all(|w| w[0].received_at <= w[1].received_at));
        assert!(a.alerts.iter().all(|x| !x.labels.contains_key("root_cause")));
    }

    #[test]
    fn a_corpus_plays_the_parts_with_its_own_alerts_in_the_same_storms() {
        let corpus: Vec<CorpusAlert> = (0..20)
            .map(|i| CorpusAlert {
                id: format!("c-{i}"),
                labels: BTreeMap::from([("alertname".to_string(), format!("Unseen{i}"))]),
                annotations: BTreeMap::from([("summary".to_string(), format!("text {i}"))]),
                ..Default::default()
            })
            .collect();
        let kinds = Kinds::from_corpus(&corpus, 7).unwrap();
        let (built_in, played) = (generate(1, 0, 2, &Kinds::default()), generate(1, 0, 2, &kinds));
        assert_eq!(played.cause.len(), built_in.cause.len(), "the same storms");
        for alert in &played.alerts {
            let name = &alert.labels["alertname"];
            assert!(name.starts_with("Unseen"), "{name}");
            assert_eq!(alert.annotations["summary"], format!("text {}", &name[6..]));
        }
        let names: BTreeSet<&String> = played.alerts.iter().map(|a| &a.labels["alertname"]).collect();
        assert_eq!(names.len(), PARTS.len(), "each part its own alert");
        let error = Kinds::from_corpus(&corpus[..5], 7).unwrap_err().to_string();
        assert!(error.contains("5 distinct alert names"), "{error}");
    }

    #[test]
    fn grouping_scores_pairs_and_bcubed_per_episode() {
        // Fingerprint 3 fires twice: at 0 (cause 2) and at 100 (cause 1, with 1 and 2).
        let cause = BTreeMap::from([((1, 100), 1), ((2, 100), 1), ((3, 100), 1), ((3, 0), 2), ((4, 0), 3)]);
        let found = |fps: &[u64], first, last| Found { fingerprints: fps.to_vec(), first_seen: first, last_seen: last };
        let perfect = grouping(&[found(&[3], 0, 50), found(&[1, 2, 3], 100, 200), found(&[4], 0, 50)], &cause);
        assert_eq!((perfect.f1, perfect.bcubed_f1, perfect.wrong_merges, perfect.placed), (1.0, 1.0, 0.0, 5));
        // One incident of everything: 3 right pairs of 10.
        let merged = grouping(&[found(&[1, 2, 3, 4], 0, 200)], &cause);
        assert!((merged.precision - 0.3).abs() < 1e-9 && merged.recall == 1.0);
        assert!((merged.wrong_merges - 0.7).abs() < 1e-9);
    }
}
