//! How alike two alerts' templates are: the Jaccard similarity of their word sets (the exact
//! value MinHash estimates; the few incidents open within a window are compared directly).
//! Words come from the alert name split at its capitals (`KubePodCrashLooping`: kube, pod,
//! crash, looping) and from its summary, without template placeholders (`{{ $labels.pod }}`)
//! and without numbers, so that the texts of two firings of one rule compare equal.

use std::collections::BTreeSet;

/// The words of an alert's name and summary, lower-cased.
pub fn words(text: &str) -> BTreeSet<String> {
    let mut words = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        add(&rest[..start], &mut words);
        rest = rest[start..].find("}}").map_or("", |end| &rest[start + end + 2..]);
    }
    add(rest, &mut words);
    words
}

/// Adds the words of `text`: runs of letters, split where a capital follows a small letter
/// (`HighCPULoad`: high, cpuload).
fn add(text: &str, words: &mut BTreeSet<String>) {
    let mut word = String::new();
    let mut previous_small = false;
    for c in text.chars() {
        let boundary = !c.is_alphabetic() || (c.is_uppercase() && previous_small);
        if boundary && !word.is_empty() {
            keep(std::mem::take(&mut word), words);
        }
        if c.is_alphabetic() {
            word.extend(c.to_lowercase());
        }
        previous_small = c.is_lowercase();
    }
    keep(word, words);
}

fn keep(word: String, words: &mut BTreeSet<String>) {
    if word.len() > 1 {
        words.insert(word);
    }
}

/// Shared words over all words; 0 when both are empty.
pub fn similarity(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let shared = a.intersection(b).count();
    let all = a.len() + b.len() - shared;
    if all == 0 {
        0.0
    } else {
        shared as f64 / all as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(words: &[&str]) -> BTreeSet<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn words_come_from_names_at_their_capitals_and_from_text_without_placeholders_or_numbers() {
        assert_eq!(words("KubePodCrashLooping"), set(&["kube", "pod", "crash", "looping"]));
        assert_eq!(
            words("HostHighCPULoad Host high CPU load (instance {{ $labels.instance }}) 93.5%"),
            set(&["host", "high", "cpuload", "cpu", "load", "instance"])
        );
    }

    #[test]
    fn similarity_is_shared_words_over_all_words() {
        let a = words("PostgresqlDown Postgresql down (instance {{ $labels.instance }})");
        let b = words("PostgresqlDown Postgresql down (instance db-7:5432)");
        assert!(similarity(&a, &b) > 0.7, "two firings of one rule: {a:?} {b:?}");
        assert_eq!(similarity(&words("NodeDown"), &words("NodeUnreachable")), 1.0 / 3.0);
        assert_eq!(similarity(&BTreeSet::new(), &BTreeSet::new()), 0.0);
    }
}
