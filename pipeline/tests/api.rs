//! `quench api` against the real ClickHouse of `infra/local/stack`, on a fixed data set of two
//! tenants in a database of its own: lists with every filter, pages joined by their cursors,
//! one incident with its alerts, timeline, notifications and linked incidents, bad requests
//! named, a token of tenant `a` never seeing tenant `b`, and Schemathesis (installed by
//! `infra/local/stack`) finding no 5xx and every answer as the OpenAPI document says.

mod support;

use std::time::{Duration, Instant};

use quench_pipeline::{
    clickhouse::{client, migrate, MIGRATIONS},
    kafka::create_topics,
};
use quench_schemas::{now_ms, ActionKind, Alert, Encoder, Incident, IncidentAction, IncidentStatus};
use serde_json::Value;
use support::{alert, decode_all, ingest::free_port, produce, read_until, KillOnDrop, Run};

const READER_A: &str = "reader-of-tenant-a-0123456789";
const WRITER_A: &str = "writer-of-tenant-a-0123456789";
const ADMIN: &str = "admin-of-all-tenants-0123456789";

/// Tenant `a`: `inc-a1` PostgresDown (critical, database, service pg, team dba) opened 10:00 and
/// resolved (two versions; the first must not show), `inc-a2` HttpErrors (warning, network,
/// service web) at 10:01, linked under `inc-a1`, open; `inc-a3` DiskFilling (info, storage) at
/// 12:00, acknowledged. Tenant `b`: `inc-b1` KafkaLag (critical, messaging) at 10:30, open.
const FIXTURE: &[&str] = &[
    "INSERT INTO incidents (tenant, incident_id, group_key, status, title, summary, severity, priority, category, \
     first_seen, last_seen, acknowledged_at, resolved_at, alert_count, distinct_alerts, common_labels, flapping, version, \
     parent_incident_id, correlation) VALUES \
     ('a', 'inc-a1', 'k1', 'open', 'PostgresDown', 'Postgres is down', 'critical', 'P1', 'database', \
      '2026-11-02 10:00:00', '2026-11-02 10:00:00', NULL, NULL, 1, 1, {'service': 'pg', 'team': 'dba'}, false, 1, NULL, NULL), \
     ('a', 'inc-a1', 'k1', 'resolved', 'PostgresDown', 'Postgres is down', 'critical', 'P1', 'database', \
      '2026-11-02 10:00:00', '2026-11-02 10:20:00', NULL, '2026-11-02 10:20:00', 4, 2, {'service': 'pg', 'team': 'dba'}, false, 2, NULL, NULL), \
     ('a', 'inc-a2', 'k2', 'open', 'HttpErrors', 'Errors of the web front', 'warning', 'P3', 'network', \
      '2026-11-02 10:01:00', '2026-11-02 10:05:00', NULL, NULL, 3, 1, {'service': 'web'}, false, 1, 'inc-a1', \
      'same cluster `c1`, HttpErrors follows PostgresDown in 90% of history, 60 s apart'), \
     ('a', 'inc-a3', 'k3', 'acknowledged', 'DiskFilling', 'The disk of db-2 fills', 'info', 'P5', 'storage', \
      '2026-11-02 12:00:00', '2026-11-02 12:10:00', '2026-11-02 12:05:00', NULL, 2, 1, {'team': 'dba'}, false, 1, NULL, NULL), \
     ('b', 'inc-b1', 'k4', 'open', 'KafkaLag', 'Consumers of orders lag', 'critical', 'P2', 'messaging', \
      '2026-11-02 10:30:00', '2026-11-02 10:40:00', NULL, NULL, 5, 1, {'service': 'orders'}, false, 1, NULL, NULL)",
    "INSERT INTO incident_alerts (tenant, incident_id, fingerprint, first_seen, last_seen) VALUES \
     ('a', 'inc-a1', 'fa', '2026-11-02 10:00:00', '2026-11-02 10:20:00'), \
     ('a', 'inc-a1', 'fb', '2026-11-02 10:00:10', '2026-11-02 10:20:00')",
    "INSERT INTO alerts (tenant, received_at, starts_at, status, source, alertname, fingerprint, labels, kafka_partition, \
     kafka_offset) VALUES \
     ('a', '2026-11-02 10:00:00', '2026-11-02 10:00:00', 'firing', 'alertmanager', 'PostgresDown', 'fa', {'instance': 'db-1'}, 0, 1), \
     ('a', '2026-11-02 10:20:00', '2026-11-02 10:00:00', 'resolved', 'alertmanager', 'PostgresDown', 'fa', {'instance': 'db-1'}, 0, 2), \
     ('a', '2026-11-02 10:00:10', '2026-11-02 10:00:10', 'firing', 'alertmanager', 'PostgresDown', 'fb', {'instance': 'db-2'}, 0, 3), \
     ('b', '2026-11-02 10:00:00', '2026-11-02 10:00:00', 'firing', 'alertmanager', 'PostgresDown', 'fa', {'instance': 'other'}, 0, 4)",
    "INSERT INTO routing_events (tenant, event_id, incident_id, reason, status, severity, team, incident_version, emitted_at) VALUES \
     ('a', 'e1', 'inc-a1', 'opened', 'open', 'critical', 'dba', 1, '2026-11-02 10:00:31'), \
     ('a', 'e2', 'inc-a1', 'resolved', 'resolved', 'critical', 'dba', 2, '2026-11-02 10:20:01')",
    "INSERT INTO notifications (tenant, incident_id, event_id, idempotency_key, channel, target, kind, attempt, outcome, \
     status, error, latency_ms, at, emitted_at) VALUES \
     ('a', 'inc-a1', 'e1', 'k1', 'slack', 'dba', 'event', 1, 'delivered', 200, '', 40, '2026-11-02 10:00:32', '2026-11-02 10:00:31')",
];

