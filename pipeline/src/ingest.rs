//! `quench ingest`: the webhook connectors of `quench-ingest` wired to this process's Kafka
//! producer, schema registry and route rules, with Alertmanager's API v2 (silences, alerts) and
//! `/metrics`, `/healthz` and `/readyz` beside them on `ingest.listen`.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, RwLock,
    },
    time::Duration,
};

use quench_ingest::{KeyFn, Publisher};
use quench_schemas::{Alert, Encoder};

use crate::{
    alertmanager_api::{self, Api},
    config::Config,
    http,
    kafka::client_config,
    preflight::registry_client,
    reload::RulesSource,
};
use quench_core::rules::RouteTree;

pub async fn run(config: &Config, rules: (RulesSource, RouteTree), shutdown: Arc<AtomicBool>) -> anyhow::Result<()> {
    if config.ingest.sources.is_empty() {
        anyhow::bail!(
            "invalid configuration: key `ingest.sources`: no source is configured, so every request would \
             get 404; add one, e.g. [ingest.sources.alertmanager] with token = \"...\" (README, \"Ingest\")"
        );
    }
    let encoder = Encoder::<Alert>::register(&registry_client(&config.registry)?, &config.topics.alerts).await?;
    let rules = follow_rules(rules);
    let current = rules.clone();
    let correlate = config.correlate.clone();
    let partition_keys: KeyFn =
        Arc::new(move |alert: &Alert| correlate.partition_key(&current.read().expect("rules lock"), alert));
    let publisher = Arc::new(Publisher::new(
        client_config(&config.kafka, "ingest"),
        encoder,
        config.topics.alerts.clone(),
        partition_keys,
        config.ingest.ack_timeout(),
    )?);
    let (readiness, operations) = http::public(&config.http).await?;
    let api = Api::start(config, rules, shutdown.clone())?;
    if config.ingest.api_tokens.is_empty() {
        tracing::warn!("ingest.api_tokens is empty: the Alertmanager API refuses to write silences");
    }
    let app = quench_ingest::router(config.ingest.clone(), publisher.clone())
        .merge(alertmanager_api::router(Arc::new(api)))
        .merge(operations);
    let listener = http::bind(&config.ingest.listen, "ingest.listen").await?;
    tracing::info!(
        address = %config.ingest.listen,
        sources = ?config.ingest.sources.keys().collect::<Vec<_>>(),
        topic = %config.topics.alerts,
        "accepting alerts"
    );
    readiness.ready();
    let fatal = tokio::spawn(watch_producer(publisher.clone(), readiness, shutdown.clone()));
    let stopped = async move {
        while !shutdown.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    crate::serve::serve(listener, app, &config.http.limits, stopped).await?;
    if let Some(error) = fatal.await? {
        anyhow::bail!("the Kafka producer failed for good ({error}); exiting for the supervisor to restart ingest");
    }
    // Requests in flight were answered only after their acks, so nothing is left but stragglers
    // of requests that already got 503.
    publisher.flush(config.ingest.ack_timeout())?;
    tracing::info!("stopped");
    Ok(())
}

/// Until shutdown, watches the producer for a fatal error, after which every request would get
/// 503: then `/readyz` says so (a load balancer stops sending traffic here) and, after a grace
/// period in which probes can see it, the process stops; it returns the error.
async fn watch_producer(
    publisher: Arc<Publisher>,
    readiness: Arc<http::Readiness>,
    shutdown: Arc<AtomicBool>,
) -> Option<String> {
    #[cfg(debug_assertions)]
    if let Some(after) = std::env::var("QUENCH_TEST_PRODUCER_FATAL_AFTER_MS").ok().and_then(|ms| ms.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(after)).await;
        publisher.inject_fatal_error("injected by QUENCH_TEST_PRODUCER_FATAL_AFTER_MS");
    }
    while !shutdown.load(Ordering::SeqCst) {
        if let Some(error) = publisher.fatal_error() {
            tracing::error!(%error, "the Kafka producer failed for good; not ready, exiting");
            readiness.not_ready(format!("the Kafka producer failed for good: {error}"));
            tokio::time::sleep(FATAL_GRACE).await;
            shutdown.store(true, Ordering::SeqCst);
            return Some(error);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// How long a process whose producer failed for good answers 503 on `/readyz` before it exits.
const FATAL_GRACE: Duration = Duration::from_secs(3);

/// The rules in force, reloaded as the worker reloads them: alerts are keyed by their group key,
/// so that a group's alerts keep landing on one partition after a change of `group_by`, and the
/// Alertmanager API decides receivers and inhibition with them.
fn follow_rules((mut source, tree): (RulesSource, RouteTree)) -> Arc<RwLock<RouteTree>> {
    let tree = Arc::new(RwLock::new(tree));
    let current = tree.clone();
    crate::signals::on_hangup(source.reload_flag());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            match source.poll() {
                Some(Ok(new)) => {
                    *tree.write().expect("rules lock") = new;
                    tracing::info!("route rules reloaded");
                }
                Some(Err(e)) => tracing::error!(error = %e, "route rules not reloaded; the previous ones stay"),
                None => {}
            }
        }
    });
    current
}
