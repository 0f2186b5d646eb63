//! `GET /api/v1/incidents` and `GET /api/v1/incidents/{id}`: incidents as ClickHouse holds them
//! (the latest version of each), only of the tenants the token sees.

use crate::similar::Similar;
use serde_json::{json, Map, Value};

use super::{
    params::{next_cursor, ListQuery},
    Caller, Failure,
};

/// An incident's fields as the API answers them: (name, JSON type, nullable, meaning). The
/// SELECT and the OpenAPI schema are both made from it.
pub const FIELDS: &[(&str, &str, bool, &str)] = &[
    ("incident_id", "string", false, "Quench's id (also PagerDuty's dedup key)."),
    ("tenant", "string", false, "The tenant the incident belongs to."),
    ("status", "string", false, "open, acknowledged or resolved."),
    ("title", "string", false, "What the incident is, in a line."),
    ("summary", "string", false, "The classifier's summary."),
    ("severity", "string", false, "critical, warning, info..."),
    ("priority", "string", true, "P1 (most urgent) to P5."),
    ("category", "string", true, "The taxonomy's category."),
    ("confidence", "number", true, "The classifier's confidence, 0 to 1."),
    ("classified_by", "string", true, "local, or the LLM that answered."),
    ("first_seen", "string", false, "Its first alert's start (RFC 3339)."),
    ("last_seen", "string", false, "Its latest alert record (RFC 3339)."),
    ("acknowledged_at", "string", true, "When a person acknowledged it."),
    ("resolved_at", "string", true, "When it resolved."),
    ("alert_count", "integer", false, "Alert records it took in."),
    ("distinct_alerts", "integer", false, "Distinct alerts (fingerprints)."),
    ("common_labels", "object", false, "The labels all its alerts share."),
    ("flapping", "boolean", false, "Whether an alert of it flaps."),
    ("state_changes", "integer", false, "How often its alerts changed between firing and resolved."),
    ("transient", "boolean", false, "Resolved within its transient pause, never announced."),
    ("silenced_by", "array", false, "Silences that muted alerts of it."),
    ("inhibited_by", "array", false, "Incidents whose alerts inhibited alerts of it."),
    ("parent_incident_id", "string", true, "The incident it is linked under by correlation."),
    ("correlation", "string", true, "Why it is linked under its parent."),
];

fn columns() -> String {
    FIELDS.iter().map(|(name, ..)| *name).collect::<Vec<_>>().join(", ")
}

/// A page of incidents and the cursor of the next one (`None` on the last page).
pub async fn list(caller: &Caller<'_>, query: &ListQuery) -> Result<Value, Failure> {
    let mut sql = format!(
        "SELECT {}, toUnixTimestamp64Milli(first_seen) AS first_seen_ms FROM incidents FINAL WHERE 1",
        columns()
    );
    let mut binds: Vec<Bind> = Vec::new();
    caller.tenant_filter(&mut sql, &mut binds);
    for (name, value) in &query.equal {
        match *name {
            "team" | "service" => {
                sql.push_str(" AND common_labels[?] = ?");
                binds.extend([Bind::Text(name.to_string()), Bind::Text(value.clone())]);
            }
            // A group key starts with its route's id, then its tenant (as `incident_facts` reads it).
            "route" => {
                sql.push_str(" AND startsWith(group_key, concat(?, '|', tenant, '|'))");
                binds.push(Bind::Text(value.clone()));
            }
            // Names from the parameter table, never from the request.
            column => {
                sql.push_str(&format!(" AND {column} = ?"));
                binds.push(Bind::Text(value.clone()));
            }
        }
    }
    if let Some(from) = query.from_ms {
        sql.push_str(" AND first_seen >= fromUnixTimestamp64Milli(?)");
        binds.push(Bind::Int(from));
    }
    if let Some(to) = query.to_ms {
        sql.push_str(" AND first_seen < fromUnixTimestamp64Milli(?)");
        binds.push(Bind::Int(to));
    }
    if let Some(text) = &query.text {
        sql.push_str(" AND (positionCaseInsensitiveUTF8(title, ?) > 0 OR positionCaseInsensitiveUTF8(summary, ?) > 0)");
        binds.extend([Bind::Text(text.clone()), Bind::Text(text.clone())]);
    }
    let (compare, order) = if query.oldest_first { (">", "ASC") } else { ("<", "DESC") };
    if let Some((ms, id)) = &query.cursor {
        sql.push_str(&format!(" AND (first_seen, incident_id) {compare} (fromUnixTimestamp64Milli(?), ?)"));
        binds.extend([Bind::Int(*ms), Bind::Text(id.clone())]);
    }
    sql.push_str(&format!(" ORDER BY first_seen {order}, incident_id {order} LIMIT ?"));
    // One more than a page: whether there is a next one.
    binds.push(Bind::Int(i64::from(query.limit) + 1));
    let mut rows = caller.rows(&sql, binds).await?;
    let more = rows.len() > query.limit as usize;
    rows.truncate(query.limit as usize);
    let next = more
        .then(|| {
            rows.last()
                .map(|last| next_cursor(last["first_seen_ms"].as_i64().unwrap_or(0), str_of(last, "incident_id")))
        })
        .flatten();
    for row in &mut rows {
        row.remove("first_seen_ms");
    }
    Ok(json!({"incidents": rows, "next_cursor": next}))
}

