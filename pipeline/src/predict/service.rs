//! The `quench predict` service: fitted on ClickHouse's alert history, it reads the `alerts`
//! topic (its own consumer group; alerts received before the first fit are skipped, the history
//! holds them), issues predictions to the `predictions` topic, marks each as come true or
//! missed with a second version of the same record, and learns again from history every
//! `refit_interval_s`. Predictions carry deterministic ids and ClickHouse keeps the highest
//! version, so a record produced twice after a crash is harmless; predictions still waiting when
//! the process stops are not marked (their rows stay `pending`).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use clickhouse::Row;
use quench_core::predict::{
    live::{Event, Expectation, Live},
    topology::entity_of,
};
use quench_schemas::{
    fingerprint::{alert_fingerprint, fnv1a},
    now_ms, Alert, AlertStatus, Decoder, Encoder, Prediction, PredictionOutcome,
};
use rdkafka::{
    consumer::{CommitMode, Consumer, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
    Message,
};
use serde::{Deserialize, Serialize};

use crate::{
    config::Config,
    http::Readiness,
    kafka::{client_config, consumed, reader_config},
    predict::PredictConfig,
    preflight::registry_client,
};

/// Separates the tenant from the kind or entity in the keys the learner sees, so that tenants
/// learn apart.
const TENANT: char = '\u{1f}';

#[derive(Row, Deserialize)]
struct PastAlert {
    tenant: String,
    alertname: String,
    entity: String,
    starts_ms: i64,
}

/// The alert history received before `until` (ms): (kind, entity, start in seconds), one per
/// alert start (re-sends folded), in time order.
async fn history(config: &Config, until: i64) -> anyhow::Result<Vec<(String, String, i64)>> {
    let predict = &config.predict;
    // The labels are identifiers (checked at start-up), safe to put in the query as literals.
    let labels: Vec<String> = predict.entity_labels.iter().map(|l| format!("labels['{l}']")).collect();
    let sql = format!(
        "SELECT tenant, alertname, arrayFirst(x -> x != '', [{}]) AS entity, \
         toUnixTimestamp64Milli(starts_at) AS starts_ms \
         FROM alerts WHERE status = 'firing' AND entity != '' \
         AND received_at >= fromUnixTimestamp64Milli({until}) - toIntervalHour({}) \
         AND received_at < fromUnixTimestamp64Milli({until}) \
         GROUP BY tenant, alertname, entity, starts_ms ORDER BY starts_ms",
        labels.join(", "),
        predict.history_hours
    );
    let client = crate::clickhouse::client(&config.clickhouse);
    let mut cursor = client.query(&sql).fetch::<PastAlert>().context("reading the alert history from ClickHouse")?;
    let mut history = Vec::new();
    while let Some(alert) = cursor.next().await.context("reading the alert history from ClickHouse")? {
        history.push((
            format!("{}{TENANT}{}", alert.tenant, alert.alertname),
            format!("{}{TENANT}{}", alert.tenant, alert.entity),
            alert.starts_ms / 1000,
        ));
    }
    Ok(history)
}

#[derive(Row, Deserialize)]
struct Waiting {
    tenant: String,
    alertname: String,
    entity: String,
    probability: f64,
    issued_ms: i64,
    start_ms: i64,
    end_ms: i64,
    expected_lead_s: i64,
    evidence_alertname: String,
    evidence_entity: String,
    evidence_fingerprint: String,
    edge_support: i64,
}

/// Takes back the predictions a previous process left pending: they come true, or are marked
/// missed, as if this process had issued them (same ids).
async fn resume(config: &Config, live: &mut Live) -> anyhow::Result<()> {
    let sql = "SELECT tenant, alertname, entity, probability, toUnixTimestamp64Milli(issued_at) AS issued_ms, \
               toUnixTimestamp64Milli(window_start) AS start_ms, toUnixTimestamp64Milli(window_end) AS end_ms, \
               expected_lead_s, evidence_alertname, evidence_entity, evidence_fingerprint, edge_support \
               FROM predictions FINAL WHERE outcome = 'pending'";
    let waiting: Vec<Waiting> = crate::clickhouse::client(&config.clickhouse)
        .query(sql)
        .fetch_all()
        .await
        .context("reading the pending predictions from ClickHouse")?;
    let count = waiting.len();
    for w in waiting {
        let key = |name: &str| format!("{}{TENANT}{name}", w.tenant);
        live.resume(Expectation {
            kind: key(&w.alertname),
            entity: key(&w.entity),
            issued: w.issued_ms / 1000,
            window: (w.start_ms / 1000, w.end_ms / 1000),
            probability: w.probability,
            expected_lead: w.expected_lead_s,
            evidence_kind: key(&w.evidence_alertname),
            evidence_entity: key(&w.evidence_entity),
            evidence_fingerprint: w.evidence_fingerprint,
            support: u64::try_from(w.edge_support).unwrap_or_default(),
        });
    }
    tracing::info!(predictions = count, "resumed the predictions left pending");
    Ok(())
}

/// A topology file names entities without tenants: its links hold in every tenant of `history`.
fn tenant_links(history: &[(String, String, i64)], links: &str) -> String {
    let tenants: std::collections::BTreeSet<&str> =
        history.iter().filter_map(|(kind, _, _)| kind.split(TENANT).next()).collect();
    tenants
        .iter()
        .flat_map(|tenant| {
            links.lines().filter_map(move |line| {
                let (a, b) = line.split_once(',')?;
                Some(format!("{tenant}{TENANT}{},{tenant}{TENANT}{}\n", a.trim(), b.trim()))
            })
        })
        .collect()
}

/// Writes what a fit learned to ClickHouse (for root-cause hints) and to the log.
async fn report_fit(config: &Config, live: &Live, alerts: usize, model_version: i64, took: Duration) {
    let client = crate::clickhouse::client(&config.clickhouse);
    if let Err(e) = write_edges(&client, live, model_version).await {
        // The graph in ClickHouse serves root-cause hints; predicting goes on without it.
        tracing::warn!(error = %format!("{e:#}"), "cannot write the learned precursor graph to ClickHouse");
    }
    tracing::info!(alerts, edges = live.edges().len(), thresholds = ?live.thresholds(), ?took, "fitted on the alert history");
}

#[derive(Row, Serialize)]
struct EdgeRow {
    tenant: String,
    model_version: i64,
    cause: String,
    effect: String,
    linked: bool,
    probability: f64,
    window_probability: f64,
    support: u64,
    lead_p50_s: i64,
    fitted_at: i64,
}

/// Writes the learned graph as the snapshot `model_version` (sql/0011_precursor_edges.sql).
async fn write_edges(client: &clickhouse::Client, live: &Live, model_version: i64) -> anyhow::Result<()> {
    let mut insert = client.insert::<EdgeRow>("precursor_edges").await?;
    for edge in live.edges() {
        let (tenant, cause) = split(&edge.cause);
        insert
            .write(&EdgeRow {
                tenant,
                model_version,
                cause,
                effect: split(&edge.effect).1,
                linked: edge.linked,
                probability: edge.probability,
                window_probability: edge.window_probability,
                support: edge.support,
                lead_p50_s: edge.lead_p50,
                fitted_at: model_version,
            })
            .await?;
    }
    insert.end().await?;
    Ok(())
}

/// A learner key's tenant and name.
fn split(key: &str) -> (String, String) {
    let (tenant, rest) = key.split_once(TENANT).unwrap_or(("default", key));
    (tenant.to_string(), rest.to_string())
}

pub async fn run(config: &Config, shutdown: Arc<AtomicBool>, readiness: Arc<Readiness>) -> anyhow::Result<()> {
    let predict = &config.predict;
    let links = match &predict.topology {
        Some(path) => std::fs::read_to_string(path).with_context(|| {
            format!("invalid configuration: key `predict.topology`: cannot read {}", path.display())
        })?,
        None => String::new(),
    };
    let registry = registry_client(&config.registry)?;
    let encoder = Encoder::<Prediction>::register(&registry, &config.topics.predictions).await?;
    let decoder = Decoder::<Alert>::new(registry);
    let history_until = now_ms();
    let started = Instant::now();
    let past = history(config, history_until).await?;
    let mut live = Live::fit(&past, history_until / 1000, predict.settings(), &tenant_links(&past, &links))
        .map_err(|e| anyhow::anyhow!("invalid configuration: key `predict.topology`: {e}"))?;
    report_fit(config, &live, past.len(), history_until, started.elapsed()).await;
    let mut model_version = history_until;
    let mut fitted = Instant::now();
    resume(config, &mut live).await?;

    let consumer: StreamConsumer = reader_config(&config.kafka, "predict", &predict.group_id).create()?;
    consumer.subscribe(&[config.topics.alerts.as_str()])?;
    let producer: FutureProducer =
        client_config(&config.kafka, "predict").set("enable.idempotence", "true").create()?;
    let out = Output { encoder: &encoder, producer: &producer, topic: &config.topics.predictions };
    tracing::info!(group = %predict.group_id, horizon = ?predict.horizon(), "predict started");
    readiness.ready();

    // The label that named each entity in its latest alert, for the records' `entity_label`.
    let mut labels: HashMap<String, String> = HashMap::new();
    let mut last_expiry = Instant::now();
    while !shutdown.load(Ordering::SeqCst) {
        if let Ok(message) = tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await {
            if let Some(message) = consumed(message, "predict")? {
                match decoder.decode(message.payload().unwrap_or_default()).await {
                    Ok(alert) if alert.received_at < history_until => {}
                    Ok(alert) => {
                        let events = observe(&mut live, &alert, predict, &mut labels);
                        out.publish(events, model_version, &labels).await?;
                    }
                    Err(e) if e.is_transient() => return Err(e.into()),
                    // The worker dead-letters what does not decode; prediction only skips it.
                    Err(e) => tracing::debug!(error = %e, "skipping an undecodable alert"),
                }
                consumer.commit_message(&message, CommitMode::Async)?;
            }
        }
        if last_expiry.elapsed() >= Duration::from_secs(1) {
            last_expiry = Instant::now();
            out.publish(live.tick(now_ms() / 1000), model_version, &labels).await?;
        }
        if fitted.elapsed() >= Duration::from_secs(predict.refit_interval_s) {
            fitted = Instant::now();
            let until = now_ms();
            let started = Instant::now();
            match history(config, until).await {
                Ok(past) => {
                    live.refit(&past, until / 1000);
                    model_version = until;
                    report_fit(config, &live, past.len(), until, started.elapsed()).await;
                }
                // History is an improvement, not a need: keep predicting with the model in hand.
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "refit failed; predicting with the previous model"),
            }
        }
        metrics::gauge!("quench_predictions_pending").set(live.pending() as f64);
    }
    tracing::info!("predict stopped");
    Ok(())
}

