//! LLM classification over HTTP: one request per batch, with a per-call deadline, retries with
//! backoff that honour 429/529 and Retry-After, a concurrency limit, a tokens-per-minute budget,
//! and token and cost metrics. Text is redacted before it is put in a request.

mod anthropic;
mod openai;
pub mod prompt;

use std::{collections::HashMap, time::Duration};

use serde_json::Value;
use tokio::sync::Semaphore;

pub use anthropic::Anthropic;
pub use openai::OpenAi;
use prompt::Item;
use quench_retry::{Backoff, TokenBucket};

use crate::events::{LlmBudgetWaited, LlmOutcome, LlmRequest, LlmSpendCapped, LlmUsage};
use crate::{
    config::{LlmConfig, ProviderKind},
    redact::Redactor,
    subject::Subject,
    taxonomy::Taxonomy,
};

/// Why a call did not yield an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    /// Worth retrying: 429, 529 overloaded, 5xx, timeouts, refused connections.
    Transient { message: String, retry_after: Option<Duration> },
    /// Retrying will not help: authentication, a bad request.
    Permanent(String),
    /// The server answered, but not with the JSON asked for.
    Malformed(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Transient { message, .. } | Self::Permanent(message) | Self::Malformed(message) => {
                f.write_str(message)
            }
        }
    }
}

/// A successful call: the answer object and the tokens it cost.
pub struct Reply {
    pub answer: Value,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// What a request asks for: its system prompt, and the name and description of the answer
/// (Anthropic's forced tool, OpenAI's schema name).
pub struct Task<'a> {
    pub system: &'a str,
    pub name: &'a str,
    pub description: &'a str,
}

/// Classifying a batch of incidents.
const CLASSIFY: Task<'static> = Task {
    system: prompt::SYSTEM,
    name: prompt::ANSWER_NAME,
    description: "Records the classification of every incident in the input.",
};

/// The two wire protocols; an enum rather than a trait object, since there are exactly two.
pub enum Provider {
    Anthropic(Anthropic),
    OpenAi(OpenAi),
}

impl Provider {
    async fn call(&self, task: &Task<'_>, user: &str, schema: &Value) -> Result<Reply, CallError> {
        match self {
            Self::Anthropic(p) => p.call(task, user, schema).await,
            Self::OpenAi(p) => p.call(task, user, schema).await,
        }
    }

    /// Whether the schema may carry item counts and lengths (see [`prompt::schema`]).
    fn bounds(&self) -> bool {
        match self {
            Self::Anthropic(_) => true,
            Self::OpenAi(p) => p.accepts_bounds(),
        }
    }
}

pub struct Llm {
    provider: Provider,
    config: LlmConfig,
    taxonomy: Taxonomy,
    redactor: Redactor,
    slots: Semaphore,
    budget: TokenBucket,
    /// What today's requests cost: (UTC day number, US dollars).
    spent: std::sync::Mutex<(i64, f64)>,
    /// `provider/model`, recorded on every incident it classifies.
    label: String,
    kind: &'static str,
}

