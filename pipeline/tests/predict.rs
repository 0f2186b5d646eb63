//! `quench predict`: the offline evaluation on a committed extract of a real alarm stream, and
//! the service through the real pipeline (Kafka, registry, ClickHouse, `quench sink`).

mod support;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use quench_pipeline::{
    clickhouse::{client, migrate, MIGRATIONS},
    kafka::create_topics,
};
use quench_schemas::{now_ms, Encoder, Prediction, PredictionOutcome};
use serde_json::Value;
use support::{alert, decode_all, insert_alerts, produce, read_until, sigterm, wait_for_log, KillOnDrop, Run};

#[test]
fn predict_eval_reports_ours_the_baselines_and_the_causal_graph_with_a_json_last_line() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/alarms");
    let output = Command::new(env!("CARGO_BIN_EXE_quench"))
        .args(["predict", "eval", "--alarms"])
        .arg(data.join("alarms.csv"))
        .arg("--causal")
        .arg(data.join("causal-edges.csv"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    for line in ["periodic recurrence", "pair frequency", "hazard + precursors", "causal graph: "] {
        assert!(stdout.contains(line), "{line} missing from:\n{stdout}");
    }
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    for key in ["precision", "recall", "f1", "lead_p50_s", "baseline_f1", "dag_f1"] {
        let value = summary[key].as_f64().unwrap_or_else(|| panic!("{key} in {summary}"));
        assert!(value > 0.0, "{key} is {value}: both baselines must predict something");
    }
    // Measured on this extract when it was committed: ours 0.226, the best baseline 0.170, the
    // causal graph 0.472; the bounds leave room for tuning but not for a regression to chance.
    assert!(summary["f1"].as_f64().unwrap() > summary["baseline_f1"].as_f64().unwrap(), "{summary}");
    assert!(summary["dag_f1"].as_f64().unwrap() > 0.4, "{summary}");

    let bad = Command::new(env!("CARGO_BIN_EXE_quench"))
        .args(["predict", "eval", "--alarms"])
        .arg(data.join("README.md"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("README.md"), "the error names the file");
}

/// Waits until `predictions` holds exactly `expected` (entity, outcome, lead), or fails after 60 s.
async fn wait_for_rows(clickhouse: &clickhouse::Client, expected: &[(&str, &str, Option<i64>)]) {
    let started = Instant::now();
    loop {
        let rows: Vec<(String, String, Option<i64>)> = clickhouse
            .query("SELECT entity, outcome, lead_s FROM predictions FINAL ORDER BY entity")
            .fetch_all()
            .await
            .unwrap();
        if rows.iter().map(|(e, o, l)| (e.as_str(), o.as_str(), *l)).eq(expected.iter().copied()) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "ClickHouse holds {rows:?}, not {expected:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// History in ClickHouse: on ten hosts, `LinkDown` and 4 s later `PacketLoss`. Live, `LinkDown`
/// fires on two new hosts: both get a prediction of `PacketLoss` (horizon shortened to (1 s,
/// 30 s]: a wait is settled as missed a horizon after its window, so the restart below has
/// close to a minute of wall clock on a slow machine); it comes on the first 4 s later (came
/// true, lead 4 s) and never on the second
/// (missed). Each state is checked in the `predictions` topic and in ClickHouse (`quench sink`);
/// `quench predict` is restarted while both wait, and the next process settles them.
#[tokio::test(flavor = "multi_thread")]
async fn a_learned_precursor_predicts_its_follower_on_a_new_host_and_the_outcome_is_recorded() {
    let mut run = Run::new("predict");
    let database = support::database("predict");
    run.set("QUENCH_CLICKHOUSE__DATABASE", &database);
    for (key, value) in [("LEAD_MIN_S", "1"), ("LEAD_MAX_S", "30"), ("QUIET_S", "20")] {
        run.set(&format!("QUENCH_PREDICT__{key}"), value);
    }
    run.set("QUENCH_LOG__LEVEL", "info");
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    migrate(&run.config.clickhouse, MIGRATIONS).await.unwrap();
    let clickhouse = client(&run.config.clickhouse);
    let hour_ago = now_ms() - 3_600_000;
    let mut history = Vec::new();
    for host in 0..10 {
        for (name, offset) in [("LinkDown", 0), ("PacketLoss", 4_000)] {
            history.push((
                name,
                format!("hist-{host}"),
                format!("fp-{name}-{host}"),
                hour_ago + host * 60_000 + offset,
            ));
        }
    }
    insert_alerts(&clickhouse, "default", &history).await;

    let log = std::env::temp_dir().join(format!("{database}.log"));
    let mut predict = KillOnDrop(run.start_logged("predict run", &log));
    wait_for_log(&mut predict, &log, "predict started");
    let mut sink = KillOnDrop(run.start("sink"));

    let encoder = Encoder::<quench_schemas::Alert>::register(&run.registry(), &run.config.topics.alerts).await.unwrap();
    let now = now_ms();
    let live = |name: &str, host: &str, at: i64| {
        let mut a = alert(name, 0, at);
        a.labels.insert("instance".into(), host.into());
        // Received when produced, as ingest stamps it (the start is the alert's own time).
        a.received_at = now_ms();
        (host.to_string(), encoder.encode(&a).unwrap())
    };
    produce(&run, vec![live("LinkDown", "live-1", now), live("LinkDown", "live-2", now)]).await;

    let consumer = run.consumer(&run.config.topics.predictions);
    let registry = run.registry();
    let records = read_until(&consumer, |records| records.len() >= 2);
    let seen = decode_all::<Prediction>(&registry, &records).await;
    for host in ["live-1", "live-2"] {
        let p = seen.iter().find(|p| p.entity == host).unwrap_or_else(|| panic!("no prediction for {host}: {seen:?}"));
        assert_eq!(
            (p.alertname.as_str(), p.outcome, p.version),
            ("PacketLoss", PredictionOutcome::Pending, 1),
            "{p:?}"
        );
        assert_eq!(
            (p.evidence_alertname.as_str(), p.entity_label.as_str(), p.edge_support),
            ("LinkDown", "instance", 10)
        );
        assert_eq!((p.window_start, p.window_end), (now / 1000 * 1000 + 1000, now / 1000 * 1000 + 30_000), "{p:?}");
        assert!(p.probability > 0.9, "{p:?}");
    }

    // Restarted while both wait (stopped, as a deployment does: a killed consumer's partitions
    // wait for its session to time out, longer than this test's 30 s windows), a new process
    // takes them back from ClickHouse and settles them.
    wait_for_rows(&clickhouse, &[("live-1", "pending", None), ("live-2", "pending", None)]).await;
    sigterm(&predict);
    assert!(predict.wait().unwrap().success(), "predict stops cleanly on SIGTERM");
    let log = std::env::temp_dir().join(format!("{database}-again.log"));
    let mut predict = KillOnDrop(run.start_logged("predict run", &log));
    wait_for_log(&mut predict, &log, "predict started");
    let text = std::fs::read_to_string(&log).unwrap();
    let plain = regex::Regex::new("\x1b\\[[0-9;]*m").unwrap().replace_all(&text, "");
    assert!(plain.contains("resumed the predictions left pending predictions=2"), "both resumed: {plain}");

    produce(&run, vec![live("PacketLoss", "live-1", now + 4_000)]).await;
    let records = read_until(&consumer, |records| records.len() >= 2);
    let outcomes = decode_all::<Prediction>(&registry, &records).await;
    let outcome = |host: &str| outcomes.iter().find(|p| p.entity == host).unwrap_or_else(|| panic!("{outcomes:?}"));
    assert_eq!(
        (outcome("live-1").outcome, outcome("live-1").lead_s, outcome("live-1").version),
        (PredictionOutcome::CameTrue, Some(4), 2)
    );
    assert_eq!((outcome("live-2").outcome, outcome("live-2").came_at), (PredictionOutcome::Missed, None));

    // The sink stores the newest version of each.
    wait_for_rows(&clickhouse, &[("live-1", "came_true", Some(4)), ("live-2", "missed", None)]).await;
    // The learned graph names the cause inside an incident holding both kinds.
    clickhouse
        .query(
            "INSERT INTO incident_alerts (tenant, incident_id, fingerprint, first_seen, last_seen) VALUES \
             ('default', 'inc-1', 'fp-LinkDown-3', now64(3), now64(3)), \
             ('default', 'inc-1', 'fp-PacketLoss-3', now64(3), now64(3))",
        )
        .execute()
        .await
        .unwrap();
    let hint: (String, String, u64, String) = clickhouse
        .query("SELECT cause, entity, effect_kinds, hint FROM incident_root_causes WHERE incident_id = 'inc-1'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        hint,
        ("LinkDown".into(), "hist-3".into(), 1, "LinkDown on hist-3 precedes this alert in 100% of history".into())
    );

    for child in [&*predict, &*sink] {
        sigterm(child);
    }
    assert!(predict.wait().unwrap().success(), "predict stops cleanly on SIGTERM");
    assert!(sink.wait().unwrap().success());
}
