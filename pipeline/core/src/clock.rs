//! Per-partition event time. A partition's watermark is its newest event time minus the allowed
//! lateness; while the partition receives nothing for `idle_timeout`, its event time advances with
//! the wall clock, so that an idle partition still flushes its windows instead of stalling them.
//! A partition counts as idle only once the consumer has run dry since its last record: a
//! partition that is merely waiting its turn behind a backlog must not have its time run ahead.
//! The wall clock is an argument (`wall`), so tests give the time instead of sleeping.

use std::time::{Duration, Instant};

pub struct Clock {
    newest_event: Option<i64>,
    last_record: Instant,
    /// The consumer had nothing more to give since this partition's last record.
    caught_up: bool,
    lateness: i64,
    idle_timeout: Duration,
}

impl Clock {
    pub fn new(newest_event: Option<i64>, lateness: Duration, idle_timeout: Duration, wall: Instant) -> Self {
        Self {
            newest_event,
            last_record: wall,
            caught_up: false,
            lateness: i64::try_from(lateness.as_millis()).unwrap_or(i64::MAX),
            idle_timeout,
        }
    }

    /// Records an event; returns true when it is late (older than the current watermark).
    pub fn observe(&mut self, event_time: i64, wall: Instant) -> bool {
        let late = self.watermark(wall).is_some_and(|w| event_time < w);
        self.newest_event = Some(self.newest_event.map_or(event_time, |n| n.max(event_time)));
        self.last_record = wall;
        self.caught_up = false;
        late
    }

    /// The consumer returned nothing: every record fetched so far has been seen.
    pub fn caught_up(&mut self) {
        self.caught_up = true;
    }

    /// The event time up to which windows may flush; None before the first event.
    pub fn watermark(&self, wall: Instant) -> Option<i64> {
        let idle = wall.saturating_duration_since(self.last_record);
        let advance =
            if self.caught_up && idle >= self.idle_timeout { i64::try_from(idle.as_millis()).unwrap_or(0) } else { 0 };
        self.newest_event.map(|n| n.saturating_add(advance).saturating_sub(self.lateness))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_trails_newest_event_by_lateness_and_flags_late_events() {
        let wall = Instant::now();
        let mut clock = Clock::new(None, Duration::from_secs(5), Duration::from_secs(3600), wall);
        assert_eq!(clock.watermark(wall), None);
        assert!(!clock.observe(100_000, wall));
        assert_eq!(clock.watermark(wall), Some(95_000));
        assert!(!clock.observe(99_000, wall), "within allowed lateness");
        assert!(clock.observe(90_000, wall), "behind the watermark");
        assert_eq!(clock.watermark(wall), Some(95_000), "late events do not move time back");
    }

    #[test]
    fn an_idle_partition_advances_with_the_wall_clock_once_caught_up() {
        let start = Instant::now();
        let mut clock = Clock::new(Some(100_000), Duration::ZERO, Duration::from_millis(10), start);
        let later = start + Duration::from_millis(20);
        assert_eq!(clock.watermark(later), Some(100_000), "records may still be waiting behind a backlog");
        clock.caught_up();
        assert_eq!(clock.watermark(start + Duration::from_millis(5)), Some(100_000), "not idle for long enough");
        assert_eq!(clock.watermark(later), Some(100_020));
        clock.observe(100_001, later);
        assert_eq!(clock.watermark(later), Some(100_001), "a new record ends the idle period");
    }
}
