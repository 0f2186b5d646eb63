//! Quench's own monitoring against a real Prometheus (Debian's package): ingest, worker, sink and
//! notifier run with each process's `/metrics` scraped every second and Quench's alerting rules
//! (`infra/prometheus/quench.rules.yml`) loaded. Every query of the pipeline's dashboard
//! (`infra/grafana/pipeline.json`) must return data from that scrape, and every rule must
//! evaluate without error. The LLM and the webhook receiver are FAKE peers (hosted services
//! cannot run here).

mod support;

use std::{
    path::Path,
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use quench_pipeline::{
    clickhouse::{migrate, MIGRATIONS},
    kafka::create_topics,
};
use quench_schemas::now_ms;
use serde_json::Value;
use support::{
    fake_llm::{self, FakeLlm},
    fake_peers::{self, Peers},
    ingest::{alertmanager_body, free_port, post, Ingest},
    produce, sigterm, KillOnDrop, Run,
};

/// What `$__rate_interval` stands for here: Grafana makes it at least four scrape intervals.
const RATE_INTERVAL: &str = "15s";

#[tokio::test(flavor = "multi_thread")]
async fn every_pipeline_dashboard_query_returns_data_from_a_real_prometheus_scrape() {
    let dir = std::env::temp_dir().join(format!("quench-operations-{}-{}", std::process::id(), now_ms()));
    std::fs::create_dir_all(&dir).unwrap();
    let peers = Arc::new(Peers::default());
    let base = fake_peers::serve(peers.clone()).await;
    let llm = fake_llm::serve(Arc::new(FakeLlm::default())).await;
    let prices = "[classify.llm]\ninput_price_per_mtok = 3.0\noutput_price_per_mtok = 15.0\n";
    let (config, routing) = fake_peers::webhook_files(&dir, &base, prices);
    let mut run = Run::new("operations");
    run.set("QUENCH_CONFIG", &config.display().to_string());
    run.set("QUENCH_WORKER__ROUTING", &routing.display().to_string());
    run.set("QUENCH_CLICKHOUSE__DATABASE", &support::database("operations"));
    run.set("QUENCH_SINK__FLUSH_INTERVAL_MS", "300");
    run.set_all(&[
        ("QUENCH_CLASSIFY__PROVIDER", "openai".into()),
        ("QUENCH_CLASSIFY__LLM__URL", llm),
        ("QUENCH_CLASSIFY__LLM__MODEL", "fake-model".into()),
        // Every incident goes to the (fake) LLM, so that its panels have something to show.
        ("QUENCH_CLASSIFY__LLM__ASK_BELOW_CONFIDENCE", "1".into()),
    ]);
    create_topics(&run.config.kafka, &run.config.topics).await.unwrap();
    migrate(&run.config.clickhouse, MIGRATIONS).await.unwrap();

    // ingest serves /metrics on its public listener (the test runs set http.listen to ""); the
    // others on an operations port of their own.
    let ingest = Ingest::start(&run, &[]);
    let mut targets = vec![("quench-ingest", ingest.url.trim_start_matches("http://").to_string())];
    let mut processes = Vec::new();
    for (command, job) in [("run", "quench-worker"), ("sink", "quench-sink"), ("notify", "quench-notify")] {
        let listen = format!("127.0.0.1:{}", free_port());
        processes.push(KillOnDrop(run.start_with(command, &[("QUENCH_HTTP__LISTEN", &listen)])));
        targets.push((job, listen));
    }
    let prometheus = Prometheus::start(&dir, &targets);

    // Alerts keep coming in waves (incidents open, update and are paged), with one record that is
    // not Avro (dead-lettered) and one webhook that is not JSON (refused with 400).
    produce(&run, vec![("garbage".into(), b"not an Avro record".to_vec())]).await;
    let client = reqwest::Client::new();
    let refused = post(&client, &ingest.url, "/v1/alertmanager", b"{not json".to_vec()).await;
    assert_eq!(refused.status().as_u16(), 400);
    let stop = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn({
        let (stop, url) = (stop.clone(), ingest.url.clone());
        async move {
            let client = reqwest::Client::new();
            let mut wave = 0;
            while !stop.load(Ordering::SeqCst) {
                let body = alertmanager_body(&format!("OpsStorm{}", wave % 4), wave * 10..wave * 10 + 10);
                let answer = post(&client, &url, "/v1/alertmanager", serde_json::to_vec(&body).unwrap()).await;
                assert_eq!(answer.status().as_u16(), 200);
                wave += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });

    let dashboard: Value = serde_json::from_str(include_str!("../../infra/grafana/pipeline.json")).unwrap();
    let queries: Vec<(String, String)> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| {
            panel["targets"].as_array().unwrap().iter().map(move |target| {
                let expr = target["expr"].as_str().unwrap().replace("$__rate_interval", RATE_INTERVAL);
                (panel["title"].as_str().unwrap().to_string(), expr)
            })
        })
        .collect();
    assert!(queries.len() >= 20, "the dashboard's queries were read");
    let started = Instant::now();
    let empty = loop {
        let mut empty = Vec::new();
        for (title, expr) in &queries {
            if prometheus.query(&client, expr).await.is_empty() {
                empty.push(format!("{title}: {expr}"));
            }
        }
        if empty.is_empty() || started.elapsed() > Duration::from_secs(150) {
            break empty;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    stop.store(true, Ordering::SeqCst);
    sender.await.unwrap();
    assert!(empty.is_empty(), "panel queries without data after {:?}:\n{}", started.elapsed(), empty.join("\n"));
    assert!(!peers.of("webhook/ops").is_empty(), "pages were delivered");

    // The alerting rules evaluate against the real series without error.
    let groups = prometheus.get(&client, "/api/v1/rules").await;
    let rules: Vec<&Value> =
        groups["data"]["groups"].as_array().unwrap().iter().flat_map(|g| g["rules"].as_array().unwrap()).collect();
    assert_eq!(rules.len(), 10, "every rule of quench.rules.yml loaded");
    for rule in rules {
        assert_eq!(rule["health"], "ok", "rule {} evaluates: {}", rule["name"], rule["lastError"]);
    }
    for process in &processes {
        sigterm(process);
    }
    for mut process in processes {
        assert!(process.wait().unwrap().success(), "graceful shutdown");
    }
    drop(prometheus);
    eprintln!("{} dashboard queries answered after {:?}", queries.len(), started.elapsed());
}

/// Debian's Prometheus scraping `targets` (job, address) every second, with Quench's rules.
struct Prometheus {
    url: String,
    _server: KillOnDrop,
}

impl Prometheus {
    fn start(dir: &Path, targets: &[(&str, String)]) -> Self {
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/prometheus/quench.rules.yml");
        let scrapes: String = targets
            .iter()
            .map(|(job, address)| format!("  - job_name: {job}\n    static_configs: [{{targets: ['{address}']}}]\n"))
            .collect();
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['{}']\nscrape_configs:\n{scrapes}",
                rules.display()
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("prom-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start prometheus ({e}); `infra/local/stack install` installs it"));
        Self { url: format!("http://127.0.0.1:{port}"), _server: KillOnDrop(child) }
    }

    async fn get(&self, client: &reqwest::Client, path: &str) -> Value {
        let started = Instant::now();
        loop {
            match client.get(format!("{}{path}", self.url)).send().await {
                Ok(answer) if answer.status().is_success() => return answer.json().await.unwrap(),
                Ok(answer) => panic!("{path}: {} {}", answer.status(), answer.text().await.unwrap_or_default()),
                Err(e) if started.elapsed() > Duration::from_secs(30) => panic!("prometheus did not answer: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// The query's result at this instant (the vector's samples).
    async fn query(&self, client: &reqwest::Client, expr: &str) -> Vec<Value> {
        let path =
            format!("/api/v1/query?query={}", form_urlencoded::byte_serialize(expr.as_bytes()).collect::<String>());
        let answer = self.get(client, &path).await;
        assert_eq!(answer["status"], "success", "{expr}: {answer}");
        answer["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}
