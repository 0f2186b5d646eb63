//! What classification reports: one struct per observable event, whose `emit()` updates the
//! metric (and writes the log line where there is one), so that every metric name is written
//! once, here, and listed in [`METRICS`] (checked against the README by the pipeline's tests).

use std::time::Duration;

/// Every metric this crate emits.
pub const METRICS: &[&str] = &[
    "quench_classifications_total",
    "quench_llm_spend_capped_total",
    "quench_llm_requests_total",
    "quench_llm_request_seconds",
    "quench_llm_tokens_total",
    "quench_llm_cost_microdollars_total",
    "quench_llm_budget_waits_total",
    "quench_llm_short_circuited_total",
    "quench_llm_queued",
    "quench_llm_parked",
    "quench_llm_backlog_full_total",
    "quench_embeddings_computed_total",
    "quench_embedding_cache_hits_total",
];

/// Who answered some classifications.
#[derive(Debug, Clone, Copy)]
pub enum AnsweredBy {
    Cache,
    Local,
    Llm,
    /// The local classifier, in place of an LLM that gave no answer.
    Fallback,
}

/// Classifications answered, by whom.
pub struct Classified {
    pub by: AnsweredBy,
    pub count: usize,
}

impl Classified {
    pub fn emit(self) {
        let by = match self.by {
            AnsweredBy::Cache => "cache",
            AnsweredBy::Local => "local",
            AnsweredBy::Llm => "llm",
            AnsweredBy::Fallback => "fallback",
        };
        metrics::counter!("quench_classifications_total", "by" => by).increment(self.count as u64);
    }
}

/// The incidents waiting for the LLM: queued (or in flight), and parked while it is down.
pub struct LlmQueue {
    pub queued: usize,
    /// `None` when only the queue changed.
    pub parked: Option<usize>,
}

impl LlmQueue {
    pub fn emit(self) {
        metrics::gauge!("quench_llm_queued").set(self.queued as f64);
        if let Some(parked) = self.parked {
            metrics::gauge!("quench_llm_parked").set(parked as f64);
        }
    }
}

/// The LLM backlog was full: an incident kept the local answer instead of waiting for the LLM.
pub struct LlmBacklogFull {
    pub incidents: usize,
    pub bound: usize,
}

impl LlmBacklogFull {
    pub fn emit(self) {
        metrics::counter!("quench_llm_backlog_full_total").increment(self.incidents as u64);
        tracing::warn!(
            incidents = self.incidents,
            bound = self.bound,
            "LLM backlog full; the local classifier's answers stand"
        );
    }
}

/// The circuit breaker kept a batch from the LLM.
pub struct LlmShortCircuited;

impl LlmShortCircuited {
    pub fn emit(self) {
        metrics::counter!("quench_llm_short_circuited_total").increment(1);
    }
}

/// A request waited for the tokens-per-minute budget.
pub struct LlmBudgetWaited;

impl LlmBudgetWaited {
    pub fn emit(self) {
        metrics::counter!("quench_llm_budget_waits_total").increment(1);
    }
}

/// A request was not sent: today's spend reached `classify.llm.max_usd_per_day`.
pub struct LlmSpendCapped;

impl LlmSpendCapped {
    pub fn emit(self) {
        metrics::counter!("quench_llm_spend_capped_total").increment(1);
    }
}

/// One HTTP call to an LLM provider ended.
pub struct LlmRequest {
    pub provider: &'static str,
    pub elapsed: Duration,
}

impl LlmRequest {
    pub fn emit(self) {
        metrics::histogram!("quench_llm_request_seconds", "provider" => self.provider)
            .record(self.elapsed.as_secs_f64());
    }
}

/// How a batch's request to the LLM ended (`ok`, `retried`, `failed`...).
pub struct LlmOutcome {
    pub provider: &'static str,
    pub outcome: &'static str,
}

impl LlmOutcome {
    pub fn emit(self) {
        metrics::counter!("quench_llm_requests_total", "provider" => self.provider, "outcome" => self.outcome)
            .increment(1);
    }
}

/// Tokens an LLM answer used, and what they cost.
pub struct LlmUsage {
    pub provider: &'static str,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// US dollars.
    pub cost: f64,
}

impl LlmUsage {
    pub fn emit(self) {
        let provider = self.provider;
        metrics::counter!("quench_llm_tokens_total", "provider" => provider, "direction" => "input")
            .increment(self.input_tokens);
        metrics::counter!("quench_llm_tokens_total", "provider" => provider, "direction" => "output")
            .increment(self.output_tokens);
        // Counters are integers: the cost is kept in micro-dollars.
        metrics::counter!("quench_llm_cost_microdollars_total", "provider" => provider)
            .increment((self.cost * 1e6) as u64);
    }
}

/// Texts embedded: found in the cache, or computed by the model.
pub struct Embedded {
    pub cached: usize,
    pub computed: usize,
}

impl Embedded {
    pub fn emit(self) {
        metrics::counter!("quench_embedding_cache_hits_total").increment(self.cached as u64);
        metrics::counter!("quench_embeddings_computed_total").increment(self.computed as u64);
    }
}
