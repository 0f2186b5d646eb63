//! Secrets never leave: a distinct secret is planted in every setting that holds one, every
//! notifier channel fails (each target is a closed port, its secret in the URL where the channel
//! has one), the LLM fails too, and then the logs of every process, `quench config`, `quench
//! check`, every ClickHouse table and every topic are searched: none of the secrets appears.

mod support;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use quench_pipeline::{
    clickhouse::{client, migrate, MIGRATIONS},
    config::quench_command,
    kafka::create_topics,
};
use quench_schemas::now_ms;
use support::{
    ingest::{alertmanager_body, free_port, healthy},
    read_until, KillOnDrop, Run,
};

/// Every planted secret, by the setting it is planted in.
const PLANTED: &[(&str, &str)] = &[
    ("kafka sasl.password", "planted-kafka-sasl-0x01"),
    ("registry url password", "planted-registry-url-0x02"),
    ("clickhouse password", "planted-clickhouse-pw-0x03"),
    ("ingest source token", "planted-ingest-token-0x04"),
    ("ingest hmac secret", "planted-ingest-hmac-0x05"),
    ("ingest api token", "planted-ingest-api-0x06"),
    ("api token", "planted-api-token-0x07"),
    ("notify api token", "planted-notify-api-0x08"),
    ("slack signing secret", "planted-slack-signing-0x09"),
    ("pagerduty webhook secret", "planted-pd-webhook-0x10"),
    ("slack webhook url", "planted-slack-url-0x11"),
    ("slack token", "planted-slack-token-0x12"),
    ("teams url sig", "planted-teams-sig-0x13"),
    ("webhook url token", "planted-webhook-url-0x14"),
    ("webhook signing secret", "planted-webhook-secret-0x15"),
    ("webhook header", "planted-webhook-header-0x16"),
    ("pagerduty routing key", "planted-pd-routing-0x17"),
    ("smtp password", "planted-smtp-pw-0x18"),
    ("llm api key", "planted-llm-key-0x19"),
];

fn secret(setting: &str) -> &'static str {
    PLANTED.iter().find(|(s, _)| *s == setting).expect("planted").1
}

/// The configuration file: every secret-bearing setting, every target on a closed port.
fn config_file(dir: &Path, ingest: &str, api: &str, notify: &str) -> String {
    let closed = "http://127.0.0.1:1";
    let file = dir.join("quench.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[kafka.properties]
"sasl.password" = "{kafka}"
[clickhouse]
password = "{clickhouse}"
[classify]
provider = "anthropic"
[classify.llm]
url = "{closed}"
model = "claude-test"
api_key = "{llm}"
timeout_ms = 500
max_retries = 0
ask_below_confidence = 1.0
[ingest]
listen = "{ingest}"
[ingest.sources.alertmanager]
token = "{source}"
[ingest.sources.grafana]
hmac_secret = "{hmac}"
[ingest.api_tokens.alice]
token = "{ingest_api}"
tenants = ["*"]
write = true
[api]
listen = "{api}"
[api.tokens.admin]
token = "{api_token}"
tenants = ["*"]
[notify]
listen = "{notify}"
max_attempts = 2
initial_backoff_ms = 50
timeout_ms = 1000
[notify.api_tokens.ops]
token = "{notify_api}"
tenants = ["*"]
write = true
[notify.callbacks]
slack_signing_secret = "{slack_signing}"
pagerduty_webhook_secret = "{pd_webhook}"
[notify.slack.hook]
url = "{closed}/services/T0/B0/{slack_url}"
[notify.slack.bot]
url = "{closed}/api/chat.postMessage"
token = "{slack_token}"
channel = "C0OPS"
[notify.teams.ops]
url = "{closed}/workflows/invoke?api-version=1&sig={teams}"
[notify.webhook.ops]
url = "{closed}/hook?token={webhook_url}"
secret = "{webhook_secret}"
headers = {{ "x-api-key" = "{webhook_header}" }}
[notify.pagerduty.db]
url = "{closed}/v2/enqueue"
routing_key = "{pd_routing}"
[notify.email.oncall]
to = ["oncall@example.org"]
from = "Quench <quench@example.org>"
smtp_host = "127.0.0.1"
smtp_port = 1
tls = "none"
username = "quench"
password = "{smtp}"
"#,
            kafka = secret("kafka sasl.password"),
            clickhouse = secret("clickhouse password"),
            llm = secret("llm api key"),
            source = secret("ingest source token"),
            hmac = secret("ingest hmac secret"),
            ingest_api = secret("ingest api token"),
            api_token = secret("api token"),
            notify_api = secret("notify api token"),
            slack_signing = secret("slack signing secret"),
            pd_webhook = secret("pagerduty webhook secret"),
            slack_url = secret("slack webhook url"),
            slack_token = secret("slack token"),
            teams = secret("teams url sig"),
            webhook_url = secret("webhook url token"),
            webhook_secret = secret("webhook signing secret"),
            webhook_header = secret("webhook header"),
            pd_routing = secret("pagerduty routing key"),
            smtp = secret("smtp password"),
        ),
    )
    .unwrap();
    file.display().to_string()
}

