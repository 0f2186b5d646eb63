//! An Alertmanager rules file's receivers as the notifier's targets: each `<kind>_configs` entry
//! becomes the target its integration names (`[notify.webhook.dba]`, `[notify.slack.dba/1]`, see
//! `quench_core::rules::Receiver`), with the file's `global` defaults (`slack_api_url`,
//! `pagerduty_url`, `smtp_*`) and secrets read from Alertmanager's `*_file` fields, so that the
//! file itself need hold none. Targets configured under `[notify.*]` with the same name win.

use quench_core::rules::{Integration, Receiver, RouteTree};
use quench_notify::NotifyConfig;
use quench_schemas::Channel;
use serde_json::{json, Value};
use serde_yaml::Mapping;

/// Adds the receivers of `rules` to `notify`; a kind of config Quench cannot deliver is an error
/// naming it, unless `notify.skip_unsupported_receivers`.
pub fn add(notify: &mut NotifyConfig, rules: &RouteTree) -> Result<usize, String> {
    let mut added = 0;
    for receiver in rules.receivers.values() {
        check_supported(notify, receiver)?;
        for (i, integration) in receiver.integrations.iter().enumerate() {
            let at = || format!("receivers.{}: integration {i} ({:?})", receiver.name, integration.channel);
            let settings = Settings { entry: &integration.settings, global: &rules.receiver_defaults };
            let target = target(integration, &settings).map_err(|e| format!("{}: {e}", at()))?;
            let name = integration.target.clone();
            let insert = |e: serde_json::Error| format!("{}: {e}", at());
            let added_now = match integration.channel {
                Channel::Webhook => {
                    insert_new(&mut notify.webhook, name, serde_json::from_value(target).map_err(insert)?)
                }
                Channel::Slack => insert_new(&mut notify.slack, name, serde_json::from_value(target).map_err(insert)?),
                Channel::Pagerduty => {
                    insert_new(&mut notify.pagerduty, name, serde_json::from_value(target).map_err(insert)?)
                }
                Channel::Email => insert_new(&mut notify.email, name, serde_json::from_value(target).map_err(insert)?),
                Channel::Teams => insert_new(&mut notify.teams, name, serde_json::from_value(target).map_err(insert)?),
            };
            added += usize::from(added_now);
        }
    }
    Ok(added)
}

fn check_supported(notify: &NotifyConfig, receiver: &Receiver) -> Result<(), String> {
    if receiver.unsupported.is_empty() {
        return Ok(());
    }
    let kinds = receiver.unsupported.join(", ");
    if !notify.skip_unsupported_receivers {
        return Err(format!(
            "receiver `{}` has {kinds}, which Quench cannot deliver; remove them, or set \
             notify.skip_unsupported_receivers = true to skip them with a warning",
            receiver.name
        ));
    }
    tracing::warn!(receiver = %receiver.name, kinds, "receiver configs Quench cannot deliver are skipped");
    Ok(())
}

fn insert_new<T>(targets: &mut std::collections::BTreeMap<String, T>, name: String, target: T) -> bool {
    if targets.contains_key(&name) {
        return false;
    }
    targets.insert(name, target);
    true
}

/// An integration's entry with the file's `global` section beside it.
struct Settings<'a> {
    entry: &'a Mapping,
    global: &'a Mapping,
}

