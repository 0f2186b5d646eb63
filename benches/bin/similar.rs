//! Similar past incidents, measured: a generated history of recurring incidents in ClickHouse
//! (`similar_texts` with its HNSW index, `similar_incidents`, and the incidents, as `quench api`'s
//! indexer writes them), then new occurrences looked up
//! as `quench api` looks them up. Prints recall@5 of the true previous occurrence (the latest
//! earlier incident of the same rule on the same service) and the lookup's latency percentiles;
//! the last line is JSON `{"incidents":N,"queries":N,"recall_at_5":R,"p50_ms":F,"p99_ms":F}`.
//!
//! The rules are the 784 of `pipeline/classify/data/examples.jsonl`, each firing on one to three
//! of `--services` services (the same rule on another service is the near miss the same-service
//! boost must rank below), some far more often than others; every incident's text varies (its
//! instance) as real ones do. Needs the local stack's ClickHouse and the classifier's model;
//! works in the database `--database`, dropped and made again.
//!
//! `cargo run --release -p quench-benches --bin similar -- [--incidents 1000000] [--queries 300]
//! [--services 40] [--seed 1] [--json]`

use std::{collections::HashMap, num::NonZeroUsize, sync::Arc, time::Instant};

use anyhow::Context;
use clap::Parser;
use quench_classify::embed::Embedder;
use quench_pipeline::{
    clickhouse::{client, migrate, server_client, MIGRATIONS},
    config::Config,
    corpus,
    loadgen::rng::Rng,
    similar::{
        indexer::{IncidentRow, TextRow},
        text, text_hash, Similar,
    },
};
use serde_json::json;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 10_000)]
    incidents: usize,
    #[arg(long, default_value_t = 300)]
    queries: usize,
    #[arg(long, default_value_t = 40)]
    services: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value = "quench_similar_bench")]
    database: String,
    #[arg(long)]
    json: bool,
}

/// Monday 2 November 2026, 00:00 UTC: the history starts here, an incident a minute.
const START_MS: i64 = 1_793_577_600_000;
const MINUTE: i64 = 60_000;
const TENANT: &str = "bench";
const CHUNK: usize = 50_000;

struct Incident {
    id: String,
    rule: usize,
    service: usize,
    text: String,
    first_seen: i64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = Config::load(None, std::env::vars())?;
    config.clickhouse.database.clone_from(&args.database);
    server_client(&config.clickhouse).query(&format!("DROP DATABASE IF EXISTS `{}`", args.database)).execute().await?;
    migrate(&config.clickhouse, MIGRATIONS).await?;
    let clickhouse = client(&config.clickhouse);

    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../pipeline/classify/data/examples.jsonl");
    let rules = corpus::load(std::path::Path::new(examples))?;
    let mut rng = Rng::new(args.seed);
    let homes: Vec<Vec<usize>> =
        rules.iter().map(|_| (0..1 + rng.below(3)).map(|_| rng.below(args.services)).collect()).collect();
    let history: Vec<Incident> = (0..args.incidents)
        .map(|n| {
            // Squaring a uniform number makes the first rules of the file fire far more often.
            let u = rng.below(1_000_000) as f64 / 1e6;
            let rule = ((u * u) * rules.len() as f64) as usize;
            let service = homes[rule][rng.below(homes[rule].len())];
            incident(&rules[rule], rule, service, n, rng.below(500))
        })
        .collect();

    let started = Instant::now();
    let embedder = Arc::new(Embedder::load(&config.classify.local.model_dir, NonZeroUsize::new(100_000).unwrap())?);
    let mut unique: Vec<&str> = history.iter().map(|i| i.text.as_str()).collect();
    unique.sort_unstable();
    unique.dedup();
    let vectors: HashMap<&str, Vec<f32>> = unique.iter().copied().zip(embedder.embed(&unique)?).collect();
    eprintln!("{} incidents, {} distinct texts embedded in {:.1?}", history.len(), unique.len(), started.elapsed());

