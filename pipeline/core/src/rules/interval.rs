//! Alertmanager's time intervals: named sets of times of day, weekdays, days of the month,
//! months and years in an IANA time zone, which mute a route's notifications
//! (`mute_time_intervals`) or let them through only while active (`active_time_intervals`).
//! Evaluated on the wall-clock time in the interval's zone, so a daylight-saving change moves
//! nothing: 09:00 stays 09:00 local.

use jiff::{tz::TimeZone, Timestamp};
use serde::Deserialize;

/// One named interval: it holds when any of its parts holds.
#[derive(Debug, Clone)]
pub struct TimeInterval {
    parts: Vec<Part>,
}

/// All its given fields must hold; a field not given holds always.
#[derive(Debug, Clone)]
struct Part {
    /// Minutes of the day, start inclusive, end exclusive.
    times: Vec<(u32, u32)>,
    /// Inclusive ranges, Sunday = 0 … Saturday = 6, as Alertmanager numbers them (so that
    /// `sunday:saturday` is the whole week and `monday:sunday` is refused, as there).
    weekdays: Vec<(i8, i8)>,
    /// Inclusive ranges; negative counts from the month's end (-1 is its last day).
    days_of_month: Vec<(i32, i32)>,
    months: Vec<(i8, i8)>,
    years: Vec<(i16, i16)>,
    zone: TimeZone,
}

/// `time_intervals[].time_intervals[]` as Alertmanager's file has it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct PartSpec {
    times: Vec<TimesSpec>,
    weekdays: Vec<String>,
    days_of_month: Vec<String>,
    months: Vec<String>,
    years: Vec<String>,
    location: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimesSpec {
    start_time: String,
    end_time: String,
}

const WEEKDAYS: [&str; 7] = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];
/// Month names, January first (time intervals here, time ranges of questions elsewhere).
pub const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

impl TimeInterval {
    pub(super) fn parse(parts: Vec<PartSpec>) -> Result<Self, String> {
        let parts = parts.into_iter().map(Part::parse).collect::<Result<_, _>>()?;
        Ok(Self { parts })
    }

    /// Whether the interval holds at `at` (epoch ms).
    pub fn contains(&self, at: i64) -> bool {
        let Ok(at) = Timestamp::from_millisecond(at) else { return false };
        self.parts.iter().any(|part| part.contains(at))
    }
}

impl Part {
    fn parse(spec: PartSpec) -> Result<Self, String> {
        let times = spec
            .times
            .iter()
            .map(|t| {
                let (start, end) = (minutes(&t.start_time)?, minutes(&t.end_time)?);
                if start >= end {
                    return Err(format!("times: start_time {} is not before end_time {}", t.start_time, t.end_time));
                }
                Ok((start, end))
            })
            .collect::<Result<_, String>>()?;
        let weekdays = ranges(&spec.weekdays, "weekdays", |s| named(s, &WEEKDAYS, false).map(|d| d - 1))?;
        let days_of_month = ranges(&spec.days_of_month, "days_of_month", |s| {
            let day: i32 = s.parse().map_err(|_| format!("`{s}` is not a day of the month"))?;
            if day == 0 || !(-31..=31).contains(&day) {
                return Err(format!("day of the month {day} is out of range (1 to 31, or -31 to -1)"));
            }
            Ok(day)
        })?;
        let months = ranges(&spec.months, "months", |s| named(s, &MONTHS, true))?;
        let years = ranges(&spec.years, "years", |s| s.parse::<i16>().map_err(|_| format!("`{s}` is not a year")))?;
        let zone = match spec.location.as_deref() {
            None | Some("" | "UTC") => TimeZone::UTC,
            Some("Local") => TimeZone::system(),
            Some(name) => TimeZone::get(name).map_err(|e| format!("location `{name}`: {e}"))?,
        };
        Ok(Self { times, weekdays, days_of_month, months, years, zone })
    }

    fn contains(&self, at: Timestamp) -> bool {
        let local = at.to_zoned(self.zone.clone());
        let minute = u32::from(local.hour() as u8) * 60 + u32::from(local.minute() as u8);
        let weekday = local.weekday().to_sunday_zero_offset();
        let day = i32::from(local.day());
        let last = i32::from(local.days_in_month());
        let within = |ranges: &[(i32, i32)], value: i32| {
            ranges.is_empty() || ranges.iter().any(|(a, b)| (*a..=*b).contains(&value))
        };
        let from_end = |d: i32| if d < 0 { last + 1 + d } else { d };
        (self.times.is_empty() || self.times.iter().any(|(start, end)| (*start..*end).contains(&minute)))
            && within(&widen(&self.weekdays), i32::from(weekday))
            && (self.days_of_month.is_empty()
                || self
                    .days_of_month
                    .iter()
                    .any(|(a, b)| (from_end(*a).max(1)..=from_end(*b).min(last)).contains(&day)))
            && within(&widen(&self.months), i32::from(local.month()))
            && within(&widen(&self.years), i32::from(local.year()))
    }
}

fn widen<T: Copy + Into<i32>>(ranges: &[(T, T)]) -> Vec<(i32, i32)> {
    ranges.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect()
}

