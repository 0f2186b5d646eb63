//! Numbered migrations from `sql/`, compiled into the binary so that a deployed `quench` carries
//! the schema it expects. Applied ones are recorded in `quench_migrations` with a checksum; an
//! applied file that changed afterwards is an error, not something to re-run silently.

use anyhow::{bail, Context};
use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};

use crate::clickhouse::server_client;
use crate::config::ClickHouseConfig;
use quench_schemas::fingerprint::fnv1a;

pub struct Migration {
    pub version: u32,
    pub file: &'static str,
    pub sql: &'static str,
}

macro_rules! migration {
    ($version:literal, $file:literal) => {
        Migration { version: $version, file: $file, sql: include_str!(concat!("../../../sql/", $file)) }
    };
}

/// Every file in `sql/`, in order. A unit test checks that none is missing from this list.
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_alerts.sql"),
    migration!(2, "0002_incidents.sql"),
    migration!(3, "0003_incident_alerts.sql"),
    migration!(4, "0004_routing_events.sql"),
    migration!(5, "0005_notifications.sql"),
    migration!(6, "0006_incident_distinct_alerts.sql"),
    migration!(7, "0007_mutes.sql"),
    migration!(8, "0008_incident_inhibitions.sql"),
    migration!(9, "0009_analytics.sql"),
    migration!(10, "0010_predictions.sql"),
    migration!(11, "0011_precursor_edges.sql"),
    migration!(12, "0012_holds.sql"),
    migration!(13, "0013_correlation.sql"),
    migration!(14, "0014_actions.sql"),
    migration!(15, "0015_similar_incidents.sql"),
    migration!(16, "0016_action_tokens.sql"),
    migration!(17, "0017_audit.sql"),
    migration!(18, "0018_silence_changes.sql"),
    migration!(19, "0019_rules_reloads.sql"),
];

#[derive(Debug, Default)]
pub struct MigrationReport {
    pub applied: Vec<&'static str>,
    pub already_applied: usize,
}

impl MigrationReport {
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.applied.iter().map(|file| format!("migration {file}: applied")).collect();
        lines.push(format!("migrations: {} applied now, {} already applied", self.applied.len(), self.already_applied));
        lines
    }
}

#[derive(Row, Serialize, Deserialize)]
struct Applied {
    version: u32,
    file: String,
    checksum: String,
}

/// Creates the database if needed and applies the pending migrations in order.
pub async fn migrate(config: &ClickHouseConfig, migrations: &[Migration]) -> anyhow::Result<MigrationReport> {
    server_client(config)
        .query(&format!("CREATE DATABASE IF NOT EXISTS `{}`", config.database))
        .execute()
        .await
        .with_context(|| {
            format!("creating database {} at {}", config.database, quench_secret::mask_url_password(&config.url))
        })?;
    let client = super::client(config);
    client
        .query(
            "CREATE TABLE IF NOT EXISTS quench_migrations (version UInt32, file String, checksum String, \
             applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY version",
        )
        .execute()
        .await
        .context("creating the quench_migrations table")?;
    let applied: Vec<Applied> = client
        .query("SELECT ?fields FROM quench_migrations ORDER BY version")
        .fetch_all()
        .await
        .context("reading quench_migrations")?;

    let mut report = MigrationReport::default();
    for migration in migrations {
        let checksum = checksum(migration.sql);
        if let Some(done) = applied.iter().find(|a| a.version == migration.version) {
            if done.checksum != checksum {
                bail!(
                    "migration {} was changed after it was applied as {} (checksum {} now {}); \
                     add a new migration instead of editing an applied one",
                    migration.file,
                    done.file,
                    done.checksum,
                    checksum
                );
            }
            report.already_applied += 1;
            continue;
        }
        apply(&client, migration).await?;
        let mut insert = client.insert::<Applied>("quench_migrations").await?;
        insert.write(&Applied { version: migration.version, file: migration.file.into(), checksum }).await?;
        insert.end().await?;
        report.applied.push(migration.file);
    }
    apply_ttls(&client, config).await?;
    Ok(report)
}