    let started = Instant::now();
    let mut texts = clickhouse.insert::<TextRow>("similar_texts").await?;
    for (text, embedding) in &vectors {
        texts
            .write(&TextRow { tenant: TENANT.into(), text_hash: text_hash(text), embedding: embedding.clone() })
            .await?;
    }
    texts.end().await?;
    for chunk in history.chunks(CHUNK) {
        let mut insert = clickhouse.insert::<IncidentRow>("similar_incidents").await?;
        for i in chunk {
            insert
                .write(&IncidentRow {
                    tenant: TENANT.into(),
                    text_hash: text_hash(&i.text),
                    first_seen: i.first_seen,
                    incident_id: i.id.clone(),
                    service: service_name(i.service),
                })
                .await?;
        }
        insert.end().await?;
        let rows: Vec<String> = chunk
            .iter()
            .map(|i| {
                let at = |ms: i64| quench_pipeline::ask::time_text(ms);
                json!({"tenant": TENANT, "incident_id": i.id, "status": "resolved", "title": rules[i.rule].labels["alertname"],
                       "first_seen": at(i.first_seen), "last_seen": at(i.first_seen + 5 * MINUTE),
                       "resolved_at": at(i.first_seen + 5 * MINUTE), "version": 1})
                .to_string()
            })
            .collect();
        let sql = format!("INSERT INTO incidents FORMAT JSONEachRow\n{}", rows.join("\n"));
        clickhouse.query(&sql).execute().await.context("inserting incidents")?;
    }
    eprintln!("stored in {:.1?}", started.elapsed());

    // New occurrences of rules that fired before, on a service they fired on.
    let similar = Similar::new(clickhouse.clone(), &config.api.similar);
    let latest: HashMap<(usize, usize), &str> = history.iter().map(|i| ((i.rule, i.service), i.id.as_str())).collect();
    let end = START_MS + args.incidents as i64 * MINUTE;
    let (mut hits, mut latencies) = (0, Vec::with_capacity(args.queries));
    for q in 0..args.queries {
        let past = &history[rng.below(history.len())];
        let new = incident(&rules[past.rule], past.rule, past.service, args.incidents + q, rng.below(500));
        let vector = &embedder.embed(&[new.text.as_str()])?[0];
        let started = Instant::now();
        let found = similar.lookup(TENANT, vector, &service_name(new.service), end).await?;
        latencies.push(started.elapsed().as_secs_f64() * 1e3);
        let truth = latest[&(past.rule, past.service)];
        hits += usize::from(found.iter().take(5).any(|m| m["incident_id"] == truth));
    }
    latencies.sort_by(f64::total_cmp);
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    let recall = hits as f64 / args.queries as f64;
    if !args.json {
        println!(
            "incidents {}  queries {}  recall@5 {recall:.3}  lookup p50 {:.1} ms  p99 {:.1} ms",
            args.incidents,
            args.queries,
            at(0.5),
            at(0.99)
        );
    }
    let summary = json!({"incidents": args.incidents, "queries": args.queries, "recall_at_5": recall,
                         "p50_ms": at(0.5), "p99_ms": at(0.99)});
    println!("{summary}");
    Ok(())
}

fn service_name(n: usize) -> String {
    format!("svc-{n:03}")
}

/// The `n`th incident: `rule` firing on `service`, at instance `instance`.
fn incident(rule: &corpus::CorpusAlert, index: usize, service: usize, n: usize, instance: usize) -> Incident {
    let mut labels = rule.labels.clone();
    labels.insert("service".into(), service_name(service));
    let summary = rule.annotations.get("summary").cloned().unwrap_or_default();
    let summary =
        summary.replace("{{ $labels.instance }}", &format!("10.1.{}.{}:9100", instance / 250, instance % 250));
    Incident {
        id: format!("inc-{n:07}"),
        rule: index,
        service,
        text: text(&labels["alertname"], &summary, &labels),
        first_seen: START_MS + n as i64 * MINUTE,
    }
}