/// One incident with its alerts, its timeline (routing events), what people did (actions, with
/// their comments), its notifications and the incidents linked under it; `None` when the token sees no such incident.
pub async fn one(caller: &Caller<'_>, id: &str, similar: Option<&Similar>) -> Result<Option<Value>, Failure> {
    let mut sql = format!("SELECT {} FROM incidents FINAL WHERE incident_id = ?", columns());
    let mut binds = vec![Bind::Text(id.into())];
    caller.tenant_filter(&mut sql, &mut binds);
    sql.push_str(" LIMIT 1");
    let Some(mut incident) = caller.rows(&sql, binds).await?.into_iter().next() else { return Ok(None) };
    let tenant = str_of(&incident, "tenant").to_string();
    let of = |extra: Vec<Bind>| [vec![Bind::Text(tenant.clone()), Bind::Text(id.into())], extra].concat();
    let alerts = caller
        .rows(
            "SELECT fingerprint, argMax(alertname, received_at) AS alertname, argMax(status, received_at) AS status, \
             argMax(labels, received_at) AS labels, argMax(annotations, received_at) AS annotations, \
             min(starts_at) AS starts_at, max(received_at) AS last_received_at FROM alerts \
             WHERE tenant = ? AND fingerprint IN (SELECT fingerprint FROM incident_alerts WHERE tenant = ? AND incident_id = ?) \
             AND received_at BETWEEN parseDateTime64BestEffort(?, 3) - INTERVAL 1 HOUR \
             AND parseDateTime64BestEffort(?, 3) + INTERVAL 1 HOUR \
             GROUP BY fingerprint ORDER BY starts_at LIMIT 1000",
            [
                vec![Bind::Text(tenant.clone())],
                of(vec![
                    Bind::Text(str_of(&incident, "first_seen").to_string()),
                    Bind::Text(str_of(&incident, "last_seen").to_string()),
                ]),
            ]
            .concat(),
        )
        .await?;
    let timeline = caller
        .rows(
            "SELECT event_id, reason, status, severity, team, targets, incident_version, emitted_at FROM routing_events \
             FINAL WHERE tenant = ? AND incident_id = ? ORDER BY emitted_at, incident_version",
            of(Vec::new()),
        )
        .await?;
    let notifications = caller
        .rows(
            "SELECT channel, target, kind, attempt, outcome, status, error, at, latency_ms FROM notifications FINAL \
             WHERE tenant = ? AND incident_id = ? ORDER BY at, attempt",
            of(Vec::new()),
        )
        .await?;
    let actions = caller
        .rows(
            "SELECT action_id, kind, actor, comment, at FROM actions FINAL \
             WHERE tenant = ? AND incident_id = ? ORDER BY at, action_id",
            of(Vec::new()),
        )
        .await?;
    let children = caller
        .rows(
            "SELECT incident_id, title, status, correlation FROM incidents FINAL \
             WHERE tenant = ? AND parent_incident_id = ? ORDER BY first_seen",
            of(Vec::new()),
        )
        .await?;
    // Similar incidents are a help, not the answer: without them the incident is still shown.
    let similar = match similar {
        Some(similar) => similar.of_incident(&tenant, id).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, incident = id, "similar incidents could not be read");
            Vec::new()
        }),
        None => Vec::new(),
    };
    incident.insert("similar".into(), Value::Array(similar));
    // The learned graph's hint of which of its alerts came first and caused the rest; like the
    // similar incidents, a help whose failure leaves the incident shown.
    let hint = caller
        .rows(
            "SELECT cause, entity, effect_kinds, effect_alerts, probability, hint FROM incident_root_causes \
             WHERE tenant = ? AND incident_id = ? LIMIT 1",
            of(Vec::new()),
        )
        .await
        .unwrap_or_default();
    incident.insert("root_cause".into(), hint.into_iter().next().map_or(Value::Null, Value::Object));
    for (name, rows) in [
        ("alerts", alerts),
        ("timeline", timeline),
        ("actions", actions),
        ("notifications", notifications),
        ("children", children),
    ] {
        incident.insert(name.into(), Value::Array(rows.into_iter().map(Value::Object).collect()));
    }
    Ok(Some(Value::Object(incident)))
}

fn str_of<'a>(row: &'a Map<String, Value>, field: &str) -> &'a str {
    row.get(field).and_then(Value::as_str).unwrap_or_default()
}

/// A value bound to a `?` of a query (the `clickhouse` crate escapes it).
#[derive(Clone)]
pub enum Bind {
    Text(String),
    Int(i64),
    Texts(Vec<String>),
}
