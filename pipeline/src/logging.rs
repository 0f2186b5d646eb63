//! Structured logs to stderr: JSON lines for log pipelines or text for people, filtered by
//! `log.level` (overridden by `RUST_LOG` when set, as tracing users expect); and, with
//! `trace.otlp_endpoint` set, the `quench.*` spans to an OpenTelemetry collector.

use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt, EnvFilter, Layer};

use crate::config::{LogConfig, LogFormat};

/// Installs the process's subscriber as `service`; the exporter it returns (if traces are on)
/// is to be kept until the process ends, when dropping it sends the last spans.
pub fn init(
    config: &LogConfig,
    trace: &quench_trace::TraceConfig,
    service: &str,
) -> anyhow::Result<Option<quench_trace::Exporter>> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.is_empty() => EnvFilter::try_new(value)?,
        _ => EnvFilter::try_new(&config.level)
            .map_err(|e| anyhow::anyhow!("invalid configuration: key `log.level`: {e}"))?,
    };
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match config.format {
        LogFormat::Json => logs.json().flatten_event(true).with_filter(filter).boxed(),
        LogFormat::Text => logs.with_filter(filter).boxed(),
    };
    let (spans, exporter) = quench_trace::layer(trace, service)?.unzip();
    tracing_subscriber::registry().with(logs).with(spans).init();
    Ok(exporter)
}
