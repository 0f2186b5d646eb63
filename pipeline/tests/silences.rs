//! Silences through Alertmanager's API, driven by Debian's `amtool` (0.25) against a running
//! `quench ingest`, and what a worker does with them: `amtool silence add`, `query` and `expire`,
//! `amtool alert query` with and without `--silenced`, and a silenced alert's incident recorded
//! but not announced while the other alert of the same storm is.

mod support;

use std::{
    path::Path,
    process::{Command, Output},
    time::{Duration, Instant},
};

use quench_pipeline::{
    clickhouse::{migrate, MIGRATIONS},
    kafka::create_topics,
};
use quench_schemas::{Incident, RoutingEvent, RoutingReason};
use support::{
    decode_all,
    ingest::{post, Ingest},
    read_until, sigterm, Run,
};

const API_TOKEN: &str = "silence-writer-0123456789";

/// `amtool` against `url`, with the API token when `token` is set.
fn amtool(url: &str, token: Option<&Path>, args: &[&str]) -> Output {
    let mut command = Command::new("amtool");
    command.arg(format!("--alertmanager.url={url}"));
    if let Some(config) = token {
        command.arg(format!("--http.config.file={}", config.display()));
    }
    command
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run amtool ({e}); `infra/local/stack install` installs Debian's"))
}

