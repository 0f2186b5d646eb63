//! `quench replay`: stored alerts (ClickHouse's `alerts` for a tenant and time range, or a file
//! of JSON lines) through candidate rules and the current ones, in the pure operator at full
//! speed in virtual time (`quench_core::replay`); prints incidents, notifications, reduction and
//! what the candidate changes (incidents split or merged, notifications per reason).

use std::{collections::BTreeMap, path::PathBuf, time::Instant};

use anyhow::Context;
use clickhouse::Row;
use quench_core::{
    correlate::{Associations, Correlator},
    replay::{diff, durations, onsets, replay, Additions, Replayed},
    routing::RoutingRules,
    rules::{duration, RouteTree},
    window::transient::Transients,
};
use quench_schemas::{Alert, AlertStatus};
use serde::Deserialize;
use serde_json::json;

use crate::config::Config;

#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// The candidate rules file (Alertmanager YAML or Quench TOML).
    #[arg(long)]
    pub rules: PathBuf,
    /// The rules to compare with (default: `worker.rules`, else the built-in tree).
    #[arg(long)]
    pub current: Option<PathBuf>,
    /// Alerts as JSON lines (`labels`, `annotations`, `status`, `received_at` and `starts_at` in
    /// ms, `tenant`) instead of ClickHouse.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// ClickHouse: whose alerts.
    #[arg(long, default_value = "default")]
    pub tenant: String,
    /// ClickHouse: received from this time (anything ClickHouse's parseDateTime64BestEffort
    /// reads, such as 2026-11-30T10:00:00Z)...
    #[arg(long)]
    pub from: Option<String>,
    /// ... to this one (default: now).
    #[arg(long)]
    pub to: Option<String>,
    /// How long the clock runs on after the last alert, so that groups flush and resolve.
    #[arg(long, default_value = "1h")]
    pub settle: String,
    /// Correlate the candidate's incidents across groups, with `[correlate]`'s settings and
    /// dependency map; which kinds go together is learned from the replayed alerts themselves.
    #[arg(long)]
    pub correlate: bool,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    pub json: bool,
}

/// One line of a replay file.
#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    status: Option<AlertStatus>,
    received_at: i64,
    starts_at: Option<i64>,
    ends_at: Option<i64>,
    #[serde(default = "default_tenant")]
    tenant: String,
}

fn default_tenant() -> String {
    "default".into()
}

impl From<Line> for Alert {
    fn from(line: Line) -> Self {
        Alert {
            source: "replay".into(),
            status: line.status.unwrap_or(AlertStatus::Firing),
            labels: line.labels,
            annotations: line.annotations,
            starts_at: line.starts_at.unwrap_or(line.received_at),
            ends_at: line.ends_at,
            received_at: line.received_at,
            generator_url: None,
            fingerprint: None,
            tenant: line.tenant,
            stateful: false,
        }
    }
}

fn from_file(path: &PathBuf) -> anyhow::Result<Vec<Alert>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(number, line)| {
            serde_json::from_str::<Line>(line)
                .map(Alert::from)
                .with_context(|| format!("{} line {}", path.display(), number + 1))
        })
        .collect()
}

#[derive(Row, Deserialize)]
struct Stored {
    received_ms: i64,
    starts_ms: i64,
    ends_ms: Option<i64>,
    resolved: bool,
    source: String,
    label_names: Vec<String>,
    label_values: Vec<String>,
    annotation_names: Vec<String>,
    annotation_values: Vec<String>,
    stateful: bool,
}

async fn from_clickhouse(config: &Config, args: &ReplayArgs) -> anyhow::Result<Vec<Alert>> {
    let from = args.from.as_deref().context("--from (or --input) is needed: which alerts to replay")?;
    let sql = "SELECT toUnixTimestamp64Milli(received_at) AS received_ms, toUnixTimestamp64Milli(starts_at) AS starts_ms, \
               if(ends_at IS NULL, NULL, toUnixTimestamp64Milli(assumeNotNull(ends_at))) AS ends_ms, \
               status = 'resolved' AS resolved, source, mapKeys(labels) AS label_names, mapValues(labels) AS label_values, \
               mapKeys(annotations) AS annotation_names, mapValues(annotations) AS annotation_values, stateful \
               FROM alerts FINAL WHERE tenant = ? AND received_at >= parseDateTime64BestEffort(?, 3) \
               AND received_at < parseDateTime64BestEffort(?, 3) ORDER BY received_at, kafka_partition, kafka_offset";
    let to = args.to.clone().unwrap_or_else(|| crate::alertmanager_api::rfc3339(quench_schemas::now_ms() + 1));
    let rows: Vec<Stored> = crate::clickhouse::client(&config.clickhouse)
        .query(sql)
        .bind(&args.tenant)
        .bind(from)
        .bind(&to)
        .fetch_all()
        .await
        .context("reading alerts from ClickHouse")?;
    Ok(rows
        .into_iter()
        .map(|row| Alert {
            source: row.source,
            status: if row.resolved { AlertStatus::Resolved } else { AlertStatus::Firing },
            labels: row.label_names.into_iter().zip(row.label_values).collect(),
            annotations: row.annotation_names.into_iter().zip(row.annotation_values).collect(),
            starts_at: row.starts_ms,
            ends_at: row.ends_ms,
            received_at: row.received_ms,
            generator_url: None,
            fingerprint: None,
            tenant: args.tenant.clone(),
            stateful: row.stateful,
        })
        .collect())
}