/// The tables whose rows may expire, and the time they expire by.
const TTL_COLUMNS: &[(&str, &str)] = &[
    ("alerts", "received_at"),
    ("incidents", "last_seen"),
    ("incident_alerts", "last_seen"),
    ("routing_events", "emitted_at"),
    ("notifications", "at"),
    ("actions", "at"),
    ("predictions", "issued_at"),
    ("precursor_edges", "fitted_at"),
    ("similar_incidents", "first_seen"),
    ("erasures", "at"),
];

/// The tables of [`TTL_COLUMNS`], for messages.
pub fn ttl_tables() -> String {
    TTL_COLUMNS.iter().map(|(table, _)| *table).collect::<Vec<_>>().join(", ")
}

/// The column `table`'s rows expire by, if it is one that may expire.
pub fn ttl_column(table: &str) -> Option<&'static str> {
    TTL_COLUMNS.iter().find(|(t, _)| *t == table).map(|(_, column)| *column)
}

/// Applies `clickhouse.ttl_days` (checked at start-up: every table has a column in
/// [`TTL_COLUMNS`]). Idempotent: the same TTL again changes nothing.
async fn apply_ttls(client: &Client, config: &ClickHouseConfig) -> anyhow::Result<()> {
    for (table, days) in &config.ttl_days {
        let column = ttl_column(table).with_context(|| format!("clickhouse.ttl_days.{table}: no such table"))?;
        let sql = if *days > 0 {
            format!("ALTER TABLE {table} MODIFY TTL toDateTime({column}) + INTERVAL {days} DAY DELETE")
        } else {
            // Removing a TTL that is not there is an error: only a table that has one.
            let definition: String = client
                .query("SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = ?")
                .bind(table)
                .fetch_one()
                .await
                .with_context(|| format!("reading {table}'s definition"))?;
            if !definition.contains(" TTL ") {
                continue;
            }
            format!("ALTER TABLE {table} REMOVE TTL")
        };
        client.query(&sql).execute().await.with_context(|| format!("applying clickhouse.ttl_days.{table}"))?;
    }
    Ok(())
}

async fn apply(client: &Client, migration: &Migration) -> anyhow::Result<()> {
    for statement in statements(migration.sql) {
        client
            .query(&statement)
            .execute()
            .await
            .map_err(|e| anyhow::anyhow!("migration {} failed: {e}", migration.file))?;
    }
    Ok(())
}

/// Statements of a migration file: full-line `--` comments dropped, split at `;` ending a line.
fn statements(sql: &str) -> Vec<String> {
    let without_comments: String =
        sql.lines().filter(|line| !line.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
    without_comments
        .split(";\n")
        .map(|s| s.trim().trim_end_matches(';').trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// FNV-1a 64 of the file: cheap, stable across versions of Rust and enough to notice edits.
fn checksum(sql: &str) -> String {
    format!("{:016x}", fnv1a(sql.bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sql_file_is_listed_in_order() {
        let mut files: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../sql"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|f| f.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<&str> = MIGRATIONS.iter().map(|m| m.file).collect();
        assert_eq!(files, listed, "add new sql/ files to MIGRATIONS");
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
            assert!(m.file.starts_with(&format!("{:04}_", m.version)));
        }
    }

    #[test]
    fn statements_split_at_line_ending_semicolons_and_drop_comments() {
        let sql =
            "-- a; comment\nCREATE TABLE a (x String DEFAULT ';')\nENGINE = Memory;\n\nCREATE VIEW b AS SELECT 1;\n";
        assert_eq!(
            statements(sql),
            vec![
                "CREATE TABLE a (x String DEFAULT ';')\nENGINE = Memory".to_string(),
                "CREATE VIEW b AS SELECT 1".to_string()
            ]
        );
    }
}
