//! Keyword rules for severity, in the words rule authors use: something down, lost or corrupt is
//! critical; something high, slow or growing is a warning; a restart, a change or something
//! underused is information. They vote alongside the nearest labelled examples.

use std::sync::LazyLock;

use regex::Regex;

/// The three levels labelled examples use; [`crate::taxonomy::Taxonomy::severity`] maps them
/// onto the configured scale.
pub const LEVELS: [&str; 3] = ["critical", "warning", "info"];

/// (level index, weight, pattern over lower-cased words with CamelCase split).
static RULES: LazyLock<Vec<(usize, f32, Regex)>> = LazyLock::new(|| {
    let rules: &[(usize, f32, &str)] = &[
        (0, 1.5, r"\b(down|unavailable|unreachable|unhealthy|dead|offline|crash(ed|ing|loop)?|panic)\b"),
        (
            0,
            1.2,
            r"\b(lost|loss|missing|no (leader|quorum|master|primary)|split brain|corrupt(ed|ion)?|fail(s|ed|ure|ures|ing)?|fault|faults)\b",
        ),
        (
            0,
            1.0,
            r"\b(out of (memory|disk|space)|oom|exhausted|full|refus(ed|ing)|unable|cannot|can ?t|not (running|ready|responding|reachable|available))\b",
        ),
        (0, 1.5, r"\bcritical\b"),
        (0, 0.8, r"\b(all|every|fatal|emergency|risk(ing)?|data loss|expired|at risk|reached|read only|readonly)\b"),
        (
            1,
            1.0,
            r"\b(high|slow|lag(ging)?|latency|too (many|much|few)|increas(e|ed|ing)|growing|approaching|almost|filling|will fill|predict(ed)?)\b",
        ),
        (
            1,
            0.8,
            r"\b(warning|pending|waiting|throttl(ed|ing)|saturat(ed|ion)|utili[sz]ation|usage|rate|errors?|dropp(ed|ing)|queue|backlog|timeouts?|retr(y|ies)|unusual|low|degraded|expir(es|ing) soon|soon)\b",
        ),
        (
            2,
            1.5,
            r"\b(under ?utili[sz]ed|restart(ed|ing)?|reload(ed)?|changed|configuration changed|version|relocating|initializing|info(rmation)?|deviations?|correctable|scale maximum)\b",
        ),
    ];
    rules.iter().map(|(level, weight, p)| (*level, *weight, Regex::new(p).expect("valid severity rule"))).collect()
});

/// Votes per level for `text` (lower-cased, CamelCase split words).
pub fn keyword_votes(text: &str) -> [f32; 3] {
    let mut votes = [0.0; 3];
    for (level, weight, pattern) in RULES.iter() {
        if pattern.is_match(text) {
            votes[*level] += weight;
        }
    }
    votes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(text: &str) -> &'static str {
        let votes = keyword_votes(text);
        let best = (0..3).max_by(|a, b| votes[*a].total_cmp(&votes[*b])).unwrap();
        LEVELS[best]
    }

    #[test]
    fn rule_words_suggest_levels() {
        assert_eq!(level("postgresql down"), "critical");
        assert_eq!(level("kafka consumer group lag is high"), "warning");
        assert_eq!(level("host cpu is under utilized"), "info");
        assert_eq!(keyword_votes("nothing to see"), [0.0; 3]);
    }
}
