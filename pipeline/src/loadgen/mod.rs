//! Realistic alert storms made from the labelled corpus, with their ground truth.
//!
//! A fleet of services, each running one software family of the corpus (PostgreSQL, Kafka,
//! Kubernetes...) on several hosts, produces:
//! - correlated storms: a root cause on a service fires a few of its family's rules on most of
//!   its hosts within seconds (one incident per rule and service is the right answer);
//! - re-sends of every firing alert every `resend_every_ms`, as Alertmanager and Prometheus do;
//! - flapping alerts that resolve and fire again;
//! - singleton noise: one-off alerts from random rules and hosts.
//!
//! Every alert carries its cause in the `loadgen_cause` annotation (annotations are not part of
//! the fingerprint or group key), so a harness can compare the incidents Quench made with the
//! causes that made the alerts. Times are offsets from 0 in milliseconds; the caller shifts them.

mod producer;
pub mod rng;

use std::collections::HashMap;

use quench_schemas::{Alert, AlertStatus};

pub use producer::AlertProducer;
use quench_classify::corpus::CorpusAlert;
use rng::Rng;

#[derive(Debug, Clone, clap::Args)]
pub struct StormConfig {
    /// Seed of the generator: the same seed makes the same storm.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Services in the simulated fleet.
    #[arg(long, default_value_t = 30)]
    pub services: usize,
    /// Hosts per service.
    #[arg(long, default_value_t = 20)]
    pub hosts: usize,
    /// Correlated storms (root causes).
    #[arg(long, default_value_t = 20)]
    pub storms: usize,
    /// Rules of the service's family that fire in one storm.
    #[arg(long, default_value_t = 3)]
    pub rules_per_storm: usize,
    /// Interval between re-sends of a firing alert.
    #[arg(long, default_value_t = 30_000)]
    pub resend_every_ms: i64,
    /// Re-sends of each storm alert before it resolves.
    #[arg(long, default_value_t = 4)]
    pub resends: usize,
    /// Flapping alerts.
    #[arg(long, default_value_t = 10)]
    pub flapping: usize,
    /// One-off noise alerts.
    #[arg(long, default_value_t = 200)]
    pub noise: usize,
    /// Time span over which causes start.
    #[arg(long, default_value_t = 300_000)]
    pub span_ms: i64,
}

/// One root cause and how many alert records it produced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Cause {
    pub id: String,
    pub kind: &'static str,
    pub alerts: usize,
}

pub struct Storm {
    /// Sorted by `received_at`.
    pub alerts: Vec<Alert>,
    pub causes: Vec<Cause>,
}

pub const CAUSE_ANNOTATION: &str = "loadgen_cause";

