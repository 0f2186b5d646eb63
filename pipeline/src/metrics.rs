//! The Prometheus endpoint. Metric names are prefixed `quench_`; every stage records into the
//! global recorder through the `metrics` macros, so business code stays free of exporter details.

use crate::config::MetricsConfig;

/// Serves `/metrics` on the configured address; an empty address leaves metrics off.
pub fn install(config: &MetricsConfig) -> anyhow::Result<()> {
    if config.listen.is_empty() {
        return Ok(());
    }
    let address: std::net::SocketAddr = config
        .listen
        .parse()
        .map_err(|e| anyhow::anyhow!("invalid configuration: key `metrics.listen`: `{}`: {e}", config.listen))?;
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(address)
        .install()
        .map_err(|e| anyhow::anyhow!("cannot serve metrics on metrics.listen = {address}: {e}"))?;
    tracing::info!(%address, "serving Prometheus metrics on /metrics");
    Ok(())
}
