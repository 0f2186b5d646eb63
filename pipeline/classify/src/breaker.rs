//! The circuit breaker in front of the LLM: after enough consecutive failures (errors or calls
//! past their deadline) it opens, and the local classifier answers at once; after a cool-down one
//! trial batch is let through, and its success closes the breaker again.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A trial call is in flight; others are not let through until it ends.
    Trial,
}

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cool_down: Duration,
    state: State,
}

impl Breaker {
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        Self { threshold: threshold.max(1), cool_down, state: State::Closed { failures: 0 } }
    }

    /// Whether a call may go to the LLM now.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.state {
            State::Closed { .. } => true,
            State::Open { until } if now >= until => {
                self.state = State::Trial;
                true
            }
            State::Open { .. } | State::Trial => false,
        }
    }

    /// Whether the cool-down is over and a trial call would be let through.
    pub fn trial_due(&self, now: Instant) -> bool {
        matches!(self.state, State::Open { until } if now >= until)
    }

    /// Records a successful call; true when this closed an open breaker (the LLM recovered).
    pub fn success(&mut self) -> bool {
        let recovered = !matches!(self.state, State::Closed { .. });
        self.state = State::Closed { failures: 0 };
        recovered
    }

    pub fn failure(&mut self, now: Instant) {
        self.state = match self.state {
            State::Closed { failures } if failures + 1 < self.threshold => State::Closed { failures: failures + 1 },
            _ => State::Open { until: now + self.cool_down },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_closes_after_a_successful_trial() {
        let mut breaker = Breaker::new(2, Duration::from_secs(30));
        let t0 = Instant::now();
        breaker.failure(t0);
        assert!(breaker.allow(t0), "one failure is not enough");
        breaker.failure(t0);
        assert!(!breaker.allow(t0 + Duration::from_secs(29)), "open during the cool-down");
        assert!(!breaker.trial_due(t0 + Duration::from_secs(29)) && breaker.trial_due(t0 + Duration::from_secs(30)));
        assert!(breaker.allow(t0 + Duration::from_secs(30)), "one trial after it");
        assert!(!breaker.allow(t0 + Duration::from_secs(30)), "only one trial at a time");
        assert!(breaker.success(), "a successful trial reports the recovery");
        assert!(breaker.allow(t0 + Duration::from_secs(31)) && breaker.allow(t0 + Duration::from_secs(31)));
        assert!(!breaker.success(), "a success while closed is no recovery");
    }

    #[test]
    fn a_failed_trial_opens_again() {
        let mut breaker = Breaker::new(1, Duration::from_secs(10));
        let t0 = Instant::now();
        breaker.failure(t0);
        assert!(breaker.allow(t0 + Duration::from_secs(10)));
        breaker.failure(t0 + Duration::from_secs(10));
        assert!(!breaker.allow(t0 + Duration::from_secs(15)));
        assert!(breaker.allow(t0 + Duration::from_secs(20)));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let mut breaker = Breaker::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        breaker.failure(t0);
        breaker.success();
        breaker.failure(t0);
        assert!(breaker.allow(t0));
    }
}
