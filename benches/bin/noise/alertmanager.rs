//! The stream through a real Alertmanager (Debian's `prometheus-alertmanager`, through
//! `/api/v2/alerts` and a webhook collector), with the same `group_by` and timings, in time
//! compressed `speedup` times: hours of alerts in minutes of wall time. Its notifications are
//! counted and read back as incidents: the alerts one group notified about, from its first
//! notification to the one that says all resolved.

use std::{collections::HashMap, path::Path, sync::Arc, time::Duration};

use quench_benches::{
    alertmanager::{self, collect, http_client, wait_ready, Received},
    noise::{Found, Stream},
    now_ms,
};
use quench_pipeline::alertmanager_api::{parse_time, rfc3339};
use quench_schemas::{Alert, AlertStatus};
use serde_json::{json, Value};

/// Alertmanager's timings, ms (before compression).
pub struct Timings {
    pub group_wait: i64,
    pub group_interval: i64,
    pub repeat_interval: i64,
    pub resolve_timeout: i64,
}

/// What Alertmanager sent.
pub struct Sent {
    pub notifications: usize,
    pub incidents: Vec<Found>,
}

/// Plays `stream` into Alertmanager `binary` and reads back what it notified.
pub fn run(
    binary: &Path,
    stream: &Stream,
    group_by: &[String],
    timings: &Timings,
    speedup: i64,
) -> anyhow::Result<Sent> {
    let (Some(first), Some(last)) = (stream.alerts.first(), stream.alerts.last()) else {
        return Ok(Sent { notifications: 0, incidents: Vec::new() });
    };
    let rt = tokio::runtime::Runtime::new()?;
    let received: Received = Arc::default();
    let collector = rt.block_on(collect(received.clone()))?;
    let dir = std::env::temp_dir().join(format!("quench-noise-am-{}", now_ms()));
    std::fs::create_dir_all(&dir)?;
    let scaled = |ms: i64| format!("{}ms", (ms / speedup).max(1));
    let labels: Vec<String> = group_by.iter().map(|label| format!("'{label}'")).collect();
    let config = format!(
        "global:\n  resolve_timeout: {}\nroute:\n  receiver: collector\n  group_by: [{}]\n  group_wait: {}\n  \
         group_interval: {}\n  repeat_interval: {}\nreceivers:\n  - name: collector\n    webhook_configs:\n      \
         - url: {collector}/am/collector\n        send_resolved: true\n",
        scaled(timings.resolve_timeout),
        labels.join(", "),
        scaled(timings.group_wait),
        scaled(timings.group_interval),
        scaled(timings.repeat_interval),
    );
    std::fs::write(dir.join("alertmanager.yml"), config)?;
    let (child, url) = alertmanager::start(binary, &dir.join("alertmanager.yml"), &dir)?;
    let _running = Running(child);
    rt.block_on(wait_ready("Alertmanager", &format!("{url}/-/ready")))?;
    let settle = (timings.resolve_timeout + 2 * timings.group_interval) / speedup + 3_000;
    eprintln!(
        "Alertmanager: {} alert records, {speedup} times faster than they happened: {} s of wall time",
        stream.alerts.len(),
        ((last.received_at - first.received_at) / speedup + settle) / 1000
    );
    let clock = Clock { t0: first.received_at, wall0: now_ms() + 1_000, speedup };
    rt.block_on(play(&stream.alerts, &url, &clock))?;
    std::thread::sleep(Duration::from_millis(settle as u64));
    let received = received.lock().expect("collector lock");
    Ok(Sent { notifications: received.len(), incidents: incidents(&received, &clock)? })
}

/// Kills Alertmanager when the run ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stream time (`t0` on) to wall time (`wall0` on), `speedup` times faster, and back.
struct Clock {
    t0: i64,
    wall0: i64,
    speedup: i64,
}

impl Clock {
    fn wall(&self, t: i64) -> i64 {
        self.wall0 + (t - self.t0) / self.speedup
    }

    fn stream(&self, wall: i64) -> i64 {
        self.t0 + (wall - self.wall0) * self.speedup
    }
}

/// Posts each alert when due, as Prometheus does: a firing one with its start and no end, a
/// resolved one with its end; what fell due together goes in one request.
async fn play(alerts: &[Alert], url: &str, clock: &Clock) -> anyhow::Result<()> {
    let client = http_client();
    let mut next = 0;
    while next < alerts.len() {
        let wait = clock.wall(alerts[next].received_at) - now_ms();
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
        let now = now_ms();
        let mut batch = Vec::new();
        while next < alerts.len() && clock.wall(alerts[next].received_at) <= now {
            let alert = &alerts[next];
            let mut body = json!({"labels": alert.labels, "annotations": alert.annotations,
                                  "startsAt": rfc3339(clock.wall(alert.starts_at))});
            if alert.status == AlertStatus::Resolved {
                body["endsAt"] = rfc3339(clock.wall(alert.ends_at.unwrap_or(alert.received_at))).into();
            }
            batch.push(body);
            next += 1;
        }
        let status = client.post(format!("{url}/api/v2/alerts")).json(&batch).send().await?.status();
        anyhow::ensure!(status.is_success(), "Alertmanager answered {status} to {} alerts", batch.len());
    }
    Ok(())
}

/// Alertmanager's notifications as incidents: per group, the alerts notified from its first
/// notification until one says all resolved, spanning their starts (in stream time, widened
/// by the compression's rounding) to the last notification.
fn incidents(received: &[(String, String, i64, Value)], clock: &Clock) -> anyhow::Result<Vec<Found>> {
    let mut open: HashMap<&str, Found> = HashMap::new();
    let mut incidents = Vec::new();
    for (_, _, at, body) in received {
        let key = body["groupKey"].as_str().unwrap_or_default();
        let found =
            open.entry(key).or_insert(Found { fingerprints: Vec::new(), first_seen: i64::MAX, last_seen: i64::MIN });
        for alert in body["alerts"].as_array().into_iter().flatten() {
            let fingerprint = alert["fingerprint"].as_str().unwrap_or_default();
            found.fingerprints.push(u64::from_str_radix(fingerprint, 16)?);
            let starts =
                parse_time(alert["startsAt"].as_str().unwrap_or_default(), "startsAt").map_err(anyhow::Error::msg)?;
            found.first_seen = found.first_seen.min(clock.stream(starts) - clock.speedup);
        }
        found.last_seen = found.last_seen.max(clock.stream(*at) + clock.speedup);
        if body["status"] == "resolved" {
            incidents.extend(open.remove(key));
        }
    }
    incidents.extend(open.into_values());
    Ok(incidents)
}
