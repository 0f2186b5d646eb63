//! Integration tests against the real schema registry and Kafka broker of `infra/local/stack`.
//! Addresses come from QUENCH_REGISTRY__URL and QUENCH_KAFKA__BROKERS (the stack's defaults
//! otherwise). A missing registry fails these tests loudly; it is never skipped.

use std::{collections::BTreeMap, time::Duration};

use apache_avro::{types::Value, writer::datum::GenericDatumWriter, Schema};
use quench_schemas::{
    frame, ActionKind, Alert, AlertStatus, Compatibility, Decoder, Encoder, Incident, IncidentAction, IncidentStatus,
    Record, Registry, RoutingEvent, RoutingReason, RoutingTarget,
};
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{Consumer, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
    ClientConfig, Message,
};

fn registry() -> Registry {
    let url = std::env::var("QUENCH_REGISTRY__URL").unwrap_or_else(|_| "http://127.0.0.1:8081/apis/ccompat/v7".into());
    Registry::new(&url, Duration::from_secs(10)).unwrap()
}

fn brokers() -> String {
    std::env::var("QUENCH_KAFKA__BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// A suffix that keeps subjects and topics of different test runs apart on a shared stack.
fn nonce() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{}-{nanos}", std::process::id())
}

async fn registry_or_fail_loudly() -> Registry {
    let registry = registry();
    if let Err(e) = registry.check().await {
        panic!("NO SCHEMA REGISTRY AVAILABLE for this test ({e}); start it with `infra/local/stack up`");
    }
    registry
}

fn sample_alert() -> Alert {
    Alert {
        source: "alertmanager".into(),
        status: AlertStatus::Firing,
        labels: BTreeMap::from([
            ("alertname".into(), "PostgresqlDown".into()),
            ("instance".into(), "db-1:9187".into()),
        ]),
        annotations: BTreeMap::from([("summary".into(), "Postgresql down (instance db-1)".into())]),
        starts_at: 1_764_000_000_000,
        ends_at: None,
        received_at: 1_764_000_000_250,
        generator_url: Some("http://prometheus:9090/graph?g0.expr=pg_up".into()),
        fingerprint: Some("3c4b6a7f2a1d9e01".into()),
        tenant: "acme".into(),
        stateful: false,
    }
}

fn sample_incident() -> Incident {
    Incident {
        incident_id: "inc-0f1e2d3c".into(),
        group_key: "{}:{alertname=\"PostgresqlDown\"}".into(),
        tenant: "acme".into(),
        status: IncidentStatus::Acknowledged,
        title: "PostgresqlDown on db-1".into(),
        summary: "Primary database is down".into(),
        severity: "critical".into(),
        priority: Some("P1".into()),
        category: Some("database".into()),
        confidence: Some(0.875),
        classified_by: Some("local".into()),
        first_seen: 1_764_000_000_000,
        last_seen: 1_764_000_060_000,
        acknowledged_at: Some(1_764_000_030_000),
        resolved_at: None,
        alert_count: 7,
        fingerprints: vec!["3c4b6a7f2a1d9e01".into()],
        distinct_alerts: 1,
        muted_alerts: 0,
        silenced_by: Vec::new(),
        inhibited_by: Vec::new(),
        state_changes: 0,
        transient: false,
        parent_incident_id: None,
        correlation: None,
        common_labels: BTreeMap::from([("alertname".into(), "PostgresqlDown".into())]),
        flapping: false,
        version: 3,
    }
}

fn sample_routing_event() -> RoutingEvent {
    RoutingEvent {
        event_id: "inc-0f1e2d3c/3/opened".into(),
        incident_id: "inc-0f1e2d3c".into(),
        reason: RoutingReason::SeverityChanged,
        tenant: "acme".into(),
        status: IncidentStatus::Open,
        title: "PostgresqlDown on db-1".into(),
        summary: "Primary database is down".into(),
        severity: "critical".into(),
        priority: Some("P1".into()),
        category: None,
        alert_count: 7,
        common_labels: BTreeMap::new(),
        team: Some("dba".into()),
        targets: vec![RoutingTarget::new("slack", "#dba-oncall")],
        escalation_policy: Some("dba-default".into()),
        incident_version: 3,
        emitted_at: 1_764_000_060_100,
        receiver: None,
        group_key: String::new(),
        group_labels: BTreeMap::new(),
        alerts: Vec::new(),
        truncated_alerts: 0,
        flaps: 0,
        parent_incident_id: None,
        correlation: None,
    }
}

fn sample_action() -> IncidentAction {
    IncidentAction {
        action_id: "act-1".into(),
        incident_id: "inc-0f1e2d3c".into(),
        kind: ActionKind::Acknowledge,
        actor: "alice@example.com".into(),
        comment: Some("looking".into()),
        at: 1_764_000_030_000,
        tenant: "acme".into(),
        token: "ops-bot".into(),
    }
}

#[tokio::test]
async fn every_schema_registers_and_backward_compatibility_is_enforced() {
    let registry = registry_or_fail_loudly().await;
    let run = nonce();
    for (name, schema) in [
        ("alert", Alert::SCHEMA_JSON),
        ("incident", Incident::SCHEMA_JSON),
        ("routing", RoutingEvent::SCHEMA_JSON),
        ("action", IncidentAction::SCHEMA_JSON),
    ] {
        let subject = format!("quench-test-{run}-{name}-value");
        registry.set_compatibility(&subject, Compatibility::Backward).await.unwrap();
        let id = registry.register_schema(&subject, schema).await.unwrap();
        let again = registry.register_schema(&subject, schema).await.unwrap();
        assert_eq!(id, again, "re-registering the same {name} schema must return its id");
    }

    let subject = format!("quench-test-{run}-alert-value");
    let mut evolved: serde_json::Value = serde_json::from_str(Alert::SCHEMA_JSON).unwrap();
    let fields = evolved["fields"].as_array_mut().unwrap();
    fields.push(serde_json::json!({"name": "region", "type": "string", "default": "eu-west-1"}));
    let compatible = evolved.to_string();
    evolved["fields"].as_array_mut().unwrap().last_mut().unwrap().as_object_mut().unwrap().remove("default");
    let incompatible = evolved.to_string();

    assert!(
        registry.is_compatible(&subject, &compatible).await.unwrap(),
        "a new field with a default is BACKWARD compatible"
    );
    assert!(!registry.is_compatible(&subject, &incompatible).await.unwrap(), "a new field without a default is not");
    let refused = registry.register_schema(&subject, &incompatible).await;
    assert!(refused.is_err(), "the registry must refuse an incompatible schema, got {refused:?}");
    let first_id = registry.register_schema(&subject, Alert::SCHEMA_JSON).await.unwrap();
    let new_id = registry.register_schema(&subject, &compatible).await.unwrap();
    assert_ne!(new_id, first_id, "an evolved schema gets an id of its own");
}

/// Every process of a pipeline sets its subjects' compatibility at start-up, several at once on
/// a fresh stack; the registry answers 409 to all but the first that creates the rule.
#[tokio::test]
async fn processes_setting_one_subjects_compatibility_at_once_all_succeed() {
    let registry = registry_or_fail_loudly().await;
    for round in 0..5 {
        let subject = format!("quench-test-{}-concurrent-{round}-value", nonce());
        let mut attempts = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (registry, subject) = (registry.clone(), subject.clone());
            attempts.spawn(async move { registry.set_compatibility(&subject, Compatibility::Backward).await });
        }
        while let Some(result) = attempts.join_next().await {
            result.unwrap().unwrap_or_else(|e| panic!("a concurrent set_compatibility on {subject} failed: {e}"));
        }
    }
}

