//! The local parser: reads the common questions without an LLM, by their words.
//!
//! A question is read as what to compute (a count, alerts, MTTA, MTTR, noise reduction,
//! escalations, notifications), over what (incidents, alert names, people's actions), in which
//! shape (one number, a breakdown or top N, a list of incidents), narrowed by a time range
//! ([`super::when`]) and by the values it names: tenants, teams, services, categories,
//! severities, priorities, routes and people as the data holds them ([`Vocabulary`]), statuses,
//! flapping, escalated. Values go into the SQL as quoted literals, so a name that looks like SQL
//! stays a name.

use super::{
    check::quote,
    time_text,
    views::Vocabulary,
    when::{self, Range},
};

/// What is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measure {
    Count,
    Alerts,
    Mtta,
    Mttr,
    NoiseReduction,
    Escalations,
    Failed,
    Notifications,
    Refires,
}

impl Measure {
    /// The aggregate and its column name.
    fn sql(self) -> (&'static str, &'static str) {
        match self {
            Self::Count => ("count()", "incidents"),
            Self::Alerts => ("sum(alerts)", "alerts"),
            Self::Mtta => ("avg(tta_s)", "mtta_s"),
            Self::Mttr => ("avg(ttr_s)", "mttr_s"),
            Self::NoiseReduction => ("1 - count() / sum(distinct_alerts)", "noise_reduction"),
            Self::Escalations => ("sum(escalations)", "escalations"),
            Self::Failed => ("sum(failed)", "failed_notifications"),
            Self::Notifications => ("sum(notifications)", "notifications"),
            Self::Refires => ("sum(refires)", "refires"),
        }
    }
}

/// What the rows are about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Incidents,
    /// Alert names, per day (`alert_kind_noise`).
    AlertKinds,
    /// People's actions of one kind.
    Actions(&'static str),
}

/// What a question groups by: the words that name it and its column.
const DIMENSIONS: &[(&[&str], &str)] = &[
    (&["severity", "severities", "sev", "sevs"], "severity"),
    (&["priority", "priorities"], "priority"),
    (&["team", "teams", "squad", "squads"], "team"),
    (&["service", "services", "app", "apps", "application", "applications", "system", "systems"], "service"),
    (&["category", "categories", "type", "types", "kind", "kinds"], "category"),
    (&["tenant", "tenants", "customer", "customers", "account", "accounts"], "tenant"),
    (&["route", "routes"], "route"),
    (&["day", "days", "daily", "date"], "day"),
    (&["week", "weeks", "weekly"], "week"),
    (&["status", "statuses", "state", "states"], "status"),
    (&["alert", "alerts", "alertname", "alertnames", "rule", "rules"], "alertname"),
    (&["person", "people", "engineer", "engineers", "responder", "responders", "who", "user", "users"], "actor"),
];

/// Words that make a dimension word a grouping: "by team", "per day", "which service".
const GROUPERS: &[&str] = &["by", "per", "each", "every", "across", "which", "what", "top"];

/// Other words for the categories of the default taxonomy.
const CATEGORY_WORDS: &[(&str, &str)] = &[
    ("db", "database"),
    ("dbs", "database"),
    ("databases", "database"),
    ("queue", "messaging"),
    ("queues", "messaging"),
    ("k8s", "orchestration"),
    ("kubernetes", "orchestration"),
    ("network", "network-security"),
    ("networking", "network-security"),
    ("security", "network-security"),
    ("proxy", "proxy-mesh"),
    ("proxies", "proxy-mesh"),
    ("mesh", "proxy-mesh"),
    ("infra", "infrastructure"),
    ("host", "infrastructure"),
    ("hosts", "infrastructure"),
    ("monitoring", "observability"),
];

/// The incident columns a question can name values of, in the order they are tried.
const FILTERED: &[&str] = &["tenant", "team", "service", "category", "severity", "priority", "route"];

/// The question, read.
#[derive(Debug)]
pub struct Query {
    source: Source,
    measure: Measure,
    /// `None`: one number, or a list when `list`.
    group: Option<&'static str>,
    top: Option<u64>,
    list: bool,
    /// Only groups whose measure is above zero.
    some: bool,
    range: Option<Range>,
    /// Conditions on incidents (`incident_facts` columns).
    conditions: Vec<String>,
    /// Conditions on the source itself when it is not incidents (tenant, actor).
    own: Vec<String>,
}

