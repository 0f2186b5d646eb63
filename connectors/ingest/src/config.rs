//! The `[ingest]` section: where `quench ingest` listens, its limits, and the sources allowed to
//! post. A source is a named sender with one payload format, one credential and one tenant.

use quench_secret::{ApiToken, Secret};
use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{
    payload::{Format, Limits},
    quota::QuotaConfig,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Listen address of the webhook endpoints, which also serve `/metrics`, `/healthz` and `/readyz`.
    pub listen: String,
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
    /// A client that has not sent its whole body within this time gets 408 (slow clients hold a
    /// connection and a buffer each).
    pub body_timeout_ms: u64,
    /// How long a request waits for Kafka to acknowledge its alerts before it gets 503.
    pub ack_timeout_ms: u64,
    pub limits: Limits,
    /// Named sources. Each endpoint's default source has the endpoint's format name
    /// (`alertmanager`, `grafana`, `pagerduty`, `prometheus`, `generic`); others are reached by
    /// adding their name to the path (`/v1/alertmanager/<name>`, `/<name>/api/v2/alerts`).
    pub sources: BTreeMap<String, SourceConfig>,
    /// Bearer tokens, by name, for the Alertmanager API (`/api/v2/silences`); reads need none.
    /// Silences mute every tenant's alerts, so only tokens with `write = true` and
    /// `tenants = ["*"]` may write them. Without any, writes are refused.
    pub api_tokens: BTreeMap<String, ApiToken>,
    /// Each tenant's alerts per second; over it, 429 with Retry-After.
    pub quotas: QuotaConfig,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9470".into(),
            max_body_bytes: 4 << 20,
            body_timeout_ms: 10_000,
            ack_timeout_ms: 5_000,
            limits: Limits::default(),
            sources: BTreeMap::new(),
            api_tokens: BTreeMap::new(),
            quotas: QuotaConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The payload format; defaults to the source's name when that is a format name.
    pub format: Option<Format>,
    /// Requests must carry `Authorization: Bearer <token>`...
    pub token: Option<Secret>,
    /// ...or an HMAC-SHA256 under this secret, hex, in `hmac_header` (`sha256=` prefix
    /// optional), of `<timestamp>.<body>` with the Unix time in seconds in
    /// `hmac_timestamp_header`, refused beyond `hmac_max_age_s` (so a captured request cannot be
    /// replayed later); `hmac_max_age_s = 0` signs the body alone, for senders that cannot send
    /// a timestamp (and accepts replays).
    pub hmac_secret: Option<Secret>,
    #[serde(default = "default_hmac_header")]
    pub hmac_header: String,
    #[serde(default = "default_hmac_timestamp_header")]
    pub hmac_timestamp_header: String,
    #[serde(default = "default_hmac_max_age_s")]
    pub hmac_max_age_s: u64,
    /// Every alert from this source belongs to this tenant; senders cannot choose another.
    #[serde(default = "default_tenant")]
    pub tenant: String,
}

fn default_hmac_header() -> String {
    "x-quench-signature".into()
}

fn default_hmac_timestamp_header() -> String {
    "x-quench-timestamp".into()
}

fn default_hmac_max_age_s() -> u64 {
    300
}

fn default_tenant() -> String {
    "default".into()
}

impl IngestConfig {
    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }

    pub fn ack_timeout(&self) -> Duration {
        Duration::from_millis(self.ack_timeout_ms)
    }

    /// Fails with the key of the first setting that is not usable, and why.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.max_body_bytes == 0 {
            return Err(("ingest.max_body_bytes".into(), "must be at least 1".into()));
        }
        for (name, source) in &self.sources {
            let key = |field: &str| format!("ingest.sources.{name}.{field}");
            if source.format(name).is_none() {
                return Err((key("format"), format!("`{name}` is not a format name, so `format` must be set")));
            }
            match (&source.token, &source.hmac_secret) {
                (None, None) => {
                    return Err((key("token"), "every source needs a `token` or an `hmac_secret`".into()));
                }
                (Some(_), Some(_)) => return Err((key("token"), "set `token` or `hmac_secret`, not both".into())),
                (Some(secret), None) | (None, Some(secret)) if secret.expose().len() < 16 => {
                    return Err((key("token"), "secrets must be at least 16 characters".into()));
                }
                _ => {}
            }
            if source.tenant.is_empty() {
                return Err((key("tenant"), "must not be empty".into()));
            }
        }
        self.quotas.validate()?;
        quench_secret::validate_tokens("ingest.api_tokens", &self.api_tokens)
    }
}

impl SourceConfig {
    pub fn format(&self, name: &str) -> Option<Format> {
        self.format.or_else(|| Format::named(name))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn source(token: Option<&str>, hmac: Option<&str>) -> SourceConfig {
        SourceConfig {
            format: None,
            token: token.map(Into::into),
            hmac_secret: hmac.map(Into::into),
            hmac_header: default_hmac_header(),
            hmac_timestamp_header: default_hmac_timestamp_header(),
            hmac_max_age_s: default_hmac_max_age_s(),
            tenant: default_tenant(),
        }
    }

    fn with(name: &str, source: SourceConfig) -> Result<(), (String, String)> {
        IngestConfig { sources: [(name.to_string(), source)].into(), ..Default::default() }.validate()
    }

    #[test]
    fn sources_need_exactly_one_long_enough_secret_and_a_format() {
        assert!(with("alertmanager", source(Some("0123456789abcdef"), None)).is_ok());
        assert_eq!(with("alertmanager", source(None, None)).unwrap_err().0, "ingest.sources.alertmanager.token");
        assert!(with("grafana", source(Some("short"), None)).unwrap_err().1.contains("16"));
        assert!(with("grafana", source(Some("0123456789abcdef"), Some("0123456789abcdef"))).is_err());
        assert_eq!(
            with("team-a", source(Some("0123456789abcdef"), None)).unwrap_err().0,
            "ingest.sources.team-a.format"
        );
    }
}
