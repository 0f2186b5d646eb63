//! Alertmanager's mute stage: what keeps a firing alert from being notified at a flush, besides
//! its route's time intervals. Inhibition first (a firing source alert mutes target alerts with
//! the same `equal` labels), then silences (matchers with a start and an end), as Alertmanager's
//! notification pipeline orders them. A muted alert still belongs to its incident, which records
//! why it was muted; it is left out of what is announced, and of what counts as notified.
//!
//! Both are side inputs shared by every partition of a worker and, through compacted topics, by
//! every worker: [`Silences`] from the silences topic, which the API writes; [`Sources`] from the
//! inhibition sources topic, which the operators write as source alerts come and go. Each entry
//! carries the event times it applies between, so that a replay decides as the first run did.

mod inhibit;
mod silence;

pub use inhibit::{InhibitRule, Source, Sources};
pub use silence::{Silence, SilenceMatcher, Silences};

use crate::rules::{Labels, RouteTree};

/// Why an alert is not notified at some time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Muted {
    /// By the firing alerts of this incident, through an inhibition rule.
    Inhibited(String),
    /// By the silence with this id.
    Silenced(String),
}

/// The side inputs of the mute stage.
#[derive(Debug, Default)]
pub struct Mutes {
    pub silences: Silences,
    pub sources: Sources,
}

/// What a flush asks about mutes: the rules in force with the side inputs.
#[derive(Clone, Copy)]
pub struct Check<'a> {
    pub rules: &'a RouteTree,
    pub mutes: &'a Mutes,
}

impl Check<'_> {
    /// Whether the route with this id is muted at `at` by its time intervals.
    pub fn route_muted(&self, route: &str, at: i64) -> bool {
        self.rules.muted(route, at)
    }

    /// Whether the route's receiver has an integration with `send_resolved`, which hears of
    /// alerts of a group resolving while others fire.
    pub fn sends_resolved(&self, route: &str) -> bool {
        // Asked at steady flushes: rules without receivers (Quench's TOML) answer at once.
        if self.rules.receivers.is_empty() {
            return false;
        }
        let receiver = self.rules.route(route).and_then(|r| r.receiver.as_ref());
        receiver
            .and_then(|name| self.rules.receivers.get(name))
            .is_some_and(|r| r.integrations.iter().any(|i| i.send_resolved))
    }

    /// Whether anything can mute an alert: without inhibition rules and silences, flushes skip
    /// the per-alert question.
    pub fn any(&self) -> bool {
        !self.mutes.silences.is_empty() || !self.rules.inhibit_rules.is_empty()
    }

    /// Why the alert with these labels is muted at `at`, if it is.
    pub fn alert(&self, tenant: &str, labels: &impl Labels, at: i64) -> Option<Muted> {
        if let Some(source) = self.mutes.sources.inhibiting(&self.rules.inhibit_rules, tenant, labels, at) {
            return Some(Muted::Inhibited(source.to_string()));
        }
        self.mutes.silences.silencing(labels, at).map(|id| Muted::Silenced(id.to_string()))
    }
}
