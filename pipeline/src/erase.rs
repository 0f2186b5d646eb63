//! `quench erase`: removes a tenant's alerts and incidents (all, or those with a label, or
//! before a date) when a user asks for their data to go. ClickHouse rows go by lightweight
//! deletes (hidden at once, removed at the next merge); the incidents' records on the compacted
//! `incidents` topic get tombstones, so compaction removes them from Kafka too; and the erasure
//! itself is recorded in `erasures` (and so in the `audit` view), without the erased values.

use anyhow::Context;
use clickhouse::Row;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};

use crate::{clickhouse::client, config::Config, kafka::client_config};

#[derive(Debug, Clone, clap::Args)]
pub struct EraseArgs {
    /// The tenant whose data goes.
    #[arg(long)]
    pub tenant: String,
    /// Only alerts with this label (`name=value`), and the incidents they are part of.
    #[arg(long, value_parser = label)]
    pub label: Option<(String, String)>,
    /// Only what was received (alerts) or began (incidents) before this time (RFC 3339, or a
    /// date `YYYY-MM-DD`, meaning its midnight UTC).
    #[arg(long, value_parser = before)]
    pub before: Option<i64>,
    /// Who asked for the erasure, recorded with it.
    #[arg(long, default_value = "quench erase")]
    pub actor: String,
    /// Count what would go; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn label(text: &str) -> Result<(String, String), String> {
    // An empty value would match every alert without the label (a missing key reads as '').
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() && !value.is_empty() => Ok((name.trim().into(), value.into())),
        _ => Err(format!("`{text}` is not name=value (both non-empty)")),
    }
}

fn before(text: &str) -> Result<i64, String> {
    let rfc3339 = if text.len() == 10 { format!("{text}T00:00:00Z") } else { text.to_string() };
    crate::ask::parse_time(&rfc3339).map_err(|e| e.to_string())
}

/// Tables whose rows belong to one incident, erased with it (in reverse order: `incidents`, by
/// which an erasure finds them, last).
const PER_INCIDENT: &[&str] =
    &["incidents", "incident_alerts", "routing_events", "notifications", "actions", "similar_incidents"];

/// Incidents are deleted this many ids per statement (a statement's text stays small).
const CHUNK: usize = 5_000;

#[derive(Debug, Row, Serialize)]
struct Erasure {
    at: i64,
    tenant: String,
    actor: String,
    label: String,
    before: Option<i64>,
    alerts: u64,
    incidents: u64,
}

#[derive(Row, Deserialize)]
struct Id {
    incident_id: String,
}

/// What an erasure matched.
#[derive(Debug, PartialEq, Eq)]
pub struct Erased {
    pub alerts: u64,
    pub incidents: u64,
}

pub async fn run(config: &Config, args: &EraseArgs) -> anyhow::Result<Erased> {
    let clickhouse = client(&config.clickhouse);
    let (label_name, label_value) = args.label.clone().unwrap_or_default();
    let labelled = args.label.is_some();
    let before = args.before.unwrap_or(i64::MAX);
    // Conditions shared by the count and the delete, bound in this order: tenant, then label,
    // then time.
    let alerts_where = "tenant = ? AND (NOT ? OR labels[?] = ?) AND received_at < fromUnixTimestamp64Milli(?)";
    let on_alerts = |sql: &str| {
        clickhouse
            .query(&format!("{sql} WHERE {alerts_where}"))
            .bind(&args.tenant)
            .bind(labelled)
            .bind(&label_name)
            .bind(&label_value)
            .bind(before)
    };
    let alerts: u64 =
        on_alerts("SELECT count() FROM alerts").fetch_one().await.context("counting the alerts to erase")?;
    let ids: Vec<String> = clickhouse
        .query(
            "SELECT DISTINCT incident_id FROM incidents WHERE tenant = ? AND first_seen < fromUnixTimestamp64Milli(?) \
             AND (NOT ? OR common_labels[?] = ? OR incident_id IN (SELECT incident_id FROM incident_alerts \
             WHERE tenant = ? AND fingerprint IN (SELECT fingerprint FROM alerts WHERE tenant = ? AND labels[?] = ?)))",
        )
        .bind(&args.tenant)
        .bind(before)
        .bind(labelled)
        .bind(&label_name)
        .bind(&label_value)
        .bind(&args.tenant)
        .bind(&args.tenant)
        .bind(&label_name)
        .bind(&label_value)
        .fetch_all::<Id>()
        .await
        .context("finding the incidents to erase")?
        .into_iter()
        .map(|id| id.incident_id)
        .collect();
    let erased = Erased { alerts, incidents: ids.len() as u64 };
    if args.dry_run {
        return Ok(erased);
    }
    // Tombstones first, and `incidents` last of each chunk's tables: an erasure that fails
    // half-way still finds, when run again, every incident it has not finished.
    tombstones(config, &ids).await?;
    for chunk in ids.chunks(CHUNK) {
        for table in PER_INCIDENT.iter().rev() {
            clickhouse
                .query(&format!("DELETE FROM {table} WHERE tenant = ? AND has(?, incident_id)"))
                .bind(&args.tenant)
                .bind(chunk)
                .execute()
                .await
                .with_context(|| format!("erasing from {table}"))?;
        }
    }
    on_alerts("DELETE FROM alerts").execute().await.context("erasing alerts")?;
    let mut insert = clickhouse.insert::<Erasure>("erasures").await?;
    insert
        .write(&Erasure {
            at: quench_schemas::now_ms(),
            tenant: args.tenant.clone(),
            actor: args.actor.clone(),
            label: args.label.as_ref().map(|(n, v)| format!("{n}={v}")).unwrap_or_default(),
            before: args.before,
            alerts: erased.alerts,
            incidents: erased.incidents,
        })
        .await?;
    insert.end().await.context("recording the erasure")?;
    Ok(erased)
}

/// A tombstone per incident on the compacted `incidents` topic (keyed by incident id).
async fn tombstones(config: &Config, ids: &[String]) -> anyhow::Result<()> {
    let producer: FutureProducer = client_config(&config.kafka, "erase").set("enable.idempotence", "true").create()?;
    let sends = ids.iter().map(|id| {
        let record = FutureRecord::<String, [u8]>::to(&config.topics.incidents).key(id);
        producer.send(record, std::time::Duration::from_secs(30))
    });
    for sent in futures::future::join_all(sends).await {
        sent.map_err(|(e, _)| anyhow::anyhow!("a tombstone was not written to {}: {e}", config.topics.incidents))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_dates_are_read_as_the_help_says() {
        assert_eq!(label("service=pg"), Ok(("service".into(), "pg".into())));
        assert_eq!(label("team=a=b"), Ok(("team".into(), "a=b".into())));
        assert!(label("service").is_err() && label("=pg").is_err() && label("team=").is_err());
        assert_eq!(before("2026-11-01"), before("2026-11-01T00:00:00Z"));
        assert!(before("yesterday").is_err());
    }
}
