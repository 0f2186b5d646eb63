//! OpenTelemetry traces of an alert's way through Quench. Ingest starts a trace per request (kept
//! or not by `trace.sample_ratio`), and each process passes it on in its Kafka records'
//! `traceparent` header (W3C trace context): the re-keying stage copies it, the worker opens a
//! span per traced alert that ends when the transaction holding it commits and puts that span's
//! context on the incident's next routing event, the notifier delivers under it. Spans go to an
//! OTLP/HTTP collector (`trace.otlp_endpoint`); without one, nothing is traced and the headers
//! are not written.
//!
//! Only spans named `quench.*` are exported: the traces follow alerts, not every log line.

mod pending;

pub use pending::Pending;

use std::{
    collections::HashMap,
    sync::atomic::{AtomicBool, Ordering},
};

use opentelemetry::{
    propagation::TextMapPropagator,
    trace::{TraceContextExt, TracerProvider},
};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::{
    propagation::TraceContextPropagator,
    trace::{Sampler, SdkTracerProvider},
    Resource,
};
use serde::{Deserialize, Serialize};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    filter::{filter_fn, LevelFilter},
    registry::LookupSpan,
    Layer,
};

/// Whether this process exports spans: without an exporter, records' trace contexts are not
/// followed (no span is made for them at all).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// True once [`layer`] made an exporter: only then is a record's trace context worth following.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// `[trace]`: where spans go, and how many requests start a trace.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TraceConfig {
    /// Base URL of an OTLP/HTTP receiver (an OpenTelemetry Collector's port 4318, say); spans
    /// are posted as JSON to `<endpoint>/v1/traces`. Empty: no traces.
    pub otlp_endpoint: String,
    /// Share of ingest requests that start a trace, 0 to 1. Every span of a kept trace is kept
    /// downstream (the sampling decision travels in the header).
    pub sample_ratio: f64,
}

impl Default for TraceConfig {
    fn default() -> Self {
        // One request in a hundred: enough to follow the pipeline's latency at any rate, little
        // enough that a storm of 100k alerts/s does not become a storm of spans.
        Self { otlp_endpoint: String::new(), sample_ratio: 0.01 }
    }
}

impl TraceConfig {
    /// The key and what is wrong with it, for a value that cannot work.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(("trace.sample_ratio".into(), format!("{} is not between 0 and 1", self.sample_ratio)));
        }
        let endpoint = &self.otlp_endpoint;
        if !(endpoint.is_empty() || endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(("trace.otlp_endpoint".into(), format!("`{endpoint}` is not an http:// or https:// URL")));
        }
        Ok(())
    }
}

/// The exporter of a process that traces; dropping it sends the spans still buffered.
pub struct Exporter(Option<SdkTracerProvider>);

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take() {
            // The blocking HTTP client must not be used (or dropped) on an async runtime's thread.
            let _ = std::thread::spawn(move || provider.shutdown()).join();
        }
    }
}

/// The layer that exports `quench.*` spans as `service`'s, and the exporter to keep until exit;
/// `None` when `config` names no endpoint.
pub fn layer<S>(config: &TraceConfig, service: &str) -> anyhow::Result<Option<(impl Layer<S>, Exporter)>>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    if config.otlp_endpoint.is_empty() {
        return Ok(None);
    }
    let endpoint = format!("{}/v1/traces", config.otlp_endpoint.trim_end_matches('/'));
    let (ratio, service) = (config.sample_ratio, service.to_string());
    // The blocking client starts a runtime of its own, which cannot happen on an async thread.
    let provider = std::thread::spawn(move || -> anyhow::Result<SdkTracerProvider> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(endpoint)
            .build()?;
        Ok(SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))))
            .with_resource(Resource::builder().with_service_name(service).build())
            .build())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("starting the OTLP exporter panicked"))??;
    EXPORTING.store(true, Ordering::Relaxed);
    Ok(Some((spans(&provider), Exporter(Some(provider)))))
}

/// The layer exporting `quench.*` spans (all at INFO: the hint keeps the rest of the process's
/// levels where the log filter put them) to `provider`'s tracer.
fn spans<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("quench")).with_filter(
        filter_fn(|meta| meta.is_span() && meta.name().starts_with("quench.")).with_max_level_hint(LevelFilter::INFO),
    )
}

/// The W3C `traceparent` of `span`, to carry in a record's header; `None` unless it is part of a
/// kept trace.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    if !context.span().span_context().is_sampled() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` a child of the span a record's `traceparent` header names (ignored when it is
/// not a valid trace context).
pub fn follow(span: &tracing::Span, traceparent: &[u8]) {
    let Ok(traceparent) = std::str::from_utf8(traceparent) else { return };
    let carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_without_an_exporter_carries_no_trace_context_and_a_bad_header_is_ignored() {
        let span = tracing::info_span!("quench.test");
        assert_eq!(traceparent(&span), None);
        follow(&span, b"not a traceparent");
        follow(&span, &[0xff, 0xfe]);
        assert_eq!(traceparent(&span), None);
    }

    #[test]
    fn a_span_that_follows_a_header_carries_its_trace_on_with_a_span_of_its_own() {
        use tracing_subscriber::layer::SubscriberExt;

        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry().with(spans(&provider));
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let carried = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("quench.test");
            follow(&span, parent.as_bytes());
            traceparent(&span)
        })
        .unwrap();
        let fields: Vec<&str> = carried.split('-').collect();
        assert_eq!((fields[0], fields[1], fields[3]), ("00", "4bf92f3577b34da6a3ce929d0e0e4736", "01"), "{carried}");
        assert_ne!(fields[2], "00f067aa0ba902b7", "a span id of its own");
        // Not sampled upstream: not sampled here either, so not carried on.
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let subscriber = tracing_subscriber::registry().with(spans(&provider));
        let carried = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("quench.test");
            follow(&span, unsampled.as_bytes());
            traceparent(&span)
        });
        assert_eq!(carried, None);
    }

    #[test]
    fn bad_settings_name_their_key() {
        let bad_ratio = TraceConfig { sample_ratio: 1.5, ..Default::default() };
        assert_eq!(bad_ratio.validate().unwrap_err().0, "trace.sample_ratio");
        let bad_url = TraceConfig { otlp_endpoint: "collector:4318".into(), ..Default::default() };
        assert_eq!(bad_url.validate().unwrap_err().0, "trace.otlp_endpoint");
        assert!(TraceConfig::default().validate().is_ok());
    }
}
