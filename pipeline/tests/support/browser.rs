//! A headless Chromium driven through WebDriver (Debian's `chromium` and `chromium-driver`,
//! installed by `infra/local/stack`), for the console's tests: the W3C protocol over HTTP, a
//! handful of commands.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine as _;
use serde_json::{json, Value};

pub struct Browser {
    driver: Child,
    session: String,
    client: reqwest::Client,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium window of `width` × `height`.
    pub async fn start(width: u32, height: u32) -> Self {
        let port = super::ingest::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver, installed by infra/local/stack)");
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while !client.get(format!("{base}/status")).send().await.is_ok_and(|r| r.status().is_success()) {
            assert!(started.elapsed() < Duration::from_secs(30), "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     format!("--window-size={width},{height}")]
        }}}});
        let answer: Value =
            client.post(format!("{base}/session")).json(&capabilities).send().await.unwrap().json().await.unwrap();
        let session = answer["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {answer}"));
        Self { driver, session: format!("{base}/session/{session}"), client }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let mut request = self.client.request(method, format!("{}{path}", self.session));
        if !body.is_null() {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        assert!(answer["value"]["error"].is_null(), "WebDriver {path}: {answer}");
        answer["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", json!({"url": url})).await;
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    pub async fn run(&self, script: &str) -> Value {
        self.command(reqwest::Method::POST, "/execute/sync", json!({"script": script, "args": []})).await
    }

    /// Runs `script` until it returns something truthy (30 s at most; `what` names it if not).
    pub async fn wait_for(&self, what: &str, script: &str) -> Value {
        let started = Instant::now();
        loop {
            let value = self.run(script).await;
            if !(value.is_null() || value == false || value == "" || value == 0) {
                return value;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no {what} in the page within 30 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.command(reqwest::Method::POST, "/window/rect", json!({"width": width, "height": height})).await;
    }

    /// Writes what the window shows to `path` (PNG).
    pub async fn screenshot(&self, path: &Path) {
        let encoded = self.command(reqwest::Method::GET, "/screenshot", Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD.decode(encoded.as_str().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Ends the session (and Chromium) and chromedriver.
    pub async fn quit(mut self) {
        let _ = self.client.delete(&self.session).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
