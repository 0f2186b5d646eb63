//! `GET /api/v1/analytics/daily` and `GET /api/v1/analytics/noisy`: the analytics views of
//! `sql/0009_analytics.sql`, summed over what the filters leave (per day; per alert name), for
//! the tenants the token sees. Each answer's columns are defined once here, for the SELECT and
//! the OpenAPI schema alike.

use serde_json::{json, Map, Value};

use super::{incidents::Bind, params::ListQuery, Caller, Failure};

/// One column of an answer: its name, the SQL that makes it, its JSON type, whether it may be
/// null, and what it means.
pub struct Column {
    pub name: &'static str,
    sql: &'static str,
    pub kind: &'static str,
    pub nullable: bool,
    pub about: &'static str,
}

const fn column(
    name: &'static str,
    sql: &'static str,
    kind: &'static str,
    nullable: bool,
    about: &'static str,
) -> Column {
    Column { name, sql, kind, nullable, about }
}

/// Per day, newest first, from `analytics_daily`: ratios and means made again from the sums, so
/// that they hold for any slice.
pub const DAILY: &[Column] = &[
    column("day", "v.day", "string", false, "The UTC day (YYYY-MM-DD)."),
    column("incidents", "sum(v.incidents)", "integer", false, "Incidents whose first alert started that day."),
    column("alerts", "sum(v.alerts)", "integer", false, "Alert records they took in."),
    column("distinct_alerts", "sum(v.distinct_alerts)", "integer", false, "Distinct alerts in them."),
    column(
        "noise_reduction",
        "if(sum(v.distinct_alerts) = 0, NULL, 1 - sum(v.incidents) / sum(v.distinct_alerts))",
        "number",
        true,
        "1 - incidents / distinct alerts.",
    ),
    column("acknowledged", "sum(v.acknowledged)", "integer", false, "Incidents a person acknowledged."),
    column(
        "mtta_s",
        "if(sum(v.acknowledged) = 0, NULL, sum(v.tta_sum_s) / sum(v.acknowledged))",
        "number",
        true,
        "Mean time to acknowledge, seconds.",
    ),
    column("resolved", "sum(v.resolved)", "integer", false, "Incidents resolved."),
    column(
        "mttr_s",
        "if(sum(v.resolved) = 0, NULL, sum(v.ttr_sum_s) / sum(v.resolved))",
        "number",
        true,
        "Mean time to resolve, seconds.",
    ),
    column(
        "notifications",
        "sum(v.notifications)",
        "integer",
        false,
        "Notifications (each delivery, whatever its attempts).",
    ),
    column("delivered", "sum(v.delivered)", "integer", false, "Notifications delivered."),
    column("failed", "sum(v.failed)", "integer", false, "Notifications given up on."),
    column("escalations", "sum(v.escalations)", "integer", false, "Escalation pages."),
    column("flapping_incidents", "sum(v.flapping_incidents)", "integer", false, "Incidents with a flapping alert."),
];

/// Per alert name, from `alert_kind_noise`: the noisiest first.
pub const NOISY: &[Column] = &[
    column("alertname", "v.alertname", "string", false, "The alert's name."),
    column("alerts", "sum(v.alerts)", "integer", false, "Alert records of it."),
    column("distinct_alerts", "sum(v.distinct_alerts)", "integer", false, "Distinct alerts of it (per day, summed)."),
    column("refires", "sum(v.refires)", "integer", false, "Times one of them fired again after resolving."),
    column(
        "flapping_alerts",
        "sum(v.flapping_alerts)",
        "integer",
        false,
        "Alerts of it that fired again (per day, summed).",
    ),
];

pub async fn daily(caller: &Caller<'_>, query: &ListQuery) -> Result<Value, Failure> {
    Ok(json!({"days": summed(caller, query, "analytics_daily", DAILY, "v.day", "v.day DESC").await?}))
}

pub async fn noisy(caller: &Caller<'_>, query: &ListQuery) -> Result<Value, Failure> {
    Ok(
        json!({"kinds": summed(caller, query, "alert_kind_noise", NOISY, "v.alertname", "alerts DESC, v.alertname").await?}),
    )
}

/// `columns` of `view`, filtered by `query`, grouped and ordered.
async fn summed(
    caller: &Caller<'_>,
    query: &ListQuery,
    view: &str,
    columns: &[Column],
    group: &str,
    order: &str,
) -> Result<Vec<Map<String, Value>>, Failure> {
    let select: Vec<String> = columns.iter().map(|c| format!("{} AS {}", c.sql, c.name)).collect();
    // Columns are read as `v.name`: a bare name would be the answer's alias of the same name.
    let mut sql = format!("SELECT {} FROM {view} AS v WHERE 1", select.join(", "));
    let mut binds = Vec::new();
    caller.tenant_filter(&mut sql, &mut binds);
    // Names from the parameter table, never from the request.
    for (name, value) in &query.equal {
        sql.push_str(&format!(" AND v.{name} = ?"));
        binds.push(Bind::Text(value.clone()));
    }
    for (bound, compare) in [(query.from_ms, ">="), (query.to_ms, "<")] {
        if let Some(ms) = bound {
            sql.push_str(&format!(" AND v.day {compare} toDate(fromUnixTimestamp64Milli(?, 'UTC'))"));
            binds.push(Bind::Int(ms));
        }
    }
    sql.push_str(&format!(" GROUP BY {group} ORDER BY {order} LIMIT ?"));
    binds.push(Bind::Int(i64::from(query.limit)));
    caller.rows(&sql, binds).await
}

/// The OpenAPI schema of a row of `columns`.
pub fn schema(columns: &[Column]) -> Value {
    let properties: Map<String, Value> = columns
        .iter()
        .map(|c| {
            let kind = if c.nullable { json!([c.kind, "null"]) } else { json!(c.kind) };
            (c.name.to_string(), json!({"type": kind, "description": c.about}))
        })
        .collect();
    let required: Vec<&str> = columns.iter().map(|c| c.name).collect();
    json!({"type": "object", "required": required, "properties": properties})
}
