//! Source authentication: a bearer token, or an HMAC-SHA256 signature of the body. Secrets are
//! compared in constant time so that response timing reveals nothing about them.

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
    #[error("the signature in `{0}` is not an HMAC-SHA256 of the body under this source's secret")]
    WrongSignature(String),
}

/// The credentials a request carries.
pub struct Presented<'a> {
    pub authorization: Option<&'a str>,
    pub signature: Option<&'a str>,
    /// A PagerDuty event's routing key, which PagerDuty clients send instead of a header.
    pub routing_key: Option<&'a str>,
}

pub fn verify(source: &SourceConfig, presented: &Presented, body: &[u8]) -> Result<(), AuthError> {
    if let Some(secret) = &source.hmac_secret {
        let header = &source.hmac_header;
        let signature = presented.signature.ok_or_else(|| AuthError::MissingSignature(header.clone()))?;
        let hex = signature.trim().strip_prefix("sha256=").unwrap_or(signature.trim());
        let given = decode_hex(hex).ok_or_else(|| AuthError::WrongSignature(header.clone()))?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes keys of any length");
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

/// Whether the check needs the body: signatures are over the body, PagerDuty's key is inside it.
pub fn needs_body(source: &SourceConfig, presented: &Presented) -> bool {
    source.hmac_secret.is_some() || presented.authorization.is_none()
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

    fn presented<'a>(authorization: Option<&'a str>, signature: Option<&'a str>) -> Presented<'a> {
        Presented { authorization, signature, routing_key: None }
    }

    #[test]
    fn bearer_tokens() {
        let s = source(Some("0123456789abcdef"), None);
        assert_eq!(verify(&s, &presented(Some("Bearer 0123456789abcdef"), None), b""), Ok(()));
        assert_eq!(verify(&s, &presented(Some("Bearer 0123456789abcdeX"), None), b""), Err(AuthError::WrongToken));
        assert_eq!(verify(&s, &presented(Some("Bearer 0123"), None), b""), Err(AuthError::WrongToken));
        assert_eq!(verify(&s, &presented(Some("Basic abc"), None), b""), Err(AuthError::MissingToken));
        assert_eq!(verify(&s, &presented(None, None), b""), Err(AuthError::MissingToken));
        let pagerduty = Presented { authorization: None, signature: None, routing_key: Some("0123456789abcdef") };
        assert_eq!(verify(&s, &pagerduty, b""), Ok(()));
    }

    #[test]
    fn hmac_signatures_over_the_body() {
        let other = format!("sha256={}", "0".repeat(64));
        let s = source(None, Some("secret-secret-secret"));
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret-secret-secret").unwrap();
        mac.update(br#"{"a":1}"#);
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
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
