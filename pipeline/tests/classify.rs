//! Classification end to end: the OpenAI-compatible provider against a real llama.cpp server, and
//! the stream worker classifying incidents through an LLM outage and its recovery (that LLM is a
//! FAKE OpenAI-compatible peer, since no hosted API can run here).

mod support;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use quench_classify::{stage::FALLBACK, Classifier, ClassifyConfig, LocalClassifier, ProviderKind, Subject, Taxonomy};
use quench_pipeline::{
    clickhouse::{client, labelled_incidents, migrate, IncidentRow, MIGRATIONS},
    kafka::create_topics,
};
use quench_schemas::{now_ms, Alert, Decoder, Encoder, Incident, IncidentStatus};
use rdkafka::Message;
use support::{
    alert,
    fake_llm::{self, FakeLlm},
    produce, sigterm, PrivateServer, Run,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_provider_gets_schema_valid_batches_from_a_real_llama_cpp_server() {
    let port = 18_600 + (std::process::id() % 300) as u16;
    let server = PrivateServer::new("llm", "llm", &[("LLM_PORT", port)]);
    server.stack("up");
    let mut config = ClassifyConfig { provider: ProviderKind::Openai, max_batch: 2, ..Default::default() };
    config.llm.url = Some(format!("http://127.0.0.1:{port}"));
    config.llm.model = "smollm2-135m".into();
    config.llm.json_mode = quench_classify::config::JsonMode::JsonObject;
    config.llm.max_tokens = 400;
    config.llm.timeout_ms = 120_000;
    config.llm.ask_below_confidence = 1.0;
    let classifier = Classifier::new(&config).unwrap();
    let subject = |id: &str, name: &str, summary: &str| {
        let labels = BTreeMap::from([("alertname".to_string(), name.to_string())]);
        let annotations = BTreeMap::from([("summary".to_string(), summary.to_string())]);
        Subject::from_alert(id, &labels, &annotations)
    };
    let subjects = [
        subject("inc-a", "PostgresqlDown", "Postgres is down"),
        subject("inc-b", "KafkaConsumerLag", "Consumer lag is high"),
    ];
    let answers = classifier.classify(&subjects).await.unwrap();
    // The 135M model's judgement is useless; what is checked is the plumbing: one request, a
    // schema-constrained answer parsed and matched back by id.
    assert_eq!(classifier.llm_calls(), 1);
    for answer in &answers {
        assert_eq!(answer.classified_by, "openai/smollm2-135m", "{answer:?}");
        assert!(["critical", "high", "medium", "low"].contains(&answer.severity.as_str()), "{answer:?}");
        assert!(answer.priority.starts_with('P'), "{answer:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_falls_back_during_a_fake_llm_outage_and_reclassifies_open_incidents_after_it() {
    let fake = Arc::new(FakeLlm::default());
    fake.down.store(true, Ordering::SeqCst);
    let url = fake_llm::serve(fake.clone()).await;

    let run = Run::new("classify");
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    let registry = run.registry();
    let encoder = Encoder::<Alert>::register(&registry, &run.config.topics.alerts).await.unwrap();
    let now = now_ms();
    let mut records = Vec::new();
    for name in ["PostgresqlDown", "KafkaConsumerGroupLag"] {
        for instance in 0..3 {
            records.push((name.to_string(), encoder.encode(&alert(name, instance, now)).unwrap()));
        }
    }
    produce(&run, records).await;
    let mut worker = run.start_with(
        "run",
        &[
            ("QUENCH_CLASSIFY__PROVIDER", "openai"),
            ("QUENCH_CLASSIFY__LLM__URL", &url),
            ("QUENCH_CLASSIFY__LLM__MODEL", "fake-model"),
            ("QUENCH_CLASSIFY__LLM__MAX_RETRIES", "0"),
            ("QUENCH_CLASSIFY__LLM__ASK_BELOW_CONFIDENCE", "1"),
            ("QUENCH_CLASSIFY__LLM__TIMEOUT_MS", "2000"),
            ("QUENCH_CLASSIFY__BREAKER__FAILURES", "1"),
            ("QUENCH_CLASSIFY__BREAKER__OPEN_MS", "1000"),
        ],
    );
    let incidents = run.consumer(&run.config.topics.incidents);
    let decoder = Decoder::<Incident>::new(registry.clone());
    let mut latest: HashMap<String, Incident> = HashMap::new();
    let by = |who: &'static str| {
        move |latest: &HashMap<String, Incident>| {
            latest.len() == 2 && latest.values().all(|i| i.classified_by.as_deref() == Some(who))
        }
    };
    read_until(&incidents, &decoder, &mut latest, by(FALLBACK), "fallback classification").await;
    assert_eq!(latest["PostgresqlDown"].category.as_deref(), Some("database"), "the local classifier knows Postgres");
    assert_eq!(latest["KafkaConsumerGroupLag"].category.as_deref(), Some("messaging"));
    assert!(latest.values().all(|i| i.priority.is_some() && i.confidence.is_some() && !i.summary.is_empty()));

    fake.down.store(false, Ordering::SeqCst);
    read_until(&incidents, &decoder, &mut latest, by("openai/fake-model"), "re-classification by the LLM").await;
    assert!(latest.values().all(|i| i.category.as_deref() == Some("database") && i.severity == "high"));
    assert!(latest.values().all(|i| i.alert_count == 3), "re-classification adds no alerts");
    sigterm(&worker);
    assert!(worker.wait().unwrap().success());
}

/// Reads incidents, keeping the newest state per title, until `done` holds or 90 s passed.
async fn read_until(
    consumer: &rdkafka::consumer::BaseConsumer,
    decoder: &Decoder<Incident>,
    latest: &mut HashMap<String, Incident>,
    done: impl Fn(&HashMap<String, Incident>) -> bool,
    what: &str,
) {
    let started = Instant::now();
    while !done(latest) {
        assert!(started.elapsed() < Duration::from_secs(90), "no {what} after 90 s: {latest:#?}");
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let incident: Incident = decoder.decode(message.unwrap().payload().unwrap()).await.unwrap();
            latest.insert(incident.title.clone(), incident);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_an_llm_classified_in_clickhouse_become_the_local_classifiers_examples() {
    let mut run = Run::new("history");
    run.set("QUENCH_CLICKHOUSE__DATABASE", &support::database("history"));
    migrate(&run.config.clickhouse, MIGRATIONS).await.unwrap();
    let incident = |id: &str, name: &str, summary: &str, category: &str, by: &str| Incident {
        incident_id: id.into(),
        group_key: id.into(),
        tenant: "default".into(),
        status: IncidentStatus::Open,
        title: name.into(),
        summary: summary.into(),
        severity: "critical".into(),
        priority: Some("P1".into()),
        category: Some(category.into()),
        confidence: Some(0.9),
        classified_by: Some(by.into()),
        first_seen: now_ms(),
        last_seen: now_ms(),
        acknowledged_at: None,
        resolved_at: None,
        alert_count: 3,
        fingerprints: vec!["00000000000000aa".into()],
        distinct_alerts: 1,
        muted_alerts: 0,
        silenced_by: Vec::new(),
        inhibited_by: Vec::new(),
        state_changes: 0,
        transient: false,
        parent_incident_id: None,
        correlation: None,
        common_labels: BTreeMap::from([("alertname".into(), name.into()), ("job".into(), "zorblax".into())]),
        flapping: false,
        version: 1,
    };
    let clickhouse = client(&run.config.clickhouse);
    let mut insert = clickhouse.insert::<IncidentRow>("incidents").await.unwrap();
    let rows = [
        incident("inc-1", "ZorblaxVatDrift", "Zorblax vat drift on the east line", "storage", "anthropic/claude-test"),
        incident("inc-2", "ZorblaxPortJam", "Zorblax port jam", "cloud", "local"),
    ];
    for row in rows {
        insert.write(&IncidentRow::from(row)).await.unwrap();
    }
    insert.end().await.unwrap();

    let history = labelled_incidents(&run.config.clickhouse, 100).await.unwrap();
    assert_eq!(history.len(), 1, "only what an LLM classified: {history:?}");
    assert_eq!(history[0].labels["alertname"], "ZorblaxVatDrift");
    let expected = history[0].expected.as_ref().unwrap();
    assert_eq!((expected.category.as_str(), expected.severity.as_str()), ("storage", "critical"));

    let mut local = LocalClassifier::load(&Default::default(), Taxonomy::default()).unwrap();
    let labels = BTreeMap::from([
        ("alertname".to_string(), "ZorblaxVatDrift".to_string()),
        ("job".to_string(), "zorblax".to_string()),
    ]);
    let annotations = BTreeMap::from([("summary".to_string(), "Zorblax vat drift on the east line".to_string())]);
    let subject = Subject::from_alert("new", &labels, &annotations);
    assert_eq!(local.add_examples(&history).unwrap(), 1);
    let answer = local.classify(&[subject]).unwrap().remove(0);
    assert_eq!(answer.category, "storage", "no catalog entry knows Zorblax; the history does: {answer:?}");
}
