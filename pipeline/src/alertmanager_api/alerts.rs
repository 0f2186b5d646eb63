//! `GET /api/v2/alerts`: the alerts that fire now (the latest state of each alert ClickHouse saw
//! in the last week: not resolved, before its end, or for a sender that never reports the end,
//! seen within `resolve_timeout`), each with its receivers and whether silences or inhibition mute it, as the
//! workers decide at this time; filtered as Alertmanager filters (`active`, `silenced`,
//! `inhibited`, `filter` matchers, `receiver` regex).

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use clickhouse::Row;
use quench_core::mute::{Check, Muted};
use quench_schemas::now_ms;
use serde::Deserialize;
use serde_json::json;

use super::{error, read_request, reader, rfc3339, unauthorized, Api};

#[derive(Row, Deserialize)]
struct Latest {
    tenant: String,
    fingerprint: String,
    last_labels: BTreeMap<String, String>,
    last_annotations: BTreeMap<String, String>,
    last_starts_at: i64,
    last_ends_at: Option<i64>,
    updated_at: i64,
    last_generator_url: String,
}

/// Aliases differ from the columns: ClickHouse would read a column's name in HAVING as the alias.
const FIRING: &str = "\
    SELECT tenant, fingerprint, argMax(labels, received_at) AS last_labels, \
        argMax(annotations, received_at) AS last_annotations, argMax(starts_at, received_at) AS last_starts_at, \
        argMax(ends_at, received_at) AS last_ends_at, max(received_at) AS updated_at, \
        argMax(generator_url, received_at) AS last_generator_url \
    FROM alerts WHERE received_at > now64(3) - INTERVAL 7 DAY \
    GROUP BY tenant, fingerprint \
    HAVING argMax(status, received_at) = 'firing' AND (last_ends_at > now64(3) OR last_ends_at IS NULL \
        AND (argMax(stateful, received_at) OR updated_at > now64(3) - toIntervalMillisecond(?))) \
    ORDER BY tenant, fingerprint";

pub async fn list(State(api): State<Arc<Api>>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let Some(token) = reader(&api, &headers) else { return unauthorized("alerts are listed for a token") };
    let (matchers, params) = match read_request(&api, query.as_deref()) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    let flag = |name: &str| params.get(name).is_none_or(|v| v != "false");
    let (active, silenced, inhibited) = (flag("active"), flag("silenced"), flag("inhibited"));
    let receiver = match params.get("receiver").map(|r| regex::Regex::new(&format!("^(?:{r})$"))).transpose() {
        Ok(receiver) => receiver,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("receiver: not a regular expression: {e}")),
    };
    let timeout = {
        let rules = api.rules.read().expect("rules lock");
        i64::try_from(rules.root.timing.resolve_timeout.as_millis()).unwrap_or(i64::MAX)
    };
    let rows = match api.clickhouse.query(FIRING).bind(timeout).fetch_all::<Latest>().await {
        Ok(rows) => rows,
        Err(e) => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, format!("alerts cannot be read from ClickHouse: {e}"))
        }
    };
    let now = now_ms();
    let rules = api.rules.read().expect("rules lock");
    let mutes = api.mutes.read().expect("mutes lock");
    let check = Check { rules: &rules, mutes: &mutes };
    let mut out = Vec::new();
    let visible = |row: &Latest| token.sees(&row.tenant) && matchers.iter().all(|m| m.matches(&row.last_labels));
    for row in rows.into_iter().filter(visible) {
        let receivers: Vec<String> =
            rules.routes_for(&row.last_labels).iter().filter_map(|route| route.receiver.clone()).collect();
        if receiver.as_ref().is_some_and(|re| !receivers.iter().any(|r| re.is_match(r))) {
            continue;
        }
        let muted = check.alert(&row.tenant, &row.last_labels, now);
        let (silenced_by, inhibited_by) = match &muted {
            Some(Muted::Silenced(id)) => (vec![id.clone()], vec![]),
            Some(Muted::Inhibited(incident)) => (vec![], vec![incident.clone()]),
            None => (vec![], vec![]),
        };
        let shown = match &muted {
            None => active,
            Some(Muted::Silenced(_)) => silenced,
            Some(Muted::Inhibited(_)) => inhibited,
        };
        if !shown {
            continue;
        }
        out.push(json!({
            "labels": row.last_labels,
            "annotations": row.last_annotations,
            "startsAt": rfc3339(row.last_starts_at),
            // Alertmanager always gives an end: for an alert without one, resolve_timeout after
            // it was last seen.
            "endsAt": rfc3339(row.last_ends_at.unwrap_or(row.updated_at.saturating_add(timeout))),
            "updatedAt": rfc3339(row.updated_at),
            "generatorURL": row.last_generator_url,
            "fingerprint": row.fingerprint,
            "receivers": receivers.iter().map(|name| json!({"name": name})).collect::<Vec<_>>(),
            "status": {
                "state": if muted.is_some() { "suppressed" } else { "active" },
                "silencedBy": silenced_by,
                "inhibitedBy": inhibited_by,
            },
        }));
    }
    Json(out).into_response()
}