async fn create_topic(topic: &str) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers()).create().unwrap();
    let results = admin
        .create_topics(&[NewTopic::new(topic, 1, TopicReplication::Fixed(1))], &AdminOptions::new())
        .await
        .unwrap_or_else(|e| panic!("cannot reach Kafka at {}: {e}", brokers()));
    for result in results {
        result.unwrap();
    }
}

/// Produces `record` to a fresh topic in Confluent framing, reads it back with read_committed and
/// decodes it with the schema fetched from the registry by the id in the frame.
async fn round_trip<T: Record + PartialEq + std::fmt::Debug>(registry: &Registry, record: &T, run: &str) {
    let topic = format!("quench-test-{run}-{}", T::NAME.trim_start_matches("quench.").to_lowercase());
    create_topic(&topic).await;
    let encoder = Encoder::<T>::register(registry, &topic).await.unwrap();
    let bytes = encoder.encode(record).unwrap();
    assert_eq!(bytes[0], 0, "Confluent magic byte");
    assert_eq!(&bytes[1..5], &encoder.schema_id().to_be_bytes(), "schema id, big-endian");

    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", brokers()).set("enable.idempotence", "true").create().unwrap();
    producer
        .send(FutureRecord::<str, [u8]>::to(&topic).key("k").payload(&bytes), Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .unwrap();

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("{topic}-reader"))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let message =
        tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await.expect("record within 30 s").unwrap();
    let decoded = Decoder::<T>::new(registry.clone()).decode(message.payload().unwrap()).await.unwrap();
    assert_eq!(&decoded, record);
}