/// Generates a storm for `tenant`: a tenant per run keeps runs apart, since incidents never span
/// tenants.
pub fn generate(corpus: &[CorpusAlert], config: &StormConfig, tenant: &str) -> Storm {
    let mut rng = Rng::new(config.seed);
    let mut families: HashMap<&str, Vec<&CorpusAlert>> = HashMap::new();
    for rule in corpus {
        families.entry(rule.service.as_str()).or_default().push(rule);
    }
    let mut names: Vec<&str> = families.keys().copied().collect();
    names.sort_unstable();
    let fleet: Vec<(String, &Vec<&CorpusAlert>)> =
        (0..config.services.max(1)).map(|i| (format!("svc-{i:03}"), &families[names[i % names.len()]])).collect();

    let mut out = Storm { alerts: Vec::new(), causes: Vec::new() };
    let emit = |cause: &str, alert: Alert, alerts: &mut Vec<Alert>| {
        let mut alert = alert;
        alert.annotations.insert(CAUSE_ANNOTATION.into(), cause.into());
        alert.tenant = tenant.to_string();
        alerts.push(alert);
    };

    for s in 0..config.storms {
        let (service, rules) = &fleet[rng.below(fleet.len())];
        let start = rng.between(0, config.span_ms);
        for r in 0..config.rules_per_storm.min(rules.len()) {
            let rule = rules[(s + r * 7) % rules.len()];
            let cause = format!("storm-{s}/{}", rule.labels["alertname"]);
            let before = out.alerts.len();
            // Most hosts of the service are hit, within a few seconds of each other.
            for host in 0..config.hosts {
                if rng.below(10) == 0 {
                    continue;
                }
                let fired = start + rng.between(0, 5_000);
                for k in 0..=config.resends {
                    let at = fired + k as i64 * config.resend_every_ms;
                    emit(&cause, alert(rule, service, host, fired, at, AlertStatus::Firing), &mut out.alerts);
                }
                let end = fired + (config.resends as i64 + 1) * config.resend_every_ms;
                emit(&cause, alert(rule, service, host, fired, end, AlertStatus::Resolved), &mut out.alerts);
            }
            out.causes.push(Cause { id: cause, kind: "storm", alerts: out.alerts.len() - before });
        }
    }
    for f in 0..config.flapping {
        let (service, rules) = &fleet[rng.below(fleet.len())];
        let rule = rules[rng.below(rules.len())];
        let host = rng.below(config.hosts.max(1));
        let cause = format!("flapping-{f}/{}", rule.labels["alertname"]);
        let mut at = rng.between(0, config.span_ms);
        let fired = at;
        for flip in 0..8 {
            let status = if flip % 2 == 0 { AlertStatus::Firing } else { AlertStatus::Resolved };
            emit(&cause, alert(rule, service, host, fired, at, status), &mut out.alerts);
            at += rng.between(5_000, 20_000);
        }
        out.causes.push(Cause { id: cause, kind: "flapping", alerts: 8 });
    }
    for n in 0..config.noise {
        let (service, rules) = &fleet[rng.below(fleet.len())];
        let rule = rules[rng.below(rules.len())];
        let at = rng.between(0, config.span_ms);
        let cause = format!("noise-{n}/{}", rule.labels["alertname"]);
        emit(
            &cause,
            alert(rule, service, rng.below(config.hosts.max(1)), at, at, AlertStatus::Firing),
            &mut out.alerts,
        );
        out.causes.push(Cause { id: cause, kind: "noise", alerts: 1 });
    }
    out.alerts.sort_by_key(|a| a.received_at);
    out
}

fn alert(rule: &CorpusAlert, service: &str, host: usize, starts_at: i64, at: i64, status: AlertStatus) -> Alert {
    let instance = format!("{service}-{host:03}:9100");
    let mut labels = rule.labels.clone();
    labels.insert("service".into(), service.into());
    labels.insert("instance".into(), instance.clone());
    if let Some(expected) = &rule.expected {
        labels.insert("severity".into(), expected.severity.clone());
    }
    let annotations =
        rule.annotations.iter().map(|(k, v)| (k.clone(), v.replace("{{ $labels.instance }}", &instance))).collect();
    Alert {
        source: "loadgen".into(),
        status,
        labels,
        annotations,
        starts_at,
        ends_at: (status == AlertStatus::Resolved).then_some(at),
        received_at: at,
        generator_url: None,
        fingerprint: None,
        tenant: String::new(),
        stateful: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus;

    fn storm(seed: u64) -> Storm {
        let corpus: Vec<corpus::CorpusAlert> =
            corpus::SAMPLE.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        let config = StormConfig {
            seed,
            services: 10,
            hosts: 10,
            storms: 5,
            rules_per_storm: 2,
            resend_every_ms: 30_000,
            resends: 3,
            flapping: 2,
            noise: 20,
            span_ms: 60_000,
        };
        generate(&corpus, &config, "r1")
    }

    #[test]
    fn the_same_seed_makes_the_same_storm_and_causes_account_for_every_alert() {
        let a = storm(1);
        assert_eq!(a.alerts, storm(1).alerts);
        assert_ne!(a.alerts, storm(2).alerts);
        assert_eq!(a.causes.iter().map(|c| c.alerts).sum::<usize>(), a.alerts.len());
        assert!(a.alerts.windows(2).all(|w| w[0].received_at <= w[1].received_at));
        assert!(a.alerts.iter().all(|x| x.tenant == "r1" && x.annotations.contains_key(CAUSE_ANNOTATION)));
    }

    #[test]
    fn storms_are_mostly_re_sends_of_few_alerts() {
        let s = storm(3);
        let distinct: std::collections::HashSet<_> = s.alerts.iter().map(|a| &a.labels).collect();
        assert!(distinct.len() * 3 < s.alerts.len(), "{} distinct of {}", distinct.len(), s.alerts.len());
    }
}
