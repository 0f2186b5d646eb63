//! Delivery to one target: its per-minute budget, then attempts with exponential backoff and
//! jitter that honour Retry-After, until the receiver accepts, refuses for good, or the attempts
//! run out. Every attempt is reported, for the `notifications` record.

use std::{collections::HashMap, time::Instant};

use quench_retry::{Backoff, TokenBucket};

use crate::{
    channel::{adapters, Adapter, Notice, Receipt, SendError},
    config::NotifyConfig,
    events::{AttemptEnded, RateLimited},
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

pub struct Deliverer {
    targets: HashMap<String, (Adapter, Option<TokenBucket>)>,
    backoff: Backoff,
    max_attempts: u32,
}

impl Deliverer {
    pub fn new(config: &NotifyConfig) -> anyhow::Result<Self> {
        let targets = adapters(config)?
            .into_iter()
            .map(|(name, (adapter, per_minute))| {
                (name, (adapter, (per_minute > 0).then(|| TokenBucket::per_minute(per_minute))))
            })
            .collect();
        Ok(Self { targets, backoff: config.backoff(), max_attempts: config.max_attempts })
    }

    /// Delivers `notice` to `target` (`channel:name`). The error is the reason for the DLQ.
    pub async fn deliver(
        &self,
        target: &str,
        notice: &Notice<'_>,
        attempts: &mut Vec<Attempt>,
    ) -> Result<Receipt, String> {
        let Some((adapter, budget)) = self.targets.get(target) else {
            return Err(format!("no target `{target}` is configured under [notify]"));
        };
        let channel = target.split(':').next().unwrap_or_default().to_string();
        for number in 1..=self.max_attempts {
            if let Some(budget) = budget {
                if budget.take(1).await {
                    RateLimited { channel: &channel }.emit();
                }
            }
            let started = Instant::now();
            let result = adapter.send(notice).await;
            let latency_ms = started.elapsed().as_millis() as u64;
            let last = number == self.max_attempts;
            let (outcome, retry) = match &result {
                Ok(_) => ("delivered", None),
                Err(SendError::Transient { retry_after, .. }) if !last => ("retrying", Some(*retry_after)),
                Err(_) => ("failed", None),
            };
            AttemptEnded { channel: &channel, outcome, elapsed: started.elapsed() }.emit();
            attempts.push(Attempt {
                number,
                outcome,
                status: match &result {
                    Ok(r) => r.status,
                    Err(e) => e.status(),
                },
                error: result.as_ref().err().map(ToString::to_string),
                latency_ms,
            });
            match (result, retry) {
                (Ok(receipt), _) => return Ok(receipt),
                (Err(e), None) => return Err(format!("{target}: {e} (attempt {number} of {})", self.max_attempts)),
                (Err(e), Some(asked)) => {
                    tracing::warn!(target, attempt = number, error = %e, "delivery failed; retrying");
                    tokio::time::sleep(self.backoff.after(number - 1, asked)).await;
                }
            }
        }
        unreachable!("the last attempt returns")
    }
}
