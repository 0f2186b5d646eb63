//! `quench run` against the real Kafka and registry of `infra/local/stack`: alerts in, incidents
//! and routing events out exactly once, dead letters for what cannot be read, and no loss or
//! duplicate when the worker is killed with SIGKILL and restarted.

mod support;

use std::{
    collections::{HashMap, HashSet},
    process::Child,
    time::{Duration, Instant},
};

use quench_core::rules::RouteTree;
use quench_pipeline::{kafka::create_topics, repartition};
use quench_schemas::{
    frame, headers, now_ms, Alert, Decoder, Encoder, Incident, IncidentAlerts, Record, Registry, RoutingEvent,
    RoutingReason,
};
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewPartitions},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    message::Headers,
    ClientConfig, Message,
};
use support::{
    alert, children, decode_all, previous_quench, produce, produce_over, read_until, read_until_quiet, run_to_exit,
    sigterm, KillOnDrop, PrivateServer, Run,
};

#[tokio::test(flavor = "multi_thread")]
async fn alerts_become_incidents_exactly_once_and_garbage_goes_to_the_dlq() {
    let mut run = Run::new("basic");
    let routing = std::env::temp_dir().join(format!("quench-routing-{}.yaml", std::process::id()));
    std::fs::write(
        &routing,
        "default: { team: ops, targets: [{ channel: slack, target: \"#ops\" }] }\n\
         routes:\n  - match: { category: infrastructure }\n    team: infra\n    escalation_policy: infra-24x7\n    \
         targets: [{ channel: pagerduty, target: infra-key }]\n",
    )
    .unwrap();
    run.set("QUENCH_WORKER__ROUTING", &routing.display().to_string());
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    let registry = run.registry();
    let encoder = Encoder::<Alert>::register(&registry, &run.config.topics.alerts).await.unwrap();
    let now = now_ms();
    let mut records = Vec::new();
    for name in ["PgDown", "HostDiskFull", "HighLatency"] {
        for instance in 0..20 {
            records.push((name.to_string(), encoder.encode(&alert(name, instance, now)).unwrap()));
        }
    }
    records.push(("junk".into(), b"not avro at all".to_vec()));
    // Without the label its route groups by, an alert groups by the labels it has (Alertmanager's
    // way; it was once dead-lettered).
    let mut nameless = alert("x", 0, now);
    nameless.labels.remove("alertname");
    records.push(("nameless".into(), encoder.encode(&nameless).unwrap()));
    produce(&run, records).await;

    let ops = format!("127.0.0.1:{}", 19_000 + std::process::id() % 1_000);
    let mut worker = run.start_with("run", &[("QUENCH_HTTP__LISTEN", &ops)]);
    let routing = read_until(&run.consumer(&run.config.topics.routing), |seen| seen.len() >= 4);
    let get = |path: &str| {
        let url = format!("http://{ops}{path}");
        async move {
            let response = reqwest::get(&url).await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(get("/healthz").await.0, 200);
    assert_eq!(get("/readyz").await, (200, "ready\n".to_string()), "partitions assigned and restored");
    let metrics = get("/metrics").await.1;
    assert!(metrics.contains("quench_alerts_consumed_total 61"), "{metrics}");
    assert!(metrics.contains("quench_dlq_records_total"), "{metrics}");
    assert!(metrics.contains("quench_open_fingerprints 61"), "{metrics}");
    assert!(metrics.contains("quench_watermark_delay_seconds"), "{metrics}");
    let dlq = read_until(&run.consumer(&run.config.topics.dlq), |seen| !seen.is_empty());
    let incidents = read_until(&run.consumer(&run.config.topics.incidents), |seen| seen.len() >= 4);
    sigterm(&worker);
    assert!(worker.wait().unwrap().success(), "SIGTERM ends the worker cleanly");

    let events: Vec<RoutingEvent> = decode_all(&registry, &routing).await;
    assert_eq!(events.len(), 4, "one routing event per incident, not per alert: {events:?}");
    assert!(events.iter().all(|e| e.reason == RoutingReason::Opened));
    let incidents: Vec<Incident> = decode_all(&registry, &incidents).await;
    let counts: HashMap<String, i64> = incidents.iter().map(|i| (i.title.clone(), i.alert_count)).collect();
    assert_eq!(counts.len(), 4, "{counts:?}");
    for name in ["PgDown", "HostDiskFull", "HighLatency"] {
        assert_eq!(counts[name], 20, "{counts:?}");
    }
    assert!(incidents.iter().any(|i| i.alert_count == 1 && !i.common_labels.contains_key("alertname")));
    for incident in &incidents {
        assert_eq!(incident.classified_by.as_deref(), Some("local"), "classified by default: {incident:?}");
        assert!(incident.category.is_some() && incident.priority.is_some() && incident.confidence.is_some());
        assert!(!incident.summary.is_empty());
    }
    let classified: HashMap<&str, &str> =
        events.iter().map(|e| (e.title.as_str(), e.category.as_deref().unwrap_or_default())).collect();
    // "HostDiskFull": a bare "DiskFull" is as much a storage system's as a host's, and the local
    // classifier says so with a low confidence.
    assert_eq!(classified["HostDiskFull"], "infrastructure", "routing events carry the classification: {classified:?}");
    for event in &events {
        let infra = event.category.as_deref() == Some("infrastructure");
        assert_eq!(event.team.as_deref(), Some(if infra { "infra" } else { "ops" }), "routed by the rules: {event:?}");
        assert_eq!(event.targets.len(), 1);
        assert_eq!(event.targets[0].channel, if infra { "pagerduty" } else { "slack" });
        assert_eq!(event.escalation_policy.is_some(), infra);
    }
    let reasons: Vec<&str> = dlq
        .iter()
        .flat_map(|(_, _, h)| h.iter().filter(|(k, _)| k == quench_schemas::headers::REASON).map(|(_, v)| v.as_str()))
        .collect();
    assert!(reasons.iter().any(|r| r.contains("magic byte")), "{reasons:?}");
    assert!(dlq.iter().any(|(_, v, _)| v == b"not avro at all"), "original bytes are kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_worker_ten_times_during_200k_alerts_loses_and_duplicates_nothing() {
    let run = Run::new("kill");
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    let encoder = Encoder::<Alert>::register(&run.registry(), &run.config.topics.alerts).await.unwrap();
    // 40 groups of 5 to 44 alerts: 980 alerts a round, re-sent each round.
    let names: Vec<String> = (0..40).map(|i| format!("Rule{i}")).collect();
    let mut sent: HashMap<String, i64> = HashMap::new();
    let mut worker = run.start("run");
    let mut pause = 97_u64;
    for kill in 0..10 {
        let mut records = Vec::new();
        for _ in 0..21 {
            records.extend(round(&encoder, &names, &mut sent));
        }
        produce(&run, records).await;
        // SIGKILL at a varying point: mid-restore, mid-stream or mid-transaction.
        pause = (pause * 7_919 + 13) % 2_500;
        tokio::time::sleep(Duration::from_millis(200 + pause)).await;
        worker.kill().unwrap();
        worker.wait().unwrap();
        eprintln!("kill {} after {} alerts", kill + 1, sent.values().sum::<i64>());
        worker = run.start("run");
    }
    assert!(sent.values().sum::<i64>() >= 200_000);
    let counts = wait_for_counts(&run, &sent, &mut [&mut worker]).await;
    sigterm(&worker);
    assert!(worker.wait().unwrap().success());
    assert_exactly_once(&run, &sent, counts).await;
}

/// Reads `incidents` until the newest states account for every alert sent, or fails after 120 s,
/// or at once when one of `workers` has exited (its log, just above the failure, says why).
async fn wait_for_counts(
    run: &Run,
    sent: &HashMap<String, i64>,
    workers: &mut [&mut Child],
) -> HashMap<String, Incident> {
    let incidents_consumer = run.consumer(&run.config.topics.incidents);
    let total: i64 = sent.values().sum();
    let decoder = Decoder::<Incident>::new(run.registry());
    let mut latest: HashMap<String, Incident> = HashMap::new();
    let started = Instant::now();
    while latest.values().map(|i| i.alert_count).sum::<i64>() < total {
        for worker in workers.iter_mut() {
            if let Some(status) = worker.try_wait().unwrap() {
                let held = latest.values().map(|i| i.alert_count).sum::<i64>();
                panic!("a worker exited ({status}) while incidents held {held} of {total} alerts");
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "incidents hold {:?} of {total} alerts: {:?}",
            latest.values().map(|i| i.alert_count).sum::<i64>(),
            latest.values().map(|i| (&i.title, &i.incident_id, i.alert_count, i.status)).collect::<Vec<_>>()
        );
        if let Some(message) = incidents_consumer.poll(Duration::from_millis(200)) {
            let incident = decoder.decode(message.unwrap().payload().unwrap()).await.unwrap();
            latest.insert(incident.title.clone(), incident);
        }
    }
    latest
}

/// Every alert counted exactly once, one incident per group, each opened once, no event twice.
async fn assert_exactly_once(run: &Run, sent: &HashMap<String, i64>, latest: HashMap<String, Incident>) {
    let counts: HashMap<String, i64> = latest.values().map(|i| (i.title.clone(), i.alert_count)).collect();
    assert_eq!(&counts, sent, "every alert counted exactly once");
    let ids: HashSet<&String> = latest.values().map(|i| &i.incident_id).collect();
    assert_eq!(ids.len(), sent.len(), "one incident per group");

    // Everything the worker emitted: read until the topic has been quiet for 3 s.
    let routing = read_until_quiet(&run.consumer(&run.config.topics.routing), sent.len(), Duration::from_secs(3));
    let events: Vec<RoutingEvent> = decode_all(&run.registry(), &routing).await;
    let opened: Vec<&RoutingEvent> = events.iter().filter(|e| e.reason == RoutingReason::Opened).collect();
    assert_eq!(opened.len(), sent.len(), "each incident opened exactly once: {opened:?}");
    let event_ids: HashSet<&String> = events.iter().map(|e| &e.event_id).collect();
    assert_eq!(event_ids.len(), events.len(), "no routing event twice");
}

/// Alerts for `names`, `5 + i` instances of the i-th, all re-sent each call, counted into `sent`;
/// keyed by group key, as ingest keys them (the run's rules group by alertname, as the default
/// rules do).
fn round(encoder: &Encoder<Alert>, names: &[String], sent: &mut HashMap<String, i64>) -> Vec<(String, Vec<u8>)> {
    let now = now_ms();
    let rules = RouteTree::default();
    let mut records = Vec::new();
    for (i, name) in names.iter().enumerate() {
        for instance in 0..(5 + i) {
            let alert = alert(name, instance, now);
            records.push((rules.partition_key(&alert), encoder.encode(&alert).unwrap()));
            *sent.entry(name.clone()).or_default() += 1;
        }
    }
    records
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebalance_between_two_workers_during_200k_alerts_loses_and_duplicates_nothing() {
    let run = Run::new("rebalance");
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    let encoder = Encoder::<Alert>::register(&run.registry(), &run.config.topics.alerts).await.unwrap();
    let names: Vec<String> = (0..40).map(|i| format!("Rule{i}")).collect();
    let mut sent: HashMap<String, i64> = HashMap::new();
    let batch = |rounds: usize, sent: &mut HashMap<String, i64>| {
        (0..rounds).flat_map(|_| round(&encoder, &names, sent)).collect::<Vec<_>>()
    };
    let mut first = run.start("run");
    produce(&run, batch(50, &mut sent)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A second worker joins mid-stream: the group rebalances while the first is busy.
    let mut second = run.start_with("run", &[("QUENCH_WORKER__INSTANCE_ID", "w2")]);
    for _ in 0..3 {
        produce(&run, batch(50, &mut sent)).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    // Then the first one is killed: its partitions move to the second after the session timeout.
    first.kill().unwrap();
    first.wait().unwrap();
    produce(&run, batch(10, &mut sent)).await;
    assert!(sent.values().sum::<i64>() >= 200_000);
    let counts = wait_for_counts(&run, &sent, &mut [&mut second]).await;
    sigterm(&second);
    assert!(second.wait().unwrap().success());
    assert_exactly_once(&run, &sent, counts).await;
}

/// With a `continue` route an alert belongs to groups on two routes, which ingest cannot key alike;
/// the worker re-keys each placement, so the second route's group gets every alert in one
/// incident: those that reached it after the first route and those that matched it alone.
#[tokio::test(flavor = "multi_thread")]
async fn a_group_fed_through_a_continue_route_and_directly_is_one_incident() {
    let mut run = Run::new("continue");
    let rules = std::env::temp_dir().join(format!("quench-continue-{}.toml", std::process::id()));
    std::fs::write(
        &rules,
        "[route]\ngroup_by = [\"alertname\"]\ngroup_wait = \"1s\"\ngroup_interval = \"1s\"\nresolve_timeout = \"1h\"\n\
         [[route.routes]]\nmatchers = ['team=\"a\"']\ncontinue = true\n\
         [[route.routes]]\nmatchers = ['service=\"x\"']\ngroup_by = [\"service\"]\n",
    )
    .unwrap();
    run.set("QUENCH_WORKER__RULES", &rules.display().to_string());
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    let tree = RouteTree::load(&rules).unwrap();
    let registry = run.registry();
    let encoder = Encoder::<Alert>::register(&registry, &run.config.topics.alerts).await.unwrap();
    let now = now_ms();
    let mut records = Vec::new();
    for i in 0..12 {
        let mut both = alert(&format!("Both{i}"), i, now);
        both.labels.extend([("team".to_string(), "a".to_string()), ("service".to_string(), "x".to_string())]);
        let mut direct = alert(&format!("Direct{i}"), i, now);
        direct.labels.insert("service".into(), "x".into());
        for alert in [both, direct] {
            // Keyed as ingest keys them: by the group of the alert's first route.
            records.push((tree.partition_key(&alert), encoder.encode(&alert).unwrap()));
        }
    }
    produce(&run, records).await;
    let mut worker = run.start("run");
    let consumer = run.consumer(&run.config.topics.incidents);
    let decoder = Decoder::<Incident>::new(registry.clone());
    let mut latest: HashMap<String, Incident> = HashMap::new();
    let started = Instant::now();
    let service = |latest: &HashMap<String, Incident>| -> Vec<Incident> {
        latest.values().filter(|i| i.group_key.starts_with(r#"{}/{service="x"}|"#)).cloned().collect()
    };
    while service(&latest).iter().map(|i| i.alert_count).sum::<i64>() < 24 || latest.len() < 13 {
        assert!(started.elapsed() < Duration::from_secs(120), "the service's group never held 24 alerts: {latest:#?}");
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let incident = decoder.decode(message.unwrap().payload().unwrap()).await.unwrap();
            latest.insert(incident.incident_id.clone(), incident);
        }
    }
    sigterm(&worker);
    assert!(worker.wait().unwrap().success());
    let service = service(&latest);
    assert_eq!(service.len(), 1, "one incident for the service's group: {service:#?}");
    assert_eq!(service[0].alert_count, 24, "both kinds of alert in it");
    assert_eq!(latest.len(), 13, "and one incident per alert name on the first route");
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_not_keyed_by_group_are_re_keyed_and_still_counted_exactly_once() {
    let mut run = Run::new("rekey");
    run.set("QUENCH_WORKER__INPUT_KEYED_BY_GROUP", "false");
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    let encoder = Encoder::<Alert>::register(&run.registry(), &run.config.topics.alerts).await.unwrap();
    let names: Vec<String> = (0..12).map(|i| format!("Rule{i}")).collect();
    let mut sent: HashMap<String, i64> = HashMap::new();
    let mut worker = run.start("run");
    for k in 0..3 {
        // Keyed by instance, as a producer that knows nothing of Quench's groups would: the alerts
        // of one group land in every partition.
        let records: Vec<(String, Vec<u8>)> = round(&encoder, &names, &mut sent)
            .into_iter()
            .enumerate()
            .map(|(i, (_, value))| (format!("host-{i}"), value))
            .chain(std::iter::once(("junk".to_string(), b"junk".to_vec())))
            .collect();
        produce(&run, records).await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        if k == 1 {
            worker.kill().unwrap();
            worker.wait().unwrap();
            worker = run.start("run");
        }
    }
    let counts = wait_for_counts(&run, &sent, &mut [&mut worker]).await;
    sigterm(&worker);
    assert!(worker.wait().unwrap().success());
    assert_exactly_once(&run, &sent, counts).await;
    let dlq = read_until(&run.consumer(&run.config.topics.dlq), |seen| seen.len() >= 3);
    assert_eq!(dlq.len(), 3, "each junk record dead-lettered once, by the re-keying stage");
}

/// 10,000 alerts into one group at once, then a storm of 200,000 more with churning labels: the
/// group once wrote itself as one changelog record, which passed Kafka's 1 MB limit near 8,000
/// alerts and crash-looped every worker that took the partition.
#[tokio::test(flavor = "multi_thread")]
async fn a_storm_into_one_group_keeps_the_worker_up_and_records_every_alert_once() {
    let run = Run::new("storm");
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    let registry = run.registry();
    let encoder = Encoder::<Alert>::register(&registry, &run.config.topics.alerts).await.unwrap();
    let batch = |from: usize, n: usize| -> Vec<(String, Vec<u8>)> {
        let now = now_ms();
        (from..from + n).map(|i| ("Storm".to_string(), encoder.encode(&alert("Storm", i, now)).unwrap())).collect()
    };
    produce(&run, batch(0, 10_000)).await;
    let mut worker = run.start("run");
    let incidents = run.consumer(&run.config.topics.incidents);
    let decoder = Decoder::<Incident>::new(registry.clone());
    let mut latest: HashMap<String, Incident> = HashMap::new();
    let mut wait_for = |total: i64| {
        let started = Instant::now();
        while latest.values().map(|i| i.alert_count).max() != Some(total) {
            assert!(worker.try_wait().unwrap().is_none(), "the worker exited with {latest:#?}");
            assert!(started.elapsed() < Duration::from_secs(180), "no incident of {total} alerts: {latest:#?}");
            if let Some(message) = incidents.poll(Duration::from_millis(200)) {
                let incident = futures::executor::block_on(decoder.decode(message.unwrap().payload().unwrap()));
                let incident = incident.unwrap();
                latest.insert(incident.incident_id.clone(), incident);
            }
        }
    };
    wait_for(10_000);
    produce(&run, batch(10_000, 200_000)).await;
    wait_for(210_000);
    assert_eq!(latest.len(), 1, "one incident: {:?}", latest.keys().collect::<Vec<_>>());
    let incident = latest.values().next().unwrap();
    assert_eq!(incident.distinct_alerts, 210_000);
    assert!(incident.fingerprints.len() <= 1_000, "the record lists a sample");

    let joined = read_until(&run.consumer(&run.config.topics.incident_alerts), |seen| {
        seen.iter()
            .map(|(_, value, _)| serde_json::from_slice::<IncidentAlerts>(value).unwrap().fingerprints.len())
            .sum::<usize>()
            >= 210_000
    });
    let mut fingerprints = HashSet::new();
    for (_, value, _) in &joined {
        let record: IncidentAlerts = serde_json::from_slice(value).unwrap();
        assert_eq!(record.incident_id, incident.incident_id);
        for fingerprint in record.fingerprints {
            assert!(fingerprints.insert(fingerprint), "an alert recorded twice");
        }
    }
    assert_eq!(fingerprints.len(), 210_000, "every alert of the incident on incident-alerts, once");
    assert!(worker.try_wait().unwrap().is_none(), "the worker is still up");
    sigterm(&worker);
    worker.wait().unwrap();
}

/// Records of a new writer schema while the schema registry hangs (SIGSTOP) for 30 s: the worker
/// once dead-lettered them as undecodable; it must wait for the registry and lose nothing.
#[tokio::test(flavor = "multi_thread")]
async fn records_of_a_new_schema_wait_for_a_paused_registry_and_none_is_dead_lettered() {
    let (server, url) = PrivateServer::registry("registry-pause", 18_500 + (std::process::id() % 400) as u16);
    let mut run = Run::new("registry-pause");
    run.set("QUENCH_REGISTRY__URL", &url);
    run.set("QUENCH_REGISTRY__TIMEOUT_MS", "2000");
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    let registry = run.registry();
    let encoder = Encoder::<Alert>::register(&registry, &run.config.topics.alerts).await.unwrap();
    // An upgraded producer's schema: one more field, with a default, so BACKWARD compatible.
    let mut evolved: serde_json::Value = serde_json::from_str(Alert::SCHEMA_JSON).unwrap();
    let field = serde_json::json!({"name": "region", "type": "string", "default": "eu-west-1"});
    evolved["fields"].as_array_mut().unwrap().push(field);
    let subject = Registry::value_subject(&run.config.topics.alerts);
    let evolved_id = registry.register_schema(&subject, &evolved.to_string()).await.unwrap();

    let now = now_ms();
    let before: Vec<_> =
        (0..100).map(|i| ("Before".to_string(), encoder.encode(&alert("Before", i, now)).unwrap())).collect();
    produce(&run, before).await;
    let mut worker = run.start("run");
    let incidents = run.consumer(&run.config.topics.incidents);
    let decoder = Decoder::<Incident>::new(registry.clone());
    let mut counts: HashMap<String, i64> = HashMap::new();
    let mut wait_for = |title: &str, limit: Duration| {
        let started = Instant::now();
        while counts.get(title) != Some(&100) {
            assert!(started.elapsed() < limit, "no incident {title} of 100 alerts: {counts:?}");
            if let Some(message) = incidents.poll(Duration::from_millis(200)) {
                let incident =
                    futures::executor::block_on(decoder.decode(message.unwrap().payload().unwrap())).unwrap();
                counts.insert(incident.title.clone(), incident.alert_count);
            }
        }
    };
    wait_for("Before", Duration::from_secs(60));

    let pid = server.pid().to_string();
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    // Encoded as the new schema: the old fields, then the new one (Avro writes fields in order).
    let during: Vec<_> = (0..100)
        .map(|i| {
            let framed = encoder.encode(&alert("During", i, now_ms())).unwrap();
            let mut datum = framed[5..].to_vec();
            datum.extend_from_slice(&[4, b'u', b's']);
            ("During".to_string(), frame(evolved_id, &datum))
        })
        .collect();
    produce(&run, during).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let running = worker.try_wait().unwrap().is_none();
    assert!(std::process::Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    assert!(running, "the worker waits for the registry");
    wait_for("During", Duration::from_secs(120));

    let dlq = run.consumer(&run.config.topics.dlq);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        if let Some(message) = dlq.poll(Duration::from_millis(200)) {
            panic!("dead-lettered: {:?}", message.unwrap().headers().map(|h| h.count()));
        }
    }
    sigterm(&worker);
    assert!(worker.wait().unwrap().success());
}

/// Adds partitions to `alerts` (the topic Kafka can only grow).
async fn grow_alerts(run: &Run, partitions: usize) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &run.config.kafka.brokers).create().unwrap();
    let grown = admin
        .create_partitions(&[NewPartitions::new(&run.config.topics.alerts, partitions)], &AdminOptions::new())
        .await
        .unwrap();
    assert!(grown.iter().all(Result::is_ok), "{grown:?}");
}

/// After `alerts` grew from 3 partitions to 6: checks that more than `at_least` alerts landed in
/// the new ones, then that the worker counted every alert exactly once.
async fn finish_grown(run: &Run, mut worker: KillOnDrop, sent: &HashMap<String, i64>, at_least: i64) {
    let probe: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &run.config.kafka.brokers).create().unwrap();
    let in_new: i64 =
        (3..6).map(|p| probe.fetch_watermarks(&run.config.topics.alerts, p, Duration::from_secs(10)).unwrap().1).sum();
    assert!(in_new > at_least, "alerts landed in the new partitions ({in_new})");
    let counts = wait_for_counts(run, sent, &mut [&mut worker]).await;
    sigterm(&worker);
    assert!(worker.wait().unwrap().success());
    assert_exactly_once(run, sent, counts).await;
}

/// Adding partitions to `alerts` while the worker re-keys (`worker.input_keyed_by_group =
/// false`): the worker's input, `quench-rekey`, keeps its partitions, so each group's state stays
/// where it is, and alerts that land in the new partitions join their groups' incidents.
#[tokio::test(flavor = "multi_thread")]
async fn alerts_grow_by_partitions_while_the_worker_re_keys_and_no_group_is_stranded() {
    let mut run = Run::new("grow");
    run.set("QUENCH_WORKER__INPUT_KEYED_BY_GROUP", "false");
    // The re-keying stage's consumer sees new partitions within a second, not five minutes.
    run.set("QUENCH_KAFKA__PROPERTIES__topic.metadata.refresh.interval.ms", "1000");
    // Transactions open for a second while alerts stream: the revocation finds one holding records.
    run.set("QUENCH_WORKER__COMMIT_INTERVAL_MS", "1000");
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    let encoder = Encoder::<Alert>::register(&run.registry(), &run.config.topics.alerts).await.unwrap();
    let mut sent: HashMap<String, i64> = HashMap::new();
    let batch = |sent: &mut HashMap<String, i64>, instances: std::ops::Range<usize>| {
        let now = now_ms();
        let mut records = Vec::new();
        for name in ["GrowPg", "GrowDisk", "GrowLatency", "GrowQueue"] {
            for instance in instances.clone() {
                // Keyed by host, as a sender that is not grouping-aware would: every partition gets some.
                records.push((format!("{name}-{instance}"), encoder.encode(&alert(name, instance, now)).unwrap()));
                *sent.entry(name.to_string()).or_default() += 1;
            }
        }
        records
    };
    produce(&run, batch(&mut sent, 0..100)).await;
    let mut worker = KillOnDrop(run.start("run"));
    wait_for_counts(&run, &sent, &mut [&mut worker]).await;

    // Grown half a second into a 4 s stream, so that the re-keying stage's partitions are revoked
    // (it sees the new ones within a second) while its transaction holds records in flight: the
    // abort at that revocation once waited 30 s for delivery reports nobody polled, failed, and
    // the worker stopped at its next transaction.
    let grown = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        grow_alerts(&run, 6).await;
    };
    tokio::join!(produce_over(&run, batch(&mut sent, 100..300), Duration::from_secs(4)), grown);
    finish_grown(&run, worker, &sent, 100).await;
}

/// With its input keyed by group, a worker whose input has more partitions than its changelog
/// (an operator grew `alerts` alone) stops at start-up naming the counts, rather than restoring
/// groups from the wrong partitions.
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_refuses_to_start_when_its_input_and_changelog_partition_counts_differ() {
    let run = Run::new("mismatch");
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    grow_alerts(&run, 4).await;
    let (succeeded, stderr) = run_to_exit(&run, "run", "its input has more partitions than its changelog").await;
    assert!(!succeeded, "{stderr}");
    let alerts = format!("{} has 4", run.config.topics.alerts);
    let state = format!("{} has 3", run.config.topics.state);
    assert!(
        stderr.contains("different partition counts") && stderr.contains(&alerts) && stderr.contains(&state),
        "{stderr}"
    );
}

/// Growing `alerts` under workers keyed by group (the default) with `quench repartition`: it
/// refuses while a worker runs and while alerts are unread, then grows the worker's topics and
/// moves each open group to the partition its alerts now land in. Afterwards alerts in the new
/// partitions join their groups' incidents, none opens twice, and each moved incident's
/// partition (where acknowledgements go) is rewritten.
#[tokio::test(flavor = "multi_thread")]
async fn repartitioning_grows_alerts_under_keyed_workers_and_no_group_is_stranded() {
    let run = Run::new("repartition");
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    let encoder = Encoder::<Alert>::register(&run.registry(), &run.config.topics.alerts).await.unwrap();
    let names: Vec<String> = (0..40).map(|i| format!("Grow{i}")).collect();
    let mut sent: HashMap<String, i64> = HashMap::new();
    let mut worker = KillOnDrop(run.start("run"));
    produce(&run, (0..10).flat_map(|_| round(&encoder, &names, &mut sent)).collect()).await;
    wait_for_counts(&run, &sent, &mut [&mut worker]).await;
    let (succeeded, stderr) = run_to_exit(&run, "repartition --partitions 6", "a worker runs").await;
    assert!(!succeeded && stderr.contains("stop every `quench run` of the group first"), "{stderr}");
    sigterm(&worker);
    assert!(worker.wait().unwrap().success());

    produce(&run, round(&encoder, &names, &mut sent)).await;
    let (succeeded, stderr) = run_to_exit(&run, "repartition --partitions 6", "alerts are unread").await;
    assert!(!succeeded && stderr.contains("are not read by the workers"), "{stderr}");
    let mut worker = KillOnDrop(run.start("run"));
    wait_for_counts(&run, &sent, &mut [&mut worker]).await;
    sigterm(&worker);
    assert!(worker.wait().unwrap().success());

    let (succeeded, stdout) = run_to_exit(&run, "repartition --partitions 6", "the workers are drained").await;
    assert!(succeeded, "{stdout}");
    let moved = read_partition_headers(&run).await;
    let expected: HashMap<&String, String> = names
        .iter()
        .map(|name| {
            let key = RouteTree::default().partition_key(&alert(name, 0, 0));
            (name, repartition::partition_for(&key, 6).to_string())
        })
        .collect();
    assert!(expected.values().filter(|p| p.parse::<i32>().unwrap() >= 3).count() > 5, "groups move");
    assert_eq!(moved.iter().map(|(name, p)| (name, p.clone())).collect::<HashMap<_, _>>(), expected);

    let worker = KillOnDrop(run.start("run"));
    produce(&run, (0..10).flat_map(|_| round(&encoder, &names, &mut sent)).collect()).await;
    finish_grown(&run, worker, &sent, 1_000).await;
}

/// Each incident's title and the partition its latest record on `incidents` names.
async fn read_partition_headers(run: &Run) -> HashMap<String, String> {
    let records = read_until_quiet(&run.consumer(&run.config.topics.incidents), 0, Duration::from_secs(3));
    let decoder = Decoder::<Incident>::new(run.registry());
    let mut latest = HashMap::new();
    for (_, value, record_headers) in records {
        let incident = decoder.decode(&value).await.unwrap();
        let partition = record_headers.into_iter().find(|(key, _)| key == headers::PARTITION).unwrap().1;
        latest.insert(incident.title, partition);
    }
    latest
}

/// A rolling upgrade of two workers from the previous release (`infra/previous-release`: the
/// last build before changelog records carried a format number) to this build: each in turn
/// stops gracefully and a new process takes its place (with its instance id: static membership
/// gives it its partitions back) while alerts keep coming. The old workers' changelog is checked
/// to be the old format; afterwards every alert is counted once and no group is opened (paged)
/// twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_upgrade_of_two_workers_loses_no_open_incident_and_pages_none_again() {
    let run = Run::new("rolling");
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    let encoder = Encoder::<Alert>::register(&run.registry(), &run.config.topics.alerts).await.unwrap();
    let names: Vec<String> = (0..40).map(|i| format!("Rule{i}")).collect();
    let mut sent: HashMap<String, i64> = HashMap::new();
    let previous = previous_quench();
    let mut workers = [
        KillOnDrop(run.start_binary(&previous, "run", &[("QUENCH_WORKER__INSTANCE_ID", "w1")])),
        KillOnDrop(run.start_binary(&previous, "run", &[("QUENCH_WORKER__INSTANCE_ID", "w2")])),
    ];
    produce(&run, (0..20).flat_map(|_| round(&encoder, &names, &mut sent)).collect()).await;
    wait_for_counts(&run, &sent, &mut children(&mut workers)).await;
    assert_eq!(group_record_formats(&run), HashSet::from([None]), "the previous release wrote no format");
    for (slot, instance) in ["w1", "w2"].into_iter().enumerate() {
        produce(&run, (0..10).flat_map(|_| round(&encoder, &names, &mut sent)).collect()).await;
        sigterm(&workers[slot]);
        assert!(workers[slot].wait().unwrap().success(), "{instance} stops gracefully");
        produce(&run, (0..10).flat_map(|_| round(&encoder, &names, &mut sent)).collect()).await;
        workers[slot] = KillOnDrop(run.start_with("run", &[("QUENCH_WORKER__INSTANCE_ID", instance)]));
    }
    let counts = wait_for_counts(&run, &sent, &mut children(&mut workers)).await;
    for worker in &workers {
        sigterm(worker);
    }
    for worker in &mut workers {
        assert!(worker.wait().unwrap().success());
    }
    assert!(group_record_formats(&run).contains(&Some(1)), "this build numbers the groups it writes");
    assert_exactly_once(&run, &sent, counts).await;
}

/// The `format` of every group record in the changelog so far (`None`: the field is absent).
fn group_record_formats(run: &Run) -> HashSet<Option<u64>> {
    let records = read_until_quiet(&run.consumer(&run.config.topics.state), 1, Duration::from_secs(2));
    records
        .iter()
        .filter(|(key, value, _)| key.as_deref().is_some_and(|k| !k.starts_with('#')) && !value.is_empty())
        .map(|(_, value, _)| serde_json::from_slice::<serde_json::Value>(value).unwrap()["format"].as_u64())
        .collect()
}
