//! The query parameters of each read, defined once per operation in a table: the handler parses
//! requests with it and the OpenAPI document describes it, so the two cannot drift apart.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::config::ApiConfig;

/// What values a parameter takes.
pub enum Kind {
    Text,
    OneOf(&'static [&'static str]),
    /// RFC 3339.
    Time,
    /// Rows per page.
    Limit,
    /// A `next_cursor` given before.
    Cursor,
}

pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    pub about: &'static str,
}

pub const STATUSES: &[&str] = &["open", "acknowledged", "resolved"];

/// `GET /api/v1/incidents`.
pub const LIST: &[Param] = &[
    Param { name: "tenant", kind: Kind::Text, about: "Only this tenant's incidents (one the token sees)." },
    Param { name: "status", kind: Kind::OneOf(STATUSES), about: "Only incidents in this state." },
    Param { name: "severity", kind: Kind::Text, about: "Only this severity (critical, warning, info...)." },
    Param { name: "priority", kind: Kind::Text, about: "Only this priority (P1...P5)." },
    Param { name: "category", kind: Kind::Text, about: "Only this category of the taxonomy (database...)." },
    Param { name: "team", kind: Kind::Text, about: "Only incidents whose alerts all carry this `team` label." },
    Param { name: "service", kind: Kind::Text, about: "Only incidents whose alerts all carry this `service` label." },
    Param { name: "route", kind: Kind::Text, about: "Only incidents of this route (its id, as in the group key)." },
    Param { name: "from", kind: Kind::Time, about: "Only incidents whose first alert started at or after this time." },
    Param { name: "to", kind: Kind::Time, about: "Only incidents whose first alert started before this time." },
    Param { name: "q", kind: Kind::Text, about: "Only incidents whose title or summary holds this text (any case)." },
    Param {
        name: "sort",
        kind: Kind::OneOf(&["-first_seen", "first_seen"]),
        about: "Newest first (`-first_seen`, the default) or oldest first.",
    },
    Param {
        name: "limit",
        kind: Kind::Limit,
        about: "Incidents per page (default `api.default_limit`, at most `api.max_limit`).",
    },
    Param { name: "cursor", kind: Kind::Cursor, about: "The `next_cursor` of the previous page." },
];

/// `GET /api/v1/alerts`.
pub const ALERTS: &[Param] = &[
    Param { name: "tenant", kind: Kind::Text, about: "Only this tenant's alerts (one the token sees)." },
    Param { name: "alertname", kind: Kind::Text, about: "Only alerts of this name." },
    Param {
        name: "status",
        kind: Kind::OneOf(&["firing", "resolved"]),
        about: "Only alerts whose latest record is this.",
    },
    Param { name: "from", kind: Kind::Time, about: "Only alerts received at or after this time." },
    Param { name: "to", kind: Kind::Time, about: "Only alerts received before this time." },
    Param {
        name: "q",
        kind: Kind::Text,
        about: "Only alerts with this text in a label or annotation value (any case).",
    },
    Param {
        name: "limit",
        kind: Kind::Limit,
        about: "Alerts at most, the latest first (default `api.default_limit`).",
    },
];

/// The analytics' common parameters: whose, and which days.
const TENANT: Param = Param { name: "tenant", kind: Kind::Text, about: "Only this tenant's (one the token sees)." };
const FROM_DAY: Param =
    Param { name: "from", kind: Kind::Time, about: "From the day of this time (RFC 3339, UTC days)." };
const TO_DAY: Param = Param { name: "to", kind: Kind::Time, about: "Before the day of this time." };

/// `GET /api/v1/analytics/noisy`: what to count.
pub const NOISE: &[Param] = &[
    TENANT,
    FROM_DAY,
    TO_DAY,
    Param { name: "limit", kind: Kind::Limit, about: "Alert names at most (default `api.default_limit`)." },
];

/// `GET /api/v1/analytics/daily`: what to count.
pub const ANALYTICS: &[Param] = &[
    TENANT,
    Param { name: "team", kind: Kind::Text, about: "Only this team's incidents (routing's team, else the label)." },
    Param { name: "service", kind: Kind::Text, about: "Only incidents of this service." },
    Param { name: "category", kind: Kind::Text, about: "Only this category." },
    Param { name: "route", kind: Kind::Text, about: "Only incidents of this route (its id, `{}/{team=\"dba\"}`)." },
    FROM_DAY,
    TO_DAY,
    Param { name: "limit", kind: Kind::Limit, about: "Days at most (default `api.default_limit`)." },
];

/// A request's parameter that is wrong, and why.
#[derive(Debug, PartialEq)]
pub struct BadParam {
    pub name: String,
    pub message: String,
}

impl BadParam {
    fn new(name: &str, message: impl Into<String>) -> Self {
        Self { name: name.into(), message: message.into() }
    }
}

