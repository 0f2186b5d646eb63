//! Secrets of the configuration: tokens, passwords, API keys, and URLs that are credentials
//! themselves (Slack and Teams webhooks). A [`Secret`] is read from configuration like a string
//! and used through [`Secret::expose`], but prints, logs and serialises as `<redacted>`, so that
//! `quench config`, error messages and logs cannot leak it whatever code handles it: masking is a
//! property of the type, not a list of fields someone must keep current.
//!
//! Two settings hold secrets inside ordinary values: [`mask_url_password`] for the password in a
//! URL's user-info (`https://user:pass@host`), and [`serialize_properties`] for librdkafka
//! properties whose names say they hold a credential.

mod token;

use std::{collections::BTreeMap, fmt};

pub use token::{authenticate, validate as validate_tokens, ApiToken};

use serde::{Deserialize, Serialize, Serializer};

/// What a secret prints and serialises as.
pub const REDACTED: &str = "<redacted>";

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

/// A secret is read as written: a string, or a number or boolean (an all-digit PIN set through an
/// environment variable reaches serde as a number). Never as an error that quotes the value.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a secret (a string)")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Secret, E> {
                Ok(Secret::new(value))
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Secret, E> {
                Ok(Secret::new(value.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Secret, E> {
                Ok(Secret::new(value.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Secret, E> {
                Ok(Secret::new(value.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<Secret, E> {
                Ok(Secret::new(value.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What to show for it: nothing when it is empty (so "not set" stays visible), else
    /// [`REDACTED`].
    fn shown(&self) -> &'static str {
        if self.0.is_empty() {
            ""
        } else {
            REDACTED
        }
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.shown())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.shown())
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.shown())
    }
}

/// `url` with the password of its user-info replaced by [`REDACTED`]; other URLs unchanged.
pub fn mask_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else { return url.to_string() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:{REDACTED}@{host}{path}"),
        None => url.to_string(),
    }
}

/// Serialises a URL setting with its password masked (`serialize_with`).
pub fn serialize_url<S: Serializer>(url: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&mask_url_password(url))
}

/// Whether a librdkafka property holds a credential (`sasl.password`, `ssl.key.password`,
/// `sasl.jaas.config`, `sasl.oauthbearer.client.secret`, an inline `ssl.key.pem`,
/// `sasl.oauthbearer.config` with its `clientSecret=`...).
pub fn is_secret_property(name: &str) -> bool {
    ["password", "secret", "jaas", "token", "credentials", "pem", "oauthbearer.config"]
        .iter()
        .any(|word| name.contains(word))
}

/// Serialises librdkafka properties with the credentials masked (`serialize_with`).
pub fn serialize_properties<S: Serializer>(
    properties: &BTreeMap<String, String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let shown: BTreeMap<&str, &str> = properties
        .iter()
        .map(|(name, value)| (name.as_str(), if is_secret_property(name) { REDACTED } else { value.as_str() }))
        .collect();
    shown.serialize(serializer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_used_but_never_shown() {
        let secret: Secret = serde_json::from_str("\"hunter2-pass\"").unwrap();
        assert_eq!(secret.expose(), "hunter2-pass");
        for shown in [format!("{secret}"), format!("{secret:?}"), serde_json::to_string(&secret).unwrap()] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains(REDACTED), "{shown}");
        }
        assert_eq!(serde_json::to_string(&Secret::default()).unwrap(), "\"\"", "an unset secret shows as unset");
        assert_eq!(format!("{:?}", Some(secret)), format!("Some({REDACTED:?})"));
    }

    #[test]
    fn an_all_digit_secret_is_read_as_written() {
        let secret: Secret = serde_json::from_str("12345678").unwrap();
        assert_eq!(secret.expose(), "12345678");
        let error = serde_json::from_str::<Secret>("[\"hunter2-pass\"]").unwrap_err().to_string();
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn passwords_in_urls_and_kafka_properties_are_masked() {
        assert_eq!(mask_url_password("http://app:s3cret@db:8123/x?y=1"), "http://app:<redacted>@db:8123/x?y=1");
        assert_eq!(mask_url_password("http://db:8123/a@b"), "http://db:8123/a@b", "an @ in the path is not user-info");
        assert_eq!(mask_url_password("http://user@db"), "http://user@db");
        let properties = BTreeMap::from([
            ("ssl.key.pem".to_string(), "p4".to_string()),
            ("sasl.oauthbearer.config".to_string(), "clientSecret=p5".to_string()),
            ("sasl.password".to_string(), "p1".to_string()),
            ("ssl.key.password".to_string(), "p2".to_string()),
            ("sasl.jaas.config".to_string(), "p3".to_string()),
            ("security.protocol".to_string(), "SASL_SSL".to_string()),
        ]);
        let mut json = serde_json::Serializer::new(Vec::new());
        serialize_properties(&properties, &mut json).unwrap();
        let json = String::from_utf8(json.into_inner()).unwrap();
        assert!(["p1", "p2", "p3", "p4", "p5"].iter().all(|p| !json.contains(p)), "{json}");
        assert!(json.contains("SASL_SSL"), "{json}");
    }
}
