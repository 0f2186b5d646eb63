use std::{sync::Mutex, time::Duration};

// Tokio's clock, so that tests with paused time see refills.
use tokio::time::Instant;

/// A per-minute budget (LLM tokens, notifications to one receiver): callers wait until it holds
/// what they take.
pub struct TokenBucket {
    capacity: f64,
    per_second: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    pub fn per_minute(tokens: u64) -> Self {
        let capacity = tokens.max(1) as f64;
        Self { capacity, per_second: capacity / 60.0, state: Mutex::new((capacity, Instant::now())) }
    }

    /// Takes `tokens` (at most the capacity), waiting until the bucket holds them; says whether
    /// it had to wait, for callers' metrics.
    pub async fn take(&self, tokens: u64) -> bool {
        let mut waited = false;
        let wanted = (tokens as f64).min(self.capacity);
        loop {
            let wait = {
                let mut state = self.state.lock().expect("token bucket");
                let (level, at) = *state;
                let now = Instant::now();
                let level = (level + now.duration_since(at).as_secs_f64() * self.per_second).min(self.capacity);
                if level >= wanted {
                    *state = (level - wanted, now);
                    return waited;
                }
                *state = (level, now);
                Duration::from_secs_f64((wanted - level) / self.per_second)
            };
            waited = true;
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_spent_budget_makes_callers_wait_for_refill() {
        let bucket = TokenBucket::per_minute(600);
        let start = tokio::time::Instant::now();
        assert!(!bucket.take(600).await);
        assert!(start.elapsed() < Duration::from_millis(1));
        // 10 tokens a second: 300 more take about 30 s of (virtual) time.
        assert!(bucket.take(300).await);
        assert!(start.elapsed() >= Duration::from_secs(29), "{:?}", start.elapsed());
    }
}
