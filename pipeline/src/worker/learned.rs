//! What the worker learns from ClickHouse's `alerts` in the background: the transient kinds
//! (`worker.transient_kinds`, and kinds whose episodes mostly resolved within
//! `worker.transient_max_duration_s`) and, with `[correlate]` on, which kinds go together. Each
//! is learned again every interval; the worker takes what is new between two transactions. A
//! ClickHouse outage leaves what was last learned in force (and is logged): it never holds the
//! worker up.

use std::{future::Future, time::Duration};

use anyhow::Context;
use clickhouse::Row;
use quench_core::{
    correlate::Associations,
    window::transient::{KindHistory, Transients},
};
use serde::Deserialize;
use tokio::{runtime::Handle, sync::watch};

use crate::config::Config;

/// History read for the transient kinds: the last week of alerts.
const HISTORY_DAYS: u32 = 7;

/// Follows what the background tasks learn.
pub struct Learned {
    configured: Vec<String>,
    durations: Option<watch::Receiver<Option<Vec<KindHistory>>>>,
    associations: Option<watch::Receiver<Option<Associations>>>,
}

impl Learned {
    /// Starts the learners on `handle`: the transient kinds unless
    /// `worker.transient_learn_interval_s` is 0, the associations when `[correlate]` is on.
    pub fn start(config: &Config, handle: &Handle) -> Self {
        let worker = &config.worker;
        let durations = (worker.transient_learn_interval_s > 0).then(|| {
            let (config, max_s) = (config.clone(), worker.transient_max_duration_s);
            periodically(handle, worker.transient_learn_interval_s, move || {
                let config = config.clone();
                async move {
                    let kinds = durations(&config, max_s).await?;
                    tracing::info!(kinds = kinds.len(), "alert kinds' durations read for the transient pause");
                    Ok(kinds)
                }
            })
        });
        let associations = config.correlate.enabled.then(|| {
            let config = config.clone();
            periodically(handle, config.correlate.learn_interval_s, move || {
                let config = config.clone();
                async move {
                    let onsets = onsets(&config).await?;
                    let associations = Associations::learn(&onsets, &config.correlate.settings());
                    tracing::info!(
                        onsets = onsets.len(),
                        pairs = associations.len(),
                        "learned which alert kinds go together, for correlation"
                    );
                    Ok(associations)
                }
            })
        });
        Self { configured: worker.transient_kinds.clone(), durations, associations }
    }

    /// Waits, up to `limit`, for each learner's first answer, so that the first alerts are
    /// decided with what history says; ClickHouse being slow or down only delays the start.
    pub fn first(&mut self, handle: &Handle, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        let answered = first_answer(handle, self.durations.as_mut(), deadline)
            && first_answer(handle, self.associations.as_mut(), deadline);
        if !answered {
            tracing::warn!(waited_s = limit.as_secs(), "nothing learned from ClickHouse yet; starting without it");
        }
    }

    /// The configured transient kinds, and those learned so far.
    pub fn transients(&mut self) -> Transients {
        let mut transients = Transients::configured(self.configured.iter().cloned());
        if let Some(Some(history)) = self.durations.as_mut().map(|d| d.borrow_and_update().clone()) {
            transients.learn(&history);
        }
        transients
    }

    /// New transient kinds, when some were learned since the last call.
    pub fn transients_changed(&mut self) -> Option<Transients> {
        changed(&self.durations).then(|| self.transients())
    }

    /// The kinds that go together as last learned (none before the first learning).
    pub fn associations(&mut self) -> Associations {
        self.associations.as_mut().and_then(|a| a.borrow_and_update().clone()).unwrap_or_default()
    }

    /// New associations, when some were learned since the last call.
    pub fn associations_changed(&mut self) -> Option<Associations> {
        changed(&self.associations).then(|| self.associations())
    }
}

/// Whether `receiver` (if any) has an answer by `deadline`.
fn first_answer<T>(
    handle: &Handle,
    receiver: Option<&mut watch::Receiver<Option<T>>>,
    deadline: tokio::time::Instant,
) -> bool {
    receiver.is_none_or(|r| handle.block_on(tokio::time::timeout_at(deadline, r.wait_for(Option::is_some))).is_ok())
}

