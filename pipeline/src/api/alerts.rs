//! `GET /api/v1/alerts`: alerts as ClickHouse holds them (each fingerprint's latest record) with
//! the incidents they joined, the latest first, only of the tenants the token sees.

use serde_json::{json, Value};

use super::{incidents::Bind, params::ListQuery, Caller, Failure};

/// Which record is an alert's latest: Kafka's order breaks ties of `received_at`.
const LATEST: &str = "(received_at, kafka_partition, kafka_offset)";

pub async fn search(caller: &Caller<'_>, query: &ListQuery) -> Result<Value, Failure> {
    let mut sql = format!(
        "SELECT tenant, fingerprint, argMax(alertname, {LATEST}) AS alertname, \
         argMax(toString(status), {LATEST}) AS status, argMax(labels, {LATEST}) AS labels, \
         argMax(annotations, {LATEST}) AS annotations, min(starts_at) AS starts_at, \
         max(received_at) AS last_received_at FROM alerts AS r WHERE 1"
    );
    let mut binds: Vec<Bind> = Vec::new();
    caller.tenant_filter(&mut sql, &mut binds);
    let mut status = None;
    for (name, value) in &query.equal {
        match *name {
            // The latest record's, so after grouping.
            "status" => status = Some(value.clone()),
            // Names from the parameter table, never from the request; `r.`: a bare name would be
            // the answer's alias of the same name, an aggregate.
            column => {
                sql.push_str(&format!(" AND r.{column} = ?"));
                binds.push(Bind::Text(value.clone()));
            }
        }
    }
    for (bound, compare) in [(query.from_ms, ">="), (query.to_ms, "<")] {
        if let Some(ms) = bound {
            sql.push_str(&format!(" AND received_at {compare} fromUnixTimestamp64Milli(?)"));
            binds.push(Bind::Int(ms));
        }
    }
    if let Some(text) = &query.text {
        sql.push_str(
            " AND arrayExists(v -> positionCaseInsensitiveUTF8(v, ?) > 0, \
             arrayConcat(mapValues(r.labels), mapValues(r.annotations)))",
        );
        binds.push(Bind::Text(text.clone()));
    }
    sql.push_str(" GROUP BY tenant, fingerprint");
    if let Some(status) = status {
        sql.push_str(" HAVING status = ?");
        binds.push(Bind::Text(status));
    }
    sql.push_str(" ORDER BY last_received_at DESC, fingerprint LIMIT ?");
    binds.push(Bind::Int(i64::from(query.limit)));
    let mut alerts = caller.rows(&sql, binds).await?;
    if alerts.is_empty() {
        return Ok(json!({"alerts": []}));
    }
    let fingerprints: Vec<String> =
        alerts.iter().filter_map(|a| a.get("fingerprint").and_then(Value::as_str)).map(str::to_string).collect();
    let mut sql = "SELECT tenant, fingerprint, groupUniqArray(incident_id) AS incidents FROM incident_alerts FINAL \
                   WHERE has(?, fingerprint)"
        .to_string();
    let mut binds = vec![Bind::Texts(fingerprints)];
    caller.tenant_filter(&mut sql, &mut binds);
    sql.push_str(" GROUP BY tenant, fingerprint");
    let joined = caller.rows(&sql, binds).await?;
    for alert in &mut alerts {
        let incidents = joined
            .iter()
            .find(|j| j.get("tenant") == alert.get("tenant") && j.get("fingerprint") == alert.get("fingerprint"))
            .and_then(|j| j.get("incidents").cloned())
            .unwrap_or_else(|| json!([]));
        alert.insert("incidents".into(), incidents);
    }
    Ok(json!({"alerts": alerts}))
}
