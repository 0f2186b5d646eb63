//! The `[classify]` section of Quench's configuration.

use quench_secret::Secret;
use serde::{Deserialize, Serialize};

use crate::{local::LocalConfig, taxonomy::Taxonomy};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClassifyConfig {
    /// `local` (the default: no API key, no network), `anthropic` or `openai` (any
    /// OpenAI-compatible server: OpenAI, vLLM, llama.cpp, Ollama).
    pub provider: ProviderKind,
    /// Incidents per LLM request.
    pub max_batch: usize,
    /// Longest an incident waits for its batch to fill.
    pub max_wait_ms: u64,
    /// Incidents waiting for the LLM (queued, in flight or parked through an outage) at most.
    /// Beyond it, new incidents keep the local classifier's answer as final: a storm of distinct
    /// incidents or a long outage cannot grow the worker's memory without bound.
    pub max_backlog: usize,
    pub taxonomy: Taxonomy,
    pub local: LocalConfig,
    pub llm: LlmConfig,
    pub cache: CacheConfig,
    pub breaker: BreakerConfig,
    pub redact: RedactConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Local,
    Anthropic,
    Openai,
}

/// How an OpenAI-compatible server is asked for JSON: OpenAI and vLLM take `json_schema`;
/// llama.cpp's server needs `json_object` with the schema beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JsonMode {
    JsonSchema,
    JsonObject,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// Base URL; defaults to the provider's public API (`https://api.anthropic.com`,
    /// `https://api.openai.com`). The path (`/v1/messages`, `/v1/chat/completions`) is appended.
    pub url: Option<String>,
    pub model: String,
    /// Also read from ANTHROPIC_API_KEY or OPENAI_API_KEY when unset.
    pub api_key: Option<Secret>,
    pub json_mode: JsonMode,
    /// Deadline of one HTTP call.
    pub timeout_ms: u64,
    /// Attempts after the first: at once after a bad answer, after a backoff (or Retry-After, at
    /// most 10 s) after 429, 529 and 5xx. A batch that has not succeeded by then falls back.
    pub max_retries: u32,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Estimated tokens (prompt and answer) per minute that Quench allows itself.
    pub tokens_per_minute: u64,
    /// Upper bound of the answer's tokens per request.
    pub max_tokens: u32,
    /// US dollars per million input and output tokens, for the cost metric.
    pub input_price_per_mtok: f64,
    pub output_price_per_mtok: f64,
    /// An answer never lowers an incident's severity below its alerts' own (label) severity:
    /// the alert's author decided it, and routing and paging follow it. `false` lets the model
    /// lower it too.
    pub severity_floor: bool,
    /// US dollars (by the prices above) the LLM may cost per UTC day; past it the local
    /// classifier answers alone until midnight. 0: no cap.
    pub max_usd_per_day: f64,
    /// The LLM is asked only about incidents the local classifier is less sure of than this
    /// (its confidence is a calibrated probability that its category is right): a storm of
    /// well-known kinds costs no tokens, kinds it does not know go to the LLM. 1: nearly every
    /// incident (a user's rule gives confidence 1; `quench eval --provider` uses 1).
    pub ask_below_confidence: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Classifications kept, by incident signature.
    pub capacity: usize,
    /// After this long a signature is classified again.
    pub ttl_s: u64,
    /// Labels whose values, with the alert names and texts (varying values masked), make an
    /// incident's signature: incidents with one signature share one classification.
    pub labels: Vec<String>,
}

/// After `failures` consecutive failed or slow calls the breaker opens: the local classifier
/// answers at once for `open_ms`, then one trial batch goes to the LLM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    pub failures: u32,
    pub open_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RedactConfig {
    /// Extra regular expressions whose matches are masked before text leaves the process.
    pub patterns: Vec<String>,
}

impl Default for ClassifyConfig {
    fn default() -> Self {
        Self {
            provider: ProviderKind::Local,
            max_batch: 20,
            max_wait_ms: 250,
            max_backlog: 10_000,
            taxonomy: Taxonomy::default(),
            local: LocalConfig::default(),
            llm: LlmConfig::default(),
            cache: CacheConfig::default(),
            breaker: BreakerConfig::default(),
            redact: RedactConfig::default(),
        }
    }
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            url: None,
            model: String::new(),
            api_key: None,
            json_mode: JsonMode::JsonSchema,
            timeout_ms: 20_000,
            max_retries: 2,
            concurrency: 4,
            tokens_per_minute: 400_000,
            max_tokens: 4_096,
            input_price_per_mtok: 0.0,
            output_price_per_mtok: 0.0,
            severity_floor: true,
            max_usd_per_day: 0.0,
            ask_below_confidence: 0.9,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { capacity: 100_000, ttl_s: 6 * 3600, labels: vec!["severity".into()] }
    }
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { failures: 3, open_ms: 30_000 }
    }
}

impl ClassifyConfig {
    /// `Err((key, message))` with the key's full path.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.max_batch == 0 {
            return Err(("classify.max_batch".into(), "must be at least 1".into()));
        }
        if self.cache.capacity == 0 {
            return Err(("classify.cache.capacity".into(), "must be at least 1".into()));
        }
        if self.breaker.failures == 0 {
            return Err(("classify.breaker.failures".into(), "must be at least 1".into()));
        }
        self.taxonomy.validate().map_err(|(key, message)| (format!("classify.taxonomy.{key}"), message))?;
        self.local.validate().map_err(|(key, message)| (format!("classify.local.{key}"), message))?;
        for (i, pattern) in self.redact.patterns.iter().enumerate() {
            regex::Regex::new(pattern)
                .map_err(|e| (format!("classify.redact.patterns[{i}]"), format!("not a regular expression: {e}")))?;
        }
        if self.provider != ProviderKind::Local {
            if self.llm.model.trim().is_empty() {
                let provider = format!("{:?}", self.provider).to_lowercase();
                return Err(("classify.llm.model".into(), format!("is required with provider `{provider}`")));
            }
            if !(0.0..=1.0).contains(&self.llm.ask_below_confidence) {
                return Err(("classify.llm.ask_below_confidence".into(), "must be between 0 and 1".into()));
            }
            if self.llm.concurrency == 0 {
                return Err(("classify.llm.concurrency".into(), "must be at least 1".into()));
            }
            if let Some(url) = &self.llm.url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(("classify.llm.url".into(), format!("`{url}` is not an http:// or https:// URL")));
                }
            }
        }
        Ok(())
    }
}
