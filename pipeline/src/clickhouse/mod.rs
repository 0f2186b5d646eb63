//! ClickHouse access through the official `clickhouse` crate over HTTP.

mod history;
mod migrate;
mod rows;

pub use history::labelled_incidents;
pub use migrate::{migrate, ttl_column, ttl_tables, Migration, MigrationReport, MIGRATIONS};
pub use rows::{ActionRow, AlertRow, IncidentAlertRow, IncidentRow, PredictionRow, RoutingRow};

use clickhouse::Client;

use crate::config::{ClickHouseConfig, Compression};

/// A client for the configured database.
pub fn client(config: &ClickHouseConfig) -> Client {
    server_client(config).with_database(&config.database)
}

/// A client without a database, for statements that must run before the database exists.
pub fn server_client(config: &ClickHouseConfig) -> Client {
    Client::default()
        .with_url(&config.url)
        .with_user(&config.user)
        .with_password(config.password.expose())
        .with_compression(match config.compression {
            Compression::None => clickhouse::Compression::None,
            Compression::Lz4 => clickhouse::Compression::Lz4,
        })
}

/// Fails with the configured address unless ClickHouse answers; returns its version.
pub async fn check(config: &ClickHouseConfig) -> anyhow::Result<String> {
    server_client(config).query("SELECT version()").fetch_one::<String>().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach ClickHouse at clickhouse.url = {}: {e}",
            quench_secret::mask_url_password(&config.url)
        )
    })
}