/// Reads `question` asked at `now`, or says what it could not read.
pub fn parse(question: &str, now: i64, vocabulary: &Vocabulary) -> Result<Query, String> {
    let text = normalize(question);
    let words: Vec<&str> = text.split_whitespace().collect();
    let has = |w: &str| words.contains(&w);
    let starts = |prefix: &str| words.iter().any(|w| w.starts_with(prefix));
    let phrase = |p: &str| format!(" {text} ").contains(&format!(" {p} "));
    let range = when::find(&words, now).map(|(range, _)| range);

    // People: who acknowledged, resolved or commented (most), or what one person did.
    let person = has("who")
        || words.iter().any(|w| DIMENSIONS.iter().any(|(names, column)| *column == "actor" && names.contains(w)));
    let named = vocabulary.of("actor").iter().any(|a| has(&a.to_lowercase()));
    let acting = person || named;
    let action = if starts("comment") {
        Some("comment")
    } else if acting && (starts("ack") || has("acknowledged")) {
        Some("acknowledge")
    } else if acting && (starts("resolv") || has("fixed") || has("closed")) {
        Some("resolve")
    } else {
        None
    };

    // How long until acknowledged or resolved: MTTA/MTTR by name, "time to resolve", "how long
    // to fix", "average resolution time".
    let timing = phrase("time to")
        || phrase("how long")
        || ["resolution time", "resolve time", "response time", "ack time", "acknowledgement time", "fix time"]
            .iter()
            .any(|p| phrase(p))
        || ((has("average") || has("avg") || has("mean") || has("typical"))
            && (has("time") || has("duration") || has("took") || has("take")));
    let fixing = ["resol", "fix", "recover", "repair", "clos", "mitigat"].iter().any(|p| starts(p));
    let acking = ["ack", "respon"].iter().any(|p| starts(p));
    let measure = if has("mtta") || (timing && acking && !fixing) {
        Measure::Mtta
    } else if has("mttr") || (timing && fixing) {
        Measure::Mttr
    } else if phrase("noise reduction") || has("reduction") || phrase("noise reduced") {
        Measure::NoiseReduction
    } else if (starts("fail") || has("undelivered")) && starts("notification") {
        Measure::Failed
    } else if has("escalations") && !has("escalated") {
        Measure::Escalations
    } else if starts("notification") {
        Measure::Notifications
    } else if has("refires") || has("flappiest") || phrase("most flapping") {
        Measure::Refires
    } else if (starts("alert") || has("noisiest") || phrase("alert volume")) && !starts("incident") {
        Measure::Alerts
    } else {
        Measure::Count
    };

    // The grouping: a dimension word after by/per/which/top..., or "noisiest alerts".
    let mut group = None;
    let mut singular = false;
    let mut top = None;
    for (i, word) in words.iter().enumerate() {
        let Some((names, column)) = DIMENSIONS.iter().find(|(names, _)| names.contains(word)) else { continue };
        let before: Vec<&str> =
            words[i.saturating_sub(3)..i].iter().copied().filter(|w| !matches!(*w, "the" | "an" | "a")).collect();
        let grouped =
            before.last().is_some_and(|w| GROUPERS.contains(w) || when::number(w).is_some() && before.contains(&"top"))
                || (*column == "alertname"
                    && (has("noisiest") || has("flappiest") || phrase("most common") || phrase("most frequent")))
                || (*column == "actor" && *word == "who");
        let grouped = grouped || matches!(*word, "daily" | "weekly");
        if grouped && group.is_none() {
            group = Some(*column);
            singular = *word == "who"
                || names.iter().position(|n| n == word).is_some_and(|k| k % 2 == 0 && !word.ends_with('s'));
        }
    }
    let most = has("most")
        || has("top")
        || starts("highest")
        || has("noisiest")
        || has("flappiest")
        || has("busiest")
        || has("worst");
    if let Some(k) = words.iter().position(|w| *w == "top") {
        top = words.get(k + 1).and_then(|w| when::number(w)).map(|n| n as u64);
    }
    if group.is_some() && most && top.is_none() {
        top = Some(if singular { 1 } else { 5 });
    }
    if !most {
        top = None;
    }

    let source = match (action, group) {
        (Some(kind), _) => Source::Actions(kind),
        (None, Some("alertname")) => Source::AlertKinds,
        (None, Some("actor")) => Source::Actions("acknowledge"),
        _ if measure == Measure::Refires => Source::AlertKinds,
        _ => Source::Incidents,
    };
    let measure = match (source, measure) {
        (Source::AlertKinds, Measure::Refires) => Measure::Refires,
        (Source::AlertKinds, _) => Measure::Alerts,
        (Source::Actions(_), _) => Measure::Count,
        (_, m) => m,
    };
    let mut group = match source {
        // "how many comments have people left" counts; "which people", "who" and "top 3 people" group.
        Source::Actions(_) if group == Some("actor") || has("who") => Some("actor"),
        Source::Actions(_) => group.filter(|g| *g != "actor"),
        _ => group,
    };

    let versus = has("vs") || has("versus") || has("compared");
    let mut conditions = Vec::new();
    let mut own = Vec::new();
    for column in FILTERED {
        let mut values: Vec<&String> =
            vocabulary.of(column).iter().filter(|value| names_value(&words, &text, value, column)).collect();
        if *column == "category" {
            for (word, category) in CATEGORY_WORDS {
                let known = vocabulary.of("category").iter().find(|c| c.as_str() == *category);
                // A word that is also a team or service of the data names that, not the category.
                let taken = ["team", "service"].iter().any(|k| vocabulary.of(k).iter().any(|v| v == word));
                if let (true, Some(known), false) = (has(word), known, taken) {
                    values.push(known);
                }
            }
            values.dedup();
        }
        // "tickets vs oncall": one row for each.
        if versus && group.is_none() && values.len() > 1 {
            group = Some(*column);
        }
        if let Some(condition) = membership(column, &values) {
            if *column == "tenant" {
                own.push(condition.clone());
            }
            conditions.push(condition);
        }
    }
    let statuses: Vec<&str> = [
        ("open", "open"),
        ("acked", "acknowledged"),
        ("acknowledged", "acknowledged"),
        ("resolved", "resolved"),
        ("closed", "resolved"),
    ]
    .iter()
    .filter(|(word, _)| has(word))
    .map(|(_, status)| *status)
    .collect();
    if versus && group.is_none() && statuses.len() > 1 {
        group = Some("status");
    } else if let Some(status) = status(&words, &text, action.is_some() || acting) {
        conditions.push(status);
    }
    if (starts("flap") || has("flaky") || has("flappy")) && source == Source::Incidents && measure != Measure::Refires {
        conditions.push("flapping".into());
    }
    if has("escalated") {
        conditions.push("escalations > 0".into());
    }
    let actors: Vec<&String> = vocabulary.of("actor").iter().filter(|a| has(&a.to_lowercase())).collect();
    if let Some(actors) = membership("actor", &actors) {
        if matches!(source, Source::Actions(_)) {
            own.push(actors);
        }
    }

    let understood = starts("incident")
        || starts("outage")
        || starts("alert")
        || starts("page")
        || starts("problem")
        || starts("issue")
        || measure != Measure::Count
        || action.is_some()
        || group.is_some()
        || !conditions.is_empty();
    if !understood {
        return Err(format!(
            "the local parser did not understand \"{question}\": ask about incidents, alerts, MTTA/MTTR, noise \
             reduction or who acknowledged them, with a time range (\"this week\", \"last 3 days\"), values (a team, \
             service, severity, tenant) and a shape (\"how many\", \"by team\", \"top 5\", \"list\")"
        ));
    }
    let list = group.is_none()
        && measure == Measure::Count
        && !matches!(source, Source::Actions(_))
        && !(has("many") || phrase("number of") || starts("count") || has("total"))
        && (["list", "show", "which", "what", "any", "give", "display", "find", "get"].iter().any(|w| has(w)));

    // "Which services had failed notifications": those with some.
    let some =
        group.is_some() && matches!(measure, Measure::Failed | Measure::Escalations) && (has("which") || has("what"));
    Ok(Query { source, measure, group, top, list, some, range, conditions, own })
}

