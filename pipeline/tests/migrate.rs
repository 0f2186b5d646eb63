//! `quench migrate` against the real ClickHouse of `infra/local/stack` (QUENCH_CLICKHOUSE__URL).
//! Each test uses a database of its own, so runs do not disturb each other or the demo.

mod support;

use quench_pipeline::{
    clickhouse::{migrate, Migration, MIGRATIONS},
    config::Config,
};

fn config_for(database: &str) -> Config {
    let mut config = Config::load(None, std::env::vars()).expect("test environment config");
    config.clickhouse.database = database.to_string();
    config
}

#[tokio::test]
async fn migrate_applies_every_migration_once_and_tables_accept_their_rows() {
    let config = config_for(&support::database("migrate"));
    let first = migrate(&config.clickhouse, MIGRATIONS).await.unwrap();
    assert_eq!(first.applied.len(), MIGRATIONS.len());
    let second = migrate(&config.clickhouse, MIGRATIONS).await.unwrap();
    assert!(second.applied.is_empty(), "second run must be a no-op, applied {:?}", second.applied);
    assert_eq!(second.already_applied, MIGRATIONS.len());

    let client = quench_pipeline::clickhouse::client(&config.clickhouse);
    let tables: Vec<String> = client
        .query("SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name")
        .fetch_all()
        .await
        .unwrap();
    for table in ["alerts", "incident_alerts", "incidents", "notifications", "quench_migrations", "routing_events"] {
        assert!(tables.iter().any(|t| t == table), "missing table {table} in {tables:?}");
    }
    let engine: String = client
        .query("SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = 'incidents'")
        .fetch_one()
        .await
        .unwrap();
    assert!(engine.starts_with("ReplacingMergeTree(version)"), "{engine}");
    let ttl: String = client
        .query("SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = 'alerts'")
        .fetch_one()
        .await
        .unwrap();
    assert!(ttl.contains("TTL"), "alerts must carry a TTL: {ttl}");

    // Two incidents inhibited by one, the second in two versions: the source counts two.
    client
        .query(
            "INSERT INTO incidents (tenant, incident_id, group_key, status, title, summary, severity, first_seen, \
             last_seen, alert_count, version, inhibited_by) VALUES \
             ('t', 'inc-b', 'k', 'open', 'B', '', 'warning', now64(3), now64(3), 1, 1, ['inc-a']), \
             ('t', 'inc-b', 'k', 'open', 'B', '', 'warning', now64(3), now64(3), 2, 2, ['inc-a']), \
             ('t', 'inc-c', 'k', 'open', 'C', '', 'warning', now64(3), now64(3), 1, 1, ['inc-a'])",
        )
        .execute()
        .await
        .unwrap();
    let inhibited: u64 = client
        .query("SELECT inhibited_incidents FROM incident_inhibitions WHERE incident_id = 'inc-a'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(inhibited, 2, "the source incident's count of what it inhibited");
}

#[tokio::test]
async fn a_failing_migration_names_its_file_and_clickhouse_error_and_is_not_recorded() {
    let config = config_for(&support::database("broken"));
    let broken = [
        Migration { version: 1, file: "0001_ok.sql", sql: "CREATE TABLE ok (x UInt8) ENGINE = Memory;\n" },
        Migration { version: 2, file: "0002_broken.sql", sql: "CREATE TABLE broken (x NoSuchType) ENGINE = Memory;\n" },
    ];
    let error = migrate(&config.clickhouse, &broken).await.unwrap_err().to_string();
    assert!(error.contains("0002_broken.sql"), "{error}");
    assert!(error.contains("NoSuchType"), "ClickHouse's own message is kept: {error}");

    let fixed = [
        Migration { version: 1, file: "0001_ok.sql", sql: "CREATE TABLE ok (x UInt8) ENGINE = Memory;\n" },
        Migration { version: 2, file: "0002_broken.sql", sql: "CREATE TABLE broken (x UInt8) ENGINE = Memory;\n" },
    ];
    let report = migrate(&config.clickhouse, &fixed).await.unwrap();
    assert_eq!(report.applied, vec!["0002_broken.sql"], "only the failed one is retried");
}

#[tokio::test]
async fn an_applied_migration_that_was_edited_is_refused() {
    let config = config_for(&support::database("edited"));
    let original = [Migration { version: 1, file: "0001_t.sql", sql: "CREATE TABLE t (x UInt8) ENGINE = Memory;\n" }];
    migrate(&config.clickhouse, &original).await.unwrap();
    let edited = [Migration { version: 1, file: "0001_t.sql", sql: "CREATE TABLE t (x UInt16) ENGINE = Memory;\n" }];
    let error = migrate(&config.clickhouse, &edited).await.unwrap_err().to_string();
    assert!(error.contains("0001_t.sql") && error.contains("changed after it was applied"), "{error}");
}
