//! Quench's holds on a route, beyond Alertmanager: flap suppression and the transient pause. Off
//! unless a route turns them on (inherited by its children), so that an Alertmanager file's
//! notifications stay exactly Alertmanager's until its owner opts in.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a route holds back, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Holds {
    /// An alert that changes between firing and resolved this many times within `flap_window`
    /// is flapping (0: flap suppression off). Its group's notifications wait until no alert of
    /// the group has changed for `flap_stable`; then one notification says how often they did.
    pub flap_changes: u16,
    pub flap_window: Duration,
    pub flap_stable: Duration,
    /// A group whose alerts are all of transient kinds (that usually resolve by themselves)
    /// waits this long beyond `group_wait` before it is announced; if everything resolved by
    /// then, its incident is recorded as transient and never announced (zero: off).
    pub transient_pause: Duration,
}

impl Holds {
    /// Whether an alert whose last state changes were at `changes` (oldest first) flaps at `now`:
    /// its last `flap_changes` fell within `flap_window` of each other, and it has not been stable
    /// since. The span is measured between the changes, not up to `now`, because a group is
    /// only evaluated at its flushes, which may be further apart than the window.
    pub fn flapping(&self, changes: &[i64], now: i64) -> bool {
        let needed = usize::from(self.flap_changes);
        let Some((&last, _)) = changes.split_last() else { return false };
        needed > 0
            && changes.len() >= needed
            && last.saturating_sub(changes[changes.len() - needed]) <= ms(self.flap_window)
            && !self.stable(last, now)
    }

    /// Change times an alert must keep to tell: the last `flap_changes`.
    pub fn kept_changes(&self) -> usize {
        usize::from(self.flap_changes)
    }

    /// Whether a group flapping since its last change at `last_change` is stable at `now`.
    pub fn stable(&self, last_change: i64, now: i64) -> bool {
        now.saturating_sub(last_change) >= ms(self.flap_stable)
    }

    pub fn transient_pause_ms(&self) -> i64 {
        ms(self.transient_pause)
    }

    /// Checks a route's holds; `position` names it in the error.
    pub fn check(&self, position: &str) -> Result<(), String> {
        if self.flap_changes == 1 {
            return Err(format!("route {position}: flap_changes must be 0 (off) or at least 2"));
        }
        if self.flap_changes > 0 && (self.flap_window.is_zero() || self.flap_stable.is_zero()) {
            return Err(format!("route {position}: flap_changes needs flap_window and flap_stable above 0"));
        }
        Ok(())
    }
}

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_flaps_when_its_last_changes_fall_within_the_window() {
        let holds = Holds {
            flap_changes: 3,
            flap_window: Duration::from_secs(60),
            flap_stable: Duration::from_secs(120),
            ..Holds::default()
        };
        assert!(!holds.flapping(&[0, 10_000], 20_000), "two changes are not three");
        assert!(holds.flapping(&[0, 10_000, 50_000], 60_000));
        assert!(holds.flapping(&[0, 10_000, 50_000], 169_999), "a flush long after still sees the burst");
        assert!(!holds.flapping(&[0, 10_000, 50_000], 170_000), "stable since its last change");
        assert!(!holds.flapping(&[0, 10_000, 60_001], 70_000), "three changes over more than the window");
        assert!(!Holds::default().flapping(&[0, 1, 2, 3], 4), "off by default");
        assert!(holds.stable(0, 120_000) && !holds.stable(0, 119_999));
        assert!(Holds { flap_changes: 1, ..holds }.check("0").unwrap_err().contains("at least 2"));
    }
}
