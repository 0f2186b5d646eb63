//! On-call schedules: layers of rotations that hand off at a local time in the schedule's
//! timezone (so a 09:00 handoff stays 09:00 across daylight-saving changes), where a higher layer
//! wins while it covers the moment, and overrides win over every layer.

use jiff::{
    civil::{Date, Time},
    tz::TimeZone,
    Timestamp,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// IANA name, for example `Europe/Paris`.
    pub timezone: String,
    /// Later layers take precedence where they are active.
    pub layers: Vec<Layer>,
    #[serde(default)]
    pub overrides: Vec<Override>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// In rotation order; the first is on call from `start` at `handoff`.
    pub users: Vec<String>,
    pub start: Date,
    /// Local time of day of every handoff, `09:00`.
    pub handoff: Time,
    /// Days each person is on call: 1 daily, 7 weekly.
    #[serde(default = "weekly")]
    pub rotation_days: i32,
    /// When set, the layer covers only this local time window each day (for example business
    /// hours on top of a 24/7 layer); the window may cross midnight.
    #[serde(default)]
    pub active: Option<Window>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub from: Time,
    pub to: Time,
}

/// `user` is on call from `from` to `to` (RFC 3339 instants), whatever the layers say.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    pub user: String,
    pub from: Timestamp,
    pub to: Timestamp,
}

fn weekly() -> i32 {
    7
}

impl Schedule {
    /// Who is on call at `at`, if anyone.
    pub fn on_call(&self, at: Timestamp) -> Option<&str> {
        if let Some(o) = self.overrides.iter().rev().find(|o| o.from <= at && at < o.to) {
            return Some(&o.user);
        }
        let tz = TimeZone::get(&self.timezone).ok()?;
        let local = at.to_zoned(tz).datetime();
        self.layers.iter().rev().find_map(|layer| layer.on_call(local.date(), local.time()))
    }

    /// Checks the timezone, the layers and that every user exists (`known`). Errors name the
    /// field under the schedule's key.
    pub fn validate(&self, known: impl Fn(&str) -> bool) -> Result<(), (String, String)> {
        TimeZone::get(&self.timezone)
            .map_err(|e| ("timezone".to_string(), format!("`{}` is not an IANA timezone: {e}", self.timezone)))?;
        if self.layers.is_empty() {
            return Err(("layers".into(), "needs at least one layer".into()));
        }
        for (i, layer) in self.layers.iter().enumerate() {
            if layer.users.is_empty() {
                return Err((format!("layers[{i}].users"), "needs at least one user".into()));
            }
            if layer.rotation_days < 1 {
                return Err((format!("layers[{i}].rotation_days"), "must be at least 1".into()));
            }
            if let Some(user) = layer.users.iter().find(|u| !known(u)) {
                return Err((format!("layers[{i}].users"), format!("no user `{user}` under [notify.users]")));
            }
        }
        for (i, o) in self.overrides.iter().enumerate() {
            if !known(&o.user) {
                return Err((format!("overrides[{i}].user"), format!("no user `{}` under [notify.users]", o.user)));
            }
            if o.to <= o.from {
                return Err((format!("overrides[{i}].to"), "must be after `from`".into()));
            }
        }
        Ok(())
    }
}

impl Layer {
    fn on_call(&self, date: Date, time: Time) -> Option<&str> {
        if let Some(window) = &self.active {
            let inside = if window.from <= window.to {
                window.from <= time && time < window.to
            } else {
                time >= window.from || time < window.to
            };
            if !inside {
                return None;
            }
        }
        // Whole local days since the first handoff: the day before until today's handoff.
        let mut days = i64::from(self.start.until(date).ok()?.get_days());
        if time < self.handoff {
            days -= 1;
        }
        if days < 0 {
            return None;
        }
        let turn = days / i64::from(self.rotation_days);
        let index = usize::try_from(turn % self.users.len() as i64).ok()?;
        Some(&self.users[index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Schedule {
        toml_schedule(
            r#"
            timezone = "Europe/Paris"
            [[layers]]
            users = ["alice", "bob", "carol"]
            start = "2026-03-23"
            handoff = "09:00"
            rotation_days = 7
            [[layers]]
            users = ["dave"]
            start = "2026-01-01"
            handoff = "00:00"
            rotation_days = 1
            active = { from = "22:00", to = "06:00" }
            [[overrides]]
            user = "erin"
            from = "2026-04-01T10:00:00Z"
            to = "2026-04-01T12:00:00Z"
            "#,
        )
    }

    fn toml_schedule(text: &str) -> Schedule {
        toml::from_str(text).unwrap()
    }

    fn at(instant: &str) -> Timestamp {
        instant.parse().unwrap()
    }

    #[test]
    fn weekly_rotation_hands_off_at_local_time_across_daylight_saving() {
        let s = schedule();
        // Paris is UTC+1 until 2026-03-29, UTC+2 after: the 09:00 handoff moves in UTC.
        assert_eq!(s.on_call(at("2026-03-23T07:59:00Z")), None, "before the first handoff (08:00Z)");
        assert_eq!(s.on_call(at("2026-03-23T08:00:00Z")), Some("alice"));
        assert_eq!(s.on_call(at("2026-03-30T06:59:00Z")), Some("alice"), "08:59 CEST");
        assert_eq!(s.on_call(at("2026-03-30T07:00:00Z")), Some("bob"), "09:00 CEST");
        assert_eq!(s.on_call(at("2026-04-06T07:00:00Z")), Some("carol"));
        assert_eq!(s.on_call(at("2026-04-13T07:00:00Z")), Some("alice"), "the rotation wraps");
    }

    #[test]
    fn higher_layers_cover_their_window_and_overrides_win() {
        let s = schedule();
        assert_eq!(s.on_call(at("2026-03-31T20:30:00Z")), Some("dave"), "22:30 CEST, night layer");
        assert_eq!(s.on_call(at("2026-03-31T03:59:00Z")), Some("dave"), "05:59 CEST, window crosses midnight");
        assert_eq!(s.on_call(at("2026-03-31T04:00:00Z")), Some("bob"), "06:00 CEST, back to the base layer");
        assert_eq!(s.on_call(at("2026-04-01T11:00:00Z")), Some("erin"));
        assert_eq!(s.on_call(at("2026-04-01T12:00:00Z")), Some("bob"), "the override ended");
    }

    #[test]
    fn unknown_users_and_timezones_are_named() {
        let s = schedule();
        assert_eq!(s.validate(|u| u != "carol").unwrap_err().0, "layers[0].users");
        assert_eq!(s.validate(|u| u != "erin").unwrap_err().0, "overrides[0].user");
        let mut bad = schedule();
        bad.timezone = "Mars/Olympus".into();
        assert_eq!(bad.validate(|_| true).unwrap_err().0, "timezone");
        assert!(schedule().validate(|_| true).is_ok());
    }
}
