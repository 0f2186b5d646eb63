//! The fixed data set `quench eval ask` scores answers on: nine weeks (Monday 28 September to
//! Sunday 29 November 2026, UTC) of incidents of three tenants, with their alerts, routing
//! events, notifications and the actions people took, generated from one seed so that every run,
//! and every reference answer, sees the same rows.
//!
//! The tenants differ in size and in what they run (acme is the biggest; only acme runs ceph,
//! only globex mysql), so that questions naming a tenant, team, service or category have answers
//! that tell a filter applied from one left out.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::time_text;
use crate::loadgen::rng::Rng;

/// Monday 28 September 2026, 00:00 UTC.
pub const START_MS: i64 = 1_790_553_600_000;
/// Sunday 29 November 2026, 18:00 UTC: the last incident starts before this.
pub const END_MS: i64 = 1_795_996_800_000 - 6 * HOUR;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// What a service is: its team, category, alert names and how often it breaks (relative).
struct Service {
    name: &'static str,
    team: &'static str,
    category: &'static str,
    alerts: &'static [&'static str],
    weight: usize,
}

const SERVICES: &[Service] = &[
    Service {
        name: "postgres",
        team: "data",
        category: "database",
        alerts: &["PostgresqlDown", "PostgresqlReplicationLag", "PostgresqlTooManyConnections"],
        weight: 9,
    },
    Service {
        name: "mysql",
        team: "data",
        category: "database",
        alerts: &["MysqlDown", "MysqlSlowQueries"],
        weight: 4,
    },
    Service {
        name: "kafka",
        team: "platform",
        category: "messaging",
        alerts: &["KafkaConsumerLag", "KafkaBrokerDown"],
        weight: 7,
    },
    Service { name: "rabbitmq", team: "platform", category: "messaging", alerts: &["RabbitmqQueueFull"], weight: 2 },
    Service {
        name: "nginx",
        team: "web",
        category: "proxy-mesh",
        alerts: &["NginxHighHttp5xxErrorRate", "NginxLatencyHigh"],
        weight: 6,
    },
    Service { name: "api-gateway", team: "web", category: "proxy-mesh", alerts: &["ApiGatewayLatencyHigh"], weight: 3 },
    Service {
        name: "checkout",
        team: "payments",
        category: "runtime",
        alerts: &["JvmHeapHigh", "CheckoutErrorRate"],
        weight: 5,
    },
    Service { name: "billing", team: "payments", category: "runtime", alerts: &["BillingJobFailed"], weight: 2 },
    Service {
        name: "kubernetes",
        team: "platform",
        category: "orchestration",
        alerts: &["KubePodCrashLooping", "KubeNodeNotReady"],
        weight: 5,
    },
    Service {
        name: "node",
        team: "infra",
        category: "infrastructure",
        alerts: &["HostHighCpuLoad", "HostOutOfDiskSpace", "HostOutOfMemory"],
        weight: 8,
    },
    Service { name: "ceph", team: "infra", category: "storage", alerts: &["CephOsdDown"], weight: 2 },
    Service {
        name: "prometheus",
        team: "sre",
        category: "observability",
        alerts: &["PrometheusTargetMissing"],
        weight: 2,
    },
];

/// A tenant: its name, incidents a week, and the services it does not run.
const TENANTS: &[(&str, usize, &[&str])] =
    &[("acme", 40, &["mysql"]), ("globex", 22, &["ceph", "rabbitmq"]), ("initech", 12, &["ceph", "mysql", "billing"])];

/// Who is on call per team, in rotation.
const PEOPLE: &[(&str, &[&str])] = &[
    ("data", &["alice", "bob"]),
    ("platform", &["carol", "dave"]),
    ("web", &["erin", "frank"]),
    ("payments", &["grace", "heidi"]),
    ("infra", &["ivan", "judy"]),
    ("sre", &["mallory"]),
];

const SEVERITIES: &[(&str, usize)] = &[("critical", 15), ("high", 25), ("medium", 40), ("low", 20)];

/// The rows of each table, as JSON objects in the table's column names.
#[derive(Default)]
pub struct Fixture {
    pub tables: BTreeMap<&'static str, Vec<Value>>,
}

/// Columns that hold times: written as milliseconds here, as ClickHouse's text in the rows.
const TIMES: &[&str] = &[
    "first_seen",
    "last_seen",
    "acknowledged_at",
    "resolved_at",
    "emitted_at",
    "at",
    "received_at",
    "starts_at",
    "ends_at",
];

impl Fixture {
    fn push(&mut self, table: &'static str, mut row: Value) {
        for column in TIMES {
            if let Some(ms) = row.get(column).and_then(Value::as_i64) {
                row[column] = time_text(ms).into();
            }
        }
        self.tables.entry(table).or_default().push(row);
    }
}

fn pick_weighted<'a, T>(rng: &mut Rng, items: &'a [T], weight: impl Fn(&T) -> usize) -> &'a T {
    let total: usize = items.iter().map(&weight).sum();
    let mut at = rng.below(total);
    for item in items {
        let w = weight(item);
        if at < w {
            return item;
        }
        at -= w;
    }
    unreachable!("at < total")
}