pub async fn run(config: &Config, args: &ReplayArgs) -> anyhow::Result<()> {
    let load = |path: &PathBuf, key: &str| RouteTree::load(path).map_err(|e| anyhow::anyhow!("{key}: {e}"));
    let candidate = load(&args.rules, "--rules")?;
    let current = match args.current.as_ref().or(config.worker.rules.as_ref()) {
        Some(path) => load(path, "--current")?,
        None => RouteTree::default(),
    };
    let routing = match &config.worker.routing {
        Some(path) => RoutingRules::load(path).map_err(|e| anyhow::anyhow!("worker.routing: {e}"))?,
        None => RoutingRules::default(),
    };
    let settle = duration::parse(&args.settle).map_err(|e| anyhow::anyhow!("--settle: {e}"))?;
    let alerts = match &args.input {
        Some(path) => from_file(path)?,
        None => from_clickhouse(config, args).await?,
    };
    // Routes with a transient_pause hold the configured kinds and those the replayed alerts show
    // to resolve by themselves, as a worker learns them from ClickHouse.
    let max_ms = i64::try_from(config.worker.transient_max_duration_s.saturating_mul(1000)).unwrap_or(i64::MAX);
    let mut transients = Transients::configured(config.worker.transient_kinds.iter().cloned());
    transients.learn(&durations(&alerts, max_ms));
    let correlator = match args.correlate {
        true => {
            let settings = config.correlate.settings();
            let dependencies =
                config.correlate.dependencies().map_err(|e| anyhow::anyhow!("correlate.dependencies: {e}"))?;
            Some(Correlator::new(settings, Associations::learn(&onsets(&alerts), &settings), dependencies))
        }
        false => None,
    };
    let started = Instant::now();
    let before =
        replay(&alerts, &current, &routing, settle, Additions { transients: transients.clone(), correlator: None })?;
    let after = replay(&alerts, &candidate, &routing, settle, Additions { transients, correlator })?;
    let elapsed = started.elapsed();
    let change = diff(&before, &after);
    let side = |r: &Replayed| {
        json!({"incidents": r.incidents.len(), "notifications": r.notifications.len(), "pages": r.pages(),
               "linked": r.links.len(), "reduction": r.reduction()})
    };
    if args.json {
        println!(
            "{}",
            json!({"alerts": alerts.len(), "current": side(&before), "candidate": side(&after), "diff": change,
                   "seconds": elapsed.as_secs_f64()})
        );
        return Ok(());
    }
    println!("{} alerts replayed through both rule sets in {:.2?}", alerts.len(), elapsed);
    println!("{:<16} {:>10} {:>10}", "", "current", "candidate");
    println!("{:<16} {:>10} {:>10}", "incidents", before.incidents.len(), after.incidents.len());
    println!("{:<16} {:>10} {:>10}", "notifications", before.notifications.len(), after.notifications.len());
    println!("{:<16} {:>10} {:>10}", "pages", before.pages(), after.pages());
    println!("{:<16} {:>10} {:>10}", "linked", before.links.len(), after.links.len());
    println!("{:<16} {:>9.1}% {:>9.1}%", "reduction", before.reduction() * 100.0, after.reduction() * 100.0);
    for link in after.links.iter().take(5) {
        println!("  linked: {} under {}: {}", link.child, link.parent, link.explanation);
    }
    println!("incidents split: {}, merged: {}", change.split, change.merged);
    for (reason, (was, becomes)) in &change.notifications {
        println!("notifications {reason}: {was} -> {becomes}");
    }
    for example in &change.examples {
        println!("  {example}");
    }
    Ok(())
}
