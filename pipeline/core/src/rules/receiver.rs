//! An Alertmanager file's receivers, as Quench delivers them: each `<kind>_configs` entry is an
//! integration on one of Quench's channels, named after its receiver (`dba`; `dba/1` for the
//! second of the same kind), with Alertmanager's `send_resolved` default for its kind. The
//! worker puts a group's receiver's integrations on its routing events as targets; the notifier
//! builds the targets' settings from the same entries (see `quench notify`).

use quench_schemas::Channel;
use serde_yaml::{Mapping, Value};

/// One receiver: where its notifications go.
#[derive(Debug, Clone, PartialEq)]
pub struct Receiver {
    pub name: String,
    pub integrations: Vec<Integration>,
    /// Kinds of configs Quench cannot deliver (`opsgenie_configs`, …), for the notifier to
    /// refuse or skip.
    pub unsupported: Vec<String>,
}

/// One `<kind>_configs` entry of a receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct Integration {
    pub channel: Channel,
    /// The target's name on its channel.
    pub target: String,
    pub send_resolved: bool,
    /// The entry as the file has it, for the notifier.
    pub settings: Mapping,
}

/// The kinds of configs Quench delivers, with their channel and Alertmanager's `send_resolved`
/// default.
const KINDS: &[(&str, Channel, bool)] = &[
    ("webhook_configs", Channel::Webhook, true),
    ("slack_configs", Channel::Slack, false),
    ("pagerduty_configs", Channel::Pagerduty, true),
    ("email_configs", Channel::Email, false),
    ("msteams_configs", Channel::Teams, true),
    ("msteamsv2_configs", Channel::Teams, true),
];

impl Receiver {
    /// Reads a receiver's settings (everything but its name).
    pub fn parse(name: &str, settings: &Mapping) -> Result<Self, String> {
        let mut integrations = Vec::new();
        let mut unsupported = Vec::new();
        for (key, value) in settings {
            let key = key.as_str().ok_or_else(|| format!("receiver `{name}`: a key that is not a string"))?;
            let Some((_, channel, default)) = KINDS.iter().find(|(kind, _, _)| *kind == key) else {
                if key.ends_with("_configs") {
                    unsupported.push(key.to_string());
                    continue;
                }
                return Err(format!("receiver `{name}`: unknown key `{key}`"));
            };
            let entries = match value {
                Value::Sequence(entries) => entries,
                Value::Null => continue,
                _ => return Err(format!("receiver `{name}`: `{key}` must be a list")),
            };
            for entry in entries {
                let Value::Mapping(entry) = entry else {
                    return Err(format!("receiver `{name}`: every entry of `{key}` must be a mapping"));
                };
                let send_resolved = match entry.get("send_resolved") {
                    None => *default,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => return Err(format!("receiver `{name}`: {key}.send_resolved must be true or false")),
                };
                let same = integrations.iter().filter(|i: &&Integration| i.channel == *channel).count();
                let target = if same == 0 { name.to_string() } else { format!("{name}/{same}") };
                integrations.push(Integration { channel: *channel, target, send_resolved, settings: entry.clone() });
            }
        }
        Ok(Self { name: name.to_string(), integrations, unsupported })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Receiver, String> {
        Receiver::parse("dba", &serde_yaml::from_str(yaml).unwrap())
    }

    #[test]
    fn each_config_is_a_target_named_after_its_receiver_with_alertmanagers_send_resolved() {
        let receiver = parse(
            "slack_configs: [{channel: '#dba'}]\nwebhook_configs: [{url: 'http://a'}, {url: 'http://b', send_resolved: false}]\n\
             pagerduty_configs: [{routing_key: k}]\nemail_configs: [{to: dba@example.org}]\nmsteams_configs: [{webhook_url: 'http://t'}]\n",
        )
        .unwrap();
        let got: Vec<(Channel, &str, bool)> =
            receiver.integrations.iter().map(|i| (i.channel, i.target.as_str(), i.send_resolved)).collect();
        assert_eq!(
            got,
            [
                (Channel::Slack, "dba", false),
                (Channel::Webhook, "dba", true),
                (Channel::Webhook, "dba/1", false),
                (Channel::Pagerduty, "dba", true),
                (Channel::Email, "dba", false),
                (Channel::Teams, "dba", true),
            ]
        );
        assert!(receiver.unsupported.is_empty());
    }

    #[test]
    fn kinds_quench_cannot_deliver_are_listed_and_bad_settings_refused() {
        let receiver = parse("opsgenie_configs: [{api_key: x}]\nwebhook_configs: [{url: 'http://a'}]\n").unwrap();
        assert_eq!(receiver.unsupported, ["opsgenie_configs"]);
        assert!(parse("webhook_config: []").unwrap_err().contains("unknown key `webhook_config`"));
        assert!(parse("webhook_configs: {url: x}").unwrap_err().contains("must be a list"));
        assert!(parse("webhook_configs: [{url: x, send_resolved: maybe}]").unwrap_err().contains("send_resolved"));
    }
}