#[tokio::test]
async fn records_round_trip_through_kafka_in_confluent_wire_format() {
    let registry = registry_or_fail_loudly().await;
    let run = nonce();
    round_trip(&registry, &sample_alert(), &run).await;
    round_trip(&registry, &sample_incident(), &run).await;
    round_trip(&registry, &sample_routing_event(), &run).await;
    round_trip(&registry, &sample_action(), &run).await;
}

#[tokio::test]
async fn records_from_an_older_writer_schema_decode_with_defaults() {
    let registry = registry_or_fail_loudly().await;
    let subject = format!("quench-test-{}-old-alert-value", nonce());
    // Version 0 of Alert: no tenant, no fingerprint, no stateful.
    let mut old: serde_json::Value = serde_json::from_str(Alert::SCHEMA_JSON).unwrap();
    old["fields"]
        .as_array_mut()
        .unwrap()
        .retain(|f| !["tenant", "fingerprint", "stateful"].contains(&f["name"].as_str().unwrap()));
    let old_id = registry.register_schema(&subject, &old.to_string()).await.unwrap();
    let old_schema = Schema::parse_str(&old.to_string()).unwrap();

    let datum = GenericDatumWriter::builder(&old_schema)
        .build()
        .unwrap()
        .write_value_to_vec(Value::Record(vec![
            ("source".into(), Value::String("grafana".into())),
            ("status".into(), Value::Enum(1, "resolved".into())),
            ("labels".into(), Value::Map([("alertname".to_string(), Value::String("HostDown".into()))].into())),
            ("annotations".into(), Value::Map(Default::default())),
            ("starts_at".into(), Value::TimestampMillis(1_000)),
            ("ends_at".into(), Value::Union(1, Box::new(Value::TimestampMillis(2_000)))),
            ("received_at".into(), Value::TimestampMillis(3_000)),
            ("generator_url".into(), Value::Union(0, Box::new(Value::Null))),
        ]))
        .unwrap();

    let alert = Decoder::<Alert>::new(registry).decode(&frame(old_id, &datum)).await.unwrap();
    assert_eq!(alert.tenant, "default", "field added later takes its default");
    assert_eq!(alert.fingerprint, None);
    assert!(!alert.stateful, "nor did its senders report resolutions");
    assert_eq!(alert.status, AlertStatus::Resolved);
    assert_eq!(alert.ends_at, Some(2_000));
    assert_eq!(alert.labels["alertname"], "HostDown");
}

#[tokio::test]
async fn unknown_schema_ids_and_garbage_are_decode_errors_with_reasons() {
    let registry = registry_or_fail_loudly().await;
    let decoder = Decoder::<Alert>::new(registry);
    let unknown = decoder.decode(&frame(999_999_999, b"\x02")).await.unwrap_err().to_string();
    assert!(unknown.contains("schema id 999999999"), "{unknown}");
    let garbage = decoder.decode(b"{\"alertname\": 1}").await.unwrap_err().to_string();
    assert!(garbage.contains("magic byte"), "{garbage}");
}