impl Settings<'_> {
    fn text(&self, key: &str) -> Option<String> {
        self.entry.get(key).and_then(|v| v.as_str()).map(str::to_string)
    }

    fn global_text(&self, key: &str) -> Option<String> {
        self.global.get(key).and_then(|v| v.as_str()).map(str::to_string)
    }

    /// `key`, or the contents of the file that `<key>_file` names (trimmed), from `mapping`.
    fn secret_in(mapping: &Mapping, key: &str) -> Result<Option<String>, String> {
        if let Some(value) = mapping.get(key).and_then(|v| v.as_str()) {
            return Ok(Some(value.to_string()));
        }
        let file_key = format!("{key}_file");
        match mapping.get(file_key.as_str()).and_then(|v| v.as_str()) {
            Some(path) => std::fs::read_to_string(path)
                .map(|text| Some(text.trim().to_string()))
                .map_err(|e| format!("{file_key}: cannot read {path}: {e}")),
            None => Ok(None),
        }
    }

    fn secret(&self, key: &str) -> Result<Option<String>, String> {
        Self::secret_in(self.entry, key)
    }

    /// The entry's secret, else the global one (`global_key`, `global_key_file`).
    fn secret_or_global(&self, key: &str, global_key: &str) -> Result<Option<String>, String> {
        match self.secret(key)? {
            Some(value) => Ok(Some(value)),
            None => Self::secret_in(self.global, global_key),
        }
    }

    fn required(value: Option<String>, key: &str) -> Result<String, String> {
        value.ok_or_else(|| format!("`{key}` (or `{key}_file`) is required"))
    }

    /// `Authorization` from `http_config` (bearer credentials or `bearer_token`), if any.
    fn authorization(&self) -> Result<Option<String>, String> {
        let Some(http) = self.entry.get("http_config").and_then(|v| v.as_mapping()) else { return Ok(None) };
        if let Some(key) = ["basic_auth", "oauth2", "tls_config", "proxy_url"].iter().find(|k| http.contains_key(**k)) {
            return Err(format!(
                "http_config.{key} is not supported: use authorization (credentials or credentials_file)"
            ));
        }
        if let Some(auth) = http.get("authorization").and_then(|v| v.as_mapping()) {
            let kind = auth.get("type").and_then(|v| v.as_str()).unwrap_or("Bearer");
            return Ok(Self::secret_in(auth, "credentials")?.map(|c| format!("{kind} {c}")));
        }
        Ok(Self::secret_in(http, "bearer_token")?.map(|token| format!("Bearer {token}")))
    }
}

