//! `[api]`: where `quench api` listens and who may read what.

use std::collections::BTreeMap;

pub use quench_secret::ApiToken;
use serde::{Deserialize, Serialize};

use crate::similar::SimilarConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub listen: String,
    /// Bearer tokens by name (the name is what a write records as its actor).
    pub tokens: BTreeMap<String, ApiToken>,
    /// Rows a list answers at most per page, and by default.
    pub max_limit: u32,
    pub default_limit: u32,
    /// ClickHouse's `max_execution_time` for each query, seconds.
    pub query_timeout_s: u64,
    /// Similar past incidents on an incident's detail (and the indexer that embeds incidents).
    pub similar: SimilarConfig,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9490".into(),
            tokens: BTreeMap::new(),
            max_limit: 500,
            default_limit: 50,
            query_timeout_s: 10,
            similar: SimilarConfig::default(),
        }
    }
}

impl ApiConfig {
    pub fn validate(&self) -> Result<(), (String, String)> {
        quench_secret::validate_tokens("api.tokens", &self.tokens)?;
        if self.default_limit == 0 || self.default_limit > self.max_limit {
            return Err((
                "api.default_limit".into(),
                format!("must be between 1 and api.max_limit ({})", self.max_limit),
            ));
        }
        if self.query_timeout_s == 0 {
            return Err(("api.query_timeout_s".into(), "must be positive".into()));
        }
        self.similar.validate()
    }
}
