//! `quench demo`: generated alerts from the corpus make a round trip through the whole stack:
//! produced to Kafka in Confluent-framed Avro with a registered schema, consumed back with
//! read_committed, decoded with the schema fetched by id, fingerprinted, written to ClickHouse and
//! queried. Later stages of the pipeline grow into this command as they land.

use std::{
    collections::HashMap,
    path::PathBuf,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context};
use clickhouse::Row;
use quench_schemas::{Alert, AlertStatus, Decoder, Encoder};
use rdkafka::{
    consumer::{Consumer, StreamConsumer},
    error::KafkaError,
    producer::{FutureProducer, FutureRecord},
    types::RDKafkaErrorCode,
    Message, Offset, TopicPartitionList,
};
use serde::Deserialize;

use crate::{
    clickhouse::AlertRow,
    config::Config,
    corpus::{self, CorpusAlert},
    fingerprint::fingerprint_hex,
    init::init,
    kafka::client_config,
    preflight::registry_client,
};

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// JSON-lines alert corpus to generate alerts from.
    #[arg(long, default_value = "../shared/data/alert-corpus/dev.jsonl")]
    pub corpus: PathBuf,
    /// How many alerts to generate.
    #[arg(long, default_value_t = 5_000)]
    pub alerts: usize,
    /// How many hosts the generated fleet has.
    #[arg(long, default_value_t = 40)]
    pub hosts: usize,
}

pub async fn run(config: &Config, args: &DemoArgs) -> anyhow::Result<()> {
    let corpus = corpus::load(&args.corpus)?;
    if corpus.is_empty() || args.alerts == 0 || args.hosts == 0 {
        bail!("the demo needs a non-empty corpus, --alerts > 0 and --hosts > 0");
    }
    step("init", init(config).await?.lines().join("\n       "));

    let run_id = format!("{:x}", now_millis());
    let alerts = generate(&corpus, args, &run_id);
    let started = Instant::now();
    let ranges = produce(config, &alerts).await?;
    step(
        "produce",
        format!(
            "{} alerts to topic {} in {:.2?} (idempotent producer, Avro, Confluent framing)",
            alerts.len(),
            config.topics.alerts,
            started.elapsed()
        ),
    );

    let started = Instant::now();
    let rows = consume(config, &ranges).await?;
    step(
        "consume",
        format!("{} records read back with read_committed and decoded in {:.2?}", rows.len(), started.elapsed()),
    );

    let started = Instant::now();
    let client = crate::clickhouse::client(&config.clickhouse);
    let mut insert =
        client.insert::<AlertRow>("alerts").await?.with_setting("insert_deduplication_token", format!("demo-{run_id}"));
    for row in &rows {
        insert.write(row).await?;
    }
    insert.end().await.context("inserting alerts into ClickHouse")?;
    step(
        "clickhouse",
        format!("{} rows inserted into {}.alerts in {:.2?}", rows.len(), config.clickhouse.database, started.elapsed()),
    );

    summarize(&client, &run_id).await
}

fn step(name: &str, text: impl AsRef<str>) {
    println!("[{name:>10}] {}", text.as_ref());
}

fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// A fleet of hosts firing the corpus's rules; `demo_run` tells this run's alerts apart.
fn generate(corpus: &[CorpusAlert], args: &DemoArgs, run_id: &str) -> Vec<Alert> {
    let now = now_millis();
    (0..args.alerts)
        .map(|i| {
            // A stride co-prime with the corpus size visits every rule before repeating one.
            let rule = &corpus[(i * 7_919) % corpus.len()];
            let host = format!("host-{:03}:9100", i % args.hosts);
            let mut labels = rule.labels.clone();
            labels.insert("instance".into(), host.clone());
            labels.insert("demo_run".into(), run_id.into());
            let annotations =
                rule.annotations.iter().map(|(k, v)| (k.clone(), v.replace("{{ $labels.instance }}", &host))).collect();
            Alert {
                source: "demo".into(),
                status: if i % 10 == 9 { AlertStatus::Resolved } else { AlertStatus::Firing },
                fingerprint: None,
                labels,
                annotations,
                starts_at: now - 60_000 + (i as i64 % 60) * 1_000,
                ends_at: (i % 10 == 9).then_some(now),
                received_at: now,
                generator_url: None,
                tenant: "default".into(),
            }
        })
        .collect()
}