/// Topics and a database of their own with the fixture, and `quench api` on them: the run, the
/// API process, its address and the database.
async fn serve() -> (Run, KillOnDrop, String, clickhouse::Client) {
    let mut run = Run::new("api");
    let port = free_port();
    run.set_all(&[
        ("QUENCH_CLICKHOUSE__DATABASE", support::database("api")),
        // The fixture's alerts are of a fixed day in the past: kept for ever, not for 30 days.
        ("QUENCH_CLICKHOUSE__TTL_DAYS__ALERTS", "0".into()),
        ("QUENCH_API__LISTEN", format!("127.0.0.1:{port}")),
        ("QUENCH_API__TOKENS__READER__TOKEN", READER_A.into()),
        ("QUENCH_API__TOKENS__READER__TENANTS", "[\"a\"]".into()),
        ("QUENCH_API__TOKENS__WRITER__TOKEN", WRITER_A.into()),
        ("QUENCH_API__TOKENS__WRITER__TENANTS", "[\"a\"]".into()),
        ("QUENCH_API__TOKENS__WRITER__WRITE", "true".into()),
        ("QUENCH_API__TOKENS__ADMIN__TOKEN", ADMIN.into()),
        ("QUENCH_API__TOKENS__ADMIN__TENANTS", "[\"*\"]".into()),
        ("QUENCH_API__TOKENS__ADMIN__WRITE", "true".into()),
    ]);
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    migrate(&run.config.clickhouse, MIGRATIONS).await.unwrap();
    let clickhouse = client(&run.config.clickhouse);
    for insert in FIXTURE {
        clickhouse.query(insert).execute().await.unwrap();
    }
    let api = KillOnDrop(run.start("api"));
    let base = format!("http://127.0.0.1:{port}");
    // Ready once the directory of incidents has read its topic: an unknown incident is 404, not 503.
    let started = Instant::now();
    while post(&base, ADMIN, "/api/v1/incidents/none/acknowledge", "").await.0 != 404 {
        assert!(started.elapsed() < Duration::from_secs(60), "quench api was not ready within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (run, api, base, clickhouse)
}

async fn post(base: &str, token: &str, path: &str, body: &str) -> (u16, Value) {
    let request = reqwest::Client::new().post(format!("{base}{path}")).bearer_auth(token).body(body.to_string());
    match request.send().await {
        Ok(response) => (response.status().as_u16(), response.json().await.unwrap_or(Value::Null)),
        Err(_) => (0, Value::Null),
    }
}

async fn get(base: &str, token: &str, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new().get(format!("{base}{path}")).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn ids(page: &Value) -> Vec<&str> {
    page["incidents"].as_array().unwrap().iter().map(|i| i["incident_id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn incidents_are_listed_filtered_paged_and_kept_to_the_tenants_a_token_sees() {
    let (_run, _api, base, _) = serve().await;

    let (status, all) = get(&base, ADMIN, "/api/v1/incidents").await;
    assert_eq!((status, ids(&all)), (200, vec!["inc-a3", "inc-b1", "inc-a2", "inc-a1"]), "newest first: {all}");
    let a1 = &all["incidents"][3];
    assert_eq!(
        (a1["status"].as_str(), a1["resolved_at"].as_str()),
        (Some("resolved"), Some("2026-11-02T10:20:00.000Z"))
    );
    let (_, oldest) = get(&base, ADMIN, "/api/v1/incidents?sort=first_seen").await;
    assert_eq!(ids(&oldest), ["inc-a1", "inc-a2", "inc-b1", "inc-a3"]);

    // Tenant a's token: b's incidents neither listed nor found, and asking for b is refused.
    let (_, mine) = get(&base, READER_A, "/api/v1/incidents").await;
    assert_eq!(ids(&mine), ["inc-a3", "inc-a2", "inc-a1"]);
    let (status, refused) = get(&base, READER_A, "/api/v1/incidents?tenant=b").await;
    assert_eq!((status, refused["parameter"].as_str()), (403, Some("tenant")), "{refused}");
    assert_eq!(get(&base, READER_A, "/api/v1/incidents/inc-b1").await.0, 404);

    for (query, expected) in [
        ("status=resolved", vec!["inc-a1"]),
        ("severity=critical", vec!["inc-b1", "inc-a1"]),
        ("priority=P3", vec!["inc-a2"]),
        ("category=messaging", vec!["inc-b1"]),
        ("team=dba", vec!["inc-a3", "inc-a1"]),
        ("service=web", vec!["inc-a2"]),
        ("tenant=b", vec!["inc-b1"]),
        ("q=POSTGRES", vec!["inc-a1"]),
        ("q=disk%20of", vec!["inc-a3"]),
        ("from=2026-11-02T10:01:00Z&to=2026-11-02T12:00:00Z", vec!["inc-b1", "inc-a2"]),
    ] {
        let (status, page) = get(&base, ADMIN, &format!("/api/v1/incidents?{query}")).await;
        assert_eq!((status, ids(&page)), (200, expected), "{query}: {page}");
    }

    // Pages of 3 and 1: joined by their cursors, the whole list, and the last says so.
    let (_, first) = get(&base, ADMIN, "/api/v1/incidents?limit=3").await;
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let (_, second) = get(&base, ADMIN, &format!("/api/v1/incidents?limit=3&cursor={cursor}")).await;
    assert_eq!([ids(&first), ids(&second)].concat(), ids(&all));
    assert!(second["next_cursor"].is_null(), "{second}");

    for (query, parameter, status) in [
        ("status=closed", "status", 400),
        ("limit=0", "limit", 400),
        ("from=yesterday", "from", 400),
        ("cursor=garbage", "cursor", 400),
        ("colour=red", "colour", 400),
        ("status=open&status=resolved", "status", 400),
    ] {
        let (got, error) = get(&base, ADMIN, &format!("/api/v1/incidents?{query}")).await;
        assert_eq!((got, error["parameter"].as_str()), (status, Some(parameter)), "{query}: {error}");
        assert!(error["error"].as_str().is_some_and(|e| !e.is_empty()), "{error}");
    }
    assert_eq!(get(&base, "not-a-token-at-all-000000", "/api/v1/incidents").await.0, 401);
}

#[tokio::test]
async fn an_incident_comes_with_its_alerts_timeline_notifications_and_linked_incidents() {
    let (_run, _api, base, clickhouse) = serve().await;
    let (status, incident) = get(&base, READER_A, "/api/v1/incidents/inc-a1").await;
    assert_eq!(status, 200, "{incident}");
    let alerts: Vec<(&str, &str)> = incident["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["fingerprint"].as_str().unwrap(), a["status"].as_str().unwrap()))
        .collect();
    assert_eq!(alerts, [("fa", "resolved"), ("fb", "firing")], "each alert's latest record, of tenant a only");
    let reasons: Vec<&str> =
        incident["timeline"].as_array().unwrap().iter().map(|e| e["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["opened", "resolved"]);
    assert_eq!(incident["notifications"][0]["outcome"], "delivered");
    assert_eq!(incident["children"][0]["incident_id"], "inc-a2");
    assert!(incident["children"][0]["correlation"].as_str().unwrap().starts_with("same cluster"));

    // The document lists what the handlers take and answer.
    let document: Value = reqwest::get(format!("{base}/api/v1/openapi.json")).await.unwrap().json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let documented = document["components"]["schemas"]["Incident"]["properties"].as_object().unwrap();
    let (_, page) = get(&base, ADMIN, "/api/v1/incidents?limit=1").await;
    let answered = page["incidents"][0].as_object().unwrap();
    assert_eq!(documented.keys().collect::<Vec<_>>(), answered.keys().collect::<Vec<_>>(), "fields as documented");
    let parameters = document["paths"]["/api/v1/incidents"]["get"]["parameters"].as_array().unwrap();
    assert!(parameters.iter().any(|p| p["name"] == "cursor") && parameters.len() == 14, "{parameters:?}");

    // A write asked with readonly is refused (the local adapter checks it as ClickHouse does),
    // and the API's read-only queries leave ClickHouse writable for everyone else.
    let insert = "INSERT INTO incidents (tenant, incident_id, version) VALUES ('a', 'inc-z', 1)";
    assert!(clickhouse.query(insert).with_setting("readonly", "2").execute().await.is_err(), "refused read-only");
    clickhouse.query(insert).execute().await.unwrap();
}

#[tokio::test]
async fn an_incident_comes_with_the_resolved_incidents_like_it_and_how_they_ended() {
    let (_run, _api, base, clickhouse) = serve().await;
    // PostgresDown again, weeks later, on tenant `a` (like `inc-a1`, resolved in 20 min) and on
    // tenant `b` (which has no resolved incident like it).
    let insert =
        "INSERT INTO incidents (tenant, incident_id, group_key, status, title, summary, severity, first_seen, \
                  last_seen, alert_count, distinct_alerts, common_labels, flapping, version) VALUES \
                  ('a', 'inc-a4', 'k5', 'open', 'PostgresDown', 'Postgres is down', 'critical', '2026-11-20 08:00:00', \
                   '2026-11-20 08:00:00', 1, 1, {'service': 'pg', 'alertname': 'PostgresDown'}, false, 1), \
                  ('b', 'inc-b2', 'k6', 'open', 'PostgresDown', 'Postgres is down', 'critical', '2026-11-20 08:00:00', \
                   '2026-11-20 08:00:00', 1, 1, {'service': 'pg', 'alertname': 'PostgresDown'}, false, 1)";
    clickhouse.query(insert).execute().await.unwrap();
    let actions = "INSERT INTO actions (tenant, incident_id, action_id, kind, actor, comment, at) VALUES \
                   ('a', 'inc-a1', 'r1', 'resolve', 'alice', NULL, '2026-11-02 10:20:00'), \
                   ('a', 'inc-a1', 'c1', 'comment', 'alice', 'failed over to db-2', '2026-11-02 10:19:00')";
    clickhouse.query(actions).execute().await.unwrap();
    let started = Instant::now();
    let similar = loop {
        let (status, incident) = get(&base, ADMIN, "/api/v1/incidents/inc-a4").await;
        assert_eq!(status, 200, "{incident}");
        let similar = incident["similar"].as_array().unwrap().clone();
        if !similar.is_empty() {
            break similar;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "inc-a4 was not indexed within 60 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(similar.len(), 1, "only resolved incidents, of the same tenant: {similar:?}");
    assert_eq!(similar[0]["incident_id"], "inc-a1");
    assert_eq!((similar[0]["resolved_in_s"].as_u64(), similar[0]["resolved_by"].as_str()), (Some(1200), Some("alice")));
    assert_eq!(
        similar[0]["sentence"],
        "Looks like inc-a1 of 2026-11-02, resolved in 20 min by alice: \"failed over to db-2\""
    );
    let (_, other) = get(&base, ADMIN, "/api/v1/incidents/inc-b2").await;
    assert_eq!(other["similar"], serde_json::json!([]), "tenant a's incidents are not tenant b's past");
}

#[tokio::test]
async fn silences_are_made_listed_and_expired_by_a_token_of_all_tenants_only() {
    let (run, _api, base, _) = serve().await;
    let body = r#"{"matchers": [{"name": "alertname", "value": "PostgresDown", "isRegex": false}],
                   "ends_at": "2099-01-01T00:00:00Z", "comment": "maintenance of db-1"}"#;
    let started = Instant::now();
    let made = loop {
        let (status, made) = post(&base, ADMIN, "/api/v1/silences", body).await;
        if status != 503 {
            assert_eq!(status, 201, "{made}");
            break made;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the silences were not read within 60 s");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(made["created_by"], "admin", "made by the token's name");
    let id = made["silence_id"].as_str().unwrap().to_string();
    let (status, list) = get(&base, ADMIN, "/api/v1/silences").await;
    assert_eq!(status, 200, "{list}");
    let silence = list["silences"].as_array().unwrap().iter().find(|s| s["id"] == id.as_str()).unwrap().clone();
    assert_eq!((silence["state"].as_str(), silence["comment"].as_str()), (Some("active"), Some("maintenance of db-1")));
    // On the topic the worker and the Alertmanager API read.
    let records = read_until(&run.consumer(&run.config.topics.silences), |read| !read.is_empty());
    assert!(String::from_utf8_lossy(&records[0].1).contains(&id), "{records:?}");

    // A silence mutes every tenant's alerts: a token of tenant `a` reaches none of it.
    assert_eq!(get(&base, READER_A, "/api/v1/silences").await.0, 403);
    assert_eq!(post(&base, WRITER_A, "/api/v1/silences", body).await.0, 403);
    for (bad, parameter) in [
        (body.replace("2099-01-01", "2001-01-01"), "ends_at"),
        (body.replace("2099-01-01T00:00:00Z", "tomorrow"), "ends_at"),
        (body.replace(r#""comment": "maintenance of db-1""#, r#""comment": " ""#), "comment"),
        (r#"{"matchers": [], "ends_at": "2099-01-01T00:00:00Z", "comment": "x"}"#.to_string(), "matchers"),
        (body.replace(r#""value": "PostgresDown", "isRegex": false"#, r#""value": "(", "isRegex": true"#), "matchers"),
    ] {
        let (status, error) = post(&base, ADMIN, "/api/v1/silences", &bad).await;
        assert_eq!((status, error["parameter"].as_str()), (400, Some(parameter)), "{bad}: {error}");
    }

    let delete = |path: String| {
        let request = reqwest::Client::new().delete(format!("{base}{path}")).bearer_auth(ADMIN);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(delete(format!("/api/v1/silences/{id}")).await, 200);
    assert_eq!(delete("/api/v1/silences/no-such-silence".into()).await, 404);
    let (_, list) = get(&base, ADMIN, "/api/v1/silences").await;
    let silence = list["silences"].as_array().unwrap().iter().find(|s| s["id"] == id.as_str()).unwrap().clone();
    assert_eq!(silence["state"], "expired", "{silence}");
}

#[tokio::test]
async fn alerts_are_searched_with_their_incidents_and_incidents_listed_by_route() {
    let (_run, _api, base, clickhouse) = serve().await;
    let alert_ids = |found: &Value| -> Vec<String> {
        let alerts = found["alerts"].as_array().unwrap();
        alerts
            .iter()
            .map(|a| format!("{}/{}", a["tenant"].as_str().unwrap(), a["fingerprint"].as_str().unwrap()))
            .collect()
    };
    let (status, found) = get(&base, ADMIN, "/api/v1/alerts?alertname=PostgresDown").await;
    assert_eq!(status, 200, "{found}");
    let mut all = alert_ids(&found);
    all.sort();
    assert_eq!(all, ["a/fa", "a/fb", "b/fa"]);
    let fa =
        found["alerts"].as_array().unwrap().iter().find(|a| a["tenant"] == "a" && a["fingerprint"] == "fa").unwrap();
    assert_eq!((fa["status"].as_str(), &fa["incidents"]), (Some("resolved"), &serde_json::json!(["inc-a1"])), "{fa}");
    let (_, firing) = get(&base, ADMIN, "/api/v1/alerts?alertname=PostgresDown&status=firing").await;
    let mut firing = alert_ids(&firing);
    firing.sort();
    assert_eq!(firing, ["a/fb", "b/fa"], "the latest record decides");
    let (_, of_a) = get(&base, READER_A, "/api/v1/alerts").await;
    assert!(alert_ids(&of_a).iter().all(|id| id.starts_with("a/")) && alert_ids(&of_a).len() == 2, "{of_a}");
    let (_, text) = get(&base, ADMIN, "/api/v1/alerts?q=DB-2").await;
    assert_eq!(alert_ids(&text), ["a/fb"], "a label value, any case");
    let (status, error) = get(&base, ADMIN, "/api/v1/alerts?status=pending").await;
    assert_eq!((status, error["parameter"].as_str()), (400, Some("status")), "{error}");

    let insert =
        "INSERT INTO incidents (tenant, incident_id, group_key, status, title, summary, severity, first_seen, \
                  last_seen, alert_count, distinct_alerts, common_labels, flapping, version) VALUES \
                  ('a', 'inc-a9', 'db|a|{}:{alertname=\"X\"}', 'open', 'X', 'x', 'low', '2026-11-03 10:00:00', \
                   '2026-11-03 10:00:00', 1, 1, {}, false, 1)";
    clickhouse.query(insert).execute().await.unwrap();
    let (_, by_route) = get(&base, ADMIN, "/api/v1/incidents?route=db").await;
    assert_eq!(ids(&by_route), ["inc-a9"]);
    let (_, incident) = get(&base, ADMIN, "/api/v1/incidents/inc-a1").await;
    assert!(
        incident.as_object().unwrap().contains_key("root_cause") && incident["root_cause"].is_null(),
        "no graph learned"
    );
}

#[tokio::test]
async fn questions_are_answered_over_the_tokens_tenants_only() {
    let (_run, _api, base, _) = serve().await;
    let path = "/api/v1/ask?q=how%20many%20incidents%20per%20tenant";
    let (status, answer) = get(&base, READER_A, path).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["rows"], serde_json::json!([["a", 3]]), "{answer}");
    assert!(answer["sql"].as_str().unwrap().contains("has(['a'], tenant)"), "{answer}");
    let (_, answer) = get(&base, ADMIN, path).await;
    assert_eq!(answer["rows"].as_array().unwrap().len(), 2, "{answer}");

    let (status, error) = get(&base, READER_A, "/api/v1/ask").await;
    assert_eq!((status, error["parameter"].as_str()), (400, Some("q")), "{error}");
    let (status, error) = get(&base, READER_A, "/api/v1/ask?q=x&limit=3").await;
    assert_eq!((status, error["parameter"].as_str()), (400, Some("limit")), "{error}");
    let (status, error) = get(&base, READER_A, "/api/v1/ask?q=hello%20there").await;
    assert_eq!(status, 422, "{error}");
    assert!(error["error"].as_str().unwrap().contains("did not understand"), "{error}");
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_every_answer_as_documented() {
    let (_run, _api, base, _) = serve().await;
    let schemathesis = std::env::var("SCHEMATHESIS_BIN")
        .expect("SCHEMATHESIS_BIN: eval \"$(infra/local/stack env)\" after infra/local/stack install");
    let dir = std::env::temp_dir().join(format!("quench-schemathesis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Any text is a valid question, but not every text is one the parser understands: 422 is
    // what a schema-valid question may get (the check then holds for every other operation).
    // Likewise a silence whose end has passed, or whose regex does not compile, is refused (400).
    let config = "[[operations]]\ninclude-operation-id = \"ask\"\n\
                  checks.positive_data_acceptance.expected-statuses = [\"2xx\", \"401\", \"422\"]\n\
                  [[operations]]\ninclude-operation-id = \"createSilence\"\n\
                  checks.positive_data_acceptance.expected-statuses = [\"2xx\", \"400\", \"401\", \"403\"]\n";
    std::fs::write(dir.join("schemathesis.toml"), config).unwrap();
    // Both scopes: a token of all tenants and one of tenant `a` (whose other tenants are 403).
    for token in [ADMIN, READER_A] {
        let output = std::process::Command::new(&schemathesis)
            .args(["run", &format!("{base}/api/v1/openapi.json"), "--checks", "all", "--max-examples", "40"])
            .args(["--seed", "1", "-H", &format!("Authorization: Bearer {token}")])
            // A stream has no end to check (it is tested on its own below).
            .args(["--exclude-path", "/api/v1/stream"])
            .current_dir(&dir)
            .output()
            .unwrap_or_else(|e| panic!("{schemathesis}: {e}"));
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{report}\n{}", String::from_utf8_lossy(&output.stderr));
        assert!(report.contains("Tested: 10"), "every operation tested:\n{report}");
    }
}

#[tokio::test]
async fn an_acknowledgement_reaches_the_worker_as_the_tokens_and_only_on_the_tokens_tenants() {
    let (run, _api, base, _) = serve().await;
    let encoder = Encoder::<Alert>::register(&run.registry(), &run.config.topics.alerts).await.unwrap();
    produce(&run, vec![("PostgresDown".into(), encoder.encode(&alert("PostgresDown", 1, now_ms())).unwrap())]).await;
    let _worker = KillOnDrop(run.start("run"));
    let incidents = run.consumer(&run.config.topics.incidents);
    let opened = read_until(&incidents, |read| !read.is_empty());
    let incident: Vec<Incident> = decode_all(&run.registry(), &opened).await;
    let (id, tenant) = (incident[0].incident_id.clone(), incident[0].tenant.clone());
    assert_eq!(tenant, "default");
    let path = format!("/api/v1/incidents/{id}/acknowledge");

    // The directory follows `incidents`: once it knows the incident, a comment without text is
    // refused for its text (the incident was found) rather than 404.
    let comment = format!("/api/v1/incidents/{id}/comment");
    let started = Instant::now();
    while post(&base, ADMIN, &comment, "{}").await.1["parameter"] != "comment" {
        assert!(started.elapsed() < Duration::from_secs(30), "the API never found {id}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, forged) = post(&base, ADMIN, &path, r#"{"actor": "someone else"}"#).await;
    assert_eq!((status, forged["parameter"].as_str()), (400, Some("body")), "no actor but the token: {forged}");
    assert_eq!(post(&base, READER_A, &path, "").await.0, 403, "a read-only token");
    assert_eq!(post(&base, WRITER_A, &path, "").await.0, 404, "tenant a's writer does not see tenant default");
    let (status, accepted) = post(&base, ADMIN, &path, r#"{"comment": "on it"}"#).await;
    assert_eq!((status, accepted["actor"].as_str()), (202, Some("admin")), "{accepted}");

    let consumer = run.consumer(&run.config.topics.actions);
    let actions = read_until(&consumer, |read| !read.is_empty());
    assert!(consumer.poll(Duration::from_secs(3)).is_none(), "only the accepted request wrote");
    let action: Vec<IncidentAction> = decode_all(&run.registry(), &actions).await;
    let action = &action[0];
    assert_eq!(
        (action.kind, action.actor.as_str(), action.tenant.as_str()),
        (ActionKind::Acknowledge, "admin", "default")
    );
    assert_eq!((action.incident_id.as_str(), action.comment.as_deref()), (id.as_str(), Some("on it")));
    // The worker applies it: the incident is acknowledged on `incidents`.
    let started = Instant::now();
    loop {
        let batch = read_until(&incidents, |read| !read.is_empty());
        let decoded: Vec<Incident> = decode_all(&run.registry(), &batch).await;
        if decoded.iter().any(|i| i.incident_id == id && i.status == IncidentStatus::Acknowledged) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "never acknowledged: {decoded:?}");
    }
}

/// Reads server-sent events from `path` into a channel: (id, data) of each `incident` event.
async fn events(
    base: &str,
    token: &str,
    last_event_id: Option<&str>,
) -> tokio::sync::mpsc::UnboundedReceiver<(String, Value)> {
    let mut request = reqwest::Client::new().get(format!("{base}/api/v1/stream")).bearer_auth(token);
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    let mut response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut text = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = text.find("\n\n") {
                let event: String = text.drain(..end + 2).collect();
                let field = |name: &str| event.lines().find_map(|l| l.strip_prefix(name)).map(str::to_string);
                if let (Some(id), Some(data)) = (field("id: "), field("data: ")) {
                    let _ = tx.send((id, serde_json::from_str(&data).unwrap()));
                }
            }
        }
    });
    rx
}

async fn next_event(rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Value)>) -> (String, Value) {
    tokio::time::timeout(Duration::from_secs(60), rx.recv()).await.expect("an event within 60 s").unwrap()
}

#[tokio::test]
async fn the_stream_sends_committed_incidents_of_the_tokens_tenants_and_resumes_after_the_last_event() {
    let (run, _api, base, _) = serve().await;
    let (status, bad) = {
        let response = reqwest::Client::new()
            .get(format!("{base}/api/v1/stream"))
            .bearer_auth(ADMIN)
            .header("Last-Event-ID", "garbage")
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json::<Value>().await.unwrap())
    };
    assert_eq!((status, bad["parameter"].as_str()), (400, Some("Last-Event-ID")));
    let mut all = events(&base, ADMIN, None).await;
    let mut tenant_a = events(&base, WRITER_A, None).await;

    let encoder = Encoder::<Alert>::register(&run.registry(), &run.config.topics.alerts).await.unwrap();
    let send = |name: &'static str| {
        let (run, encoder) = (&run, &encoder);
        async move { produce(run, vec![(name.into(), encoder.encode(&alert(name, 1, now_ms())).unwrap())]).await }
    };
    send("PostgresDown").await;
    let mut of_a = alert("CacheDown", 1, now_ms());
    of_a.tenant = "a".into();
    produce(&run, vec![("CacheDown".into(), encoder.encode(&of_a).unwrap())]).await;
    let _worker = KillOnDrop(run.start("run"));
    let (first_id, first) = next_event(&mut all).await;
    let (_, mine) = next_event(&mut tenant_a).await;
    assert_eq!((mine["title"].as_str(), mine["tenant"].as_str()), (Some("CacheDown"), Some("a")), "{mine}");

    // Resumed after the first event: what came after it, never the first again.
    let mut resumed = events(&base, ADMIN, Some(&first_id)).await;
    send("DiskFull").await;
    let same = |event: &Value| (&event["incident_id"], &event["version"]) == (&first["incident_id"], &first["version"]);
    loop {
        let (_, next) = next_event(&mut resumed).await;
        assert!(!same(&next), "the first event again: {next}");
        if next["title"] == "DiskFull" {
            break;
        }
    }
    while next_event(&mut all).await.1["title"] != "DiskFull" {}
    while let Ok((_, event)) = tenant_a.try_recv() {
        assert_eq!(event["tenant"], "a", "tenant a's token sees only tenant a: {event}");
    }
}

#[tokio::test]
async fn analytics_are_summed_per_day_and_per_alert_name_over_the_tokens_tenants() {
    let (_run, _api, base, _) = serve().await;
    let (status, all) = get(&base, ADMIN, "/api/v1/analytics/daily").await;
    assert_eq!(status, 200, "{all}");
    let day = &all["days"][0];
    assert_eq!(
        (day["day"].as_str(), day["incidents"].as_u64(), day["distinct_alerts"].as_u64()),
        (Some("2026-11-02"), Some(4), Some(5))
    );
    assert!((day["noise_reduction"].as_f64().unwrap() - 0.2).abs() < 1e-9, "1 - 4/5: {day}");
    // inc-a3 acknowledged 300 s after its first alert; inc-a1 resolved 1169 s after its announcement.
    assert_eq!((day["acknowledged"].as_u64(), day["mtta_s"].as_f64()), (Some(1), Some(300.0)));
    assert_eq!((day["resolved"].as_u64(), day["mttr_s"].as_f64()), (Some(1), Some(1169.0)));
    assert_eq!((day["notifications"].as_u64(), day["delivered"].as_u64()), (Some(1), Some(1)));

    let (_, mine) = get(&base, READER_A, "/api/v1/analytics/daily").await;
    assert_eq!(mine["days"][0]["incidents"], 3, "tenant a only: {mine}");
    let (_, dba) = get(&base, ADMIN, "/api/v1/analytics/daily?team=dba").await;
    assert_eq!(dba["days"][0]["incidents"], 2, "inc-a1 (routing's team) and inc-a3 (label): {dba}");
    let (_, later) = get(&base, ADMIN, "/api/v1/analytics/daily?from=2026-11-03T00:00:00Z").await;
    assert_eq!(later["days"], serde_json::json!([]));

    let (_, noisy) = get(&base, ADMIN, "/api/v1/analytics/noisy").await;
    assert_eq!(
        (noisy["kinds"][0]["alertname"].as_str(), noisy["kinds"][0]["alerts"].as_u64()),
        (Some("PostgresDown"), Some(4))
    );
    let (_, noisy_a) = get(&base, READER_A, "/api/v1/analytics/noisy").await;
    assert_eq!(noisy_a["kinds"][0]["alerts"], 3, "{noisy_a}");
    let (status, refused) = get(&base, ADMIN, "/api/v1/analytics/noisy?team=dba").await;
    assert_eq!((status, refused["parameter"].as_str()), (400, Some("team")), "no team in the noise view");
}

/// A body no endpoint can take as valid, of one of the shapes attackers and broken clients send.
fn hostile_body(valid: &str, rng: &mut quench_pipeline::loadgen::rng::Rng) -> Vec<u8> {
    let wrong = ["12345", "[1,2]", "true", "null", "{\"x\":{\"y\":1}}", "\"\""];
    match rng.below(8) {
        // Cut short (never the whole body, which would be valid).
        0 => valid.as_bytes()[..rng.below(valid.len() - 1)].to_vec(),
        // A field of the wrong type.
        1 => {
            let value = wrong[rng.below(wrong.len())];
            valid.replacen(":\"", &format!(":{value},\"x\":\""), 1).into_bytes()
        }
        // Invalid UTF-8 inside a string.
        2 => {
            let mut bytes = valid.as_bytes().to_vec();
            let at = valid.find(":\"").map_or(1, |i| i + 2);
            bytes.splice(at..at, [0xff, 0xfe, 0xc3][..1 + rng.below(3)].iter().copied());
            bytes
        }
        // Deep nesting.
        3 => format!("{{\"comment\":{}", "[".repeat(200 + rng.below(50_000))).into_bytes(),
        // Random bytes.
        4 => (0..1 + rng.below(4_096)).map(|_| rng.next_u64() as u8).collect(),
        // Unknown fields.
        5 => valid.replacen('{', "{\"evil\":1,", 1).into_bytes(),
        // Not JSON at all.
        6 => ["{}x", "[]", "question=1&x=2", "{\"a\"", "\u{0}", "{,}"][rng.below(6)].into(),
        // A body far beyond any limit.
        _ => format!("{{\"comment\":\"{}\"}}", "x".repeat(3 << 20)).into_bytes(),
    }
}

/// 10,000 hostile bodies to every endpoint that takes a body, of the incident API and of the
/// notifier's acknowledgement API: each answered 4xx, and both processes serving afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_hostile_bodies_to_the_apis_each_get_a_4xx() {
    let (mut run, mut api, base, _clickhouse) = serve().await;
    let notify_port = free_port();
    run.set_all(&[
        ("QUENCH_NOTIFY__LISTEN", format!("127.0.0.1:{notify_port}")),
        ("QUENCH_NOTIFY__API_TOKENS__OPS__TOKEN", ADMIN.into()),
        ("QUENCH_NOTIFY__API_TOKENS__OPS__TENANTS", "[\"*\"]".into()),
        ("QUENCH_NOTIFY__API_TOKENS__OPS__WRITE", "true".into()),
    ]);
    let mut notify = KillOnDrop(run.start("notify"));
    let acks = format!("http://127.0.0.1:{notify_port}");
    let started = Instant::now();
    while post(&acks, ADMIN, "/v1/incidents/none/ack", "").await.0 != 404 {
        assert!(started.elapsed() < Duration::from_secs(60), "quench notify was not ready within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Each endpoint with a valid body, on an incident that does not exist (so that even a body
    // a lenient parser took would end in 404).
    let endpoints = [
        (base.as_str(), "/api/v1/incidents/none/acknowledge", r#"{"comment":"on it"}"#),
        (base.as_str(), "/api/v1/incidents/none/comment", r#"{"comment":"looking"}"#),
        (base.as_str(), "/api/v1/incidents/none/resolve", r#"{"comment":"fixed"}"#),
        (base.as_str(), "/api/v1/silences", r#"{"matchers":[{"name":"a","value":"b"}],"comment":"x","duration":"1h"}"#),
        (acks.as_str(), "/v1/incidents/none/ack", r#"{"actor":"alice","comment":"on it"}"#),
        (acks.as_str(), "/v1/incidents/none/comment", r#"{"actor":"alice","comment":"on it"}"#),
    ];
    // A connection per request: a server closes one whose oversized body it would not read, and a
    // client reusing it races that close (a client-side error, not an answer of the server's).
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let mut rng = quench_pipeline::loadgen::rng::Rng::new(19);
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut tasks = tokio::task::JoinSet::new();
    let total = 10_000;
    for i in 0..total {
        let (host, path, valid) = endpoints[i % endpoints.len()];
        let body = hostile_body(valid, &mut rng);
        let request = client.post(format!("{host}{path}")).bearer_auth(ADMIN).body(body.clone());
        tasks.spawn(async move { (request.send().await.map(|r| r.status().as_u16()), path, body) });
        if tasks.len() >= 16 || i == total - 1 {
            while let Some(done) = tasks.join_next().await {
                let (status, path, body) = done.unwrap();
                let shown = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                let status = match status {
                    Ok(status) => status,
                    // A body announced beyond the limit is answered 413 at once and not read: a
                    // client still sending it may see the connection closed before that answer.
                    Err(_) if body.len() > quench_notify::api::MAX_BODY_BYTES => 413,
                    Err(e) => panic!("{path}: no answer ({e}) to {shown:?}"),
                };
                assert!((400..500).contains(&status), "{path} answered {status} to {shown:?}");
                *statuses.entry(status).or_default() += 1;
            }
        }
    }
    println!("answers to {total} hostile bodies: {statuses:?}");
    assert!(api.try_wait().unwrap().is_none() && notify.try_wait().unwrap().is_none(), "both still running");
    assert_eq!(post(&base, ADMIN, "/api/v1/incidents/none/acknowledge", "").await.0, 404, "the API still serves");
    assert_eq!(post(&acks, ADMIN, "/v1/incidents/none/ack", "").await.0, 404, "the notifier still serves");
}
