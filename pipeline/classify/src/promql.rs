//! What an alerting rule's PromQL expression says without running it: the metrics it reads
//! (whose names carry the exporter's namespace and the quantity: `mongodb_replset_member_
//! replication_lag`), and the shape of its condition (`up == 0`, `absent(…)`, a threshold near
//! saturation), which tells a rule that something is gone from one that something is high.

use std::sync::LazyLock;

use regex::Regex;

/// PromQL's keywords and aggregation modifiers: identifiers that are not metrics.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
];

/// Label matchers, strings, ranges and the label lists of `by (…)`, `on (…)`…: none is a metric.
static NOT_METRICS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?x)
        \{[^}]*\} | "(?:[^"\\]|\\.)*" | '(?:[^'\\]|\\.)*' | `[^`]*` | \[[^\]]*\]
        | \b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)
        "#,
    )
    .expect("valid pattern")
});

static IDENTIFIER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?").expect("valid pattern"));

/// The metric names `expr` reads, in order of appearance, each once.
pub fn metric_names(expr: &str) -> Vec<String> {
    let bare = NOT_METRICS.replace_all(expr, " ");
    let mut names: Vec<String> = Vec::new();
    for found in IDENTIFIER.captures_iter(&bare) {
        let whole = found.get(0).expect("a match");
        // Preceded by a digit it is a number's tail ("5m", "1e3"); followed by "(" a function.
        let after_digit = bare[..whole.start()].chars().next_back().is_some_and(|c| c.is_ascii_digit() || c == '.');
        let name = whole.as_str().trim_end_matches(|c: char| c == '(' || c.is_whitespace());
        if found.get(1).is_some() || after_digit || KEYWORDS.contains(&name.to_ascii_lowercase().as_str()) {
            continue;
        }
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    names
}

/// (token, pattern) pairs: the condition's shapes that speak to severity.
static SHAPES: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    [
        ("expr:up-zero", r"\bup\b(?:\{[^}]*\})?\s*==\s*0\b(?:[^.]|$)"),
        ("expr:equals-zero", r"==\s*0\b(?:[^.]|$)"),
        ("expr:absent", r"\babsent(?:_over_time)?\s*\("),
        ("expr:above-zero", r">\s*0\b(?:[^.]|$)"),
        ("expr:below", r"<=?\s*[0-9.]"),
        ("expr:near-full", r">=?\s*(?:0?\.9\d*|9\d(?:\.\d+)?)\b"),
        ("expr:half-full", r">=?\s*(?:0?\.[5-8]\d*|[5-8]\d(?:\.\d+)?)\b"),
        ("expr:forecast", r"\bpredict_linear\s*\("),
        ("expr:changes", r"\b(?:changes|resets)\s*\("),
        ("expr:rate", r"\b(?:rate|irate|increase|delta|deriv)\s*\("),
        ("expr:time", r"\btime\s*\(\s*\)"),
    ]
    .into_iter()
    .map(|(token, pattern)| (token, Regex::new(pattern).expect("valid shape")))
    .collect()
});

/// Tokens for the condition's shapes in `expr` ("expr:absent", "expr:near-full"…).
pub fn shapes(expr: &str) -> Vec<&'static str> {
    SHAPES.iter().filter(|(_, pattern)| pattern.is_match(expr)).map(|(token, _)| *token).collect()
}

/// A token for how long the condition must hold before the rule fires, by bucket: "for:0"
/// (under a second), "for:1m", "for:3m", "for:5m", "for:15m", "for:1h" (up to each), "for:long";
/// `None` when unknown or unreadable.
pub fn pending_token(pending_for: &str) -> Option<&'static str> {
    let seconds = duration_ms(pending_for.trim())? / 1000;
    Some(match seconds {
        0 => "for:0",
        1..=60 => "for:1m",
        61..=180 => "for:3m",
        181..=300 => "for:5m",
        301..=900 => "for:15m",
        901..=3600 => "for:1h",
        _ => "for:long",
    })
}

/// A Prometheus duration ("1h30m", "90s", "500ms", "0m") in milliseconds.
fn duration_ms(text: &str) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    let mut total = 0u64;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match (c, chars.peek()) {
            ('m', Some('s')) => {
                chars.next();
                1
            }
            ('s', _) => 1000,
            ('m', _) => 60_000,
            ('h', _) => 3_600_000,
            ('d', _) => 86_400_000,
            ('w', _) => 604_800_000,
            ('y', _) => 31_536_000_000,
            _ => return None,
        };
        total = total.checked_add(number.parse::<u64>().ok()?.checked_mul(unit)?)?;
        number.clear();
    }
    number.is_empty().then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_leave_out_functions_labels_strings_and_numbers() {
        let expr = r#"sum by (instance, topic) (rate(kafka_server_brokertopicmetrics_bytesin_total{job="kafka", topic!~"__.*"}[5m])) / on (instance) group_left kafka_broker_info > 1e6 and up offset 5m"#;
        assert_eq!(metric_names(expr), ["kafka_server_brokertopicmetrics_bytesin_total", "kafka_broker_info", "up"]);
        assert_eq!(metric_names("absent(up{job=\"x\"})"), ["up"]);
        assert_eq!(metric_names("vector(1)"), Vec::<String>::new());
        assert_eq!(metric_names("label_replace(up, \"a\", `b_c`, \"d\", \"e\")"), ["up"]);
        assert_eq!(metric_names("node:cpu_utilisation:rate5m > 0.9"), ["node:cpu_utilisation:rate5m"]);
    }

    #[test]
    fn condition_shapes_are_recognised() {
        assert_eq!(shapes(r#"up{job="redis"} == 0"#), ["expr:up-zero", "expr:equals-zero"]);
        assert_eq!(shapes("absent(up{job=\"x\"})"), ["expr:absent"]);
        assert!(shapes("rate(errors_total[5m]) > 0").contains(&"expr:above-zero"));
        assert!(!shapes("x > 0.5").contains(&"expr:above-zero"));
        assert!(shapes("disk_used / disk_size > 0.95").contains(&"expr:near-full"));
        assert!(shapes("disk_used / disk_size * 100 > 80").contains(&"expr:half-full"));
        assert!(shapes("predict_linear(node_filesystem_free_bytes[1h], 4 * 3600) < 0").contains(&"expr:forecast"));
        assert!(shapes("changes(process_start_time_seconds[1h]) > 2").contains(&"expr:changes"));
        assert!(shapes("ssl_expiry - time() < 86400 * 7").contains(&"expr:time"));
        assert!(shapes("x == 0.5").is_empty());
    }

    #[test]
    fn pending_durations_fall_in_buckets() {
        assert_eq!(pending_token("0m"), Some("for:0"));
        assert_eq!(pending_token("1m"), Some("for:1m"));
        assert_eq!(pending_token("2m"), Some("for:3m"));
        assert_eq!(pending_token("5m"), Some("for:5m"));
        assert_eq!(pending_token("1h"), Some("for:1h"));
        assert_eq!(pending_token("1h30m"), Some("for:long"));
        assert_eq!(pending_token("500ms"), Some("for:0"));
        assert_eq!(pending_token("120000ms"), Some("for:3m"));
        assert_eq!(pending_token(""), None);
        assert_eq!(pending_token("soon"), None);
    }
}