/// Feeds a firing alert with an entity to the predictor.
fn observe(
    live: &mut Live,
    alert: &Alert,
    predict: &PredictConfig,
    labels: &mut HashMap<String, String>,
) -> Vec<Event> {
    if alert.status != AlertStatus::Firing {
        return Vec::new();
    }
    let (Some(name), Some((label, entity))) =
        (alert.labels.get("alertname"), entity_of(&alert.labels, &predict.entity_labels))
    else {
        return Vec::new();
    };
    let entity = format!("{}{TENANT}{entity}", alert.tenant);
    if labels.get(&entity).is_none_or(|known| known != label) {
        labels.insert(entity.clone(), label.to_string());
    }
    let fingerprint = format!("{:016x}", alert_fingerprint(alert));
    live.observe(&format!("{}{TENANT}{name}", alert.tenant), &entity, alert.starts_at / 1000, &fingerprint)
}

struct Output<'a> {
    encoder: &'a Encoder<Prediction>,
    producer: &'a FutureProducer,
    topic: &'a str,
}

impl Output<'_> {
    async fn publish(
        &self,
        events: Vec<Event>,
        model_version: i64,
        labels: &HashMap<String, String>,
    ) -> anyhow::Result<()> {
        let mut deliveries = Vec::with_capacity(events.len());
        for event in events {
            let (outcome, version, came) = match &event {
                Event::Issued(_) => ("issued", 1, None),
                Event::CameTrue(_, at) => ("came_true", 2, Some(*at)),
                Event::Missed(_) => ("missed", 2, None),
            };
            let expectation = match event {
                Event::Issued(e) | Event::CameTrue(e, _) | Event::Missed(e) => e,
            };
            let label = labels.get(&expectation.entity).map_or("", String::as_str);
            let record = prediction(&expectation, label, model_version, version, came);
            metrics::counter!("quench_predictions_total", "outcome" => outcome).increment(1);
            let payload = self.encoder.encode(&record)?;
            let produce = FutureRecord::to(self.topic).key(&record.prediction_id).payload(&payload);
            deliveries.push(self.producer.send_result(produce).map_err(|(e, _)| e)?);
        }
        for delivery in deliveries {
            delivery.await?.map_err(|(e, _)| e).context("producing a prediction")?;
        }
        Ok(())
    }
}