/// Lower case; `on-call` as one word; possessives and punctuation away.
fn normalize(question: &str) -> String {
    let lower = question.to_lowercase().replace("on-call", "oncall").replace("on call", "oncall");
    let kept: String = lower
        .replace("'s ", " ")
        .replace("’s ", " ")
        .chars()
        .map(|c| if c.is_alphanumeric() || c == '-' || c == '_' { c } else { ' ' })
        .collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether the question names `value` of `column`: as a word or phrase, its plural, or (for a
/// hyphenated value) with spaces; a severity or route only as a word of its own.
fn names_value(words: &[&str], text: &str, value: &str, column: &str) -> bool {
    let value = normalize(value);
    let padded = format!(" {text} ");
    let spaced = value.replace(['-', '_'], " ");
    let found = |v: &str| padded.contains(&format!(" {v} ")) || padded.contains(&format!(" {v}s "));
    if !(found(&value) || (spaced != value && found(&spaced))) {
        return false;
    }
    // "high" in "highest" never matches (whole words); "low"/"high" also need not be "the
    // highest"-style adverbs: "high" followed by another severity word is still high.
    match column {
        "severity" => !words.windows(2).any(|w| w[0] == value && matches!(w[1], "number" | "volume" | "rate")),
        _ => true,
    }
}

/// `column = 'v'` or `column IN ('a', 'b')`; `None` without values.
fn membership(column: &str, values: &[&String]) -> Option<String> {
    match values {
        [] => None,
        [one] => Some(format!("{column} = {}", quote(one))),
        many => Some(format!("{column} IN ({})", many.iter().map(|v| quote(v)).collect::<Vec<_>>().join(", "))),
    }
}

/// The status condition the words ask for, if any. `about_people`: acknowledged/resolved are
/// what people did, not states.
fn status(words: &[&str], text: &str, about_people: bool) -> Option<String> {
    let has = |w: &str| words.contains(&w);
    let padded = format!(" {text} ");
    let negated_resolved = has("unresolved")
        || ["not resolved", "not yet resolved", "not been resolved", "yet to be resolved", "still open"]
            .iter()
            .any(|p| padded.contains(&format!(" {p} ")));
    let unacknowledged =
        ["not acknowledged", "not acked", "not yet acknowledged", "not been acknowledged", "not been acked"]
            .iter()
            .any(|p| padded.contains(&format!(" {p} ")))
            || ((has("nobody") || has("noone") || padded.contains(" no one "))
                && words.iter().any(|w| w.starts_with("ack")));
    if has("unacknowledged") || has("unacked") || unacknowledged {
        return Some("status = 'open'".into());
    }
    if about_people {
        return None;
    }
    let acknowledged = has("acknowledged") || has("acked");
    if negated_resolved {
        return Some(if acknowledged { "status = 'acknowledged'" } else { "status != 'resolved'" }.into());
    }
    if has("active") || has("ongoing") || has("outstanding") || has("unfinished") {
        return Some("status != 'resolved'".into());
    }
    if acknowledged {
        return Some("status = 'acknowledged'".into());
    }
    if has("resolved") || has("closed") {
        return Some("status = 'resolved'".into());
    }
    has("open").then(|| "status = 'open'".into())
}

fn literal(ms: i64) -> String {
    format!("toDateTime64('{}', 3, 'UTC')", time_text(ms))
}

impl Query {
    /// The SQL, over the views only.
    pub fn sql(&self) -> String {
        match self.source {
            Source::Incidents => self.incidents(),
            Source::AlertKinds => self.alert_kinds(),
            Source::Actions(kind) => self.actions(kind),
        }
    }

    fn incidents(&self) -> String {
        let mut conditions = self.conditions.clone();
        if let Some(range) = self.range {
            conditions.push(format!("first_seen >= {} AND first_seen < {}", literal(range.start), literal(range.end)));
        }
        let filter = where_clause(&conditions);
        let (aggregate, name) = self.measure.sql();
        match self.group {
            Some(column) => {
                let expr = match column {
                    "week" => "toMonday(first_seen)",
                    other => other,
                };
                self.grouped(expr, column, aggregate, name, "incident_facts", &filter)
            }
            None if self.list => format!(
                "SELECT incident_id, severity, service, team, status, first_seen FROM incident_facts{filter} \
                 ORDER BY first_seen DESC LIMIT 200"
            ),
            None => format!("SELECT {aggregate} AS {name} FROM incident_facts{filter}"),
        }
    }

    fn alert_kinds(&self) -> String {
        let mut conditions = self.own.clone();
        if let Some(range) = self.range {
            let last_day = time_text(range.end - 1);
            conditions.push(format!(
                "day >= toDate('{}') AND day <= toDate('{}')",
                &time_text(range.start)[..10],
                &last_day[..10]
            ));
        }
        let filter = where_clause(&conditions);
        let (aggregate, name) = self.measure.sql();
        if self.group.is_some() || self.top.is_some() {
            self.grouped("alertname", "alertname", aggregate, name, "alert_kind_noise", &filter)
        } else {
            format!("SELECT {aggregate} AS {name} FROM alert_kind_noise{filter}")
        }
    }

    fn actions(&self, kind: &str) -> String {
        let mut conditions = vec![format!("kind = {}", quote(kind))];
        conditions.extend(self.own.iter().cloned());
        if let Some(range) = self.range {
            conditions.push(format!("at >= {} AND at < {}", literal(range.start), literal(range.end)));
        }
        let incident_conditions: Vec<&String> = self.conditions.iter().filter(|c| !self.own.contains(c)).collect();
        if !incident_conditions.is_empty() {
            let inner: Vec<String> = incident_conditions.into_iter().cloned().collect();
            conditions.push(format!("incident_id IN (SELECT incident_id FROM incident_facts{})", where_clause(&inner)));
        }
        let filter = where_clause(&conditions);
        match self.group {
            Some("day") => self.grouped("toDate(at)", "day", "count()", "actions", "actions", &filter),
            Some(_) => self.grouped("actor", "actor", "count()", "actions", "actions", &filter),
            None => format!("SELECT count() AS actions FROM actions{filter}"),
        }
    }

    /// `SELECT group, aggregate ... GROUP BY group`, biggest first (ties by name), top N.
    fn grouped(&self, expr: &str, column: &str, aggregate: &str, name: &str, from: &str, filter: &str) -> String {
        let alias = if expr == column { String::new() } else { format!(" AS {column}") };
        let order = if matches!(column, "day" | "week") && self.top.is_none() {
            column.to_string()
        } else {
            format!("{name} DESC, {column}")
        };
        let limit = self.top.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
        let having = if self.some { format!(" HAVING {name} > 0") } else { String::new() };
        format!(
            "SELECT {expr}{alias}, {aggregate} AS {name} FROM {from}{filter} GROUP BY {column}{having} ORDER BY \
             {order}{limit}"
        )
    }
}

fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ask::parse_time;

    fn vocabulary() -> Vocabulary {
        let mut vocabulary = Vocabulary::default();
        for (kind, values) in [
            ("tenant", &["acme", "globex"][..]),
            ("team", &["data", "payments", "infra"]),
            ("service", &["postgres", "api-gateway", "kafka"]),
            ("category", &["database", "messaging", "infrastructure"]),
            ("severity", &["critical", "high", "medium", "low"]),
            ("priority", &["P1", "P2"]),
            ("route", &["oncall", "tickets"]),
            ("actor", &["alice", "bob"]),
        ] {
            vocabulary.values.insert(kind, values.iter().map(|v| v.to_string()).collect());
        }
        vocabulary
    }

    fn sql(question: &str) -> String {
        parse(question, parse_time("2026-11-26T15:00:00Z").unwrap(), &vocabulary()).unwrap().sql()
    }

    #[test]
    fn counts_with_values_and_ranges() {
        assert_eq!(
            sql("How many database outages this week?"),
            "SELECT count() AS incidents FROM incident_facts WHERE category = 'database' AND first_seen >= \
             toDateTime64('2026-11-23 00:00:00.000', 3, 'UTC') AND first_seen < toDateTime64('2026-11-26 \
             15:00:00.000', 3, 'UTC')"
        );
        assert_eq!(
            sql("number of P1s for acme's api gateway"),
            "SELECT count() AS incidents FROM incident_facts WHERE tenant = 'acme' AND service = 'api-gateway' AND \
             priority = 'P1'"
        );
        assert!(sql("how many incidents are acknowledged but not yet resolved").ends_with("status = 'acknowledged'"));
        assert!(sql("how many escalated incidents for the infra team").contains("team = 'infra' AND escalations > 0"));
    }

    #[test]
    fn breakdowns_tops_and_lists() {
        assert_eq!(
            sql("MTTR by severity"),
            "SELECT severity, avg(ttr_s) AS mttr_s FROM incident_facts GROUP BY severity ORDER BY mttr_s DESC, severity"
        );
        assert!(sql("which service had the most incidents").ends_with("ORDER BY incidents DESC, service LIMIT 1"));
        assert!(sql("top 3 teams").ends_with("LIMIT 3"));
        assert_eq!(
            sql("top 3 noisiest alerts yesterday"),
            "SELECT alertname, sum(alerts) AS alerts FROM alert_kind_noise WHERE day >= toDate('2026-11-25') AND day \
             <= toDate('2026-11-25') GROUP BY alertname ORDER BY alerts DESC, alertname LIMIT 3"
        );
        assert!(sql("list open critical incidents for globex").starts_with("SELECT incident_id"));
        assert!(sql("who acknowledged the most incidents")
            .starts_with("SELECT actor, count() AS actions FROM actions WHERE kind = 'acknowledge'"));
    }

    #[test]
    fn names_are_quoted_and_nonsense_is_not_understood() {
        let mut vocabulary = vocabulary();
        vocabulary.values.insert("service", vec!["x') or 1=1 --".into()]);
        let query = parse("how many x') or 1=1 -- incidents", 0, &vocabulary).unwrap();
        // The value as bytes: nothing in it can end the literal.
        assert!(query.sql().contains("service = unhex('782729206F7220313D31202D2D')"), "{}", query.sql());
        assert!(parse("what is the meaning of life", 0, &vocabulary).is_err());
    }
}
