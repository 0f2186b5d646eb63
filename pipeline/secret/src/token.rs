//! Bearer tokens of the HTTP APIs (`api.tokens`, `notify.api_tokens`, `ingest.api_tokens`), each
//! scoped to tenants and to reading or writing, so that one team's token can neither see nor act
//! on another team's incidents. One type for the three listeners, so a scope check written for one
//! holds for all.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::Secret;

/// One token: the tenants it sees (`*`: all), and whether it may write.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    pub token: Secret,
    pub tenants: Vec<String>,
    #[serde(default)]
    pub write: bool,
}

impl ApiToken {
    /// Whether the token sees `tenant`.
    pub fn sees(&self, tenant: &str) -> bool {
        self.tenants.iter().any(|t| t == "*" || t == tenant)
    }

    /// The tenants it sees, or `None` for all.
    pub fn scope(&self) -> Option<Vec<String>> {
        (!self.sees_all()).then(|| self.tenants.clone())
    }

    /// Whether it sees every tenant (what settings shared by all tenants, such as silences, need).
    pub fn sees_all(&self) -> bool {
        self.tenants.iter().any(|t| t == "*")
    }
}

/// The name and token presented as `Authorization: Bearer <token>`, if it is one of `tokens`
/// (compared in constant time, every token compared, so timing does not tell which matched).
pub fn authenticate<'a>(
    tokens: &'a BTreeMap<String, ApiToken>,
    authorization: Option<&str>,
) -> Option<(&'a str, &'a ApiToken)> {
    let presented = authorization?;
    let presented = presented.strip_prefix("Bearer ").or_else(|| presented.strip_prefix("bearer "))?.trim();
    let mut found = None;
    for (name, token) in tokens {
        if bool::from(token.token.expose().as_bytes().ct_eq(presented.as_bytes())) {
            found = Some((name.as_str(), token));
        }
    }
    found
}

/// Refuses, by key under `section` (`api.tokens`), a token shorter than 16 characters, the same
/// token twice (one of the two would silently act with the other's scope), and a token that names
/// no tenant.
pub fn validate(section: &str, tokens: &BTreeMap<String, ApiToken>) -> Result<(), (String, String)> {
    let mut seen = BTreeSet::new();
    for (name, token) in tokens {
        let key = format!("{section}.{name}");
        if !seen.insert(token.token.expose()) {
            return Err((format!("{key}.token"), format!("the same token as another of {section}")));
        }
        if token.token.expose().len() < 16 {
            return Err((format!("{key}.token"), "tokens must be at least 16 characters".into()));
        }
        if token.tenants.is_empty() {
            return Err((format!("{key}.tenants"), "name the tenants it sees, or \"*\" for all".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(secret: &str, tenants: &[&str], write: bool) -> ApiToken {
        ApiToken { token: secret.into(), tenants: tenants.iter().map(|t| t.to_string()).collect(), write }
    }

    #[test]
    fn a_token_is_found_by_its_secret_and_sees_only_its_tenants() {
        let tokens = BTreeMap::from([
            ("team-a".to_string(), token("aaaaaaaaaaaaaaaa", &["a"], true)),
            ("ops".to_string(), token("oooooooooooooooo", &["*"], false)),
        ]);
        let (name, found) = authenticate(&tokens, Some("Bearer aaaaaaaaaaaaaaaa")).unwrap();
        assert_eq!(name, "team-a");
        assert!(found.sees("a") && !found.sees("b") && !found.sees_all());
        assert_eq!(found.scope(), Some(vec!["a".to_string()]));
        let (_, ops) = authenticate(&tokens, Some("bearer oooooooooooooooo")).unwrap();
        assert!(ops.sees("b") && ops.sees_all() && ops.scope().is_none());
        assert!(authenticate(&tokens, Some("Bearer aaaaaaaaaaaaaaa")).is_none());
        assert!(authenticate(&tokens, Some("aaaaaaaaaaaaaaaa")).is_none());
        assert!(authenticate(&tokens, None).is_none());
    }

    #[test]
    fn short_repeated_and_tenantless_tokens_are_refused_by_key() {
        let check = |tokens: Vec<(&str, ApiToken)>| {
            let tokens = tokens.into_iter().map(|(n, t)| (n.to_string(), t)).collect();
            validate("notify.api_tokens", &tokens).map_err(|(key, _)| key)
        };
        assert_eq!(check(vec![("bot", token("short", &["*"], true))]), Err("notify.api_tokens.bot.token".into()));
        assert_eq!(
            check(vec![("bot", token("0123456789abcdef", &[], true))]),
            Err("notify.api_tokens.bot.tenants".into())
        );
        let twice =
            vec![("a", token("0123456789abcdef", &["a"], true)), ("b", token("0123456789abcdef", &["b"], true))];
        assert_eq!(check(twice), Err("notify.api_tokens.b.token".into()));
        assert_eq!(check(vec![("bot", token("0123456789abcdef", &["a"], false))]), Ok(()));
    }
}
