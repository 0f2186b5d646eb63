//! `quench notify` against the real Kafka and registry of `infra/local/stack`, a real SMTP server
//! (PyPI's aiosmtpd, `infra/local/stack up smtp`) and FAKE Slack, PagerDuty, Teams and webhook
//! peers (hosted services; `support/fake_peers.rs` checks each one's documented request shape).

mod support;

use std::{
    collections::HashMap,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use clickhouse::Row;
use quench_pipeline::{
    clickhouse::{client, migrate, MIGRATIONS},
    kafka::create_topics,
};
use quench_schemas::{now_ms, Alert, Encoder, Incident, IncidentStatus, RoutingEvent, RoutingReason, RoutingTarget};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Deserialize;
use support::{
    alert, decode_all,
    fake_peers::{self, Peers, PAGERDUTY_KEY, SLACK_TOKEN, WEBHOOK_SECRET},
    produce, read_until, PrivateServer, Run,
};

#[derive(Row, Deserialize, Debug)]
struct ChannelRow {
    channel: String,
    delivered: u64,
    retried: u64,
}

const SLACK_SIGNING_SECRET: &str = "slack-signing-secret-0123";
const PAGERDUTY_WEBHOOK_SECRET: &str = "pagerduty-webhook-secret-0123";

fn port(offset: u32) -> u16 {
    u16::try_from(20_000 + (std::process::id() % 2_000) * 4 + offset).unwrap()
}

/// The notifier's configuration file: every channel on the fakes, email on the SMTP server,
/// a schedule and a two-step policy with short waits.
fn write_config(dir: &Path, peers: &str, smtp_port: u16, api: &str, wait_minutes: f64) -> String {
    let path = dir.join("quench.toml");
    let webhooks: Vec<String> = ["ops", "alice", "manager", "sink", "rejects", "dead"]
        .iter()
        .map(|name| format!("{name} = {{ url = \"{peers}/webhook/{name}\", secret = \"{WEBHOOK_SECRET}\" }}"))
        .collect();
    let webhooks = webhooks.join("\n");
    std::fs::write(
        &path,
        format!(
            r#"
[notify]
listen = "{api}"
max_attempts = 3
initial_backoff_ms = 100
tick_ms = 200
incident_url = "https://quench.example/incidents/{{incident_id}}"
[notify.api_tokens.ops-bot]
token = "api-token-0123456789"
tenants = ["*"]
write = true
[notify.callbacks]
slack_signing_secret = "{SLACK_SIGNING_SECRET}"
pagerduty_webhook_secret = "{PAGERDUTY_WEBHOOK_SECRET}"
[notify.slack.ops]
url = "{peers}/slack/api/chat.postMessage"
token = "{SLACK_TOKEN}"
channel = "C0OPS"
[notify.pagerduty.db]
url = "{peers}/pagerduty/v2/enqueue"
routing_key = "{PAGERDUTY_KEY}"
[notify.teams.ops]
url = "{peers}/teams/ops"
[notify.email.oncall]
to = ["oncall@example.org"]
from = "Quench <quench@example.org>"
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
tls = "none"
[notify.webhook]
{webhooks}
[notify.users.alice]
targets = ["webhook:alice"]
[notify.schedules.primary]
timezone = "Europe/Paris"
layers = [{{ users = ["alice"], start = "2026-01-01", handoff = "09:00", rotation_days = 7 }}]
[notify.policies.db]
steps = [{{ targets = ["schedule:primary"], wait_minutes = {wait_minutes} }}, {{ targets = ["webhook:manager"], wait_minutes = {wait_minutes} }}]
"#
        ),
    )
    .unwrap();
    path.display().to_string()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(180), "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn call_api(api: &str, path: &str, body: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("http://{api}{path}"))
        .bearer_auth("api-token-0123456789")
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Retries while the notifier has not read the incident from `incidents` yet.
async fn act(api: &str, incident: &str, verb: &str, body: &str) {
    let started = Instant::now();
    loop {
        let (status, text) = call_api(api, &format!("/v1/incidents/{incident}/{verb}"), body).await;
        if status == 202 {
            return;
        }
        assert!(matches!(status, 404 | 503) && started.elapsed() < Duration::from_secs(30), "{verb}: {status} {text}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn maildir_subjects(maildir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(maildir.join("new")) else { return Vec::new() };
    entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .filter_map(|mail| mail.lines().find_map(|l| l.strip_prefix("Subject: ").map(str::to_string)))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incident_reaches_every_channel_escalates_and_stops_when_acknowledged_through_the_api() {
    let mut run = Run::new("notify");
    let dir = tempdir("notify");
    let smtp_port = port(0);
    let maildir = dir.join("maildir");
    let smtp = PrivateServer::new("smtp", "smtp", &[("SMTP_PORT", smtp_port)])
        .with_env("SMTP_MAILDIR", maildir.display().to_string());
    smtp.stack("up");
    let peers = Arc::new(Peers::default());
    peers.throttle.lock().unwrap().insert("pagerduty".into(), 1);
    let base = fake_peers::serve(peers.clone()).await;
    let api = format!("127.0.0.1:{}", port(1));
    // The second escalation step is due 30 s after the first page: far longer than an
    // acknowledgement takes to reach the notifier, however slow the machine.
    let wait = Duration::from_secs(30);
    run.set("QUENCH_CONFIG", &write_config(&dir, &base, smtp_port, &api, wait.as_secs_f64() / 60.0));
    let routing = dir.join("routing.yaml");
    std::fs::write(
        &routing,
        "default:\n  team: dba\n  escalation_policy: db\n  targets:\n    - { channel: slack, target: ops }\n    \
         - { channel: pagerduty, target: db }\n    - { channel: teams, target: ops }\n    \
         - { channel: email, target: oncall }\n    - { channel: webhook, target: ops }\n",
    )
    .unwrap();
    run.set("QUENCH_WORKER__ROUTING", &routing.display().to_string());
    run.set("QUENCH_CLICKHOUSE__DATABASE", &support::database("notify"));
    run.set("QUENCH_SINK__FLUSH_INTERVAL_MS", "300");
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    migrate(&run.config.clickhouse, MIGRATIONS).await.unwrap();
    let encoder = Encoder::<Alert>::register(&run.registry(), &run.config.topics.alerts).await.unwrap();
    let now = now_ms();
    let records =
        (0..5).map(|i| ("PostgresqlDown".to_string(), encoder.encode(&alert("PostgresqlDown", i, now)).unwrap()));
    produce(&run, records.collect()).await;

    let mut worker = run.start("run");
    let mut notifier = run.start("notify");
    let mut sink = run.start("sink");
    // Opened: every channel once, and the first escalation step pages whoever is on call.
    wait_for("the opened notifications and the first page", || {
        peers.of("webhook/alice").len() == 1 && peers.of("slack").len() == 1 && peers.of("pagerduty").len() == 1
    })
    .await;
    let first_page = Instant::now();
    let dedup_key = peers.of("pagerduty")[0].key.clone();
    let incident = dedup_key.strip_prefix("default/").expect("the dedup key is <tenant>/<incident id>").to_string();
    assert!(incident.starts_with("inc-"), "dedup_key is the tenant and the incident id: {dedup_key}");
    act(&api, &incident, "ack", r#"{"actor": "alice"}"#).await;
    wait_for("the acknowledgement notifications", || peers.of("pagerduty").len() == 2 && peers.of("slack").len() == 2)
        .await;
    act(&api, &incident, "comment", r#"{"comment": "failing over"}"#).await;
    act(&api, &incident, "resolve", "").await;
    wait_for("the resolution notifications", || {
        peers.of("pagerduty").len() == 3 && peers.of("webhook/ops").len() == 3 && maildir_subjects(&maildir).len() == 3
    })
    .await;
    // Past the second step's due time: acknowledged before it, it never fires.
    tokio::time::sleep((first_page + wait + Duration::from_secs(3)).saturating_duration_since(Instant::now())).await;
    assert!(peers.of("webhook/manager").is_empty(), "escalation stopped at the acknowledgement");
    assert!(peers.malformed.lock().unwrap().is_empty(), "{:?}", peers.malformed.lock().unwrap());

    let pagerduty = peers.of("pagerduty");
    let actions: Vec<&str> = pagerduty.iter().map(|r| r.detail.as_str()).collect();
    assert_eq!(actions, ["trigger", "acknowledge", "resolve"]);
    assert!(pagerduty.iter().all(|r| r.key == dedup_key));
    assert_eq!(pagerduty[0].body["payload"]["severity"], "critical", "{}", pagerduty[0].body);
    let slack = peers.of("slack");
    assert_eq!(slack[0].detail, "", "the first message starts the thread");
    assert!(slack[1..].iter().all(|r| r.detail == "1700000000.000100"), "updates are threaded: {slack:?}");
    let teams: Vec<String> = peers.of("teams/ops").iter().map(|r| r.detail.clone()).collect();
    assert_eq!(teams.len(), 3);
    assert!(
        teams[0].starts_with("[FIRING]")
            && teams[1].starts_with("[ACKNOWLEDGED]")
            && teams[2].starts_with("[RESOLVED]"),
        "{teams:?}"
    );
    let subjects = maildir_subjects(&maildir);
    assert!(subjects.iter().any(|s| s.starts_with("[RESOLVED]")), "{subjects:?}");
    let page = &peers.of("webhook/alice")[0];
    assert!(page.key.starts_with(&format!("{incident}/escalation/0.0|webhook:alice")), "{}", page.key);
    assert!(page.body["text"].as_str().unwrap().contains("Escalation step 1"), "{}", page.body);

    // The incident carries the times MTTA and MTTR are computed from.
    let incidents = read_until(&run.consumer(&run.config.topics.incidents), |seen| {
        seen.iter().any(|(_, v, _)| !v.is_empty()) && seen.len() >= 3
    });
    let incidents: Vec<Incident> = decode_all(&run.registry(), &incidents).await;
    let last = incidents.last().unwrap();
    assert_eq!(last.status, IncidentStatus::Resolved, "{incidents:?}");
    assert!(last.acknowledged_at.is_some() && last.resolved_at.is_some(), "{last:?}");
    // The throttled PagerDuty call was retried after Retry-After, and both attempts are recorded.
    let attempts = read_until(&run.consumer(&run.config.topics.notifications), |seen| seen.len() >= 16);
    let attempts: Vec<serde_json::Value> =
        attempts.iter().map(|(_, v, _)| serde_json::from_slice(v).unwrap()).collect();
    assert!(
        attempts.iter().any(|a| a["channel"] == "pagerduty" && a["status"] == 429 && a["outcome"] == "retrying"),
        "{attempts:?}"
    );

    // Every attempt reaches ClickHouse through the sink, next to the incident's MTTA and MTTR.
    let clickhouse = client(&run.config.clickhouse);
    let query =
        "SELECT channel, countIf(outcome = 'delivered') AS delivered, countIf(outcome = 'retrying') AS retried \
                 FROM notifications FINAL GROUP BY channel ORDER BY channel";
    let started = Instant::now();
    let rows = loop {
        let rows: Vec<ChannelRow> = clickhouse.query(query).fetch_all().await.unwrap_or_default();
        if rows.iter().map(|r| r.delivered).sum::<u64>() >= 16 || started.elapsed() > Duration::from_secs(60) {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let by_channel: HashMap<String, (u64, u64)> =
        rows.into_iter().map(|r| (r.channel, (r.delivered, r.retried))).collect();
    assert_eq!(by_channel.get("pagerduty"), Some(&(3, 1)), "{by_channel:?}");
    assert_eq!(by_channel.get("webhook"), Some(&(4, 0)), "three events and one page: {by_channel:?}");
    for channel in ["slack", "teams", "email"] {
        assert_eq!(by_channel.get(channel), Some(&(3, 0)), "{channel}: {by_channel:?}");
    }
    let (mtta, mttr): (Option<i64>, Option<i64>) = clickhouse
        .query("SELECT toInt64(dateDiff('millisecond', first_seen, acknowledged_at)), toInt64(dateDiff('millisecond', first_seen, resolved_at)) FROM incidents FINAL WHERE incident_id = ?")
        .bind(&incident)
        .fetch_one()
        .await
        .unwrap();
    assert!(mtta.is_some_and(|a| a > 0) && mttr >= mtta, "MTTA {mtta:?} ms, MTTR {mttr:?} ms");

    for child in [&mut worker, &mut notifier, &mut sink] {
        support::sigterm(child);
        assert!(child.wait().unwrap().success());
    }
}

fn hmac_hex(secret: &str, message: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// POSTs `body` to the notifier's `path` with `headers`: the status and the answer.
async fn callback(api: &str, path: &str, headers: &[(&str, String)], body: String) -> (u16, String) {
    let mut request = reqwest::Client::new().post(format!("http://{api}{path}")).body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// A PostgresqlDown of 12 November, resolved by bob in 14 minutes, in ClickHouse with its text's
/// embedding (as `quench api`'s indexer writes them).
async fn past_incident_like_postgresql_down(run: &Run) {
    use quench_pipeline::similar::{
        indexer::{IncidentRow, TextRow},
        text, text_hash,
    };
    migrate(&run.config.clickhouse, MIGRATIONS).await.unwrap();
    let clickhouse = client(&run.config.clickhouse);
    let insert =
        "INSERT INTO incidents (tenant, incident_id, group_key, status, title, summary, severity, first_seen, \
                  last_seen, resolved_at, alert_count, distinct_alerts, common_labels, flapping, version) VALUES \
                  ('default', 'inc-past', 'k', 'resolved', 'PostgresqlDown', '', 'critical', '2026-11-12 09:00:00', \
                   '2026-11-12 09:14:00', '2026-11-12 09:14:00', 1, 1, {'alertname': 'PostgresqlDown'}, false, 2)";
    clickhouse.query(insert).execute().await.unwrap();
    let action = "INSERT INTO actions (tenant, incident_id, action_id, kind, actor, at) VALUES \
                  ('default', 'inc-past', 'r', 'resolve', 'bob', '2026-11-12 09:14:00')";
    clickhouse.query(action).execute().await.unwrap();
    let model = quench_classify::embed::Embedder::load(
        &run.config.classify.local.model_dir,
        std::num::NonZeroUsize::new(10).unwrap(),
    )
    .unwrap();
    let labels = std::collections::BTreeMap::from([("alertname".to_string(), "PostgresqlDown".to_string())]);
    let past = text("PostgresqlDown", "", &labels);
    let embedding = model.embed(&[past.as_str()]).unwrap().pop().unwrap();
    let mut texts = clickhouse.insert::<TextRow>("similar_texts").await.unwrap();
    texts.write(&TextRow { tenant: "default".into(), text_hash: text_hash(&past), embedding }).await.unwrap();
    texts.end().await.unwrap();
    let mut incidents = clickhouse.insert::<IncidentRow>("similar_incidents").await.unwrap();
    let row = IncidentRow {
        tenant: "default".into(),
        text_hash: text_hash(&past),
        first_seen: 1_794_474_000_000,
        incident_id: "inc-past".into(),
        service: String::new(),
    };
    incidents.write(&row).await.unwrap();
    incidents.end().await.unwrap();
}

/// A PagerDuty v3 webhook as PagerDuty sends it (FAKE PagerDuty: the test signs it).
async fn pagerduty_webhook(api: &str, event: &str, incident: &str, secret: &str) -> (u16, String) {
    let body = serde_json::json!({"event": {
        "id": format!("01{event}{incident}"), "event_type": event, "resource_type": "incident",
        "occurred_at": "2026-12-01T10:00:00Z",
        "agent": {"id": "PLH1HKV", "summary": "Alice Example", "type": "user_reference"},
        "data": {"id": "PGR0VU2", "type": "incident", "incident_key": incident, "status": "acknowledged",
                 "title": "PostgresqlDown"}
    }})
    .to_string();
    let signature = format!("v1={}", hmac_hex(secret, body.as_bytes()));
    callback(api, "/v1/pagerduty/webhooks", &[("x-pagerduty-signature", signature)], body).await
}

/// A click on a Slack button as Slack sends it (FAKE Slack: the test signs it).
async fn slack_click(api: &str, action_id: &str, incident: &str) -> (u16, String) {
    let payload = serde_json::json!({
        "type": "block_actions", "user": {"id": "U0ALICE", "username": "alice"},
        "actions": [{"action_id": action_id, "value": incident, "type": "button", "action_ts": "1764583200.000200"}]
    });
    let body: String =
        form_urlencoded::Serializer::new(String::new()).append_pair("payload", &payload.to_string()).finish();
    let timestamp = (now_ms() / 1000).to_string();
    let signature = format!("v0={}", hmac_hex(SLACK_SIGNING_SECRET, format!("v0:{timestamp}:{body}").as_bytes()));
    let headers = [("x-slack-signature", signature), ("x-slack-request-timestamp", timestamp)];
    callback(api, "/v1/slack/interactions", &headers, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_similar_past_incident_is_named_acknowledging_in_pagerduty_stops_the_escalation_and_slack_resolves() {
    let mut run = Run::new("notify-callbacks");
    let dir = tempdir("notify-callbacks");
    let peers = Arc::new(Peers::default());
    let base = fake_peers::serve(peers.clone()).await;
    let api = format!("127.0.0.1:{}", support::ingest::free_port());
    let wait = Duration::from_secs(20);
    run.set("QUENCH_CONFIG", &write_config(&dir, &base, 1, &api, wait.as_secs_f64() / 60.0));
    let routing = dir.join("routing.yaml");
    let rules =
        "default:\n  team: dba\n  escalation_policy: db\n  targets:\n    - { channel: slack, target: ops }\n    \
                 - { channel: pagerduty, target: db }\n";
    std::fs::write(&routing, rules).unwrap();
    run.set("QUENCH_WORKER__ROUTING", &routing.display().to_string());
    run.set("QUENCH_CLICKHOUSE__DATABASE", &support::database("notify_callbacks"));
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    past_incident_like_postgresql_down(&run).await;
    let encoder = Encoder::<Alert>::register(&run.registry(), &run.config.topics.alerts).await.unwrap();
    let now = now_ms();
    produce(&run, vec![("PostgresqlDown".to_string(), encoder.encode(&alert("PostgresqlDown", 0, now)).unwrap())])
        .await;
    let mut worker = run.start("run");
    let mut notifier = run.start("notify");
    wait_for("the opened notifications and the first page", || {
        peers.of("webhook/alice").len() == 1 && peers.of("slack").len() == 1 && peers.of("pagerduty").len() == 1
    })
    .await;
    let first_page = Instant::now();
    let dedup_key = peers.of("pagerduty")[0].key.clone();
    let incident = dedup_key.strip_prefix("default/").expect("the dedup key is <tenant>/<incident id>").to_string();
    // The opening message says which resolved incident it looks like, and how that one ended.
    let text = peers.of("slack")[0].body["text"].as_str().unwrap().to_string();
    assert!(text.contains("Looks like inc-past of 2026-11-12, resolved in 14 min by bob"), "{text}");
    // The Slack message carries the buttons, with the incident's id.
    let blocks = peers.of("slack")[0].body["blocks"].to_string();
    assert!(blocks.contains("quench_acknowledge") && blocks.contains(&format!("\"value\":\"{incident}\"")), "{blocks}");

    // Signed with another secret, or by nobody: refused, and nothing happens.
    let (status, _) = pagerduty_webhook(&api, "incident.acknowledged", &dedup_key, "not-the-secret").await;
    assert_eq!(status, 401);
    let (status, _) = callback(&api, "/v1/slack/interactions", &[], "payload=%7B%7D".into()).await;
    assert_eq!(status, 401);
    // Another service's incident in PagerDuty: answered, and left alone.
    let (status, answer) =
        pagerduty_webhook(&api, "incident.acknowledged", "not-quench", PAGERDUTY_WEBHOOK_SECRET).await;
    assert_eq!((status, answer.as_str()), (200, r#"{"accepted":[]}"#));

    // PagerDuty's incident_key is the dedup key Quench sent: the tenant and the incident.
    let (status, answer) = pagerduty_webhook(&api, "incident.acknowledged", &dedup_key, PAGERDUTY_WEBHOOK_SECRET).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains(&incident), "{answer}");
    wait_for("the acknowledgement notifications", || peers.of("pagerduty").len() == 2 && peers.of("slack").len() == 2)
        .await;
    let (status, answer) = slack_click(&api, "quench_resolve", &incident).await;
    assert_eq!(status, 200, "{answer}");
    wait_for("the resolution notifications", || peers.of("pagerduty").len() == 3).await;
    let resolved = peers.of("slack");
    assert!(!resolved.last().unwrap().body["blocks"].to_string().contains("quench_"), "no buttons once resolved");
    // Past the second step's due time: acknowledged in PagerDuty before it, it never fires.
    tokio::time::sleep((first_page + wait + Duration::from_secs(3)).saturating_duration_since(Instant::now())).await;
    assert!(peers.of("webhook/manager").is_empty(), "escalation stopped at PagerDuty's acknowledgement");

    let actions = read_until(&run.consumer(&run.config.topics.actions), |read| read.len() >= 2);
    let actions: Vec<quench_schemas::IncidentAction> = decode_all(&run.registry(), &actions).await;
    let by: Vec<(&str, quench_schemas::ActionKind)> = actions.iter().map(|a| (a.actor.as_str(), a.kind)).collect();
    assert_eq!(
        by,
        [
            ("pagerduty:Alice Example", quench_schemas::ActionKind::Acknowledge),
            ("slack:alice", quench_schemas::ActionKind::Resolve)
        ]
    );
    for child in [&mut worker, &mut notifier] {
        support::sigterm(child);
        assert!(child.wait().unwrap().success());
    }
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("quench-{name}-{}-{}", std::process::id(), now_ms()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Creates the run's topics and produces `events` to `incident-routing`, keyed by incident, to
/// `partition` if given.
async fn publish(run: &Run, events: &[RoutingEvent], partition: Option<i32>) {
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    let encoder = Encoder::<RoutingEvent>::register(&run.registry(), &run.config.topics.routing).await.unwrap();
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &run.config.kafka.brokers)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let mut pending = Vec::new();
    for event in events {
        let value = encoder.encode(event).unwrap();
        let mut record = FutureRecord::to(&run.config.topics.routing).key(&event.incident_id).payload(&value);
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        pending.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
    }
    for delivery in pending {
        delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
}

fn event(i: usize, channel: &str, target: &str) -> RoutingEvent {
    RoutingEvent {
        event_id: format!("inc-{i:05}/1/opened"),
        incident_id: format!("inc-{i:05}"),
        reason: RoutingReason::Opened,
        tenant: "default".into(),
        status: IncidentStatus::Open,
        title: format!("Incident {i}"),
        summary: "load".into(),
        severity: "high".into(),
        priority: Some("P2".into()),
        category: Some("application".into()),
        alert_count: 1,
        common_labels: Default::default(),
        team: Some("ops".into()),
        targets: vec![RoutingTarget::new(channel, target)],
        escalation_policy: None,
        incident_version: 1,
        emitted_at: now_ms(),
        receiver: None,
        group_key: String::new(),
        group_labels: Default::default(),
        alerts: Vec::new(),
        truncated_alerts: 0,
        flaps: 0,
        parent_incident_id: None,
        correlation: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_notifier_killed_mid_delivery_loses_nothing_and_repeats_only_what_was_in_flight() {
    const EVENTS: usize = 3_000;
    let mut run = Run::new("notify-kill");
    let dir = tempdir("notify-kill");
    let peers = Arc::new(Peers::default());
    *peers.webhook_delay_ms.lock().unwrap() = 2;
    let base = fake_peers::serve(peers.clone()).await;
    let api = format!("127.0.0.1:{}", port(2));
    run.set("QUENCH_CONFIG", &write_config(&dir, &base, 1, &api, 1.0));
    run.set("QUENCH_NOTIFY__MAX_QUEUED", "200");
    run.set("QUENCH_NOTIFY__CONCURRENCY", "32");
    // Three events for a receiver that refuses everything: they end in the DLQ.
    let events: Vec<RoutingEvent> =
        (0..EVENTS + 3).map(|i| event(i, "webhook", if i < EVENTS { "sink" } else { "rejects" })).collect();
    publish(&run, &events, None).await;

    let mut notifier = run.start("notify");
    wait_for("a third of the deliveries", || peers.of("webhook/sink").len() >= EVENTS / 3).await;
    notifier.kill().unwrap();
    notifier.wait().unwrap();
    let at_kill = peers.of("webhook/sink").len();
    let mut notifier = run.start("notify");
    let distinct = || {
        let mut keys: Vec<String> = peers.of("webhook/sink").into_iter().map(|r| r.key).collect();
        keys.sort();
        keys.dedup();
        keys.len()
    };
    wait_for("every delivery", || distinct() == EVENTS).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sink = peers.of("webhook/sink");
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for r in &sink {
        *counts.entry(r.key.as_str()).or_default() += 1;
    }
    let repeated = sink.len() - counts.len();
    assert_eq!(counts.len(), EVENTS, "no notification lost");
    assert!(counts.values().all(|n| *n <= 2), "nothing sent more than twice");
    // Only events read and not committed at the kill may be sent again: at most `max_queued`
    // waiting or in flight, and those that ended since the last commit (every 100 ms).
    assert!(repeated <= 2 * 200, "{repeated} repeats after a kill at {at_kill} deliveries");
    assert!(sink.iter().all(|r| r.key.ends_with("|webhook:sink")), "every repeat carries its idempotency key");
    let dlq = read_until(&run.consumer(&run.config.topics.notifications_dlq), |seen| seen.len() >= 3);
    let reasons: Vec<serde_json::Value> = dlq.iter().map(|(_, v, _)| serde_json::from_slice(v).unwrap()).collect();
    assert!(reasons.iter().all(|r| r["reason"].as_str().unwrap().contains("HTTP 400")), "{reasons:?}");
    support::sigterm(&notifier);
    assert!(notifier.wait().unwrap().success());
    eprintln!("killed after {at_kill} deliveries; {repeated} sent twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_target_and_a_throttled_slack_hold_up_only_their_own_deliveries_across_a_restart() {
    let mut run = Run::new("notify-lanes");
    let dir = tempdir("notify-lanes");
    let peers = Arc::new(Peers::default());
    peers.throttle.lock().unwrap().insert("slack".into(), 3);
    let base = fake_peers::serve(peers.clone()).await;
    let api = format!("127.0.0.1:{}", port(3));
    run.set("QUENCH_CONFIG", &write_config(&dir, &base, 1, &api, 1.0));
    run.set("QUENCH_NOTIFY__TIMEOUT_MS", "1000");
    // One attempt at a time per target: the dead webhook's five incidents take 15 timeouts; two
    // more find its queue full and are dead-lettered at once.
    run.set("QUENCH_NOTIFY__CONCURRENCY", "1");
    run.set("QUENCH_NOTIFY__MAX_QUEUED_PER_TARGET", "5");
    // Shortened, so that a notifier that stopped polling while deliveries wait would be evicted.
    run.set("QUENCH_KAFKA__PROPERTIES__max.poll.interval.ms", "6000");
    run.set("QUENCH_KAFKA__PROPERTIES__session.timeout.ms", "6000");
    // Assignments are logged at info.
    run.set("QUENCH_LOG__LEVEL", "info");
    // One partition, in this order: seven incidents for the dead webhook, three for Slack (whose
    // first three requests get 429 + Retry-After), then one for PagerDuty.
    let mut events: Vec<RoutingEvent> = (0..7).map(|i| event(i, "webhook", "dead")).collect();
    events.extend((7..10).map(|i| event(i, "slack", "ops")));
    events.push(event(10, "pagerduty", "db"));
    publish(&run, &events, Some(0)).await;

    let log = dir.join("notify.log");
    let mut notifier = run.start_logged("notify", &log);
    wait_for("the PagerDuty event and the Slack messages", || {
        !peers.of("pagerduty").is_empty() && peers.of("slack").len() == 3
    })
    .await;
    let order: Vec<String> = peers.received.lock().unwrap().iter().map(|r| r.peer.clone()).collect();
    let paged = order.iter().position(|p| p == "pagerduty").unwrap();
    let dead_before = order[..paged].iter().filter(|p| *p == "webhook/dead").count();
    assert!(dead_before < 15, "PagerDuty came while the dead webhook still had attempts to go: {order:?}");

    wait_for("the dead webhook half way", || peers.of("webhook/dead").len() >= 7).await;
    support::sigterm(&notifier);
    assert!(notifier.wait().unwrap().success());
    let at_restart = peers.of("webhook/dead").len();
    assert!(at_restart < 15, "restarted mid-run: {at_restart} of 15 attempts made");
    let mut notifier = run.start_logged("notify", &log);
    let dlq = read_until(&run.consumer(&run.config.topics.notifications_dlq), |seen| seen.len() >= 7);
    tokio::time::sleep(Duration::from_secs(2)).await;
    support::sigterm(&notifier);
    assert!(notifier.wait().unwrap().success());

    let mut attempts: HashMap<String, usize> = HashMap::new();
    for r in peers.of("webhook/dead") {
        *attempts.entry(r.key).or_default() += 1;
    }
    assert_eq!(attempts.len(), 5);
    assert!(
        attempts.values().all(|n| *n == 3),
        "each dead delivery tried max_attempts times across the restart: {attempts:?}"
    );
    let reasons: Vec<String> = dlq
        .iter()
        .map(|(_, v, _)| {
            serde_json::from_slice::<serde_json::Value>(v).unwrap()["reason"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(dlq.len(), 7, "{reasons:?}");
    let timed_out = reasons.iter().filter(|r| r.contains("timed out") && r.contains("attempt 3 of 3")).count();
    let refused = reasons.iter().filter(|r| r.contains("max_queued_per_target")).count();
    assert_eq!((timed_out, refused), (5, 2), "{reasons:?}");
    let mut slack: Vec<String> = peers.of("slack").into_iter().map(|r| r.key).collect();
    slack.sort();
    slack.dedup();
    assert_eq!((slack.len(), peers.of("slack").len()), (3, 3), "each Slack message once, after its 429");
    assert_eq!(peers.of("pagerduty").len(), 1, "the page once");
    let log = std::fs::read_to_string(&log).unwrap();
    // librdkafka's words when the application stops polling: "Application maximum poll interval
    // (6000ms) exceeded by …: leaving group".
    assert!(!log.contains("maximum poll interval"), "the consumer was evicted:\n{log}");
    let assigned = log.matches("partition assigned").count();
    assert_eq!(assigned, 2 * run.config.topics.partitions as usize, "one assignment per start, no rebalance:\n{log}");
    eprintln!("dead webhook: {at_restart} attempts before the restart; PagerDuty after {dead_before}");
}
