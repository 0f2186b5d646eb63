//! The transient kinds of the worker: `worker.transient_kinds`, and the kinds learned from
//! ClickHouse's `alerts` by a background task every `worker.transient_learn_interval_s`. The
//! task never holds the worker up: a ClickHouse outage leaves the kinds as last learned (and is
//! logged), and the worker takes new kinds between two transactions.

use std::time::Duration;

use anyhow::Context;
use clickhouse::Row;
use quench_core::window::transient::{KindHistory, Transients};
use serde::Deserialize;
use tokio::{runtime::Handle, sync::watch};

use crate::config::Config;

/// History read for learning: the last week of alerts.
const HISTORY_DAYS: u32 = 7;

/// Follows what the background task learns.
pub struct TransientKinds {
    configured: Vec<String>,
    learned: Option<watch::Receiver<Vec<KindHistory>>>,
}

impl TransientKinds {
    /// Starts learning on `handle` unless `worker.transient_learn_interval_s` is 0.
    pub fn start(config: &Config, handle: &Handle) -> Self {
        let worker = &config.worker;
        let learned = (worker.transient_learn_interval_s > 0).then(|| {
            let (tx, rx) = watch::channel(Vec::new());
            let every = Duration::from_secs(worker.transient_learn_interval_s);
            let max_s = worker.transient_max_duration_s;
            let config = config.clone();
            handle.spawn(async move {
                loop {
                    match history(&config, max_s).await {
                        Ok(kinds) => {
                            tracing::info!(kinds = kinds.len(), "alert kinds' durations read for the transient pause");
                            if tx.send(kinds).is_err() {
                                return;
                            }
                        }
                        Err(e) => tracing::warn!(
                            error = format!("{e:#}"),
                            "could not learn the transient kinds; the kinds last learned stay"
                        ),
                    }
                    tokio::time::sleep(every).await;
                }
            });
            rx
        });
        Self { configured: worker.transient_kinds.clone(), learned }
    }

    /// The configured kinds, and those learned so far.
    pub fn current(&mut self) -> Transients {
        let mut transients = Transients::configured(self.configured.iter().cloned());
        if let Some(learned) = &mut self.learned {
            let kinds = transients.learn(&learned.borrow_and_update());
            if kinds > 0 {
                tracing::debug!(kinds, "transient kinds learned");
            }
        }
        transients
    }

    /// New kinds, when the background task learned some since the last call.
    pub fn changed(&mut self) -> Option<Transients> {
        let changed = self.learned.as_ref().is_some_and(|l| l.has_changed().unwrap_or(false));
        changed.then(|| self.current())
    }
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
async fn history(config: &Config, max_s: u64) -> anyhow::Result<Vec<KindHistory>> {
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
