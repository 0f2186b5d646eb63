//! Source authentication: a bearer token, or an HMAC-SHA256 signature of a timestamp and the
//! body. Secrets are compared in constant time so that response timing reveals nothing about
//! them.

use hmac::{Hmac, Mac};
use quench_secret::Secret;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::SourceConfig;

/// Why a request is not authenticated; the 401's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing `Authorization: Bearer <token>` header")]
    MissingToken,
    #[error("the bearer token is not this source's")]
    WrongToken,
    #[error("missing signature header `{0}`")]
    MissingSignature(String),
    #[error("the signature in `{0}` is not an HMAC-SHA256 of `<timestamp>.<body>` under this source's secret")]
    WrongSignature(String),
    #[error("missing timestamp header `{0}` (Unix seconds, signed with the body)")]
    MissingTimestamp(String),
    #[error("the timestamp in `{0}` is not within hmac_max_age_s of now: a replay, or a clock to fix")]
    StaleTimestamp(String),
}

/// The credentials a request carries.
pub struct Presented<'a> {
    pub authorization: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    /// A PagerDuty event's routing key, which PagerDuty clients send instead of a header.
    pub routing_key: Option<&'a str>,
}

/// Checks `presented` against `source` at `now_s` (Unix seconds); `body` is what was read of
/// the body (empty when [`needs_body`] said it is not needed).
pub fn verify(source: &SourceConfig, presented: &Presented, body: &[u8], now_s: i64) -> Result<(), AuthError> {
    if let Some(secret) = &source.hmac_secret {
        let header = &source.hmac_header;
        let signature = presented.signature.ok_or_else(|| AuthError::MissingSignature(header.clone()))?;
        let timestamp = signed_timestamp(source, presented, now_s)?;
        let hex = signature.trim().strip_prefix("sha256=").unwrap_or(signature.trim());
        let given = decode_hex(hex).ok_or_else(|| AuthError::WrongSignature(header.clone()))?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes keys of any length");
        if let Some(timestamp) = timestamp {
            mac.update(timestamp.as_bytes());
            mac.update(b".");
        }
        mac.update(body);
        return mac.verify_slice(&given).map_err(|_| AuthError::WrongSignature(header.clone()));
    }
    let expected = source.token.as_ref().map(Secret::expose).unwrap_or_default();
    let token = match presented.authorization {
        Some(value) => value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")),
        None => presented.routing_key,
    };
    let token = token.ok_or(AuthError::MissingToken)?;
    if bool::from(token.trim().as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(AuthError::WrongToken)
    }
}

/// The timestamp a signature covers (`None` when the source signs the body alone), once it is
/// known to be fresh.
fn signed_timestamp<'a>(
    source: &SourceConfig,
    presented: &Presented<'a>,
    now_s: i64,
) -> Result<Option<&'a str>, AuthError> {
    if source.hmac_max_age_s == 0 {
        return Ok(None);
    }
    let header = &source.hmac_timestamp_header;
    let timestamp = presented.timestamp.map(str::trim).ok_or_else(|| AuthError::MissingTimestamp(header.clone()))?;
    let at: i64 = timestamp.parse().map_err(|_| AuthError::StaleTimestamp(header.clone()))?;
    let max_age = i64::try_from(source.hmac_max_age_s).unwrap_or(i64::MAX);
    if now_s.abs_diff(at) > max_age.unsigned_abs() {
        return Err(AuthError::StaleTimestamp(header.clone()));
    }
    Ok(Some(timestamp))
}

