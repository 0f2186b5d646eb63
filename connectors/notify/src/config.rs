//! The `[notify]` section: channel targets by name, users, on-call schedules, escalation
//! policies, message templates, delivery settings and the acknowledgement API.
//!
//! Routing rules name targets as `channel` + `target` (for example `pagerduty` + `db`); this file
//! says what `db` is (a routing key, a URL, addresses). Escalation steps name targets as
//! `channel:name`, `user:name` (every target of that user) or `schedule:name` (whoever is on call).

use quench_secret::ApiToken;
use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{
    callbacks::CallbacksConfig,
    channel::{self, with_channels, Deliver},
    schedule::Schedule,
    template::Templates,
};

macro_rules! notify_config {
    ($(($module:ident, $Type:ident)),*) => {
        /// The `[notify]` section. Its channel tables, one per file in `src/channel/`, are
        /// named after the channel: `[notify.slack.<name>]`, `[notify.pagerduty.<name>]`, ….
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct NotifyConfig {
            /// Consumer group of the notifiers on `incident-routing`.
            pub group_id: String,
            /// Listen address of the acknowledgement API (`POST /v1/incidents/{id}/ack`, `/resolve`,
            /// `/comment`), which also serves `/metrics`, `/healthz` and `/readyz`.
            pub listen: String,
            /// Bearer tokens allowed to call the API, by the name recorded as the action's
            /// `token`; each acts only on its tenants' incidents, and only with `write = true`.
            pub api_tokens: BTreeMap<String, ApiToken>,
            /// Attempts per delivery before it goes to the notifications DLQ.
            pub max_attempts: u32,
            pub initial_backoff_ms: u64,
            pub max_backoff_ms: u64,
            /// Deadline of one HTTP request or SMTP transaction.
            pub timeout_ms: u64,
            /// Attempts in flight at once per target (one incident's deliveries to a target go in
            /// order; a slow target holds up only its own).
            pub concurrency: usize,
            /// Deliveries queued or in flight, across targets, beyond which the notifier stops
            /// reading routing events (pauses its partitions, still polling) until they drain.
            pub max_queued: usize,
            /// Deliveries queued or in flight for one target beyond which its new deliveries fail
            /// at once (dead letter with the reason), so that one dead receiver cannot fill the
            /// queues and pause reading for all.
            pub max_queued_per_target: usize,
            /// How often escalation timers are checked.
            pub tick_ms: u64,
            /// Link to an incident in messages, `{incident_id}` replaced; empty for none.
            pub incident_url: String,
            /// With an Alertmanager rules file (`worker.rules`), its receivers are targets too; a
            /// kind Quench cannot deliver (`opsgenie_configs`, …) stops the notifier at start-up
            /// unless this is set, and then is skipped with a warning.
            pub skip_unsupported_receivers: bool,
            pub templates: Templates,
            /// Slack buttons and PagerDuty webhooks that acknowledge and resolve ([`crate::callbacks`]).
            pub callbacks: CallbacksConfig,
            $(pub $module: BTreeMap<String, <channel::$module::$Type as Deliver>::Target>,)*
            pub users: BTreeMap<String, User>,
            pub schedules: BTreeMap<String, Schedule>,
            pub policies: BTreeMap<String, Policy>,
        }

        impl Default for NotifyConfig {
            fn default() -> Self {
                Self {
                    group_id: "quench-notify".into(),
                    listen: "127.0.0.1:9480".into(),
                    api_tokens: BTreeMap::new(),
                    max_attempts: 6,
                    initial_backoff_ms: 500,
                    max_backoff_ms: 60_000,
                    timeout_ms: 10_000,
                    concurrency: 32,
                    max_queued: 10_000,
                    max_queued_per_target: 2_000,
                    tick_ms: 1_000,
                    incident_url: String::new(),
                    skip_unsupported_receivers: false,
                    templates: Templates::default(),
                    callbacks: CallbacksConfig::default(),
                    $($module: BTreeMap::new(),)*
                    users: BTreeMap::new(),
                    schedules: BTreeMap::new(),
                    policies: BTreeMap::new(),
                }
            }
        }

        /// The channels targets can be on. Named through `Channel` so that a channel file
        /// without its variant in `quench_schemas::Channel` does not compile.
        pub const CHANNELS: &[&str] = &[$(quench_schemas::Channel::$Type.as_str()),*];

        impl NotifyConfig {
            /// Whether `channel`/`name` is configured.
            pub fn has_target(&self, channel: &str, name: &str) -> bool {
                match channel {
                    $(stringify!($module) => self.$module.contains_key(name),)*
                    _ => false,
                }
            }

            /// Each target's own check, failing with the key of the first that is not usable.
            fn check_targets(&self) -> Result<(), (String, String)> {
                $(
                    for (name, target) in &self.$module {
                        channel::$module::$Type::check(target).map_err(|(field, e)| {
                            let key = format!(concat!("notify.", stringify!($module), ".{}"), name);
                            (if field.is_empty() { key } else { format!("{key}.{field}") }, e)
                        })?;
                    }
                )*
                Ok(())
            }
        }
    };
}
with_channels!(notify_config);