/// A list request, parsed.
#[derive(Debug, Default, PartialEq)]
pub struct ListQuery {
    /// Equality filters: (parameter, value), in [`LIST`]'s order.
    pub equal: Vec<(&'static str, String)>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub text: Option<String>,
    pub oldest_first: bool,
    pub limit: u32,
    /// After (or, oldest first, before) this first-alert time and incident id.
    pub cursor: Option<(i64, String)>,
}

/// Parses a request's parameters by `table`; any other parameter is an error.
pub fn parse(
    table: &'static [Param],
    params: &BTreeMap<String, String>,
    config: &ApiConfig,
) -> Result<ListQuery, BadParam> {
    let mut query = ListQuery { limit: config.default_limit, ..ListQuery::default() };
    for (name, value) in params {
        let Some(param) = table.iter().find(|p| p.name == name) else {
            let known: Vec<&str> = table.iter().map(|p| p.name).collect();
            return Err(BadParam::new(name, format!("unknown parameter `{name}` (known: {})", known.join(", "))));
        };
        match (&param.kind, param.name) {
            (Kind::Text, _) if value.is_empty() => return Err(BadParam::new(name, "must not be empty")),
            (Kind::OneOf(allowed), _) if !allowed.contains(&value.as_str()) => {
                return Err(BadParam::new(name, format!("`{value}` is not one of {}", allowed.join(", "))))
            }
            (_, "sort") => query.oldest_first = value == "first_seen",
            (_, "q") => query.text = Some(value.clone()),
            (_, "cursor") => {
                query.cursor = Some(cursor(value).ok_or_else(|| BadParam::new(name, "not a cursor this API gave"))?)
            }
            (Kind::Time, _) => {
                // Clamped to what ClickHouse's DateTime64 holds: beyond it, nothing is earlier or later.
                let ms = crate::alertmanager_api::parse_time(value, name)
                    .map_err(|e| BadParam::new(name, e))?
                    .clamp(EARLIEST_MS, LATEST_MS);
                if name == "from" {
                    query.from_ms = Some(ms);
                } else {
                    query.to_ms = Some(ms);
                }
            }
            (Kind::Limit, _) => {
                query.limit = value.parse().ok().filter(|n| (1..=config.max_limit).contains(n)).ok_or_else(|| {
                    BadParam::new(name, format!("must be a whole number from 1 to {}", config.max_limit))
                })?;
            }
            _ => query.equal.push((param.name, value.clone())),
        }
    }
    Ok(query)
}

/// The cursor that continues after an incident: its first-alert time and id.
pub fn next_cursor(first_seen_ms: i64, incident_id: &str) -> String {
    format!("{first_seen_ms}.{incident_id}")
}

fn cursor(text: &str) -> Option<(i64, String)> {
    let (ms, id) = text.split_once('.')?;
    // As the document's pattern says: digits, perhaps after a minus, at most 18.
    let digits = ms.strip_prefix('-').unwrap_or(ms);
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms = ms.parse::<i64>().ok()?.clamp(EARLIEST_MS, LATEST_MS);
    (!id.is_empty()).then(|| (ms, id.to_string()))
}

/// 1900-01-01 and 2299-12-31, DateTime64's range.
const EARLIEST_MS: i64 = -2_208_988_800_000;
const LATEST_MS: i64 = 10_413_791_999_000;

/// What a cursor looks like: first-alert time in ms, a dot, an incident id.
const CURSOR_PATTERN: &str = r"^-?[0-9]{1,18}\..+$";

/// The OpenAPI description of `table`'s parameters.
pub fn openapi(table: &[Param], config: &ApiConfig) -> Vec<Value> {
    table
        .iter()
        .map(|param| {
            let schema = match &param.kind {
                Kind::Text => json!({"type": "string", "minLength": 1}),
                Kind::OneOf(values) => json!({"type": "string", "enum": values}),
                Kind::Time => json!({"type": "string", "format": "date-time"}),
                Kind::Limit => json!({"type": "integer", "minimum": 1, "maximum": config.max_limit}),
                Kind::Cursor => json!({"type": "string", "pattern": CURSOR_PATTERN}),
            };
            json!({"name": param.name, "in": "query", "required": false, "description": param.about, "schema": schema})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_list_request_is_parsed_and_a_wrong_parameter_is_named() {
        let config = ApiConfig::default();
        let query = parse(
            LIST,
            &params(&[("status", "open"), ("limit", "10"), ("from", "2026-11-02T10:00:00Z"), ("cursor", "5.inc-1")]),
            &config,
        )
        .unwrap();
        assert_eq!(query.equal, [("status", "open".to_string())]);
        assert_eq!(
            (query.limit, query.from_ms, query.cursor),
            (10, Some(1_793_613_600_000), Some((5, "inc-1".into())))
        );
        for (name, value, says) in [
            ("status", "closed", "not one of open, acknowledged, resolved"),
            ("limit", "0", "from 1 to 500"),
            ("from", "yesterday", "RFC 3339"),
            ("cursor", "inc-1", "not a cursor"),
            ("cursor", "+5.inc-1", "not a cursor"),
            ("colour", "red", "unknown parameter `colour`"),
            ("severity", "", "must not be empty"),
        ] {
            let error = parse(LIST, &params(&[(name, value)]), &config).unwrap_err();
            assert_eq!(error.name, name);
            assert!(error.message.contains(says), "{name}={value}: {}", error.message);
        }
    }
}
