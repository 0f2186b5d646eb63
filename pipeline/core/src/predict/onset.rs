//! Onsets out of a stream of alerts: a kind starting on an entity with no alert of that kind on
//! it during the quiet spell before.

use std::collections::HashMap;

use super::{Onset, Seconds};

/// Remembers the last alert of each (kind, entity) to tell onsets from repeats.
#[derive(Debug, Clone)]
pub struct Onsets {
    quiet: Seconds,
    last: HashMap<(u32, u32), Seconds>,
}

impl Onsets {
    /// `quiet`: how long a kind must have been silent on an entity for its next alert to be an
    /// onset (30 minutes in the evaluation protocol).
    pub fn new(quiet: Seconds) -> Self {
        Self { quiet, last: HashMap::new() }
    }

    /// Records an alert and says whether it is an onset. An alert older than the last one of
    /// its series (a re-sent or late one) is not news.
    pub fn observe(&mut self, kind: u32, entity: u32, at: Seconds) -> Option<Onset> {
        let last = self.last.entry((kind, entity)).or_insert(Seconds::MIN);
        let before = std::mem::replace(last, (*last).max(at));
        (before == Seconds::MIN || at > before.saturating_add(self.quiet)).then_some(Onset { kind, entity, at })
    }

    /// Forgets what has been quiet for longer than the quiet spell, to bound memory on a live
    /// stream.
    pub fn expire(&mut self, now: Seconds) {
        let quiet = self.quiet;
        self.last.retain(|_, at| now - *at <= quiet);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_is_an_onset_only_after_a_quiet_spell_of_its_kind_on_its_entity() {
        let mut onsets = Onsets::new(1800);
        assert!(onsets.observe(1, 7, 0).is_some());
        assert!(onsets.observe(1, 7, 1000).is_none(), "a repeat");
        assert!(onsets.observe(1, 7, 2700).is_none(), "quiet counts from the last alert, not the onset");
        assert!(onsets.observe(2, 7, 2700).is_some(), "another kind");
        assert!(onsets.observe(1, 8, 2700).is_some(), "another entity");
        assert!(onsets.observe(1, 7, 100).is_none(), "an old alert re-sent");
        assert!(onsets.observe(1, 7, 4501).is_some(), "1801 s after the last one");
        onsets.expire(10_000);
        assert!(onsets.last.is_empty());
    }
}
