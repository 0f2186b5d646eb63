//! The texts the classifier reads off a [`Subject`] (the contract type, in `quench-schemas`): its
//! template, the cache's signature, and the weighted fields the catalog matches.

pub use quench_schemas::{Classification, Subject};

use crate::text;

/// Labels that name what is alerting, in the order they are read; the rest (instance, pod...)
/// vary between alerts of one rule and say nothing of the kind of problem.
const DESCRIPTIVE_LABELS: &[&str] = &["job", "service", "app", "component", "container", "namespace", "team"];

/// The rule behind the subject, with what varies between its alerts masked: "Postgresql
/// Down. job postgres-exporter. Postgresql down (instance _). Postgresql instance is down".
/// Embeddings are cached by it, so a storm of one rule across a fleet costs one embedding.
pub fn template(subject: &Subject) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !subject.alertnames.is_empty() {
        parts.push(subject.alertnames.iter().map(|n| text::split_camel(n)).collect::<Vec<_>>().join(", "));
    }
    if let Some(job) = subject.labels.get("job") {
        parts.push(format!("job {}", text::template(job)));
    }
    for annotation in [&subject.summary, &subject.description] {
        let masked = text::template(annotation);
        if !masked.is_empty() {
            parts.push(masked);
        }
    }
    parts.join(". ")
}

/// The classification cache's key: the tenant, the template, the rule's expression (the
/// classifier reads it) and the values of `labels` (by
/// default `severity`, so that an incident whose severity changed is judged again, while a
/// re-sent, repeated or fleet-wide one is not). With the tenant, so that an answer (and its
/// summary, written from one tenant's text) is never reused for another tenant.
pub fn signature(subject: &Subject, labels: &[String]) -> String {
    let mut signature = subject.tenant.clone();
    signature.push('\u{1f}');
    signature.push_str(&template(subject));
    signature.push('\u{1f}');
    signature.push_str(&subject.expr);
    for name in labels {
        signature.push('\u{1f}');
        signature.push_str(subject.labels.get(name).map(String::as_str).unwrap_or(""));
    }
    signature
}

/// (text, weight) pairs for the catalog: names and jobs say most, descriptions least.
pub fn fields(subject: &Subject) -> Vec<(&str, f32)> {
    let mut fields = name_fields(subject);
    fields.push((subject.summary.as_str(), 2.0));
    fields.push((subject.description.as_str(), 1.0));
    fields
}

/// The fields that name what is alerting (alert names and descriptive labels), without the
/// texts: a product found there is the alert's own, one found only in a text may be a mention.
pub fn name_fields(subject: &Subject) -> Vec<(&str, f32)> {
    let mut fields: Vec<(&str, f32)> = subject.alertnames.iter().map(|n| (n.as_str(), 3.0)).collect();
    for name in DESCRIPTIVE_LABELS {
        if let Some(value) = subject.labels.get(*name) {
            fields.push((value.as_str(), if *name == "job" || *name == "service" { 3.0 } else { 1.5 }));
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn subject(instance: &str, value: &str) -> Subject {
        let labels = BTreeMap::from([
            ("alertname".to_string(), "PostgresqlTooManyConnections".to_string()),
            ("job".to_string(), "postgres-exporter".to_string()),
            ("instance".to_string(), instance.to_string()),
        ]);
        let annotations = BTreeMap::from([
            ("summary".to_string(), format!("Too many connections on {instance}")),
            ("description".to_string(), format!("{value} of connections are in use")),
        ]);
        Subject::from_alert("inc-1", &labels, &annotations)
    }

    #[test]
    fn alerts_of_one_rule_share_a_template_and_signature() {
        let a = subject("10.1.2.3:9187", "91%");
        let b = subject("10.1.2.4:9187", "97.5%");
        assert_eq!(template(&a), template(&b));
        let labels = ["severity".to_string()];
        assert_eq!(signature(&a, &labels), signature(&b, &labels));
        assert_eq!(
            template(&a),
            "Postgresql Too Many Connections. job postgres-exporter. Too many connections on _. _ of connections are in use"
        );
    }

    #[test]
    fn chosen_labels_are_part_of_the_signature() {
        let labels = ["severity".to_string()];
        let a = subject("db-1:9187", "91%");
        let mut b = a.clone();
        b.labels.insert("severity".into(), "critical".into());
        assert_ne!(signature(&a, &labels), signature(&b, &labels));
        b.labels.insert("service".into(), "billing".into());
        let mut c = b.clone();
        c.labels.insert("service".into(), "search".into());
        assert_eq!(signature(&b, &labels), signature(&c, &labels), "other labels are not");
        assert_ne!(signature(&b, &["service".to_string()]), signature(&c, &["service".to_string()]));
    }

    #[test]
    fn the_same_incident_in_two_tenants_has_two_signatures() {
        let a = Subject { tenant: "a".into(), ..subject("db-1:9187", "91%") };
        let b = Subject { tenant: "b".into(), ..a.clone() };
        assert_ne!(signature(&a, &[]), signature(&b, &[]));
    }
}