/// First and last offset this run wrote, per partition.
type Ranges = HashMap<i32, (i64, i64)>;

async fn produce(config: &Config, alerts: &[Alert]) -> anyhow::Result<Ranges> {
    let registry = registry_client(config)?;
    let encoder = Encoder::<Alert>::register(&registry, &config.topics.alerts).await?;
    let producer: FutureProducer = client_config(&config.kafka, "demo")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .create()?;
    let mut deliveries = Vec::with_capacity(alerts.len());
    for alert in alerts {
        let key = fingerprint_hex(&alert.labels);
        let payload = encoder.encode(alert)?;
        let mut record = FutureRecord::to(&config.topics.alerts).key(&key).payload(&payload);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => break deliveries.push(delivery),
                // The local queue is full: let librdkafka drain it rather than fail the demo.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    let mut ranges = Ranges::new();
    for delivery in deliveries {
        let delivered = delivery
            .await
            .context("producer dropped a delivery")?
            .map_err(|(e, _)| anyhow::anyhow!("Kafka did not acknowledge an alert: {e}"))?;
        let range = ranges.entry(delivered.partition).or_insert((delivered.offset, delivered.offset));
        range.0 = range.0.min(delivered.offset);
        range.1 = range.1.max(delivered.offset);
    }
    Ok(ranges)
}

async fn consume(config: &Config, ranges: &Ranges) -> anyhow::Result<Vec<AlertRow>> {
    let consumer: StreamConsumer = client_config(&config.kafka, "demo")
        .set("group.id", "quench-demo")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for (partition, (first, _)) in ranges {
        assignment.add_partition_offset(&config.topics.alerts, *partition, Offset::Offset(*first))?;
    }
    consumer.assign(&assignment)?;
    let decoder = Decoder::<Alert>::new(registry_client(config)?);
    let mut pending: HashMap<i32, i64> = ranges.iter().map(|(p, (_, last))| (*p, *last)).collect();
    let mut rows = Vec::new();
    while !pending.is_empty() {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .context("no record from Kafka within 30 s")??;
        let (partition, offset) = (message.partition(), message.offset());
        let Some(last) = pending.get(&partition).copied() else { continue };
        let alert = decoder.decode(message.payload().unwrap_or_default()).await?;
        let fingerprint = alert.fingerprint.clone().unwrap_or_else(|| fingerprint_hex(&alert.labels));
        rows.push(AlertRow::new(alert, fingerprint, String::new(), partition, offset));
        if offset >= last {
            pending.remove(&partition);
        }
    }
    Ok(rows)
}

#[derive(Row, Deserialize)]
struct Totals {
    alerts: u64,
    fingerprints: u64,
    rules: u64,
    resolved: u64,
}

#[derive(Row, Deserialize)]
struct JobCount {
    job: String,
    alerts: u64,
}

async fn summarize(client: &clickhouse::Client, run_id: &str) -> anyhow::Result<()> {
    let totals: Totals = client
        .query("SELECT count() AS alerts, uniqExact(fingerprint) AS fingerprints, uniqExact(alertname) AS rules, countIf(status = 'resolved') AS resolved FROM alerts WHERE labels['demo_run'] = ?")
        .bind(run_id)
        .fetch_one()
        .await?;
    step(
        "summary",
        format!(
            "{} alerts in ClickHouse: {} distinct fingerprints, {} alert rules, {} resolved",
            totals.alerts, totals.fingerprints, totals.rules, totals.resolved
        ),
    );
    let jobs: Vec<JobCount> = client
        .query("SELECT labels['job'] AS job, count() AS alerts FROM alerts WHERE labels['demo_run'] = ? GROUP BY job ORDER BY alerts DESC, job LIMIT 5")
        .bind(run_id)
        .fetch_all()
        .await?;
    for job in jobs {
        step("top jobs", format!("{:>6}  {}", job.alerts, job.job));
    }
    Ok(())
}