fn changed<T>(receiver: &Option<watch::Receiver<T>>) -> bool {
    receiver.as_ref().is_some_and(|r| r.has_changed().unwrap_or(false))
}

/// Runs `learn` now and then every `every_s` seconds on `handle`, publishing each success (and
/// a first failure as nothing learned).
fn periodically<T, F, Fut>(handle: &Handle, every_s: u64, learn: F) -> watch::Receiver<Option<T>>
where
    T: Default + Send + Sync + 'static,
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<T>> + Send,
{
    let (tx, rx) = watch::channel(None);
    // After a failure, try again within a minute rather than a whole interval.
    let retry_s = every_s.min(60);
    handle.spawn(async move {
        loop {
            let wait = match learn().await {
                Ok(learned) => {
                    if tx.send(Some(learned)).is_err() {
                        return;
                    }
                    every_s
                }
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "could not learn from ClickHouse; what was learned last stays"
                    );
                    // A first failure answers with nothing learned, so that no one waits for it.
                    if tx.borrow().is_none() && tx.send(Some(T::default())).is_err() {
                        return;
                    }
                    retry_s
                }
            };
            tokio::time::sleep(Duration::from_secs(wait)).await;
        }
    });
    rx
}

#[derive(Row, Deserialize)]
struct KindRow {
    tenant: String,
    alertname: String,
    episodes: u64,
    short: u64,
}

/// Per tenant and alert name, the episodes (fingerprint and start) of the last week that started
/// at least `max_s` ago, and how many of them resolved within `max_s`: one still firing, or
/// ended by a timeout rather than its sender, does not count as short. Only records whose
/// sender gave the start count (ingest stamps a missing start with the receive time, which
/// would make every re-send an episode of its own).
async fn durations(config: &Config, max_s: u64) -> anyhow::Result<Vec<KindHistory>> {
    let sql = format!(
        "SELECT tenant, alertname, uniqExact(fingerprint, starts_at) AS episodes, \
         uniqExactIf((fingerprint, starts_at), status = 'resolved' AND ends_at IS NOT NULL \
           AND dateDiff('millisecond', starts_at, assumeNotNull(ends_at)) <= {max_ms}) AS short \
         FROM alerts WHERE received_at >= now() - toIntervalDay({HISTORY_DAYS}) \
           AND starts_at <= now() - toIntervalSecond({max_s}) AND starts_at < received_at \
         GROUP BY tenant, alertname",
        max_ms = max_s.saturating_mul(1000),
    );
    let rows: Vec<KindRow> = crate::clickhouse::client(&config.clickhouse)
        .query(&sql)
        .fetch_all()
        .await
        .context("reading the alert history from ClickHouse")?;
    Ok(rows
        .into_iter()
        .map(|r| KindHistory { tenant: r.tenant, alertname: r.alertname, episodes: r.episodes, short: r.short })
        .collect())
}

#[derive(Row, Deserialize)]
struct OnsetRow {
    tenant: String,
    alertname: String,
    at: i64,
}

/// Every firing episode's start (tenant, alert name, ms) over `correlate.history_hours`, from
/// senders that give the start (see [`durations`]).
async fn onsets(config: &Config) -> anyhow::Result<Vec<(String, String, i64)>> {
    let sql = format!(
        "SELECT tenant, alertname, toUnixTimestamp64Milli(starts_at) AS at FROM alerts \
         WHERE status = 'firing' AND received_at >= now() - toIntervalHour({}) AND starts_at < received_at \
         GROUP BY tenant, alertname, fingerprint, at",
        config.correlate.history_hours
    );
    let rows: Vec<OnsetRow> = crate::clickhouse::client(&config.clickhouse)
        .query(&sql)
        .fetch_all()
        .await
        .context("reading the alert history from ClickHouse")?;
    Ok(rows.into_iter().map(|r| (r.tenant, r.alertname, r.at)).collect())
}