/// The target's settings in the notifier's terms.
fn target(integration: &Integration, s: &Settings) -> Result<Value, String> {
    Ok(match integration.channel {
        Channel::Webhook => {
            let url = Settings::required(s.secret("url")?, "url")?;
            let mut headers = serde_json::Map::new();
            if let Some(value) = s.authorization()? {
                headers.insert("authorization".into(), value.into());
            }
            let max_alerts = s.entry.get("max_alerts").and_then(|v| v.as_u64()).unwrap_or(0);
            json!({"url": url, "headers": headers, "format": "alertmanager", "max_alerts": max_alerts,
                   "send_resolved": integration.send_resolved})
        }
        Channel::Slack => {
            let url = Settings::required(s.secret_or_global("api_url", "slack_api_url")?, "api_url")?;
            json!({"url": url, "channel": s.text("channel").unwrap_or_default()})
        }
        Channel::Pagerduty => {
            if s.entry.contains_key("service_key") || s.entry.contains_key("service_key_file") {
                return Err("`service_key` is PagerDuty's Events API v1; Quench speaks v2: use `routing_key`".into());
            }
            let key = Settings::required(s.secret("routing_key")?, "routing_key")?;
            let url = s
                .text("url")
                .or_else(|| s.global_text("pagerduty_url"))
                .unwrap_or_else(|| "https://events.pagerduty.com/v2/enqueue".into());
            json!({"routing_key": key, "url": url})
        }
        Channel::Email => {
            let to: Vec<String> =
                Settings::required(s.text("to"), "to")?.split(',').map(|a| a.trim().to_string()).collect();
            let from = Settings::required(s.text("from").or_else(|| s.global_text("smtp_from")), "from")?;
            let smarthost =
                Settings::required(s.text("smarthost").or_else(|| s.global_text("smtp_smarthost")), "smarthost")?;
            let (host, port) = smarthost.rsplit_once(':').ok_or("smarthost must be host:port")?;
            let port: u16 = port.parse().map_err(|_| format!("smarthost: `{port}` is not a port"))?;
            let require_tls = s
                .entry
                .get("require_tls")
                .or_else(|| s.global.get("smtp_require_tls"))
                .and_then(|v| v.as_bool())
                .unwrap_or(true);
            let tls = match (require_tls, port) {
                (_, 465) => "tls",
                (true, _) => "starttls",
                (false, _) => "opportunistic",
            };
            let username = s.text("auth_username").or_else(|| s.global_text("smtp_auth_username"));
            let password = s.secret_or_global("auth_password", "smtp_auth_password")?;
            json!({"to": to, "from": from, "smtp_host": host, "smtp_port": port, "tls": tls,
                   "username": username, "password": password})
        }
        Channel::Teams => json!({"url": Settings::required(s.secret("webhook_url")?, "webhook_url")?}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(yaml: &str) -> RouteTree {
        RouteTree::parse_alertmanager(yaml).unwrap()
    }

    #[test]
    fn receivers_become_targets_with_global_defaults_and_secrets_from_files() {
        let dir = std::env::temp_dir().join(format!("quench-receivers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key_file = dir.join("pd-key");
        std::fs::write(&key_file, "routing-key-from-file\n").unwrap();
        let rules = tree(&format!(
            "global: {{slack_api_url: 'https://hooks.slack.test/T0', smtp_from: am@example.org, smtp_smarthost: 'smtp.example.org:587'}}\n\
             route: {{receiver: dba}}\n\
             receivers:\n\
             - name: dba\n  \
               slack_configs: [{{channel: '#dba'}}]\n  \
               pagerduty_configs: [{{routing_key_file: '{}'}}]\n  \
               webhook_configs: [{{url: 'http://hook.test/a', http_config: {{authorization: {{credentials: tok}}}}, max_alerts: 5}}]\n  \
               email_configs: [{{to: 'a@example.org, b@example.org'}}]\n  \
               msteams_configs: [{{webhook_url: 'https://teams.test/x'}}]\n",
            key_file.display()
        ));
        let mut notify = NotifyConfig::default();
        assert_eq!(add(&mut notify, &rules).unwrap(), 5);
        assert_eq!(notify.slack["dba"].url.expose(), "https://hooks.slack.test/T0");
        assert_eq!(notify.slack["dba"].channel, "#dba");
        assert_eq!(notify.pagerduty["dba"].routing_key.expose(), "routing-key-from-file");
        let hook = &notify.webhook["dba"];
        assert_eq!(hook.headers["authorization"].expose(), "Bearer tok");
        assert_eq!((hook.max_alerts, hook.send_resolved), (5, true));
        assert_eq!(notify.email["dba"].to, ["a@example.org", "b@example.org"]);
        assert_eq!((notify.email["dba"].smtp_host.as_str(), notify.email["dba"].smtp_port), ("smtp.example.org", 587));
        assert_eq!(notify.teams["dba"].url.expose(), "https://teams.test/x");
        notify.validate().unwrap();
    }

    #[test]
    fn receivers_quench_cannot_deliver_stop_start_up_unless_skipped() {
        let rules = tree("route: {receiver: r}\nreceivers: [{name: r, opsgenie_configs: [{api_key: x}]}]\n");
        let mut notify = NotifyConfig::default();
        let error = add(&mut notify, &rules).unwrap_err();
        assert!(error.contains("`r`") && error.contains("opsgenie_configs"), "{error}");
        notify.skip_unsupported_receivers = true;
        assert_eq!(add(&mut notify, &rules).unwrap(), 0);
        let missing = tree("route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{send_resolved: true}]}]\n");
        assert!(add(&mut notify, &missing).unwrap_err().contains("`url` (or `url_file`) is required"));
        let basic = tree(
            "route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{url: 'http://a', http_config: {basic_auth: {username: u}}}]}]\n",
        );
        assert!(add(&mut notify, &basic).unwrap_err().contains("basic_auth is not supported"));
    }
}
