//! Start-up checks: every server a command needs must answer before the command does anything,
//! and a failure names the configuration key and address to fix.

use quench_secret::mask_url_password;
use std::time::Duration;

use quench_schemas::Registry;

use crate::{
    clickhouse,
    config::{Config, RegistryConfig},
    kafka,
};

/// What answered, for the start-up log and `quench check`.
#[derive(Debug, Default)]
pub struct Reachable {
    pub kafka_brokers: Option<usize>,
    pub registry: Option<String>,
    pub clickhouse_version: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct Needs {
    pub kafka: bool,
    pub registry: bool,
    pub clickhouse: bool,
}

impl Needs {
    pub const ALL: Needs = Needs { kafka: true, registry: true, clickhouse: true };
    pub const KAFKA_AND_REGISTRY: Needs = Needs { kafka: true, registry: true, clickhouse: false };
    pub const CLICKHOUSE: Needs = Needs { kafka: false, registry: false, clickhouse: true };
}

/// Checks the servers in `needs` concurrently and reports every one that failed, not just the first.
pub async fn check(config: &Config, needs: Needs) -> anyhow::Result<Reachable> {
    let (kafka, registry, clickhouse) = tokio::join!(
        async {
            if needs.kafka {
                Some(kafka::check(&config.kafka).await)
            } else {
                None
            }
        },
        async {
            if needs.registry {
                Some(registry(&config.registry).await)
            } else {
                None
            }
        },
        async {
            if needs.clickhouse {
                Some(clickhouse::check(&config.clickhouse).await)
            } else {
                None
            }
        },
    );
    let mut reachable = Reachable::default();
    let mut errors = Vec::new();
    match kafka.transpose() {
        Ok(v) => reachable.kafka_brokers = v,
        Err(e) => errors.push(e.to_string()),
    }
    match registry.transpose() {
        Ok(v) => reachable.registry = v,
        Err(e) => errors.push(e.to_string()),
    }
    match clickhouse.transpose() {
        Ok(v) => reachable.clickhouse_version = v,
        Err(e) => errors.push(e.to_string()),
    }
    if errors.is_empty() {
        Ok(reachable)
    } else {
        Err(anyhow::anyhow!(errors.join("\n")))
    }
}

/// A registry client for the configured URL.
pub fn registry_client(registry: &RegistryConfig) -> anyhow::Result<Registry> {
    Ok(Registry::new(&registry.url, Duration::from_millis(registry.timeout_ms))?)
}

async fn registry(config: &RegistryConfig) -> anyhow::Result<String> {
    let registry = registry_client(config)?;
    registry.check().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach the schema registry at registry.url = {}: {}",
            mask_url_password(&config.url),
            e.message
        )
    })?;
    Ok(mask_url_password(&config.url))
}
