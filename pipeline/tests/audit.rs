//! The audit trail in ClickHouse records a worker's rules reloads: one taken, and one refused with
//! why, by instance and file (`rules_reloads`, and the `audit` view over everything recorded).

mod support;

use std::time::{Duration, Instant};

use quench_pipeline::{
    clickhouse::{client, migrate, MIGRATIONS},
    kafka::create_topics,
};
use support::{KillOnDrop, Run};

#[tokio::test(flavor = "multi_thread")]
async fn a_workers_rules_reloads_taken_and_refused_are_in_the_audit_trail() {
    let mut run = Run::new("audit");
    run.set("QUENCH_CLICKHOUSE__DATABASE", &support::database("audit"));
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    migrate(&run.config.clickhouse, MIGRATIONS).await.unwrap();
    let rules = run.config.worker.rules.clone().expect("the run's rules file");
    let _worker = KillOnDrop(run.start("run"));
    let clickhouse = client(&run.config.clickhouse);
    let reloads = || async {
        clickhouse
            .query("SELECT what, target, detail FROM audit WHERE what LIKE 'rules.%' ORDER BY at")
            .fetch_all::<(String, String, String)>()
            .await
            .unwrap()
    };
    let wait_for = |count: usize| {
        let reloads = &reloads;
        async move {
            let started = Instant::now();
            loop {
                let rows = reloads().await;
                if rows.len() >= count || started.elapsed() > Duration::from_secs(90) {
                    return rows;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    };
    // The worker started; a changed file is taken, a broken one refused (and the last kept).
    tokio::time::sleep(Duration::from_secs(3)).await;
    std::fs::write(&rules, "[route]\ngroup_by = [\"alertname\", \"instance\"]\ngroup_wait = \"1s\"\n").unwrap();
    let rows = wait_for(1).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[0].1.as_str()), ("rules.reloaded", "windowing"));
    assert!(rows[0].2.contains(&rules.display().to_string()), "{rows:?}");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    std::fs::write(&rules, "[route\ngroup_by = oops\n").unwrap();
    let rows = wait_for(2).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1].0, "rules.rejected");
    assert!(rows[1].2.len() > rules.display().to_string().len() + 2, "the refusal says why: {rows:?}");
}
