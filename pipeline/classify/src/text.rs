//! Text normalisation shared by the catalog matcher, the embedding cache and the incident
//! signature: words from CamelCase alert names, and templates with their varying values masked.

use std::sync::LazyLock;

use regex::Regex;

/// Values that vary between alerts of one rule: Go template placeholders as rules carry them,
/// IPs, host:port, UUIDs, long hex ids, numbers with units, and quoted strings.
static VARYING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?x)
        \{\{[^}]*\}\}                                   # {{ $labels.instance }}, {{ $value }}
        | \b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b
        | \b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b           # IPv4 with an optional port
        | \[?[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}\]?(?::\d+)?   # IPv6
        | \b[\w.-]+:\d{2,5}\b                            # host:port
        | \b[0-9a-f]{12,}\b                              # container ids, hashes
        | -?\b\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?:\s*%|\s*(?:ms|s|m|h|d|[kKMGT]i?B)\b|\b)
        | "[^"]*" | '[^']*'
        "#,
    )
    .expect("valid pattern")
});

/// `text` with its varying values replaced by `_`, so that every alert of one rule has one template.
pub fn template(text: &str) -> String {
    let masked = VARYING.replace_all(text, "_");
    masked.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Lower-case words of `text` with every non-alphanumeric run as one space, once as written and
/// once with CamelCase split: "MySQLDown node-exporter" gives "mysqldown node exporter my sql down
/// node exporter". Catalog keywords, normalised by [`terms`] too, are then matched as whole words.
pub fn searchable(text: &str) -> String {
    let plain = terms(text);
    let split = terms(&split_camel(text));
    if plain == split {
        format!(" {plain} ")
    } else {
        format!(" {plain} | {split} ")
    }
}

/// [`words`] with plurals folded to the singular ("partitions" → "partition", "queries" →
/// "query"), so that a keyword matches either form. Crude on purpose: both sides of a match are
/// folded alike, so a word folded wrongly ("series" → "sery") still matches itself.
pub fn terms(text: &str) -> String {
    words(text).split(' ').map(singular).collect::<Vec<_>>().join(" ")
}

fn singular(word: &str) -> String {
    let long = word.chars().count() > 4;
    if long && word.ends_with("ies") {
        format!("{}y", &word[..word.len() - 3])
    } else if long && word.ends_with('s') && !["ss", "us", "is", "os"].iter().any(|e| word.ends_with(e)) {
        word[..word.len() - 1].to_string()
    } else {
        word.to_string()
    }
}

/// Lower-case alphanumeric words joined by single spaces.
pub fn words(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Inserts a space at each lower-to-upper and acronym-to-word boundary: `HostHighCPULoad` becomes
/// `Host High CPU Load`.
pub fn split_camel(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        if i > 0 && c.is_uppercase() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                out.push(' ');
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_names_split_into_words() {
        assert_eq!(split_camel("HostHighCPULoad"), "Host High CPU Load");
        assert_eq!(split_camel("PostgresqlDown"), "Postgresql Down");
        assert_eq!(split_camel("MySQLDown"), "My SQL Down");
        assert_eq!(split_camel("Kafka2Broker"), "Kafka2 Broker");
    }

    #[test]
    fn terms_fold_plurals() {
        assert_eq!(terms("UnderReplicatedPartitions queries"), "underreplicatedpartition query");
        assert_eq!(terms("Redis status dns consumers"), "redis status dns consumer");
    }

    #[test]
    fn searchable_text_keeps_joined_and_split_words() {
        assert_eq!(searchable("MySQLDown"), " mysqldown | my sql down ");
        assert_eq!(searchable("node-exporter down"), " node exporter down ");
    }

    #[test]
    fn templates_mask_what_varies_between_alerts_of_one_rule() {
        let a = template("Disk 91.5% full on 10.0.0.7:9100 (instance {{ $labels.instance }}) after 3 m");
        let b = template("Disk 97% full on 10.0.0.9:9100 (instance {{ $labels.instance }}) after 12 m");
        assert_eq!(a, b);
        assert_eq!(a, "Disk _ full on _ (instance _) after _");
        assert_eq!(template("pod 'api-7f9c' on db-1.eu:5432"), template("pod 'api-1234' on db-2.us:5432"));
        assert_eq!(template("fe80::1 and 2001:db8::2"), "_ and _");
    }
}
