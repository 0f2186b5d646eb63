//! One delivery attempt to one target, and what comes of it: delivered, another attempt after a
//! backoff (exponential, with jitter, honouring Retry-After), or failed for good once the receiver
//! refuses or the attempts run out. Waiting is the lanes' business (`crate::lanes`): nothing here
//! sleeps, so a slow receiver holds up only its own lane.

use std::{collections::HashMap, time::Duration, time::Instant};

use quench_retry::Backoff;

use crate::{
    channel::{adapters, Adapter, Notice, Receipt, SendError},
    config::NotifyConfig,
    events::AttemptEnded,
};

/// One attempt, as the notifier records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub number: u32,
    /// `delivered`, `retrying` or `failed`.
    pub outcome: &'static str,
    /// HTTP or SMTP status; 0 when there was no answer.
    pub status: u16,
    pub error: Option<String>,
    pub latency_ms: u64,
}

/// What an attempt leaves to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered(Receipt),
    /// Try again after this long.
    Retry(Duration),
    /// Failed for good: the reason for the DLQ.
    Failed(String),
}

pub struct Deliverer {
    targets: HashMap<String, (Adapter, u64)>,
    backoff: Backoff,
    max_attempts: u32,
}

impl Deliverer {
    pub fn new(config: &NotifyConfig) -> anyhow::Result<Self> {
        Ok(Self { targets: adapters(config)?, backoff: config.backoff(), max_attempts: config.max_attempts })
    }

    /// Each target's deliveries a minute (0: unlimited), for its lane's budget.
    pub fn budgets(&self) -> HashMap<String, u64> {
        self.targets.iter().map(|(name, (_, per_minute))| (name.clone(), *per_minute)).collect()
    }

    /// Makes attempt `number` (from 1) to deliver `notice` to `target` (`channel:name`).
    pub async fn attempt(&self, target: &str, notice: &Notice<'_>, number: u32) -> (Attempt, Outcome) {
        let Some((adapter, _)) = self.targets.get(target) else {
            let reason = format!("no target `{target}` is configured under [notify]");
            let attempt = Attempt { number, outcome: "failed", status: 0, error: Some(reason.clone()), latency_ms: 0 };
            return (attempt, Outcome::Failed(reason));
        };
        let channel = target.split(':').next().unwrap_or_default();
        let started = Instant::now();
        let result = adapter.send(notice).await;
        let latency_ms = started.elapsed().as_millis() as u64;
        let last = number >= self.max_attempts;
        let status = match &result {
            Ok(r) => r.status,
            Err(e) => e.status(),
        };
        let error = result.as_ref().err().map(ToString::to_string);
        let (outcome, next) = match result {
            Ok(receipt) => ("delivered", Outcome::Delivered(receipt)),
            Err(SendError::Transient { retry_after, message, .. }) if !last => {
                tracing::warn!(target, attempt = number, error = %message, "delivery failed; retrying");
                ("retrying", Outcome::Retry(self.backoff.after(number - 1, retry_after)))
            }
            Err(e) => ("failed", Outcome::Failed(format!("{target}: {e} (attempt {number} of {})", self.max_attempts))),
        };
        AttemptEnded { channel, outcome, elapsed: started.elapsed() }.emit();
        (Attempt { number, outcome, status, error, latency_ms }, next)
    }
}