/// `HH:MM` (two digits each), 00:00 to 24:00.
fn minutes(text: &str) -> Result<u32, String> {
    let bad = || format!("`{text}` is not a time of day HH:MM");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m > 59 || h > 24 || (h == 24 && m > 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// A weekday or month by name (any case), or by number when `numbers` (months: 1–12); 1-based.
fn named(text: &str, names: &[&str], numbers: bool) -> Result<i8, String> {
    let lower = text.trim().to_lowercase();
    if let Some(i) = names.iter().position(|n| *n == lower) {
        return Ok(i as i8 + 1);
    }
    match lower.parse::<i8>() {
        Ok(n) if numbers && (1..=names.len() as i8).contains(&n) => Ok(n),
        _ => Err(format!("`{text}` is not one of {}", names.join(", "))),
    }
}

/// `a` or `a:b` (inclusive), each bound read by `one`.
fn ranges<T: PartialOrd + Copy + Into<i32>>(
    items: &[String],
    field: &str,
    one: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<(T, T)>, String> {
    items
        .iter()
        .map(|item| {
            let (a, b) = match item.split_once(':') {
                Some((a, b)) => (one(a.trim())?, one(b.trim())?),
                None => (one(item.trim())?, one(item.trim())?),
            };
            // Negative days count from the end: -3:-1 is in order, 1:-1 (whole month) too, as
            // long as it is in order in the shortest month (28 days); -3:5 is refused, as in
            // Alertmanager.
            let (from, to) = (a.into(), b.into());
            let in_short_month = |d: i32| if d < 0 { 29 + d } else { d };
            let ordered = match (from < 0, to < 0) {
                (true, false) => false,
                (false, true) => in_short_month(from) <= in_short_month(to),
                _ => from <= to,
            };
            if !ordered {
                return Err(format!("{field}: `{item}` ends before it starts"));
            }
            Ok((a, b))
        })
        .collect::<Result<_, String>>()
        .map_err(|e| format!("{field}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(yaml: &str) -> TimeInterval {
        TimeInterval::parse(serde_yaml::from_str(yaml).unwrap()).unwrap()
    }

    fn at(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn office_hours_in_a_zone_keep_local_time_across_daylight_saving() {
        let office = interval(
            "[{times: [{start_time: '09:00', end_time: '17:00'}], weekdays: ['monday:friday'], location: Europe/Paris}]",
        );
        // Friday 2026-03-27, winter time (UTC+1): 09:00 Paris is 08:00 UTC.
        assert!(!office.contains(at("2026-03-27T07:59:00Z")));
        assert!(office.contains(at("2026-03-27T08:00:00Z")));
        // Monday 2026-03-30, summer time (UTC+2): 09:00 Paris is 07:00 UTC.
        assert!(office.contains(at("2026-03-30T07:00:00Z")));
        assert!(!office.contains(at("2026-03-30T15:00:00Z")), "17:00 local, the end is exclusive");
        assert!(!office.contains(at("2026-03-28T10:00:00Z")), "Saturday");
    }

    #[test]
    fn days_of_month_count_from_the_end_and_months_and_years_take_names_and_numbers() {
        let month_end = interval("[{days_of_month: ['-2:-1'], months: ['february', '12'], years: ['2026:2027']}]");
        assert!(month_end.contains(at("2026-02-27T12:00:00Z")), "28 days: the 27th is second to last");
        assert!(!month_end.contains(at("2026-02-26T12:00:00Z")));
        assert!(month_end.contains(at("2027-12-31T00:00:00Z")));
        assert!(!month_end.contains(at("2028-12-31T00:00:00Z")), "not in the years");
        assert!(!month_end.contains(at("2026-03-31T00:00:00Z")), "not in the months");
    }

    #[test]
    fn any_part_suffices_and_an_empty_part_always_holds() {
        let either = interval("[{weekdays: [saturday]}, {weekdays: [sunday]}]");
        assert!(either.contains(at("2026-11-29T10:00:00Z")), "a Sunday");
        assert!(!either.contains(at("2026-11-30T10:00:00Z")), "a Monday");
        assert!(interval("[{}]").contains(at("2026-11-30T10:00:00Z")));
        let week = interval("[{weekdays: ['sunday:saturday'], location: ''}]");
        assert!(
            week.contains(at("2026-11-29T10:00:00Z")) && week.contains(at("2026-11-28T10:00:00Z")),
            "the whole week"
        );
    }

    #[test]
    fn mistakes_are_refused_with_the_field() {
        for (yaml, expected) in [
            ("[{times: [{start_time: '17:00', end_time: '09:00'}]}]", "is not before"),
            ("[{weekdays: ['funday']}]", "weekdays: `funday`"),
            ("[{days_of_month: ['0']}]", "days_of_month"),
            ("[{months: ['13']}]", "months"),
            ("[{location: Mars/Olympus}]", "location `Mars/Olympus`"),
            ("[{weekdays: ['friday:monday']}]", "ends before it starts"),
            ("[{weekdays: ['monday:sunday']}]", "ends before it starts"),
            ("[{days_of_month: ['-3:5']}]", "ends before it starts"),
            ("[{days_of_month: ['28:-3']}]", "ends before it starts"),
            ("[{times: [{start_time: '9:00', end_time: '17:00'}]}]", "HH:MM"),
        ] {
            let e = TimeInterval::parse(serde_yaml::from_str(yaml).unwrap()).unwrap_err();
            assert!(e.contains(expected), "{yaml}: {e}");
        }
    }
}