/// The secrets found in `text`, by setting.
fn leaked(text: &[u8]) -> Vec<&'static str> {
    PLANTED.iter().filter(|(_, s)| text.windows(s.len()).any(|w| w == s.as_bytes())).map(|(name, _)| *name).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn planted_secrets_appear_in_no_log_output_table_or_topic() {
    let dir = std::env::temp_dir().join(format!("quench-secrets-{}-{}", std::process::id(), now_ms()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ingest, api, notify) = (free_port(), free_port(), free_port());
    let (ingest, api, notify) =
        (format!("127.0.0.1:{ingest}"), format!("127.0.0.1:{api}"), format!("127.0.0.1:{notify}"));
    let routing = dir.join("routing.yaml");
    let targets = ["slack: hook", "slack: bot", "teams: ops", "webhook: ops", "pagerduty: db", "email: oncall"];
    let targets: Vec<String> = targets
        .iter()
        .map(|t| {
            let (channel, target) = t.split_once(": ").unwrap();
            format!("{{ channel: {channel}, target: {target} }}")
        })
        .collect();
    std::fs::write(&routing, format!("default: {{ team: ops, targets: [{}] }}\n", targets.join(", "))).unwrap();
    let mut run = Run::new("secrets");
    run.set_all(&[
        ("QUENCH_CONFIG", config_file(&dir, &ingest, &api, &notify)),
        ("QUENCH_WORKER__ROUTING", routing.display().to_string()),
        ("QUENCH_CLICKHOUSE__DATABASE", support::database("secrets")),
        ("QUENCH_SINK__FLUSH_INTERVAL_MS", "300".into()),
        ("QUENCH_LOG__LEVEL", "debug".into()),
    ]);
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    migrate(&run.config.clickhouse, MIGRATIONS).await.unwrap();

    // `quench config` and `quench check`, also with credentials inside the registry's URL.
    let quench = Path::new(env!("CARGO_BIN_EXE_quench"));
    let mut with_url = run.env.clone();
    let registry =
        run.config.registry.url.replacen("://", &format!("://quench:{}@", secret("registry url password")), 1);
    with_url.push(("QUENCH_REGISTRY__URL".into(), registry));
    let mut said = Vec::new();
    for (command, env) in [("config", &with_url), ("check", &with_url), ("check", &run.env)] {
        let output = quench_command(quench, command, env).output().unwrap();
        said.extend_from_slice(&output.stdout);
        said.extend_from_slice(&output.stderr);
    }
    assert!(said.len() > 1_000, "quench config printed the configuration");

    let logs: Vec<_> =
        ["ingest", "run", "sink", "notify", "api"].iter().map(|p| dir.join(format!("{p}.log"))).collect();
    let _processes: Vec<KillOnDrop> = ["ingest", "run", "sink", "notify", "api"]
        .iter()
        .zip(&logs)
        .map(|(command, log)| KillOnDrop(run.start_logged(command, log)))
        .collect();
    let started = Instant::now();
    while !healthy(&ingest) {
        assert!(started.elapsed() < Duration::from_secs(60), "quench ingest did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = serde_json::to_vec(&alertmanager_body("SecretsEverywhere", 0..2)).unwrap();
    let answer = reqwest::Client::new()
        .post(format!("http://{ingest}/v1/alertmanager"))
        .bearer_auth(secret("ingest source token"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);

    // Every target fails for good (dead-lettered) and its attempts reach ClickHouse.
    let clickhouse = client(&run.config.clickhouse);
    let started = Instant::now();
    loop {
        let failed: u64 = clickhouse
            .query("SELECT uniqExact(channel, target) FROM notifications WHERE outcome = 'failed'")
            .fetch_one()
            .await
            .unwrap();
        if failed == 6 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(180), "{failed} of 6 targets failed for good so far");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The search finds what is there: every secret but the registry's is in the file itself.
    let file = std::fs::read(dir.join("quench.toml")).unwrap();
    assert_eq!(leaked(&file).len(), PLANTED.len() - 1, "the search works");
    let mut found = leaked(&said).into_iter().map(|s| format!("quench config/check: {s}")).collect::<Vec<_>>();
    for log in &logs {
        let text = std::fs::read(log).unwrap();
        found.extend(leaked(&text).into_iter().map(|s| format!("{}: {s}", log.display())));
    }
    let tables: Vec<String> = clickhouse
        .query("SELECT name FROM system.tables WHERE database = currentDatabase() AND engine NOT LIKE '%View%'")
        .fetch_all()
        .await
        .unwrap();
    assert!(tables.len() > 10, "{tables:?}");
    for table in &tables {
        let rows =
            clickhouse.query(&format!("SELECT * FROM {table}")).fetch_bytes("TSV").unwrap().collect().await.unwrap();
        found.extend(leaked(&rows).into_iter().map(|s| format!("table {table}: {s}")));
    }
    let topics = serde_json::to_value(&run.config.topics).unwrap();
    for topic in topics.as_object().unwrap().values().filter_map(|v| v.as_str()) {
        let consumer = run.consumer(topic);
        let quiet = Instant::now();
        let records = read_until(&consumer, move |_| quiet.elapsed() > Duration::from_secs(2));
        for (key, value, headers) in records {
            let mut bytes = key.unwrap_or_default().into_bytes();
            bytes.extend_from_slice(&value);
            headers.iter().for_each(|(k, v)| bytes.extend_from_slice(format!("{k}{v}").as_bytes()));
            found.extend(leaked(&bytes).into_iter().map(|s| format!("topic {topic}: {s}")));
        }
    }
    assert!(found.is_empty(), "secrets left where they may be read:\n{}", found.join("\n"));
    std::fs::remove_dir_all(&dir).unwrap();
}
