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

/// Inserts `rows` into `table` in a task of its own on `handle`, within 10 s, for records (the
/// audit trail) whose source of truth is elsewhere: a slow or failed insert is logged as
/// `what` not recorded, and never holds up the caller.
pub fn insert_in_background<R>(
    handle: &tokio::runtime::Handle,
    client: Client,
    table: &'static str,
    rows: Vec<R>,
    what: &'static str,
) where
    R: clickhouse::Row + serde::Serialize + Send + Sync + 'static,
    for<'a> R: clickhouse::RowWrite<Value<'a> = R>,
{
    handle.spawn(async move {
        let written = async {
            let mut insert = client.insert::<R>(table).await?;
            for row in &rows {
                insert.write(row).await?;
            }
            insert.end().await
        };
        match tokio::time::timeout(std::time::Duration::from_secs(10), written).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "{what} not recorded in ClickHouse's audit trail"),
            Err(_) => tracing::warn!("{what} not recorded in ClickHouse's audit trail within 10 s"),
        }
    });
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
