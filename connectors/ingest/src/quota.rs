//! Per-tenant admission: each tenant's alerts per second, with a burst, so that one tenant's storm
//! (or a misconfigured sender) cannot take the pipeline's capacity from the others. A request
//! over its tenant's budget is refused whole with 429 and how long to wait; nothing of it is
//! published, so a retry later is safe.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

/// `[ingest.quotas]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaConfig {
    /// Alerts per second each tenant may send; 0: no quota.
    pub alerts_per_second: u64,
    /// Tenants with another rate than `alerts_per_second` (0: none for that tenant).
    pub tenants: BTreeMap<String, u64>,
    /// Seconds of the rate a tenant may send at once after a quiet spell.
    pub burst_seconds: u64,
}

impl QuotaConfig {
    fn rate(&self, tenant: &str) -> u64 {
        self.tenants.get(tenant).copied().unwrap_or(self.alerts_per_second)
    }

    pub fn validate(&self) -> Result<(), (String, String)> {
        if (self.alerts_per_second > 0 || self.tenants.values().any(|r| *r > 0)) && self.burst_seconds == 0 {
            return Err(("ingest.quotas.burst_seconds".into(), "must be at least 1 when a rate is set".into()));
        }
        Ok(())
    }
}

/// The tenants' token buckets.
pub struct Quotas {
    config: QuotaConfig,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Quotas {
    pub fn new(config: QuotaConfig) -> Self {
        Self { config, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes `alerts` from `tenant`'s budget at `now`, or says how long until they would fit.
    pub fn take(&self, tenant: &str, alerts: usize, now: Instant) -> Result<(), Duration> {
        let rate = self.config.rate(tenant);
        if rate == 0 {
            return Ok(());
        }
        let (rate, capacity) = (rate as f64, rate.saturating_mul(self.config.burst_seconds) as f64);
        let mut buckets = self.buckets.lock().expect("quota lock");
        let bucket = buckets.entry(tenant.to_string()).or_insert(Bucket { tokens: capacity, at: now });
        bucket.tokens = (bucket.tokens + now.saturating_duration_since(bucket.at).as_secs_f64() * rate).min(capacity);
        bucket.at = now;
        let wanted = alerts as f64;
        if wanted <= bucket.tokens {
            bucket.tokens -= wanted;
            return Ok(());
        }
        // A request larger than the whole burst can never fit: wait a full burst, then it is
        // still refused, and the sender learns to split it from the message.
        let missing = (wanted.min(capacity) - bucket.tokens).max(0.0);
        Err(Duration::from_secs_f64(missing / rate).max(Duration::from_secs(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tenant_has_its_own_budget_refilled_at_its_rate() {
        let config = QuotaConfig {
            alerts_per_second: 10,
            tenants: [("big".to_string(), 100), ("free".to_string(), 0)].into(),
            burst_seconds: 2,
        };
        let quotas = Quotas::new(config);
        let t0 = Instant::now();
        assert_eq!(quotas.take("a", 20, t0), Ok(()), "a burst of two seconds");
        let wait = quotas.take("a", 5, t0).unwrap_err();
        assert!(wait >= Duration::from_secs(1), "{wait:?}");
        assert_eq!(quotas.take("b", 20, t0), Ok(()), "another tenant's budget is its own");
        assert_eq!(quotas.take("a", 5, t0 + Duration::from_millis(500)), Ok(()), "refilled at 10 a second");
        assert_eq!(quotas.take("big", 150, t0), Ok(()));
        assert_eq!(quotas.take("free", 1_000_000, t0), Ok(()), "0: no quota");
        assert!(quotas.take("a", 1_000, t0 + Duration::from_secs(60)).is_err(), "larger than the burst");
    }
}
