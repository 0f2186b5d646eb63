//! Quench against a Kafka that wants SASL/SCRAM-SHA-512 over TLS and a ClickHouse that wants a
//! user and password, as production ones do: a private broker of `infra/local/stack`
//! (`KAFKA_SASL=1`: SCRAM users made at format time, a certificate authority of the script's own)
//! and a private ClickHouse (`CLICKHOUSE_AUTH=1`), and ingest → worker → sink → notifier all
//! through them. A wrong password is refused at start-up, and the password appears neither in
//! `quench config` nor in the failure.

mod support;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use quench_pipeline::{
    clickhouse::{client, migrate, MIGRATIONS},
    config::quench_command,
    kafka::create_topics,
};
use quench_schemas::now_ms;
use support::{
    fake_peers::{self, Peers},
    ingest::{alertmanager_body, post, Ingest},
    KillOnDrop, PrivateServer, Run,
};

#[tokio::test(flavor = "multi_thread")]
async fn alerts_flow_end_to_end_through_a_kafka_with_scram_over_tls() {
    // Below Linux's ephemeral ports (32768 and up), where an outgoing connection may hold one.
    let port = 12_000 + (std::process::id() % 300) as u16 * 10;
    let kafka = PrivateServer::new("sasl", "kafka", &[("KAFKA_PORT", port), ("KAFKA_CONTROLLER_PORT", port + 1)])
        .with_env("KAFKA_SASL", "1");
    kafka.stack("up");
    let env = kafka.env();
    let (user, password, ca) =
        (&env["QUENCH_KAFKA_SASL_USERNAME"], &env["QUENCH_KAFKA_SASL_PASSWORD"], &env["QUENCH_KAFKA_SSL_CA"]);
    // And a ClickHouse that wants a user and password (CLICKHOUSE_AUTH=1).
    let clickhouse_port = port + 5;
    let clickhouse_server = PrivateServer::new("chauth", "clickhouse", &[("CLICKHOUSE_PORT", clickhouse_port)])
        .with_env("CLICKHOUSE_AUTH", "1");
    clickhouse_server.stack("up");
    let clickhouse_env = clickhouse_server.env();

    let dir = std::env::temp_dir().join(format!("quench-sasl-{}-{}", std::process::id(), now_ms()));
    std::fs::create_dir_all(&dir).unwrap();
    let peers = Arc::new(Peers::default());
    let base = fake_peers::serve(peers.clone()).await;
    let (config, routing) = fake_peers::webhook_files(&dir, &base, "");
    let mut run = Run::new("sasl");
    run.set_all(&[
        ("QUENCH_CONFIG", config.display().to_string()),
        ("QUENCH_KAFKA__BROKERS", format!("127.0.0.1:{port}")),
        ("QUENCH_KAFKA__PROPERTIES__security.protocol", "SASL_SSL".into()),
        ("QUENCH_KAFKA__PROPERTIES__sasl.mechanisms", "SCRAM-SHA-512".into()),
        ("QUENCH_KAFKA__PROPERTIES__sasl.username", user.clone()),
        ("QUENCH_KAFKA__PROPERTIES__sasl.password", password.clone()),
        ("QUENCH_KAFKA__PROPERTIES__ssl.ca.location", ca.clone()),
        ("QUENCH_WORKER__ROUTING", routing.display().to_string()),
        ("QUENCH_CLICKHOUSE__DATABASE", support::database("sasl")),
        ("QUENCH_CLICKHOUSE__URL", format!("http://127.0.0.1:{clickhouse_port}")),
        ("QUENCH_CLICKHOUSE__USER", clickhouse_env["QUENCH_CLICKHOUSE__USER"].clone()),
        ("QUENCH_CLICKHOUSE__PASSWORD", clickhouse_env["QUENCH_CLICKHOUSE__PASSWORD"].clone()),
        ("QUENCH_SINK__FLUSH_INTERVAL_MS", "300".into()),
    ]);
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    migrate(&run.config.clickhouse, MIGRATIONS).await.unwrap();

    // A wrong password: refused at start-up, and neither password is printed.
    let mut wrong = run.env.clone();
    wrong.retain(|(k, _)| k != "QUENCH_KAFKA__PROPERTIES__sasl.password");
    wrong.push(("QUENCH_KAFKA__PROPERTIES__sasl.password".into(), "not-the-password-4711".into()));
    let quench = std::path::Path::new(env!("CARGO_BIN_EXE_quench"));
    let check = quench_command(quench, "check", &wrong).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    assert!(!check.status.success(), "a wrong password must not pass: {said}");
    assert!(!said.contains("not-the-password-4711") && !said.contains(password.as_str()), "{said}");
    let printed = quench_command(quench, "config", &run.env).output().unwrap();
    let printed = String::from_utf8_lossy(&printed.stdout).into_owned();
    assert!(!printed.contains(password.as_str()), "quench config masks it");
    assert!(!printed.contains(clickhouse_env["QUENCH_CLICKHOUSE__PASSWORD"].as_str()), "and ClickHouse's");
    // ClickHouse refuses the wrong password too.
    let mut wrong = run.env.clone();
    wrong.push(("QUENCH_CLICKHOUSE__PASSWORD".into(), "not-the-clickhouse-password".into()));
    let check = quench_command(quench, "check", &wrong).output().unwrap();
    assert!(!check.status.success(), "a wrong ClickHouse password must not pass");

    let ingest = Ingest::start(&run, &[]);
    let _processes = [run.start("run"), run.start("sink"), run.start("notify")].map(KillOnDrop);
    let body = serde_json::to_vec(&alertmanager_body("SaslFlow", 0..3)).unwrap();
    assert_eq!(post(&reqwest::Client::new(), &ingest.url, "/v1/alertmanager", body).await.status().as_u16(), 200);

    let started = Instant::now();
    while peers.of("webhook/ops").is_empty() {
        assert!(started.elapsed() < Duration::from_secs(120), "no notification through the SASL Kafka");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let clickhouse = client(&run.config.clickhouse);
    let started = Instant::now();
    loop {
        let alerts: u64 = clickhouse.query("SELECT count() FROM alerts").fetch_one().await.unwrap();
        let incidents: u64 = clickhouse.query("SELECT count() FROM incidents").fetch_one().await.unwrap();
        if alerts == 3 && incidents >= 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "sink wrote {alerts} alerts, {incidents} incidents");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