impl Llm {
    /// `taxonomy` must have its categories filled.
    pub fn new(kind: ProviderKind, config: &LlmConfig, taxonomy: Taxonomy, redactor: Redactor) -> anyhow::Result<Self> {
        // No redirects: one would take the API key's request to a host nobody configured.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_millis(config.timeout_ms))
            .build()?;
        let (provider, name) = match kind {
            ProviderKind::Anthropic => (Provider::Anthropic(Anthropic::new(client, config)?), "anthropic"),
            ProviderKind::Openai => (Provider::OpenAi(OpenAi::new(client, config)), "openai"),
            ProviderKind::Local => anyhow::bail!("the local classifier is not an LLM provider"),
        };
        Ok(Self {
            provider,
            label: format!("{name}/{}", config.model),
            kind: name,
            config: config.clone(),
            taxonomy,
            redactor,
            slots: Semaphore::new(config.concurrency.max(1)),
            budget: TokenBucket::per_minute(config.tokens_per_minute),
            spent: std::sync::Mutex::new((0, 0.0)),
        })
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Classifies a batch in one request (plus retries). Returns the items it got, by id: some
    /// may be missing when the model left them out or answered them invalidly even after a retry
    /// for just those. `Err` when no attempt produced an answer.
    pub async fn classify(&self, subjects: &[Subject]) -> Result<HashMap<String, Item>, CallError> {
        self.within_spend_cap()?;
        let _slot = self.slots.acquire().await.expect("semaphore never closed");
        let mut items: HashMap<String, Item> = HashMap::new();
        let mut pending: Vec<Subject> = subjects.to_vec();
        let mut last_error = None;
        for attempt in 0..=self.config.max_retries {
            let user = prompt::user_message(&self.taxonomy, &pending, &self.redactor);
            let ids: Vec<&str> = pending.iter().map(|s| s.id.as_str()).collect();
            let schema = prompt::schema(&self.taxonomy, &ids, self.provider.bounds());
            // About four characters a token; the answer is bounded by max_tokens.
            let estimate = (prompt::SYSTEM.len() + user.len()) as u64 / 4 + u64::from(self.config.max_tokens) / 4;
            if self.budget.take(estimate).await {
                LlmBudgetWaited.emit();
            }
            let started = std::time::Instant::now();
            let result = self.provider.call(&CLASSIFY, &user, &schema).await;
            LlmRequest { provider: self.kind, elapsed: started.elapsed() }.emit();
            // A bad or partial answer is asked again at once; only the server's trouble waits.
            let delay = match result {
                Ok(reply) => {
                    self.record_usage(&reply);
                    match prompt::parse(&reply.answer, &self.taxonomy, &pending) {
                        Ok(found) => {
                            self.count("ok");
                            pending.retain(|s| !found.contains_key(&s.id));
                            items.extend(found);
                            if pending.is_empty() {
                                return Ok(items);
                            }
                            let missing = format!("{} incidents missing from the answer", pending.len());
                            last_error = Some(CallError::Malformed(missing));
                        }
                        Err(e) => {
                            self.count("malformed");
                            last_error = Some(CallError::Malformed(e));
                        }
                    }
                    Duration::ZERO
                }
                Err(CallError::Permanent(message)) => {
                    self.count("rejected");
                    tracing::error!(provider = self.kind, error = %message, "LLM request rejected");
                    return if items.is_empty() { Err(CallError::Permanent(message)) } else { Ok(items) };
                }
                Err(e) => {
                    self.count(if matches!(e, CallError::Malformed(_)) { "malformed" } else { "failed" });
                    let delay = match &e {
                        CallError::Transient { retry_after, .. } => BACKOFF.after(attempt, *retry_after),
                        _ => Duration::ZERO,
                    };
                    tracing::warn!(provider = self.kind, attempt, error = %e, "LLM request failed");
                    last_error = Some(e);
                    delay
                }
            };
            if attempt < self.config.max_retries {
                tokio::time::sleep(delay).await;
            }
        }
        if items.is_empty() {
            Err(last_error.unwrap_or_else(|| CallError::Malformed("no answer".into())))
        } else {
            Ok(items)
        }
    }

    /// One answer to another task than classification, in `schema`'s shape: the same slots,
    /// budget, retries of the server's trouble and metrics as a classification.
    pub async fn complete(&self, task: &Task<'_>, user: &str, schema: &Value) -> Result<Value, CallError> {
        self.within_spend_cap()?;
        let _slot = self.slots.acquire().await.expect("semaphore never closed");
        let estimate = (task.system.len() + user.len()) as u64 / 4 + u64::from(self.config.max_tokens) / 4;
        if self.budget.take(estimate).await {
            LlmBudgetWaited.emit();
        }
        let mut attempt = 0;
        loop {
            let started = std::time::Instant::now();
            let result = self.provider.call(task, user, schema).await;
            LlmRequest { provider: self.kind, elapsed: started.elapsed() }.emit();
            match result {
                Ok(reply) => {
                    self.record_usage(&reply);
                    self.count("ok");
                    return Ok(reply.answer);
                }
                Err(CallError::Transient { message, retry_after }) if attempt < self.config.max_retries => {
                    self.count("failed");
                    tracing::warn!(provider = self.kind, attempt, error = %message, "LLM request failed");
                    tokio::time::sleep(BACKOFF.after(attempt, retry_after)).await;
                    attempt += 1;
                }
                Err(e) => {
                    self.count(if matches!(e, CallError::Malformed(_)) { "malformed" } else { "failed" });
                    return Err(e);
                }
            }
        }
    }

    fn count(&self, outcome: &'static str) {
        LlmOutcome { provider: self.kind, outcome }.emit();
    }

    /// Refuses a request once today's spend reached `max_usd_per_day` (the caller falls back to
    /// the local classifier, as for any refused request).
    fn within_spend_cap(&self) -> Result<(), CallError> {
        let cap = self.config.max_usd_per_day;
        let (day, spent) = *self.spent.lock().expect("spend lock");
        if cap > 0.0 && day == today() && spent >= cap {
            LlmSpendCapped.emit();
            return Err(CallError::Permanent(format!(
                "today's LLM spend reached classify.llm.max_usd_per_day ({cap} USD); the local classifier answers until midnight UTC"
            )));
        }
        Ok(())
    }

    fn record_usage(&self, reply: &Reply) {
        let cost = reply.input_tokens as f64 * self.config.input_price_per_mtok / 1e6
            + reply.output_tokens as f64 * self.config.output_price_per_mtok / 1e6;
        let mut spent = self.spent.lock().expect("spend lock");
        let today = today();
        *spent = if spent.0 == today { (today, spent.1 + cost) } else { (today, cost) };
        drop(spent);
        LlmUsage { provider: self.kind, input_tokens: reply.input_tokens, output_tokens: reply.output_tokens, cost }
            .emit();
    }
}

/// Days since the epoch, UTC: the spend cap's day.
fn today() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_secs() / 86_400).unwrap_or(i64::MAX)
}

/// The longest wait between two attempts, whatever Retry-After says.
pub const MAX_WAIT: Duration = Duration::from_secs(10);

/// 0.5 s, 1 s, 2 s... capped at [`MAX_WAIT`].
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(500), MAX_WAIT);

/// Maps an HTTP answer that is not a success to a [`CallError`].
fn status_error(status: reqwest::StatusCode, retry_after: Option<Duration>, body: &str) -> CallError {
    let message = format!("HTTP {status}: {}", body.chars().take(300).collect::<String>());
    match status.as_u16() {
        408 | 409 | 425 | 429 | 500..=599 => CallError::Transient { message, retry_after },
        _ => CallError::Permanent(message),
    }
}

/// Sends `request` and returns the JSON body of a 2xx answer.
async fn send(request: reqwest::RequestBuilder) -> Result<Value, CallError> {
    let response = request.send().await.map_err(|e| CallError::Transient {
        message: if e.is_timeout() {
            "request timed out".into()
        } else {
            format!("request failed: {}", e.without_url())
        },
        retry_after: None,
    })?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(quench_retry::retry_after);
    let body = response.text().await.map_err(|e| CallError::Transient {
        message: format!("reading the answer failed: {}", e.without_url()),
        retry_after: None,
    })?;
    if !status.is_success() {
        return Err(status_error(status, retry_after, &body));
    }
    serde_json::from_str(&body).map_err(|e| CallError::Malformed(format!("answer body is not JSON: {e}")))
}
