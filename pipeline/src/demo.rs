//! `quench demo`: the whole pipeline on a generated alert storm. It creates the topics, schemas
//! and tables, runs a stream worker and a ClickHouse sink in this process, produces a storm made
//! from the corpus to Kafka (keyed by group key, as the ingest connectors do), waits until
//! ClickHouse holds every alert and the incidents have settled, prints what happened, and stops.

use std::{
    path::PathBuf,
    sync::{atomic::AtomicBool, Arc},
    time::{Duration, Instant},
};

use anyhow::bail;
use clickhouse::{Client, Row};
use quench_schemas::now_ms;
use serde::Deserialize;
use tokio::task::JoinHandle;

use crate::{
    config::Config,
    corpus,
    http::Readiness,
    init::init,
    kafka::delete_topics,
    loadgen::{self, AlertProducer, StormConfig},
    reload::RulesSource,
    sink, worker,
};
use quench_core::rules::RouteTree;

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// JSON-lines alert corpus to generate alerts from (default: the built-in one).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    #[command(flatten)]
    pub storm: StormConfig,
}

pub async fn run(config: &Config, rules: (RulesSource, RouteTree), args: &DemoArgs) -> anyhow::Result<()> {
    let corpus = corpus::load_or_built_in(args.corpus.as_deref())?;
    // Each run has topics and consumer groups of its own (deleted at the end) and is a tenant of
    // its own in ClickHouse: the storm's compressed event time must not meet an earlier run's.
    // The process id keeps two demos started in the same millisecond apart (they once shared
    // topics and fenced each other's transactions).
    let run_id = format!("demo-{:x}-{}", now_ms(), std::process::id());
    let config = &config.isolated(&run_id)?;
    step("init", init(config).await?.lines().join("\n             "));

    let storm = loadgen::generate(&corpus, &args.storm, &run_id);
    let kinds = |kind: &str| storm.causes.iter().filter(|c| c.kind == kind).count();
    step(
        "storm",
        format!(
            "{} alerts from {} causes: {} storm rules, {} flapping alerts, {} noise alerts (seed {})",
            storm.alerts.len(),
            storm.causes.len(),
            kinds("storm"),
            kinds("flapping"),
            kinds("noise"),
            args.storm.seed
        ),
    );

    let tree = rules.1.clone();
    let shutdown = Arc::new(AtomicBool::new(false));
    let worker_ready = crate::http::serve(&config.http).await?;
    let sink_ready = Readiness::starting();
    let mut worker = tokio::spawn(worker::run(config.clone(), rules, shutdown.clone(), worker_ready.clone()));
    let mut sink = {
        let (config, shutdown, readiness) = (config.clone(), shutdown.clone(), sink_ready.clone());
        tokio::spawn(async move { sink::run(&config, shutdown, readiness).await })
    };
    let rules = tree;
    // Producing before the worker is ready would lose nothing (it reads from the start), but the
    // settling clock below would then also time the worker's start-up.
    if let Err(e) = wait_until_ready(&[("worker", &worker_ready), ("sink", &sink_ready)], &mut worker, &mut sink).await
    {
        shutdown.store(true, std::sync::atomic::Ordering::SeqCst);
        return Err(e);
    }

    let started = Instant::now();
    let producer = AlertProducer::new(config, rules.clone(), "demo").await?;
    let now = now_ms();
    for alert in &storm.alerts {
        producer.send(alert, now)?;
    }
    tokio::task::block_in_place(|| producer.flush(Duration::from_secs(120)))?;
    let elapsed = started.elapsed();
    step(
        "produce",
        format!(
            "{} alerts to {} in {elapsed:.2?} ({:.0} alerts/s), keyed by group key",
            storm.alerts.len(),
            config.topics.alerts,
            storm.alerts.len() as f64 / elapsed.as_secs_f64()
        ),
    );

    // After the last alert, event time only advances with the wall clock (idle partitions), and
    // the last changes surface at the next group_interval tick: wait at least that long.
    let quiet = rules.root.timing.group_interval
        + Duration::from_millis(config.worker.allowed_lateness_ms + config.worker.idle_timeout_ms)
        + Duration::from_secs(3);
    let client = crate::clickhouse::client(&config.clickhouse);
    let outcome = settle(&client, &run_id, storm.alerts.len() as u64, quiet).await;
    shutdown.store(true, std::sync::atomic::Ordering::SeqCst);
    worker.await??;
    sink.await??;
    outcome?;
    let summary = summarize(&client, &run_id, storm.causes.len()).await;
    delete_topics(&config.kafka, &config.topics).await?;
    summary?;
    step("cleanup", format!("deleted the run's topics ({run_id}-*); its rows stay in ClickHouse as tenant {run_id}"));
    Ok(())
}

fn step(name: &str, text: impl AsRef<str>) {
    println!("[{name:>10}] {}", text.as_ref());
}

/// How long the worker and the sink may take to start: the worker's first start on a machine
/// where nothing embedded the classifier's catalog yet takes about 30 s on 2 cores.
const START_TIMEOUT: Duration = Duration::from_secs(600);

