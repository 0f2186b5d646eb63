//! What questions may read: the analytics views and the actions table, column by column (the
//! allowlist [`super::check`] holds SQL to), and the words of the data itself (tenants, teams,
//! services, routes, alert names, people) that the local parser recognises in a question.

use std::collections::BTreeMap;

use super::AskError;

/// The views (and one table) answers come from, with their columns.
pub const VIEWS: &[(&str, &[&str])] = &[
    (
        "incident_facts",
        &[
            "tenant",
            "incident_id",
            "day",
            "team",
            "service",
            "category",
            "route",
            "severity",
            "priority",
            "status",
            "flapping",
            "first_seen",
            "opened_at",
            "acknowledged_at",
            "resolved_at",
            "tta_s",
            "ttr_s",
            "alerts",
            "distinct_alerts",
            "notifications",
            "delivered",
            "failed",
            "escalations",
        ],
    ),
    (
        "analytics_daily",
        &[
            "tenant",
            "day",
            "team",
            "service",
            "category",
            "route",
            "incidents",
            "alerts",
            "distinct_alerts",
            "noise_reduction",
            "acknowledged",
            "tta_sum_s",
            "mtta_s",
            "tta_p50_s",
            "resolved",
            "ttr_sum_s",
            "mttr_s",
            "ttr_p50_s",
            "notifications",
            "delivered",
            "failed",
            "notification_success_rate",
            "escalations",
            "flapping_incidents",
        ],
    ),
    (
        "incidents_by_priority",
        &["tenant", "day", "priority", "severity", "incidents", "open", "acknowledged", "resolved"],
    ),
    (
        "alert_kind_noise",
        &["tenant", "day", "alertname", "alerts", "distinct_alerts", "refires", "flapping_alerts", "incidents"],
    ),
    ("actions", &["tenant", "incident_id", "action_id", "kind", "actor", "comment", "at"]),
];

/// The columns of `view`, if it is one answers may read.
pub fn columns(view: &str) -> Option<&'static [&'static str]> {
    VIEWS.iter().find(|(name, _)| name.eq_ignore_ascii_case(view)).map(|(_, columns)| *columns)
}

/// The values a question may name, per `incident_facts` column (and `alertname`, `actor`),
/// read from the caller's tenants only.
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    pub values: BTreeMap<&'static str, Vec<String>>,
}

/// Each word kind and the query of its values (`{tenants}` is the tenant condition).
const SOURCES: &[(&str, &str)] = &[
    ("tenant", "SELECT DISTINCT tenant FROM incidents WHERE {tenants}"),
    ("team", "SELECT DISTINCT common_labels['team'] FROM incidents WHERE {tenants}"),
    ("team", "SELECT DISTINCT assumeNotNull(team) FROM routing_events WHERE team IS NOT NULL AND {tenants}"),
    ("service", "SELECT DISTINCT common_labels['service'] FROM incidents WHERE {tenants}"),
    ("category", "SELECT DISTINCT assumeNotNull(category) FROM incidents WHERE category IS NOT NULL AND {tenants}"),
    ("severity", "SELECT DISTINCT severity FROM incidents WHERE {tenants}"),
    ("priority", "SELECT DISTINCT assumeNotNull(priority) FROM incidents WHERE priority IS NOT NULL AND {tenants}"),
    (
        "route",
        "SELECT DISTINCT substring(group_key, 1, position(group_key, concat('|', tenant, '|')) - 1) FROM incidents \
         WHERE {tenants}",
    ),
    ("alertname", "SELECT DISTINCT alertname FROM alerts WHERE {tenants} LIMIT 10000"),
    ("actor", "SELECT DISTINCT actor FROM actions WHERE {tenants} LIMIT 10000"),
];

impl Vocabulary {
    pub async fn load(client: &::clickhouse::Client, tenants: Option<&[String]>) -> Result<Self, AskError> {
        let condition = match tenants {
            None => "1".to_string(),
            Some(tenants) => format!("has({}, tenant)", super::check::string_array(tenants)),
        };
        let mut values: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for (kind, sql) in SOURCES {
            let found: Vec<String> = client
                .query(&sql.replace("{tenants}", &condition))
                .fetch_all()
                .await
                .map_err(|e| AskError::ClickHouse(e.to_string()))?;
            let entry = values.entry(kind).or_default();
            entry.extend(found.into_iter().filter(|v| !v.trim().is_empty()));
            entry.sort();
            entry.dedup();
        }
        Ok(Self { values })
    }

    pub fn of(&self, kind: &str) -> &[String] {
        self.values.get(kind).map_or(&[], Vec::as_slice)
    }
}