/// A person, reached through their targets (`channel:name`) when a step or schedule names them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub targets: Vec<String>,
}

/// Steps fire in order, each waiting `wait_minutes` for an acknowledgement before the next; the
/// whole sequence runs `1 + repeat` times.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub steps: Vec<Step>,
    #[serde(default)]
    pub repeat: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub targets: Vec<String>,
    pub wait_minutes: f64,
}

impl NotifyConfig {
    pub fn backoff(&self) -> quench_retry::Backoff {
        quench_retry::Backoff::new(
            Duration::from_millis(self.initial_backoff_ms),
            Duration::from_millis(self.max_backoff_ms),
        )
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Fails with the key of the first setting that is not usable, and why.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let positive = [
            ("max_attempts", u64::from(self.max_attempts)),
            ("timeout_ms", self.timeout_ms),
            ("concurrency", self.concurrency as u64),
            ("max_queued", self.max_queued as u64),
            ("max_queued_per_target", self.max_queued_per_target as u64),
            ("tick_ms", self.tick_ms),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err((format!("notify.{key}"), "must be at least 1".into()));
        }
        quench_secret::validate_tokens("notify.api_tokens", &self.api_tokens)?;
        self.check_targets()?;
        for (name, user) in &self.users {
            for (i, target) in user.targets.iter().enumerate() {
                self.check_direct(target).map_err(|e| (format!("notify.users.{name}.targets[{i}]"), e))?;
            }
        }
        for (name, schedule) in &self.schedules {
            schedule
                .validate(|user| self.users.contains_key(user))
                .map_err(|(k, e)| (format!("notify.schedules.{name}.{k}"), e))?;
        }
        for (name, policy) in &self.policies {
            if policy.steps.is_empty() {
                return Err((format!("notify.policies.{name}.steps"), "needs at least one step".into()));
            }
            for (i, step) in policy.steps.iter().enumerate() {
                let key = |field: &str| format!("notify.policies.{name}.steps[{i}].{field}");
                if !(step.wait_minutes.is_finite() && step.wait_minutes > 0.0) {
                    return Err((key("wait_minutes"), "must be a positive number of minutes".into()));
                }
                for target in &step.targets {
                    self.check_step_target(target).map_err(|e| (key("targets"), e))?;
                }
            }
        }
        Ok(())
    }

    fn check_direct(&self, target: &str) -> Result<(), String> {
        let (channel, name) = target.split_once(':').ok_or_else(|| format!("`{target}` is not channel:name"))?;
        if !CHANNELS.contains(&channel) {
            return Err(format!("`{channel}` is not a channel ({})", CHANNELS.join(", ")));
        }
        if !self.has_target(channel, name) {
            return Err(format!("no target `{name}` under [notify.{channel}]"));
        }
        Ok(())
    }

    fn check_step_target(&self, target: &str) -> Result<(), String> {
        match target.split_once(':') {
            Some(("user", name)) if !self.users.contains_key(name) => {
                Err(format!("no user `{name}` under [notify.users]"))
            }
            Some(("schedule", name)) if !self.schedules.contains_key(name) => {
                Err(format!("no schedule `{name}` under [notify.schedules]"))
            }
            Some(("user" | "schedule", _)) => Ok(()),
            _ => self.check_direct(target),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> NotifyConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn steps_must_name_configured_targets() {
        let config = parse(
            r#"
            [webhook.ops]
            url = "http://127.0.0.1:1/hook"
            [users.alice]
            targets = ["webhook:ops"]
            [policies.db]
            steps = [{ targets = ["user:alice", "webhook:ops"], wait_minutes = 5 }, { targets = ["pagerduty:db"], wait_minutes = 10 }]
            "#,
        );
        let (key, message) = config.validate().unwrap_err();
        assert_eq!(key, "notify.policies.db.steps[1].targets");
        assert!(message.contains("no target `db` under [notify.pagerduty]"), "{message}");
    }

    #[test]
    fn each_channels_own_check_names_the_key() {
        let config = parse("[slack.ops]\ntoken = \"xoxb-1\"");
        assert_eq!(config.validate().unwrap_err().0, "notify.slack.ops.channel");
        let config = parse("[email.ops]\nto = []\nfrom = \"q@example.com\"\nsmtp_host = \"mail\"");
        assert_eq!(
            config.validate().unwrap_err(),
            ("notify.email.ops".into(), "needs `to`, `from` and `smtp_host`".into())
        );
        let unknown = toml::from_str::<NotifyConfig>("[opsgenie.ops]\nkey = \"k\"").unwrap_err().to_string();
        assert!(unknown.contains("opsgenie") && unknown.contains("slack"), "{unknown}");
    }

    #[test]
    fn short_tokens_and_zero_settings_are_named() {
        let config = parse("max_attempts = 0");
        assert_eq!(config.validate().unwrap_err().0, "notify.max_attempts");
        let config = parse("[api_tokens.bot]\ntoken = \"short\"\ntenants = [\"*\"]");
        assert_eq!(config.validate().unwrap_err().0, "notify.api_tokens.bot.token");
    }
}
