//! The words a subject is judged by, beyond its embedding: the words of its alert names, job,
//! texts, the metric names of its expression and its label names; and, for severity, the shape
//! of its condition. Product names the examples never saw are simply unknown words; what
//! generalises to products no catalog lists is the rest ("replication", "consumer", "bucket").

use crate::{promql, subject::Subject, text};

/// Labels that say nothing of the kind of problem by their name (they are on every alert).
const PLAIN_LABELS: &[&str] = &[
    "alertname",
    "severity",
    "instance",
    "job",
    "prometheus",
    "replica",
    "monitor",
    "env",
    "environment",
    "region",
    "team",
    "tenant",
    "priority",
];

/// Words too common in rule texts to tell categories or severities apart.
const STOP_WORDS: &[&str] = &[
    "a", "an", "the", "is", "are", "was", "be", "been", "of", "on", "in", "to", "for", "and", "or", "by", "with", "at",
    "from", "this", "that", "it", "its", "has", "have", "as", "than", "more", "less", "instance", "labels", "value",
    "s", "m", "h", "x",
];

/// The names of the metrics and labels the subject carries, as text the catalog can match:
/// "mongodb_replset_member_replication_lag topic".
pub fn names(subject: &Subject) -> String {
    let mut names = promql::metric_names(&subject.expr);
    names.extend(label_names(subject).map(str::to_string));
    names.join(" ")
}

fn label_names(subject: &Subject) -> impl Iterator<Item = &str> {
    subject.labels.keys().map(String::as_str).filter(|name| !PLAIN_LABELS.contains(name))
}

/// The distinct words of the subject for the category model.
pub fn words(subject: &Subject) -> Vec<String> {
    let mut texts: Vec<String> = subject.alertnames.iter().map(|n| text::split_camel(n)).collect();
    texts.extend(subject.alertnames.iter().cloned());
    if let Some(job) = subject.labels.get("job") {
        texts.push(job.clone());
    }
    texts.push(text::template(&subject.summary));
    texts.push(text::template(&subject.description));
    texts.push(names(subject));
    let mut words: Vec<String> = texts
        .iter()
        .flat_map(|t| text::terms(t).split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter(|w| !w.is_empty() && !STOP_WORDS.contains(&w.as_str()) && !w.chars().all(|c| c.is_ascii_digit()))
        .collect();
    words.sort_unstable();
    words.dedup();
    words
}

/// The words for the severity model: the category model's, the pairs of adjacent words in the
/// alert names and summary ("no leader", "too many", "out of": severity is often in a phrase),
/// the condition's shapes, how long it must hold, and the category it was given (a database
/// down is worse than a CI job down).
pub fn severity_words(subject: &Subject, category: &str) -> Vec<String> {
    let mut words = words(subject);
    let names = subject.alertnames.iter().map(|n| text::split_camel(n));
    for phrase in names.chain(std::iter::once(text::template(&subject.summary))) {
        let terms = text::terms(&phrase);
        let terms: Vec<&str> = terms.split(' ').filter(|t| !t.is_empty()).collect();
        words.extend(terms.windows(2).map(|pair| format!("{} {}", pair[0], pair[1])));
    }
    words.extend(promql::shapes(&subject.expr).into_iter().map(str::to_string));
    words.extend(promql::pending_token(&subject.pending_for).map(str::to_string));
    words.push(format!("category:{category}"));
    words
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn subject() -> Subject {
        let labels = BTreeMap::from([
            ("alertname".to_string(), "FrobQueueBacklog".to_string()),
            ("job".to_string(), "frob-exporter".to_string()),
            ("instance".to_string(), "10.0.0.1:9100".to_string()),
            ("queue".to_string(), "orders".to_string()),
        ]);
        let annotations =
            BTreeMap::from([("summary".to_string(), "Backlog of {{ $value }} messages is growing".to_string())]);
        Subject {
            expr: r#"frob_queue_messages_ready{job="frob"} > 1000"#.into(),
            pending_for: "5m".into(),
            ..Subject::from_alert("x", &labels, &annotations)
        }
    }

    #[test]
    fn words_come_from_names_texts_metrics_and_label_names() {
        let words = words(&subject());
        for word in ["frob", "queue", "backlog", "frobqueuebacklog", "exporter", "message", "growing", "ready"] {
            assert!(words.contains(&word.to_string()), "{word} missing from {words:?}");
        }
        for absent in ["orders", "instance", "10", "is", "job"] {
            assert!(!words.contains(&absent.to_string()), "{absent} in {words:?}");
        }
    }

    #[test]
    fn metric_and_label_names_are_text_for_the_catalog() {
        assert_eq!(names(&subject()), "frob_queue_messages_ready queue");
    }

    #[test]
    fn severity_words_add_the_condition_the_duration_and_the_category() {
        let words = severity_words(&subject(), "messaging");
        assert!(words.contains(&"for:5m".to_string()));
        assert!(words.contains(&"category:messaging".to_string()));
        assert!(words.contains(&"queue backlog".to_string()) && words.contains(&"message is".to_string()), "{words:?}");
        assert!(!words.iter().any(|w| w.starts_with("expr:")), "a threshold of 1000 has no shape: {words:?}");
    }
}