/// Whether the check needs the body: a signature is over the body, and a PagerDuty event's key is
/// inside it. Only a request that carries what it needs gets its body read: a missing signature,
/// timestamp or token is refused from the headers alone, so that unauthenticated clients cannot
/// make Quench buffer anything.
pub fn needs_body(source: &SourceConfig, presented: &Presented, pagerduty: bool, now_s: i64) -> bool {
    match source.hmac_secret {
        Some(_) => presented.signature.is_some() && signed_timestamp(source, presented, now_s).is_ok(),
        None => presented.authorization.is_none() && pagerduty,
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || !hex.is_ascii() {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::source;

    const NOW: i64 = 1_780_000_000;

    fn presented<'a>(authorization: Option<&'a str>, signature: Option<&'a str>) -> Presented<'a> {
        Presented { authorization, signature, timestamp: None, routing_key: None }
    }

    fn verify(source: &SourceConfig, presented: &Presented, body: &[u8]) -> Result<(), AuthError> {
        super::verify(source, presented, body, NOW)
    }

    fn sign(secret: &str, parts: &[&[u8]]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn bearer_tokens() {
        let s = source(Some("0123456789abcdef"), None);
        assert_eq!(verify(&s, &presented(Some("Bearer 0123456789abcdef"), None), b""), Ok(()));
        assert_eq!(verify(&s, &presented(Some("Bearer 0123456789abcdeX"), None), b""), Err(AuthError::WrongToken));
        assert_eq!(verify(&s, &presented(Some("Bearer 0123"), None), b""), Err(AuthError::WrongToken));
        assert_eq!(verify(&s, &presented(Some("Basic abc"), None), b""), Err(AuthError::MissingToken));
        assert_eq!(verify(&s, &presented(None, None), b""), Err(AuthError::MissingToken));
        let pagerduty =
            Presented { authorization: None, signature: None, timestamp: None, routing_key: Some("0123456789abcdef") };
        assert_eq!(verify(&s, &pagerduty, b""), Ok(()));
    }

    fn with<'a>(signature: &'a str, timestamp: &'a str) -> Presented<'a> {
        Presented { authorization: None, signature: Some(signature), timestamp: Some(timestamp), routing_key: None }
    }

    #[test]
    fn hmac_signatures_over_a_fresh_timestamp_and_the_body() {
        let s = source(None, Some("secret-secret-secret"));
        let signed = |timestamp: &str, body: &[u8]| sign("secret-secret-secret", &[timestamp.as_bytes(), b".", body]);
        let (now, old) = (NOW.to_string(), (NOW - 301).to_string());
        let (good, replayed) = (signed(&now, br#"{"a":1}"#), signed(&old, br#"{"a":1}"#));
        assert_eq!(verify(&s, &with(&good, &now), br#"{"a":1}"#), Ok(()));
        assert!(matches!(verify(&s, &with(&good, &now), br#"{"a":2}"#), Err(AuthError::WrongSignature(_))));
        assert!(
            matches!(verify(&s, &with(&replayed, &old), br#"{"a":1}"#), Err(AuthError::StaleTimestamp(_))),
            "a request signed five minutes and a second ago is a replay"
        );
        assert!(matches!(
            verify(&s, &presented(None, Some(&good)), br#"{"a":1}"#),
            Err(AuthError::MissingTimestamp(_))
        ));
        assert!(!needs_body(&s, &presented(None, Some(&good)), false, NOW), "refused before the body is read");
        assert!(needs_body(&s, &with(&good, &now), false, NOW));
        assert!(!needs_body(&s, &with(&replayed, &old), false, NOW));
    }

    #[test]
    fn credentials_missing_from_the_headers_are_refused_before_the_body_is_read() {
        let token = source(Some("0123456789abcdef"), None);
        assert!(!needs_body(&token, &presented(None, None), false, NOW));
        assert!(needs_body(&token, &presented(None, None), true, NOW), "PagerDuty's key is in the body");
        assert!(!needs_body(&token, &presented(Some("Bearer x"), None), true, NOW));
        let hmac = source(None, Some("secret-secret-secret"));
        assert!(!needs_body(&hmac, &presented(None, None), false, NOW));
    }

    #[test]
    fn hmac_signatures_over_the_body_alone_when_the_sender_cannot_send_a_timestamp() {
        let other = format!("sha256={}", "0".repeat(64));
        let s = SourceConfig { hmac_max_age_s: 0, ..source(None, Some("secret-secret-secret")) };
        let hex = sign("secret-secret-secret", &[br#"{"a":1}"#]);
        assert_eq!(verify(&s, &presented(None, Some(&format!("sha256={hex}"))), br#"{"a":1}"#), Ok(()));
        assert_eq!(verify(&s, &presented(None, Some(&hex)), br#"{"a":1}"#), Ok(()), "prefix optional");
        assert!(matches!(verify(&s, &presented(None, Some(&hex)), br#"{"a":2}"#), Err(AuthError::WrongSignature(_))));
        assert!(matches!(verify(&s, &presented(None, Some(&other)), br#"{"a":1}"#), Err(AuthError::WrongSignature(_))));
        assert!(matches!(verify(&s, &presented(None, Some("zz")), b""), Err(AuthError::WrongSignature(_))));
        assert!(matches!(verify(&s, &presented(None, None), b""), Err(AuthError::MissingSignature(_))));
        assert!(matches!(
            verify(&s, &presented(Some("Bearer secret-secret-secret"), None), b""),
            Err(AuthError::MissingSignature(_))
        ));
    }
}