/// Waits until every named part is ready, saying what it waits for; fails when a part stopped.
async fn wait_until_ready(
    parts: &[(&str, &Readiness)],
    worker: &mut JoinHandle<anyhow::Result<()>>,
    sink: &mut JoinHandle<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut said = Vec::new();
    let mut explained = false;
    loop {
        for task in [&mut *worker, &mut *sink] {
            if task.is_finished() {
                task.await??;
                bail!("the worker or the sink stopped before it was ready");
            }
        }
        let waiting: Vec<String> =
            parts.iter().filter_map(|(name, r)| r.reason().map(|reason| format!("{name}: {reason}"))).collect();
        if waiting.is_empty() {
            step("ready", format!("worker and sink ready after {:.1?}", started.elapsed()));
            return Ok(());
        }
        for reason in &waiting {
            if !said.contains(reason) {
                step("waiting", reason);
                said.push(reason.clone());
            }
        }
        if !explained && started.elapsed() > Duration::from_secs(3) && waiting.iter().any(|r| r.contains("classifier"))
        {
            step(
                "waiting",
                "the local classifier's first start embeds its catalog and examples (about 30 s on 2 cores); \
                 `quench prepare` does it ahead, and later starts read the vectors from the model directory",
            );
            explained = true;
        }
        if started.elapsed() > START_TIMEOUT {
            bail!("not ready after {START_TIMEOUT:?}: {}", waiting.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[derive(Row, Deserialize, PartialEq, Eq, Clone, Copy)]
struct Progress {
    alerts: u64,
    incidents: u64,
    /// Alerts counted into incidents: it stops growing once every alert has reached its incident
    /// (versions keep changing later, as silent alerts time out and resolve).
    counted: u64,
}

/// Waits until ClickHouse holds every alert of the run and its incidents stopped gaining alerts.
async fn settle(client: &Client, run_id: &str, expected: u64, quiet: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last = None;
    let mut stable_since = Instant::now();
    let mut reported = None;
    loop {
        let progress: Progress = client
            .query(
                "SELECT assumeNotNull((SELECT count() FROM alerts FINAL WHERE tenant = ?)) AS alerts, \
                 count() AS incidents, sum(alert_count) AS counted FROM incidents FINAL WHERE tenant = ?",
            )
            .bind(run_id)
            .bind(run_id)
            .fetch_one()
            .await?;
        if last != Some(progress) {
            last = Some(progress);
            stable_since = Instant::now();
        }
        if progress.alerts >= expected && stable_since.elapsed() > quiet {
            return Ok(());
        }
        // Said when it changes, and every 10 s while it does not.
        if reported
            .is_none_or(|(said, at): (Progress, Instant)| said != progress || at.elapsed() > Duration::from_secs(10))
        {
            step(
                "waiting",
                format!(
                    "{} of {expected} alerts and {} incidents in ClickHouse; done when nothing changed for {quiet:.0?}",
                    progress.alerts, progress.incidents
                ),
            );
            reported = Some((progress, Instant::now()));
        }
        if started.elapsed() > Duration::from_secs(180) {
            bail!(
                "after 180 s ClickHouse holds {} of {expected} alerts and {} incidents, still changing",
                progress.alerts,
                progress.incidents
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[derive(Row, Deserialize)]
struct Totals {
    alerts: u64,
    incidents: u64,
    resolved: u64,
}

#[derive(Row, Deserialize)]
struct TopIncident {
    title: String,
    severity: String,
    priority: String,
    category: String,
    summary: String,
    status: String,
    alert_count: u64,
    hosts: u64,
}

const TOP_INCIDENTS_SQL: &str = "SELECT title, severity, ifNull(priority, '') AS priority, \
ifNull(category, '') AS category, summary, toString(status) AS status, alert_count, distinct_alerts AS hosts
FROM incidents FINAL
WHERE tenant = ?
ORDER BY alert_count DESC, title
LIMIT 5";

async fn summarize(client: &Client, run_id: &str, causes: usize) -> anyhow::Result<()> {
    let totals: Totals = client
        .query(
            "SELECT assumeNotNull((SELECT count() FROM alerts FINAL WHERE tenant = ?)) AS alerts, count() AS incidents, \
             countIf(status = 'resolved') AS resolved FROM incidents FINAL WHERE tenant = ?",
        )
        .bind(run_id)
        .bind(run_id)
        .fetch_one()
        .await?;
    // A reduction computed from nothing is not one: no incident out of a storm is a failure.
    if totals.incidents == 0 {
        bail!(
            "{} alerts in, but no incident came out: the worker made none (its log above says why); \
             nothing to summarise",
            totals.alerts
        );
    }
    let reduction = 100.0 * (1.0 - totals.incidents as f64 / totals.alerts as f64);
    step(
        "summary",
        format!(
            "{} alerts in, {} incidents out ({} resolved): {reduction:.1}% fewer things to look at",
            totals.alerts, totals.incidents, totals.resolved
        ),
    );
    step("truth", format!("the generator made the alerts from {causes} root causes"));
    step(
        "top",
        format!(
            "incidents by alert count, from ClickHouse:\n{}",
            TOP_INCIDENTS_SQL.replace('?', &format!("'{run_id}'"))
        ),
    );
    let top: Vec<TopIncident> = client.query(TOP_INCIDENTS_SQL).bind(run_id).fetch_all().await?;
    for i in top {
        step(
            "",
            format!(
                "{:>6} alerts  {:>3} hosts  {:<8} {:<3} {:<15} {:<8} {}\n{:>36}{}",
                i.alert_count, i.hosts, i.severity, i.priority, i.category, i.status, i.title, "", i.summary
            ),
        );
    }
    Ok(())
}
