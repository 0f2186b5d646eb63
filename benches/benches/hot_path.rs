//! Micro-benchmarks of the worker's per-alert hot path. Run with
//! `cargo bench -p quench-benches --bench hot_path`; criterion prints time per alert and
//! throughput in alerts/s (`Throughput::Elements(1)`), on one core.
//!
//! - `fingerprint`: Alertmanager's FNV-1a over the labels;
//! - `avro_encode` / `avro_decode`: Confluent-framed Avro with a prepared writer schema;
//! - `window_resend`: a re-sent alert reaching an open group (counters and last_seen only);
//! - `resend_path`: everything the worker does for a re-sent record: decode, fingerprint, route,
//!   group key and window update.

use std::{collections::BTreeMap, hint::black_box, time::Duration};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use quench_core::{
    rules::{Placement, RouteTree},
    window::Windows,
};
use quench_schemas::{fingerprint::fingerprint, Alert, AlertStatus, Decoder, Encoder, Record, Registry};

const T0: i64 = 1_764_000_000_000;

fn alert(instance: usize) -> Alert {
    let labels: BTreeMap<String, String> = [
        ("alertname", "PostgresqlTooManyConnections".to_string()),
        ("instance", format!("db-{instance}.eu-west-1.internal:9187")),
        ("job", "postgres-exporter".to_string()),
        ("severity", "warning".to_string()),
        ("team", "dba".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Alert {
        source: "alertmanager".into(),
        status: AlertStatus::Firing,
        labels,
        annotations: BTreeMap::from([(
            "summary".to_string(),
            "PostgreSQL instance has too many connections (> 80%).".to_string(),
        )]),
        starts_at: T0,
        ends_at: None,
        received_at: T0 + 250,
        generator_url: None,
        fingerprint: None,
        tenant: "default".into(),
        stateful: false,
    }
}

/// A decoder with the Alert schema prepared under id 1, as after the first record of a run.
fn decoder() -> Decoder<Alert> {
    let unused = Registry::new("http://127.0.0.1:1", Duration::from_secs(1)).unwrap();
    let decoder = Decoder::new(unused);
    decoder.insert_writer_schema(1, Alert::SCHEMA_JSON).unwrap();
    decoder
}

fn place(tree: &RouteTree, alert: &Alert) -> Placement {
    tree.place(alert, None).remove(0)
}

/// One open group holding `n` alerts.
fn windows_with(tree: &RouteTree, n: usize) -> Windows {
    let mut windows = Windows::default();
    for i in 0..n {
        let a = alert(i);
        windows.ingest(&a, fingerprint(&a.labels), place(tree, &a), a.received_at, false);
    }
    windows
}

fn hot_path(c: &mut Criterion) {
    let alert = alert(7);
    let encoder = Encoder::<Alert>::new(1);
    let bytes = encoder.encode(&alert).unwrap();
    let decoder = decoder();
    let tree = RouteTree::default();

    let mut group = c.benchmark_group("per_alert");
    group.throughput(Throughput::Elements(1));
    group.bench_function("fingerprint", |b| b.iter(|| fingerprint(black_box(&alert.labels))));
    group.bench_function("avro_encode", |b| b.iter(|| encoder.encode(black_box(&alert)).unwrap()));
    group.bench_function("avro_decode", |b| b.iter(|| decoder.try_decode(black_box(&bytes)).unwrap().unwrap()));

    let mut windows = windows_with(&tree, 1_000);
    let placement = || place(&tree, &alert);
    let fp = fingerprint(&alert.labels);
    group.bench_function("window_resend", |b| {
        b.iter_batched(
            placement,
            |p| windows.ingest(black_box(&alert), fp, p, T0 + 1_000, false),
            criterion::BatchSize::SmallInput,
        )
    });

    let mut windows = windows_with(&tree, 1_000);
    group.bench_function("resend_path", |b| {
        b.iter(|| {
            let alert = decoder.try_decode(black_box(&bytes)).unwrap().unwrap();
            let fp = fingerprint(&alert.labels);
            let p = place(&tree, &alert);
            windows.ingest(&alert, fp, p, alert.received_at, false);
        })
    });
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
