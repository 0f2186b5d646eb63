//! Micro-benchmarks of the per-alert hot path: fingerprinting and Avro encoding in Confluent
//! framing. Run with `cargo bench -p quench-benches --bench hot_path`; criterion prints the time
//! per alert and the throughput in alerts/s.

use std::{collections::BTreeMap, hint::black_box};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use quench_pipeline::fingerprint::fingerprint;
use quench_schemas::{Alert, AlertStatus, Encoder};

fn alert() -> Alert {
    let labels: BTreeMap<String, String> = [
        ("alertname", "PostgresqlTooManyConnections"),
        ("instance", "db-17.eu-west-1.internal:9187"),
        ("job", "postgres-exporter"),
        ("severity", "warning"),
        ("team", "dba"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Alert {
        source: "alertmanager".into(),
        status: AlertStatus::Firing,
        labels,
        annotations: BTreeMap::from([(
            "summary".to_string(),
            "PostgreSQL instance has too many connections (> 80%).".to_string(),
        )]),
        starts_at: 1_764_000_000_000,
        ends_at: None,
        received_at: 1_764_000_000_250,
        generator_url: None,
        fingerprint: None,
        tenant: "default".into(),
    }
}

fn hot_path(c: &mut Criterion) {
    let alert = alert();
    let mut group = c.benchmark_group("per_alert");
    group.throughput(Throughput::Elements(1));
    group.bench_function("fingerprint", |b| b.iter(|| fingerprint(black_box(&alert.labels))));
    let encoder = Encoder::<Alert>::new(1);
    group.bench_function("avro_encode_confluent", |b| b.iter(|| encoder.encode(black_box(&alert)).unwrap()));
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
