//! Masks secrets and personal data before any text leaves the process for an LLM provider:
//! credentials in URLs, bearer tokens and API keys, key=value secrets, JWTs, emails, IPv4 and
//! IPv6 addresses, and the patterns users add.

use std::sync::LazyLock;

use regex::Regex;

/// Built-in patterns, most specific first: a URL's password must go before the host is seen as
/// an email or an address.
static BUILT_IN: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    let patterns: &[(&str, &str)] = &[
        // scheme://user:password@host
        (r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+):[^/\s@]+@", "$1:<redacted>@"),
        (r"(?i)\b(bearer|basic)\s+[a-z0-9._~+/=-]{8,}", "$1 <redacted>"),
        (r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}", "<jwt>"),
        // Provider key shapes: sk-..., sk-ant-..., xoxb-..., ghp_..., AKIA..., AIza...
        (
            r"\b(sk-(ant-)?[A-Za-z0-9_-]{16,}|xox[abprs]-[A-Za-z0-9-]{10,}|gh[pousr]_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35})\b",
            "<secret>",
        ),
        (
            r#"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|client[_-]?secret|auth)(\s*[=:]\s*|"\s*:\s*")[^\s,;"'&]+"#,
            "$1$2<redacted>",
        ),
        (r"(?i)\b[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b", "<email>"),
        (r"\b(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}\b", "<ip>"),
        (
            r"(?i)(^|[^0-9a-z:])(([0-9a-f]{1,4}:){7}[0-9a-f]{1,4}|([0-9a-f]{1,4}:){1,7}:|([0-9a-f]{1,4}:){1,6}:[0-9a-f]{1,4}|([0-9a-f]{1,4}:){1,5}(:[0-9a-f]{1,4}){1,2}|([0-9a-f]{1,4}:){1,4}(:[0-9a-f]{1,4}){1,3}|([0-9a-f]{1,4}:){1,3}(:[0-9a-f]{1,4}){1,4}|([0-9a-f]{1,4}:){1,2}(:[0-9a-f]{1,4}){1,5}|[0-9a-f]{1,4}:(:[0-9a-f]{1,4}){1,6}|:(:[0-9a-f]{1,4}){1,7})($|[^0-9a-z:])",
            "$1<ip>$11",
        ),
    ];
    patterns.iter().map(|(p, r)| (Regex::new(p).expect("valid redaction pattern"), *r)).collect()
});

pub struct Redactor {
    extra: Vec<Regex>,
}

impl Redactor {
    /// `patterns` were validated with the configuration.
    pub fn new(patterns: &[String]) -> Result<Self, regex::Error> {
        Ok(Self { extra: patterns.iter().map(|p| Regex::new(p)).collect::<Result<_, _>>()? })
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (pattern, replacement) in BUILT_IN.iter() {
            if pattern.is_match(&out) {
                out = pattern.replace_all(&out, *replacement).into_owned();
            }
        }
        for pattern in &self.extra {
            if pattern.is_match(&out) {
                out = pattern.replace_all(&out, "<redacted>").into_owned();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Secrets seeded into alert texts; the LLM tests check that request bodies hold none of them.
    pub const SEEDED: &[&str] = &[
        "hunter2-pass",
        "sk-ant-api03-abcdefghijklmnopqrstuv",
        "xoxb-1234567890-abcdefghij",
        "ghp_abcdefghijklmnopqrstuvwxyz0123",
        "AKIAABCDEFGHIJKLMNOP",
        "s3cr3t-token-value",
        "oncall@example.com",
        "10.20.30.40",
        "2001:db8::8a2e:370:7334",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlX2hlcmU",
        "ACME-4242",
    ];

    #[test]
    fn seeded_secrets_and_personal_data_are_masked() {
        let redactor = Redactor::new(&["ACME-\\d+".to_string()]).unwrap();
        let text = "db postgres://app:hunter2-pass@db.internal:5432/x failed; key sk-ant-api03-abcdefghijklmnopqrstuv \
                    slack xoxb-1234567890-abcdefghij gh ghp_abcdefghijklmnopqrstuvwxyz0123 aws AKIAABCDEFGHIJKLMNOP \
                    token=s3cr3t-token-value mail oncall@example.com from 10.20.30.40 and [2001:db8::8a2e:370:7334]:443 \
                    Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlX2hlcmU ticket ACME-4242";
        let redacted = redactor.redact(text);
        for secret in SEEDED {
            assert!(!redacted.contains(secret), "{secret} survived in: {redacted}");
        }
        assert!(redacted.contains("postgres://app:<redacted>@db.internal:5432/x failed"), "{redacted}");
        assert!(redacted.contains("<email>") && redacted.contains("<ip>"), "{redacted}");
    }

    #[test]
    fn ordinary_alert_text_is_left_alone() {
        let redactor = Redactor::new(&[]).unwrap();
        let text = "Postgresql down (instance db-1:9187): 95% of connections used for 5m, ratio 0.95";
        assert_eq!(redactor.redact(text), text);
    }
}