/// Reading stops at the first record that holds `text` (Avro writes strings as they are).
fn mentions(text: &'static str) -> impl FnMut(&[support::Read]) -> bool {
    move |seen| seen.iter().any(|(_, value, _)| value.windows(text.len()).any(|w| w == text.as_bytes()))
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "amtool failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asks `amtool` until its output satisfies `done` (the sink writes alerts to ClickHouse within
/// a second or two; a slow machine gets a minute).
fn until(mut ask: impl FnMut() -> String, done: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let answer = ask();
        if done(&answer) || started.elapsed() > Duration::from_secs(60) {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn amtool_manages_silences_and_a_silenced_alert_is_recorded_but_not_announced() {
    let mut run = Run::new("silences");
    let dir = std::env::temp_dir().join(format!("quench-silences-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("alertmanager.yml");
    std::fs::write(
        &rules,
        "route: {receiver: ops, group_by: [alertname], group_wait: 2s, group_interval: 2s}\nreceivers: [{name: ops}]\n",
    )
    .unwrap();
    run.set("QUENCH_WORKER__RULES", &rules.display().to_string());
    run.set("QUENCH_CLICKHOUSE__DATABASE", &support::database("silences"));
    run.set("QUENCH_SINK__FLUSH_INTERVAL_MS", "300");
    let routing = dir.join("routing.yaml");
    std::fs::write(&routing, "default: { team: ops, targets: [{ channel: webhook, target: ops }] }\n").unwrap();
    run.set("QUENCH_WORKER__ROUTING", &routing.display().to_string());
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    migrate(&run.config.clickhouse, MIGRATIONS).await.unwrap();
    let http_config = dir.join("amtool-http.yml");
    std::fs::write(&http_config, format!("authorization:\n  credentials: {API_TOKEN}\n")).unwrap();
    let token = [
        ("QUENCH_INGEST__API_TOKENS__ALICE__TOKEN", API_TOKEN),
        ("QUENCH_INGEST__API_TOKENS__ALICE__TENANTS", r#"["*"]"#),
        ("QUENCH_INGEST__API_TOKENS__ALICE__WRITE", "true"),
    ];
    let ingest = Ingest::start(&run, &token);
    let url = ingest.url.as_str();
    let mut sink = run.start("sink");

    // The API answers once it read the silences topic; writes need the token.
    let ready =
        until(|| format!("{:?}", amtool(url, Some(&http_config), &["silence", "query"]).status), |s| s.contains("(0)"));
    assert!(ready.contains("(0)"), "amtool silence query: {ready}");
    // Reads need a token too: silences and alerts name other tenants' labels.
    let anonymous = String::from_utf8_lossy(&amtool(url, None, &["silence", "query"]).stderr).into_owned();
    assert!(anonymous.contains("401"), "{anonymous}");
    let args = ["silence", "add", "alertname=DiskFull", "instance=~db-.*", "--comment=disk swap", "--duration=1h"];
    let refused = String::from_utf8_lossy(&amtool(url, None, &args).stderr).into_owned();
    assert!(refused.contains("401"), "{refused}");
    let id = stdout(&amtool(url, Some(&http_config), &args)).trim().to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let listed = stdout(&amtool(url, Some(&http_config), &["silence", "query"]));
    assert!(listed.contains(&id) && listed.contains("disk swap") && listed.contains("instance=~\"db-.*\""), "{listed}");
    assert_eq!(
        stdout(&amtool(url, Some(&http_config), &["silence", "query", "-q", "alertname=Other"])).trim(),
        "",
        "filtered"
    );

    // A storm of two alerts: DiskFull is silenced, Latency is not.
    let mut worker = run.start("run");
    let body = serde_json::json!({"version": "4", "status": "firing", "receiver": "quench", "groupLabels": {},
        "alerts": [
            {"status": "firing", "labels": {"alertname": "DiskFull", "instance": "db-1"}, "annotations": {"summary": "disk full"},
             "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z"},
            {"status": "firing", "labels": {"alertname": "Latency", "instance": "db-1"}, "annotations": {"summary": "slow"},
             "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z"}]});
    let client = reqwest::Client::new();
    assert!(post(&client, url, "/v1/alertmanager", serde_json::to_vec(&body).unwrap()).await.status().is_success());

    let active = until(|| stdout(&amtool(url, Some(&http_config), &["alert", "query"])), |out| out.contains("Latency"));
    assert!(active.contains("Latency") && !active.contains("DiskFull"), "a silenced alert is not listed: {active}");
    let all = stdout(&amtool(url, Some(&http_config), &["alert", "query", "--silenced", "-o", "json"]));
    let alerts: serde_json::Value = serde_json::from_str(&all).unwrap();
    let disk = alerts.as_array().unwrap().iter().find(|a| a["labels"]["alertname"] == "DiskFull").expect("listed");
    assert_eq!(disk["status"]["state"], "suppressed");
    assert_eq!(disk["status"]["silencedBy"], serde_json::json!([id]));
    assert_eq!(disk["receivers"], serde_json::json!([{"name": "ops"}]));

    // The worker records the silenced alert's incident and announces only the other one.
    let registry = run.registry();
    let incidents: Vec<Incident> =
        decode_all(&registry, &read_until(&run.consumer(&run.config.topics.incidents), mentions("DiskFull"))).await;
    let disk = incidents.iter().find(|i| i.title.starts_with("DiskFull")).expect("the silenced alert has an incident");
    assert_eq!((disk.muted_alerts, disk.silenced_by.clone()), (1, vec![id.clone()]), "{disk:?}");
    // Expiring the silence makes DiskFull news at its group's next tick.
    let expired_at = quench_schemas::now_ms();
    stdout(&amtool(url, Some(&http_config), &["silence", "expire", &id]));
    assert_eq!(stdout(&amtool(url, Some(&http_config), &["silence", "query", "-q"])).trim(), "", "expired");
    assert!(stdout(&amtool(url, Some(&http_config), &["silence", "query", "--expired"])).contains(&id));
    // Both changes are in the audit trail (written in the background), with the token that made them.
    let clickhouse = quench_pipeline::clickhouse::client(&run.config.clickhouse);
    let started = std::time::Instant::now();
    let changes: Vec<(String, String, String)> = loop {
        let changes: Vec<(String, String, String)> = clickhouse
            .query("SELECT change, token, silence_id FROM silence_changes ORDER BY at")
            .fetch_all()
            .await
            .unwrap();
        if changes.len() >= 2 || started.elapsed() > std::time::Duration::from_secs(30) {
            break changes;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let alice = "alice".to_string();
    assert_eq!(changes, [("create".into(), alice.clone(), id.clone()), ("expire".into(), alice, id.clone())]);
    // Until both groups' events are read: they may be in two partitions, read in either order.
    let (mut latency, mut disk) = (mentions("Latency"), mentions("DiskFull"));
    let read = read_until(&run.consumer(&run.config.topics.routing), |seen| latency(seen) && disk(seen));
    let events: Vec<RoutingEvent> = decode_all(&registry, &read).await;
    let opened: Vec<(&str, i64)> =
        events.iter().filter(|e| e.reason == RoutingReason::Opened).map(|e| (e.title.as_str(), e.emitted_at)).collect();
    assert_eq!(opened.len(), 2, "{events:?}");
    assert!(opened[0].0.starts_with("Latency") && opened[1].0.starts_with("DiskFull"), "{opened:?}");
    assert!(opened[1].1 >= expired_at - 1_000, "DiskFull is announced once the silence expired: {opened:?}");
    let active =
        until(|| stdout(&amtool(url, Some(&http_config), &["alert", "query"])), |out| out.contains("DiskFull"));
    assert!(active.contains("DiskFull"), "no longer silenced: {active}");

    for child in [&mut worker, &mut sink] {
        sigterm(child);
        assert!(child.wait().unwrap().success());
    }
}
