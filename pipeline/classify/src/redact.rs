//! Masks secrets and personal data before any text leaves the process for an LLM provider:
//! private keys, credentials in URLs, webhook URLs and signed query parameters, bearer tokens
//! and API keys, key=value secrets, AWS secret keys, JWTs, emails, IPv4 and IPv6 addresses,
//! phone and payment card numbers, and the patterns users add.

use std::sync::LazyLock;

use regex::{Captures, Regex};

/// How a built-in pattern's matches are replaced.
#[derive(Clone, Copy)]
enum Mask {
    /// A replacement template: `$n` keeps the pattern's group n.
    Template(&'static str),
    /// A function of the match, for what a regex cannot say: `regex` has no look-around, and a
    /// checksum or a mix of characters is no regular language.
    Check(fn(&Captures) -> String),
}

/// Built-in patterns, most specific first: a private key's body, a webhook's path and a URL's
/// password must go before their parts are seen as other shapes (an AWS key, an email, an
/// address).
static BUILT_IN: LazyLock<Vec<(Regex, Mask)>> = LazyLock::new(|| {
    let patterns: &[(&str, Mask)] = &[
        // PEM private keys (RSA, EC, OPENSSH, ENCRYPTED, PKCS#8, PGP), across lines; one cut off
        // before its END line is masked to the end of the text.
        (
            r"-----BEGIN [A-Z ]*PRIVATE KEY( BLOCK)?-----(?s:.*?)(-----END [A-Z ]*PRIVATE KEY( BLOCK)?-----|\z)",
            Mask::Template("<private-key>"),
        ),
        // scheme://user:password@host
        (r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+):[^/\s@]+@", Mask::Template("$1:<redacted>@")),
        // Webhook URLs are their own credential: whoever has the path can post. The host stays.
        (
            r#"(?i)\b(https?://(hooks\.slack\.com|[a-z0-9-]+\.webhook\.office\.com|[a-z0-9.-]+\.logic\.azure\.com(:[0-9]+)?))[/?][^\s"'<>]*"#,
            Mask::Template("$1/<redacted>"),
        ),
        // Signed and keyed URLs: Azure SAS `sig=`, presigned `signature=`, OAuth `code=`.
        (
            r#"(?i)([?&](sig|signature|token|key|code|access_token|api_key)=)[^&#\s"'<>]+"#,
            Mask::Template("$1<redacted>"),
        ),
        (r"(?i)\b(bearer|basic)\s+[a-z0-9._~+/=-]{8,}", Mask::Template("$1 <redacted>")),
        (r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}", Mask::Template("<jwt>")),
        // Provider key shapes: Anthropic and OpenAI sk-..., every Slack xox?- (and the refresh
        // token xoxe.xoxp-), Slack app xapp-, GitHub ghp_... and github_pat_..., Stripe secret,
        // restricted and webhook keys, AWS access key ids (long-term AKIA, temporary ASIA),
        // Google AIza...
        (
            r"\b(sk-(ant-)?[A-Za-z0-9_-]{16,}|(xoxe\.)?xox[a-z]-[A-Za-z0-9-]{10,}|xapp-[A-Za-z0-9-]{10,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|(sk|rk)_(live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9]{10,}|(AKIA|ASIA)[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35})\b",
            Mask::Template("<secret>"),
        ),
        // key=value, key: value, "key": "value", 'key': 'value', where the key ends with a secret
        // word after any prefix (`\b` would not match after `DB_`): DB_PASSWORD,
        // aws_secret_access_key, client_secret, SessionToken, AccountKey, SharedAccessKey
        // (Azure connection strings, whose `;` ends the value), credentials. A quoted value is
        // masked whole, spaces included; an unclosed one to the end of its line.
        (
            r#"(?i)([a-z0-9_.-]*(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|account[_-]?key|credentials?|auth)["']?\s*[=:]\s*)("[^"\n]*"?|'[^'\n]*'?|[^\s,;"'&]+)"#,
            Mask::Check(mask_value),
        ),
        // AWS secret access keys: 40 characters of base64 with no padding (30 bytes). `=` is not
        // in the run, so `KEY=value` is two runs. Matches are whole runs of 40 or more.
        (r"[A-Za-z0-9/+]{40,}", Mask::Check(mask_aws_secret)),
        (r"(?i)\b[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b", Mask::Template("<email>")),
        (r"\b(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}\b", Mask::Template("<ip>")),
        (
            r"(?i)(^|[^0-9a-z:])(([0-9a-f]{1,4}:){7}[0-9a-f]{1,4}|([0-9a-f]{1,4}:){1,7}:|([0-9a-f]{1,4}:){1,6}:[0-9a-f]{1,4}|([0-9a-f]{1,4}:){1,5}(:[0-9a-f]{1,4}){1,2}|([0-9a-f]{1,4}:){1,4}(:[0-9a-f]{1,4}){1,3}|([0-9a-f]{1,4}:){1,3}(:[0-9a-f]{1,4}){1,4}|([0-9a-f]{1,4}:){1,2}(:[0-9a-f]{1,4}){1,5}|[0-9a-f]{1,4}:(:[0-9a-f]{1,4}){1,6}|:(:[0-9a-f]{1,4}){1,7})($|[^0-9a-z:])",
            Mask::Template("$1<ip>$11"),
        ),
        // Phone numbers, conservatively: `tel:` URIs, and E.164 (`+`, a country code, 8 to 15
        // digits in all, single spaces or dashes between groups). Without the `+` a number is
        // as likely a count, a port or an id, and stays.
        (r"(?i)(\btel:)?\+[1-9]([ -]?[0-9]){7,14}\b|\btel:[0-9+][0-9().-]*[0-9]", Mask::Template("<phone>")),
        // Runs of digit groups, searched for card numbers by `mask_cards`.
        (r"\b[0-9]+([ -][0-9]+)*\b", Mask::Check(mask_cards)),
    ];
    patterns.iter().map(|&(p, m)| (Regex::new(p).expect("valid redaction pattern"), m)).collect()
});

/// Keeps a secret's key and its value's quotes, and masks the value.
fn mask_value(caps: &Captures) -> String {
    let value = &caps[3];
    let open = if value.starts_with(['"', '\'']) { &value[..1] } else { "" };
    let close = if !open.is_empty() && value.len() > 1 && value.ends_with(open) { open } else { "" };
    format!("{}{open}<redacted>{close}", &caps[1])
}

/// A run of exactly 40 is an AWS secret key when its characters are mixed like random ones:
/// upper and lower case, a digit (or `/`, `+`), and fewer than 24 of the 40 in lowercase runs of
/// three or more, i.e. words. A random key has about 6 such characters (1 in 10,000 has 24 or
/// more); the corpus's CamelCase alert names have 24 to 35, so they stay. A git SHA (hex, one
/// case) is no secret and stays too. A random key lacks a digit, `/` and `+` 1 time in 4,000;
/// the key=value rule above still masks it when it comes with its name.
fn mask_aws_secret(caps: &Captures) -> String {
    let run = &caps[0];
    let bytes = run.as_bytes();
    let words: usize = run.split(|c: char| !c.is_ascii_lowercase()).map(str::len).filter(|&n| n >= 3).sum();
    let random = bytes.len() == 40
        && bytes.iter().any(u8::is_ascii_uppercase)
        && bytes.iter().any(u8::is_ascii_lowercase)
        && bytes.iter().any(|&b| b.is_ascii_digit() || b == b'/' || b == b'+')
        && words < 24;
    if random {
        "<secret>".to_string()
    } else {
        run.to_string()
    }
}

/// Masks the card numbers in a run of digit groups: consecutive groups printed the way cards are
/// (one group of 13 to 19 digits, groups of 4 with a shorter last one, Amex's 4-6-5, Diners'
/// 4-6-4) whose digits a network issues and pass the Luhn check. Windows of the run rather than
/// all of it, so that a year or a count next to a card does not hide it; from each group, the
/// longest card wins.
fn mask_cards(caps: &Captures) -> String {
    let run = &caps[0];
    let mut groups = Vec::new();
    let mut start = 0;
    for (i, b) in run.bytes().enumerate() {
        if b == b' ' || b == b'-' {
            groups.push((start, i));
            start = i + 1;
        }
    }
    groups.push((start, run.len()));
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < groups.len() {
        // A card spans at most five groups (4-4-4-4-3).
        let last = (i + 4).min(groups.len() - 1);
        match (i..=last).rev().find(|&j| is_card(run, &groups[i..=j])) {
            Some(j) => {
                out.push_str(&run[copied..groups[i].0]);
                out.push_str("<card>");
                copied = groups[j].1;
                i = j + 1;
            }
            None => i += 1,
        }
    }
    out.push_str(&run[copied..]);
    out
}

fn is_card(run: &str, groups: &[(usize, usize)]) -> bool {
    let lengths: Vec<usize> = groups.iter().map(|(start, end)| end - start).collect();
    let printed = match lengths.as_slice() {
        [_] | [4, 6, 4 | 5] => true,
        [fours @ .., last] => fours.iter().all(|&n| n == 4) && *last <= 4,
        [] => false,
    };
    let digits: String = groups.iter().map(|&(start, end)| &run[start..end]).collect();
    printed && (13..=19).contains(&digits.len()) && issued(&digits) && luhn(&digits)
}

/// The networks' ranges: 3 (Amex, Diners, JCB), 4 (Visa), 5 and 2221-2720 (Mastercard), 6
/// (Discover, UnionPay, Maestro). One number in ten passes the Luhn check, so without this a
/// tenth of millisecond timestamps (13 digits, starting with 1) and of long ids would be masked.
fn issued(digits: &str) -> bool {
    match digits.as_bytes()[0] {
        b'3'..=b'6' => true,
        b'2' => digits[..4].parse::<u16>().is_ok_and(|prefix| (2221..=2720).contains(&prefix)),
        _ => false,
    }
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            match (i % 2, d * 2) {
                (0, _) => d,
                (_, doubled) if doubled > 9 => doubled - 9,
                (_, doubled) => doubled,
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[derive(Clone)]
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
        for (pattern, mask) in BUILT_IN.iter() {
            if pattern.is_match(&out) {
                out = match mask {
                    Mask::Template(template) => pattern.replace_all(&out, *template),
                    Mask::Check(check) => pattern.replace_all(&out, *check),
                }
                .into_owned();
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

    /// One row per secret shape, then shapes that are not secrets: the secret goes, the words
    /// around it stay.
    #[test]
    fn each_secret_shape_is_masked_in_context() {
        let rows: &[(&str, &str)] = &[
            // key=value pairs whose key ends with a secret word
            ("DB_PASSWORD=hunter2 rejected", "DB_PASSWORD=<redacted> rejected"),
            (
                "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY in env",
                "aws_secret_access_key=<redacted> in env",
            ),
            ("access_token=ya29.a0AfH6SMB refresh failed", "access_token=<redacted> refresh failed"),
            (r#"{"db_password": "s3cr3t!", "user": "app"}"#, r#"{"db_password": "<redacted>", "user": "app"}"#),
            (r#"password: "two words" in values.yaml"#, r#"password: "<redacted>" in values.yaml"#),
            ("{'password': 'x1 y2', 'port': 5432}", "{'password': '<redacted>', 'port': 5432}"),
            ("AWS_SESSION_TOKEN=FwoGZXIvYXdzEJr expired", "AWS_SESSION_TOKEN=<redacted> expired"),
            ("session token: FwoGZXIvYXdzEJr expired", "session token: <redacted> expired"),
            ("credentials: c2VjcmV0 rejected", "credentials: <redacted> rejected"),
            ("gcp_credential=c2VjcmV0 rejected", "gcp_credential=<redacted> rejected"),
            // Azure connection strings
            (
                "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=bXlrZXk+/abc==;EndpointSuffix=core.windows.net",
                "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=<redacted>;EndpointSuffix=core.windows.net",
            ),
            (
                "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0a2V5+/=",
                "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=<redacted>",
            ),
            // an AWS secret access key on its own
            ("leaked wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY in logs", "leaked <secret> in logs"),
            // PEM private keys, one cut off
            (
                "key -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq\nQ2hlY2sgdGhpcw==\n-----END RSA PRIVATE KEY----- loaded",
                "key <private-key> loaded",
            ),
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\nnext",
                "<private-key>\nnext",
            ),
            ("bad -----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0w", "bad <private-key>"),
            // provider tokens
            ("pat github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123 revoked", "pat <secret> revoked"),
            ("app xapp-1-A0123456789-1234567890123-abcdef0123456789abcdef ok", "app <secret> ok"),
            ("refresh xoxe.xoxp-1-Mi0yLTEyMzQ1Njc4OTAtMTIz rotated", "refresh <secret> rotated"),
            ("refresh xoxe-1-My0xLTEyMzQ1Njc4OTAtMTIz rotated", "refresh <secret> rotated"),
            ("cookie xoxc-1234567890-abcdefghij ok", "cookie <secret> ok"),
            ("stripe sk_live_51HqLyjWDarjtT1zdp7dc charge failed", "stripe <secret> charge failed"),
            ("stripe sk_test_51HqLyjWDarjtT1zdp7dc charge failed", "stripe <secret> charge failed"),
            ("stripe rk_live_51HqLyjWDarjtT1zdp7dc charge failed", "stripe <secret> charge failed"),
            ("stripe whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw bad signature", "stripe <secret> bad signature"),
            // webhook URLs
            (
                "POST https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX returned 404",
                "POST https://hooks.slack.com/<redacted> returned 404",
            ),
            (
                "POST https://contoso.webhook.office.com/webhookb2/1b2c@3d4e/IncomingWebhook/abc123/5f6a failed",
                "POST https://contoso.webhook.office.com/<redacted> failed",
            ),
            (
                "flow https://prod-12.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sig=Zm9v down",
                "flow https://prod-12.westus.logic.azure.com:443/<redacted> down",
            ),
            // signed and keyed query parameters, an Azure SAS among them
            (
                "GET https://acct.blob.core.windows.net/c/b.txt?sv=2022-11-02&sp=r&sig=abc%2Bdef%3D slow",
                "GET https://acct.blob.core.windows.net/c/b.txt?sv=2022-11-02&sp=r&sig=<redacted> slow",
            ),
            ("GET /x?signature=abcdef123456&expires=1700000000", "GET /x?signature=<redacted>&expires=1700000000"),
            ("GET /maps?key=abcdef123456&q=x", "GET /maps?key=<redacted>&q=x"),
            ("GET /callback?code=4/0AX4XfWh&state=xyz", "GET /callback?code=<redacted>&state=xyz"),
            ("GET /feed?token=abcdef123456&page=2", "GET /feed?token=<redacted>&page=2"),
            ("GET /feed?access_token=abcdef123456&page=2", "GET /feed?access_token=<redacted>&page=2"),
            ("GET /feed?api_key=abcdef123456&page=2", "GET /feed?api_key=<redacted>&page=2"),
            // payment cards that pass the Luhn check
            ("card 4111 1111 1111 1111 declined", "card <card> declined"),
            ("card 4111-1111-1111-1111 declined", "card <card> declined"),
            ("card 4111111111111111 declined", "card <card> declined"),
            ("amex 3782 822463 10005 declined", "amex <card> declined"),
            ("in 2024 4111 1111 1111 1111 declined", "in 2024 <card> declined"),
            // phone numbers
            ("call +1 415 555 2671 now", "call <phone> now"),
            ("call +441632960961 now", "call <phone> now"),
            ("call tel:+1-201-555-0123 now", "call <phone> now"),
            // not secrets
            ("deployed 9fceb02d0ae598e95dc970b74767f19372d61af8 to prod", "deployed 9fceb02d0ae598e95dc970b74767f19372d61af8 to prod"),
            ("MySQLHighPreparedStatementsUtilization80 firing", "MySQLHighPreparedStatementsUtilization80 firing"),
            ("order 4111111111111112 failed", "order 4111111111111112 failed"),
            ("at 1700000000129 ms", "at 1700000000129 ms"),
            (
                "db-1:5432 p99 250ms > 200ms for 5m, v1.27.3, +12% of 1024 MiB, id 12345678 at 2024-05-01T10:00:00Z",
                "db-1:5432 p99 250ms > 200ms for 5m, v1.27.3, +12% of 1024 MiB, id 12345678 at 2024-05-01T10:00:00Z",
            ),
            ("Invalid signature: expected sha256", "Invalid signature: expected sha256"),
        ];
        let redactor = Redactor::new(&[]).unwrap();
        let wrong: Vec<String> = rows
            .iter()
            .filter_map(|(input, expected)| {
                let got = redactor.redact(input);
                (got != *expected).then(|| format!("{input:?}\n  expected {expected:?}\n  got      {got:?}"))
            })
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// xorshift64: seeded, so that a failing case comes again.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }

        /// One of the space-separated `words`.
        fn word<'a>(&mut self, words: &'a str) -> &'a str {
            self.pick(&words.split(' ').collect::<Vec<_>>())
        }

        fn string(&mut self, alphabet: &[u8], len: usize) -> String {
            (0..len).map(|_| char::from(alphabet[self.below(alphabet.len())])).collect()
        }
    }

    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const DIGITS: &[u8] = b"0123456789";
    const HEX: &[u8] = b"0123456789abcdef";

    /// A word, number or punctuation of alert texts, with nothing to mask: git SHAs and
    /// millisecond timestamps among them.
    fn ordinary(rng: &mut Rng) -> String {
        const WORDS: &str = "HostHighCpuLoad KubePodCrashLooping instance node-exporter pod api-7f9c is down \
            above threshold for of connections used latency p99 errors 5xx disk nearly full replica lag on \
            cluster prod-eu-1 Postgresql restarted times (instance db-1) failed: timeout, OOMKilled Deployment \
            has not matched the expected number replicas.";
        match rng.below(10) {
            0..=5 => rng.word(WORDS).to_string(),
            6 => rng.below(100_000).to_string(),
            7 => {
                let n = rng.below(1000);
                format!("{n}{}", rng.pick(&["%", "m", "s", "ms", "h", "/s", "MiB"]))
            }
            8 => rng
                .pick(&["db-1:5432", "v1.27.3", "0.95", ">", "=", "-", ":", "+12%", "2024-05-01T10:00:00Z"])
                .to_string(),
            _ if rng.below(2) == 0 => rng.string(HEX, 40),
            _ => (1_700_000_000_000 + rng.below(100_000_000_000)).to_string(),
        }
    }

    /// A secret of a random family: the text to plant, and the parts of it that must not come out.
    fn planted(rng: &mut Rng) -> (String, Vec<String>) {
        let whole = |text: String| (text.clone(), vec![text]);
        match rng.below(9) {
            0 => whole(rng.string(BASE64, 40)),
            1 => whole(format!("github_pat_{}_{}", rng.string(ALNUM, 22), rng.string(ALNUM, 59))),
            2 if rng.below(2) == 0 => {
                whole(format!("xoxb-{}-{}-{}", rng.string(DIGITS, 12), rng.string(DIGITS, 13), rng.string(ALNUM, 24)))
            }
            2 => whole(format!("xapp-1-A{}-{}-{}", rng.string(ALNUM, 10), rng.string(DIGITS, 13), rng.string(HEX, 64))),
            3 => {
                let len = 24 + rng.below(76);
                whole(format!("sk_live_{}", rng.string(ALNUM, len)))
            }
            4 => pem(rng),
            5 => key_value(rng),
            6 => webhook(rng),
            7 => card(rng),
            _ => phone(rng),
        }
    }

    /// A PEM private key; one in four is cut off before its END line.
    fn pem(rng: &mut Rng) -> (String, Vec<String>) {
        let kind = rng.pick(&["", "RSA ", "EC ", "OPENSSH ", "ENCRYPTED "]);
        let count = 2 + rng.below(6);
        let lines: Vec<String> = (0..count).map(|_| rng.string(BASE64, 64)).collect();
        let end = if rng.below(4) == 0 { String::new() } else { format!("\n-----END {kind}PRIVATE KEY-----") };
        (format!("-----BEGIN {kind}PRIVATE KEY-----\n{}{end}", lines.join("\n")), lines)
    }

    fn key_value(rng: &mut Rng) -> (String, Vec<String>) {
        const VALUE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%*+/=@^_.-~";
        let key = rng.word(
            "DB_PASSWORD REDIS_PASSWORD X_PASSWORD aws_secret_access_key api_key client_secret GITHUB_TOKEN \
             session_token AccountKey SharedAccessKey smtp.credentials",
        );
        let (len, other_len) = (12 + rng.below(13), 12 + rng.below(13));
        let (value, other) = (rng.string(VALUE, len), rng.string(VALUE, other_len));
        match rng.below(4) {
            0 => (format!("{key}={value}"), vec![value]),
            1 => (format!("\"{key}\": \"{value}\""), vec![value]),
            2 => (format!("{key}: \"{value} {other}\""), vec![value, other]),
            _ => (format!("'{key}': '{value}'"), vec![value]),
        }
    }

    /// A Slack or Teams webhook URL: its path is the secret.
    fn webhook(rng: &mut Rng) -> (String, Vec<String>) {
        let (host, path) = if rng.below(2) == 0 {
            let (team, bot, key) = (rng.string(ALNUM, 10), rng.string(ALNUM, 10), rng.string(ALNUM, 24));
            ("hooks.slack.com", format!("services/T{team}/B{bot}/{key}"))
        } else {
            let ids: Vec<String> = (0..4).map(|_| rng.string(HEX, 32)).collect();
            (
                "contoso.webhook.office.com",
                format!("webhookb2/{}@{}/IncomingWebhook/{}/{}", ids[0], ids[1], ids[2], ids[3]),
            )
        };
        (format!("https://{host}/{path}"), vec![path])
    }

    /// A card number of a random network with its Luhn check digit, printed whole or in groups.
    fn card(rng: &mut Rng) -> (String, Vec<String>) {
        let network = rng.word("4:16 4:13 4:19 51:16 55:16 2221:16 2720:16 34:15 37:15 36:14 6011:16 3528:16 62:19");
        let (prefix, len) = network.split_once(':').expect("prefix:length");
        let len: usize = len.parse().expect("a length");
        let mut digits = format!("{prefix}{}", rng.string(DIGITS, len - prefix.len() - 1));
        let check = ('0'..='9').find(|d| luhn(&format!("{digits}{d}"))).expect("a check digit");
        digits.push(check);
        let separator = rng.pick(&["", " ", "-"]);
        let groups: Vec<&str> = match len {
            _ if separator.is_empty() => vec![&digits],
            14 | 15 => vec![&digits[..4], &digits[4..10], &digits[10..]],
            _ => digits.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).expect("digits")).collect(),
        };
        let printed = groups.join(separator);
        (printed.clone(), vec![printed, digits])
    }

    /// An E.164 number of 8 to 15 digits, in groups or not, sometimes as a `tel:` URI.
    fn phone(rng: &mut Rng) -> (String, Vec<String>) {
        let country = rng.pick(&["1", "44", "49", "33", "81", "91", "353", "61"]);
        let len = 8 + rng.below(8) - country.len();
        let national = rng.string(DIGITS, len);
        let separator = rng.pick(&["", " ", "-"]);
        let groups: Vec<&str> =
            national.as_bytes().chunks(3).map(|c| std::str::from_utf8(c).expect("digits")).collect();
        let number = format!("+{country}{separator}{}", groups.join(separator));
        let text = if rng.below(4) == 0 { format!("tel:{number}") } else { number.clone() };
        (text, vec![number])
    }

    /// 2,000 alert texts of ordinary words, each with one secret planted at a random place: the
    /// text alone comes through unchanged, and nothing of the secret comes through with it.
    #[test]
    fn planted_secrets_never_come_out() {
        let redactor = Redactor::new(&[]).unwrap();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for case in 0..2000 {
            let count = 5 + rng.below(30);
            let mut words: Vec<String> = (0..count).map(|_| ordinary(&mut rng)).collect();
            let plain = words.join(" ");
            assert_eq!(redactor.redact(&plain), plain, "case {case}: ordinary text changed");
            let (secret, parts) = planted(&mut rng);
            let at = rng.below(words.len() + 1);
            words.insert(at, secret);
            let redacted = redactor.redact(&words.join(" "));
            for part in parts {
                assert!(!redacted.contains(&part), "case {case}: {part:?} came out in {redacted:?}");
            }
        }
    }

    /// The repository's alert corpus (`data/examples.jsonl`, the shared alert corpus's copy)
    /// holds no secret, address or email, so every label and annotation must come through as it
    /// is. The rules before these left all of it alone too: the new ones change nothing more.
    #[test]
    fn alert_corpus_comes_through_redaction_unchanged() {
        let redactor = Redactor::new(&[]).unwrap();
        let alerts = crate::corpus::parse(crate::corpus::BUILT_IN, "the built-in corpus").unwrap();
        assert!(!alerts.is_empty());
        let changed: Vec<(&String, String)> = alerts
            .iter()
            .flat_map(|alert| alert.labels.values().chain(alert.annotations.values()))
            .filter_map(|text| {
                let redacted = redactor.redact(text);
                (redacted != *text).then_some((text, redacted))
            })
            .collect();
        assert!(changed.is_empty(), "{} texts changed: {changed:#?}", changed.len());
    }
}