/// The Avro record of an expectation: issued (`version` 1) or with its outcome (2).
fn prediction(e: &Expectation, label: &str, model_version: i64, version: i64, came: Option<i64>) -> Prediction {
    let (tenant, alertname) = split(&e.kind);
    let (_, entity) = split(&e.entity);
    let (_, evidence_alertname) = split(&e.evidence_kind);
    let (_, evidence_entity) = split(&e.evidence_entity);
    let id = [e.kind.as_str(), &e.entity, &e.evidence_kind, &e.evidence_entity, &e.issued.to_string()].join("|");
    let outcome = match (version, came) {
        (1, _) => PredictionOutcome::Pending,
        (_, Some(_)) => PredictionOutcome::CameTrue,
        _ => PredictionOutcome::Missed,
    };
    Prediction {
        prediction_id: format!("{:016x}", fnv1a(id.bytes())),
        tenant,
        alertname,
        entity,
        entity_label: label.to_string(),
        probability: e.probability,
        issued_at: e.issued * 1000,
        window_start: e.window.0 * 1000,
        window_end: e.window.1 * 1000,
        expected_lead_s: e.expected_lead,
        evidence_alertname,
        evidence_entity,
        evidence_fingerprint: e.evidence_fingerprint.clone(),
        edge_support: e.support as i64,
        model_version,
        outcome,
        came_at: came.map(|at| at * 1000),
        lead_s: came.map(|at| at - e.issued),
        version,
    }
}
