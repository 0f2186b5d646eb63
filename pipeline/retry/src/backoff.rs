use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Exponential backoff: `initial`, twice that, four times... capped at `max`, plus up to 25%
/// jitter so that clients that failed together do not retry in step.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max }
    }

    /// The wait before attempt `attempt + 1`, `attempt` counting from 0.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self.initial.saturating_mul(1 << attempt.min(16)).min(self.max);
        // Sub-second clock noise is jitter enough, and spares a random number generator.
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        base + base.mul_f64(f64::from(nanos % 1000) / 4000.0)
    }

    /// The wait after a failure: what the server asked for if it did (at most `max`), else the
    /// backoff for `attempt`.
    pub fn after(&self, attempt: u32, asked: Option<Duration>) -> Duration {
        asked.map_or_else(|| self.delay(attempt), |asked| asked.min(self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_with_bounded_jitter() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        for (attempt, base) in [(0, 100), (1, 200), (2, 400), (3, 800), (4, 1000), (30, 1000)] {
            let delay = backoff.delay(attempt);
            let base = Duration::from_millis(base);
            assert!(delay >= base && delay <= base.mul_f64(1.25), "attempt {attempt}: {delay:?}");
        }
    }

    #[test]
    fn a_servers_request_wins_but_is_capped() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        assert_eq!(backoff.after(0, Some(Duration::from_secs(3))), Duration::from_secs(3));
        assert_eq!(backoff.after(0, Some(Duration::from_secs(300))), Duration::from_secs(10));
    }
}