/// Priority from severity and how many distinct alerts (the default taxonomy's matrix).
fn priority(severity: &str, distinct: u64) -> &'static str {
    let impact = match distinct {
        8.. => 0,
        3..=7 => 1,
        _ => 2,
    };
    let row = match severity {
        "critical" => ["P1", "P1", "P2"],
        "high" => ["P2", "P2", "P3"],
        "medium" => ["P3", "P3", "P4"],
        _ => ["P4", "P5", "P5"],
    };
    row[impact]
}

/// The data set; the same for every call.
pub fn generate() -> Fixture {
    let mut rng = Rng::new(0x5eed_a5c0);
    let mut fixture = Fixture::default();
    let weeks = (END_MS - START_MS + DAY) / (7 * DAY);
    for &(tenant, per_week, absent) in TENANTS {
        let services: Vec<&Service> = SERVICES.iter().filter(|s| !absent.contains(&s.name)).collect();
        let mut n = 0;
        for week in 0..weeks {
            // Busier weeks and quieter ones, so that weeks differ.
            let count = per_week * (7 + rng.below(7)) / 10;
            for _ in 0..count {
                let first_seen = rng.between(START_MS + week * 7 * DAY, (START_MS + (week + 1) * 7 * DAY).min(END_MS));
                n += 1;
                incident(&mut fixture, &mut rng, tenant, n, &services, first_seen);
            }
        }
    }
    fixture
}

fn incident(fixture: &mut Fixture, rng: &mut Rng, tenant: &str, n: usize, services: &[&Service], first_seen: i64) {
    let service = *pick_weighted(rng, services, |s| s.weight);
    let severity = pick_weighted(rng, SEVERITIES, |s| s.1).0;
    let id = format!("inc-{tenant}-{n:04}");
    let big = rng.below(5) == 0;
    let distinct = 1 + rng.below(if big { 12 } else { 4 }) as u64;
    let records = distinct * (1 + rng.below(4) as u64);
    let flapping = rng.below(12) == 0;
    let route = if matches!(severity, "critical" | "high") { "oncall" } else { "tickets" };
    let alertname = service.alerts[rng.below(service.alerts.len())];
    let opened_at = first_seen + rng.between(0, MINUTE);
    // What happened to it by the end: old incidents are mostly resolved, recent ones less so.
    let recent = END_MS - first_seen < 2 * DAY;
    let roll = rng.below(100);
    let status = match (recent, roll) {
        (false, 0..=3) | (true, 0..=39) => "open",
        (false, 4..=9) | (true, 40..=69) => "acknowledged",
        _ => "resolved",
    };
    let reaction = match severity {
        "critical" => 2 * MINUTE,
        "high" => 6 * MINUTE,
        _ => 20 * MINUTE,
    };
    let acknowledged_at = match status {
        "open" => None,
        "resolved" if rng.below(6) == 0 => None,
        _ => Some(opened_at + rng.between(MINUTE / 2, reaction * 4)),
    };
    let resolved_at = (status == "resolved").then(|| {
        acknowledged_at.unwrap_or(opened_at) + rng.between(5 * MINUTE, if flapping { 2 * HOUR } else { 8 * HOUR })
    });
    let last_seen = resolved_at.unwrap_or(END_MS).min(first_seen + 6 * HOUR);
    let people = PEOPLE.iter().find(|(team, _)| *team == service.team).map_or(&["mallory"][..], |p| p.1);
    let person = people[(first_seen / (7 * DAY)) as usize % people.len()];
    // Low-severity incidents are routed without a team; the incident's team label says it.
    let routed_team = if severity == "low" { None } else { Some(service.team) };
    let labels = json!({"service": service.name, "team": service.team, "alertname": alertname, "severity": severity});
    let fingerprints: Vec<String> = (0..distinct).map(|k| format!("{id}-{k}")).collect();
    fixture.push(
        "incidents",
        json!({
            "tenant": tenant, "incident_id": id, "group_key": format!("{route}|{tenant}|{{service=\"{}\"}}", service.name),
            "status": status, "title": format!("{alertname} on {}", service.name),
            "summary": format!("{alertname}: {} alert(s) of {} ({tenant})", distinct, service.name),
            "severity": severity, "priority": priority(severity, distinct), "category": service.category,
            "confidence": 0.9, "classified_by": "local", "first_seen": first_seen, "last_seen": last_seen,
            "acknowledged_at": acknowledged_at, "resolved_at": resolved_at, "alert_count": records,
            "distinct_alerts": distinct, "fingerprints": fingerprints, "common_labels": labels,
            "flapping": flapping, "version": 1,
        }),
    );
    fixture.push(
        "routing_events",
        json!({
            "tenant": tenant, "event_id": format!("{id}-open"), "incident_id": id, "reason": "opened",
            "status": "open", "severity": severity, "priority": priority(severity, distinct), "team": routed_team,
            "targets": [["slack", format!("#{}", service.team)]], "escalation_policy": null, "incident_version": 1,
            "emitted_at": opened_at,
        }),
    );
    notifications(fixture, rng, tenant, &id, severity, opened_at, acknowledged_at);
    if let Some(at) = acknowledged_at {
        action(fixture, tenant, &id, "acknowledge", person, None, at);
    }
    if let Some(at) = resolved_at {
        action(fixture, tenant, &id, "resolve", person, None, at);
        if rng.below(3) == 0 {
            action(fixture, tenant, &id, "comment", person, Some(format!("fixed {alertname}")), at + MINUTE);
        }
    }
    for (k, fingerprint) in fingerprints.iter().enumerate() {
        let name = service.alerts[(rng.below(service.alerts.len()) + k) % service.alerts.len()];
        let name = if k == 0 { alertname } else { name };
        alerts(
            fixture,
            rng,
            tenant,
            &id,
            fingerprint,
            name,
            service,
            first_seen,
            last_seen,
            flapping,
            records / distinct,
        );
    }
}

