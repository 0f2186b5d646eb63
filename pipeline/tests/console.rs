//! The console (`quench api`'s page) in headless Chromium against the real pipeline (ingest,
//! worker, sink, api on the local stack): an alert posted to `quench ingest` appears in the open
//! list without a reload, acknowledging it from the console reaches Kafka as the token's action
//! and shows in the incident's timeline, silencing it puts the silence on the silences topic, a
//! question in the ask box comes back with its rows and its SQL, and every page is usable at 1280×800 and at a phone's width. Screenshots of each page
//! go to `$CARGO_TARGET_TMPDIR/console/`.

mod support;

use std::path::Path;

use quench_pipeline::{
    clickhouse::{migrate, MIGRATIONS},
    kafka::create_topics,
};
use quench_schemas::{ActionKind, IncidentAction};
use support::{
    browser::Browser,
    decode_all,
    ingest::{alertmanager_body, free_port, post, Ingest},
    read_until, KillOnDrop, Run,
};

const TOKEN: &str = "console-token-0123456789";
const INCIDENT: &str = r#"[data-incident-title="ConsoleTestDown"]"#;

#[tokio::test]
async fn an_alert_appears_live_and_acknowledging_it_in_the_console_reaches_kafka_and_the_timeline() {
    let mut run = Run::new("console");
    let port = free_port();
    run.set_all(&[
        ("QUENCH_CLICKHOUSE__DATABASE", support::database("console")),
        ("QUENCH_API__LISTEN", format!("127.0.0.1:{port}")),
        ("QUENCH_API__TOKENS__CONSOLE__TOKEN", TOKEN.into()),
        ("QUENCH_API__TOKENS__CONSOLE__TENANTS", "[\"*\"]".into()),
        ("QUENCH_API__TOKENS__CONSOLE__WRITE", "true".into()),
        ("QUENCH_SINK__FLUSH_INTERVAL_MS", "300".into()),
    ]);
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    migrate(&run.config.clickhouse, MIGRATIONS).await.unwrap();
    let _worker = KillOnDrop(run.start("run"));
    let _sink = KillOnDrop(run.start("sink"));
    let _api = KillOnDrop(run.start("api"));
    let ingest = Ingest::start(&run, &[]);
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
    std::fs::create_dir_all(&out).unwrap();

    let browser = Browser::start(1280, 800).await;
    let base = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    while reqwest::get(format!("{base}/")).await.is_err() {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "quench api did not start");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    browser.goto(&format!("{base}/#token={TOKEN}")).await;
    browser.wait_for("the live stream", "return document.getElementById('live').textContent === 'live'").await;

    // Posted after the page loaded: it can only arrive through the stream.
    let body = serde_json::to_vec(&alertmanager_body("ConsoleTestDown", 0..2)).unwrap();
    assert_eq!(post(&reqwest::Client::new(), &ingest.url, "/v1/alertmanager", body).await.status().as_u16(), 200);
    browser
        .wait_for("the new incident in the list", &format!("return document.querySelector('{INCIDENT}') !== null"))
        .await;
    browser.screenshot(&out.join("incidents-1280x800.png")).await;

    browser.run(&format!("document.querySelector('{INCIDENT}').click(); return true")).await;
    browser.wait_for("the incident's detail", "return document.getElementById('acknowledge') !== null").await;
    browser.run("document.getElementById('acknowledge').click(); return true").await;
    browser
        .wait_for(
            "the acknowledged status",
            "return document.getElementById('detail-status')?.textContent === 'acknowledged'",
        )
        .await;
    browser
        .wait_for(
            "the acknowledgement in the timeline",
            "return document.querySelector('#timeline li[data-reason=\"acknowledged\"]') !== null",
        )
        .await;
    // A comment: kept in ClickHouse's `actions` by the sink, shown in the timeline with its author.
    browser
        .run("document.getElementById('comment').value = 'failing over'; document.getElementById('send-comment').click(); return true")
        .await;
    browser
        .wait_for(
            "the comment in the timeline",
            "return [...document.querySelectorAll('#timeline li[data-action=\"comment\"]')].some(li => li.textContent.endsWith('comment by console: failing over'))",
        )
        .await;
    browser.screenshot(&out.join("incident-1280x800.png")).await;

    // Silencing its alerts from the console puts a silence on the topic the worker reads.
    browser.run("document.getElementById('silence').click(); return true").await;
    browser.wait_for("the silence made", "return document.getElementById('silenced') !== null").await;
    let silences = read_until(&run.consumer(&run.config.topics.silences), |read| !read.is_empty());
    let silence: serde_json::Value = serde_json::from_slice(&silences[0].1).unwrap();
    assert_eq!(silence["created_by"], "console", "{silence}");
    assert!(silence["matchers"].to_string().contains("alertname"), "{silence}");

    let actions = read_until(&run.consumer(&run.config.topics.actions), |read| read.len() >= 2);
    let action: Vec<IncidentAction> = decode_all(&run.registry(), &actions).await;
    assert_eq!((action[0].kind, action[0].actor.as_str()), (ActionKind::Acknowledge, "console"), "{action:?}");

    browser.run("document.getElementById('tab-analytics').click(); return true").await;
    browser.wait_for("a day of analytics", "return document.querySelectorAll('#days tr').length").await;
    for chart in ["chart-incidents", "chart-noise", "chart-mtta", "chart-mttr"] {
        let bars = browser.run(&format!("return document.querySelectorAll('#{chart} div').length")).await;
        assert!(bars.as_u64() >= Some(1), "{chart}: {bars}");
    }
    browser.screenshot(&out.join("analytics-1280x800.png")).await;

    // A question in the ask box: its rows, and the SQL that made them.
    browser.run("document.getElementById('tab-ask').click(); return true").await;
    let ask = "document.getElementById('question').value = 'how many incidents by severity'; \
               document.getElementById('ask-form').requestSubmit(); return true";
    browser.run(ask).await;
    browser.wait_for("an answer", "return document.querySelectorAll('#answer-rows tbody tr').length").await;
    let sql = browser.run("return document.querySelector('#answer pre').textContent").await;
    assert!(sql.as_str().unwrap().contains("GROUP BY severity"), "{sql}");
    browser.screenshot(&out.join("ask-1280x800.png")).await;

    // A phone: nothing wider than the screen, on either page.
    browser.resize(390, 844).await;
    for page in ["ask", "analytics", "incidents"] {
        browser.run(&format!("document.getElementById('tab-{page}').click(); return true")).await;
        browser.screenshot(&out.join(format!("{page}-390x844.png"))).await;
        let widths = browser.run("return [document.documentElement.scrollWidth, window.innerWidth]").await;
        assert!(widths[0].as_u64() <= widths[1].as_u64(), "the {page} page is wider than a phone: {widths}");
    }
    browser.quit().await;
}