fn notifications(
    fixture: &mut Fixture,
    rng: &mut Rng,
    tenant: &str,
    id: &str,
    severity: &str,
    opened_at: i64,
    acknowledged_at: Option<i64>,
) {
    let mut targets = vec![("slack", "#oncall")];
    if severity == "critical" {
        targets.push(("pagerduty", "primary"));
    }
    if rng.below(4) == 0 {
        targets.push(("email", "team@example.com"));
    }
    // An unacknowledged critical or high incident escalates after 15 minutes.
    let escalates =
        matches!(severity, "critical" | "high") && acknowledged_at.is_none_or(|at| at - opened_at > 15 * MINUTE);
    let mut sends: Vec<(&str, &str, &str, i64)> =
        targets.into_iter().map(|(c, t)| (c, t, "event", opened_at)).collect();
    if escalates {
        sends.push(("pagerduty", "secondary", "escalation", opened_at + 15 * MINUTE));
    }
    for (k, (channel, target, kind, emitted_at)) in sends.into_iter().enumerate() {
        let failed = rng.below(20) == 0;
        fixture.push(
            "notifications",
            json!({
                "tenant": tenant, "incident_id": id, "event_id": format!("{id}-open"),
                "idempotency_key": format!("{id}-{k}"), "channel": channel, "target": target, "kind": kind,
                "attempt": 1, "outcome": if failed { "failed" } else { "delivered" }, "status": if failed { 500 } else { 200 },
                "error": if failed { "server error" } else { "" }, "latency_ms": 100 + rng.below(900),
                "at": emitted_at + 1_000, "emitted_at": emitted_at,
            }),
        );
    }
}

fn action(fixture: &mut Fixture, tenant: &str, id: &str, kind: &str, actor: &str, comment: Option<String>, at: i64) {
    fixture.push(
        "actions",
        json!({
            "tenant": tenant, "incident_id": id, "action_id": format!("{id}-{kind}"), "kind": kind,
            "actor": actor, "comment": comment, "at": at,
        }),
    );
}

#[allow(clippy::too_many_arguments)]
fn alerts(
    fixture: &mut Fixture,
    rng: &mut Rng,
    tenant: &str,
    id: &str,
    fingerprint: &str,
    alertname: &str,
    service: &Service,
    first_seen: i64,
    last_seen: i64,
    flapping: bool,
    records: u64,
) {
    fixture.push(
        "incident_alerts",
        json!({"tenant": tenant, "incident_id": id, "fingerprint": fingerprint, "first_seen": first_seen, "last_seen": last_seen}),
    );
    let span = (last_seen - first_seen).max(MINUTE);
    for r in 0..records.max(1) {
        // A flapping alert alternates firing and resolved; others fire, then resolve at the end.
        let resolved = if flapping { r % 2 == 1 } else { r + 1 == records.max(1) && records > 1 };
        let received_at = first_seen + span * r as i64 / records.max(1) as i64 + rng.between(0, 1_000);
        fixture.push(
            "alerts",
            json!({
                "tenant": tenant, "received_at": received_at, "starts_at": first_seen,
                "ends_at": if resolved { Some(received_at) } else { None },
                "status": if resolved { "resolved" } else { "firing" }, "source": "alertmanager",
                "alertname": alertname, "fingerprint": fingerprint,
                "labels": {"alertname": alertname, "service": service.name, "team": service.team},
                "annotations": {"summary": format!("{alertname} on {}", service.name)}, "generator_url": "",
                "kafka_partition": 0, "kafka_offset": received_at, "stateful": true,
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_set_is_the_same_every_time_and_spans_its_weeks() {
        let (a, b) = (generate(), generate());
        assert_eq!(a.tables, b.tables);
        let incidents = &a.tables["incidents"];
        assert!(incidents.len() > 500, "{}", incidents.len());
        let (from, to) = (time_text(START_MS), time_text(END_MS));
        assert!(incidents.iter().all(|i| (from.as_str()..to.as_str()).contains(&i["first_seen"].as_str().unwrap())));
        assert_eq!(from, "2026-09-28 00:00:00.000");
        for tenant in ["acme", "globex", "initech"] {
            assert!(incidents.iter().any(|i| i["tenant"] == tenant), "{tenant}");
        }
    }
}
