//! Time ranges in questions ("today", "last week", "past 48 hours", "in october"), as UTC
//! millisecond bounds that end at the time the question is asked (see [`super`] for what each
//! means).

use quench_core::rules::MONTHS;
use time::{Date, Month, OffsetDateTime, Time};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// `[start, end)` in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: i64,
    pub end: i64,
}

const NUMBERS: &[(&str, i64)] = &[
    ("one", 1),
    ("two", 2),
    ("three", 3),
    ("four", 4),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
    ("ten", 10),
    ("twelve", 12),
    ("fourteen", 14),
    ("thirty", 30),
];

/// A number written as digits or a word.
pub fn number(word: &str) -> Option<i64> {
    word.parse().ok().or_else(|| NUMBERS.iter().find(|(w, _)| *w == word).map(|(_, n)| *n))
}

/// The range `words` name, and the indexes of the words that name it; `None` without one.
pub fn find(words: &[&str], now: i64) -> Option<(Range, Vec<usize>)> {
    let today = midnight(now);
    for (i, word) in words.iter().enumerate() {
        let next = words.get(i + 1).copied().unwrap_or_default();
        let span = |n: usize| (i..i + n).collect::<Vec<_>>();
        let found = match (*word, next) {
            ("today", _) | ("tonight", _) => Some((Range { start: today, end: now }, span(1))),
            ("yesterday", _) => Some((Range { start: today - DAY, end: today }, span(1))),
            ("this" | "current", "week") => Some((Range { start: monday(now), end: now }, span(2))),
            ("last" | "previous" | "prior", "week") => {
                Some((Range { start: monday(now) - 7 * DAY, end: monday(now) }, span(2)))
            }
            ("this" | "current", "month") => Some((Range { start: first_of_month(now, 0), end: now }, span(2))),
            ("last" | "previous" | "prior", "month") => {
                Some((Range { start: first_of_month(now, 1), end: first_of_month(now, 0) }, span(2)))
            }
            ("past" | "last", "day") => Some((Range { start: now - DAY, end: now }, span(2))),
            ("past", "week") => Some((Range { start: now - 7 * DAY, end: now }, span(2))),
            ("past", "month") => Some((Range { start: now - 30 * DAY, end: now }, span(2))),
            ("last" | "past" | "previous", n) => {
                let unit = words.get(i + 2).copied().unwrap_or_default();
                let back = number(n).zip(unit_ms(unit)).and_then(|(n, ms)| n.checked_mul(ms));
                back.and_then(|back| now.checked_sub(back)).map(|start| (Range { start, end: now }, span(3)))
            }
            ("in" | "during", month) => month_named(month, now).map(|range| (range, span(2))),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
        // "24h", "48h", "7d" after last/past.
        if matches!(*word, "last" | "past") {
            if let Some(range) = compact(next, now) {
                return Some((range, span(2)));
            }
        }
    }
    None
}

fn unit_ms(unit: &str) -> Option<i64> {
    match unit.trim_end_matches('s') {
        "hour" | "hr" | "h" => Some(HOUR),
        "day" | "d" => Some(DAY),
        "week" | "wk" | "w" => Some(7 * DAY),
        "minute" | "min" => Some(HOUR / 60),
        _ => None,
    }
}

/// `24h`, `7d`, `2w`.
fn compact(word: &str, now: i64) -> Option<Range> {
    let split = word.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = word.split_at(split);
    let ms = unit_ms(unit)?;
    let back = n.parse::<i64>().ok()?.checked_mul(ms)?;
    Some(Range { start: now.checked_sub(back)?, end: now })
}

/// "in october": that month of this year, or of last year when it is still to come.
fn month_named(word: &str, now: i64) -> Option<Range> {
    let index = MONTHS.iter().position(|m| *m == word || (word.len() >= 3 && m.starts_with(word) && word != "mar"))?;
    let at = at(now);
    let month = Month::try_from(index as u8 + 1).ok()?;
    let year = if month as u8 > at.month() as u8 { at.year() - 1 } else { at.year() };
    let start = ms(Date::from_calendar_date(year, month, 1).ok()?);
    let next = if month == Month::December {
        Date::from_calendar_date(year + 1, Month::January, 1)
    } else {
        Date::from_calendar_date(year, month.next(), 1)
    };
    Some(Range { start, end: ms(next.ok()?).min(now) })
}

fn at(now: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(now) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn ms(date: Date) -> i64 {
    (date.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn midnight(now: i64) -> i64 {
    ms(at(now).date())
}

fn monday(now: i64) -> i64 {
    midnight(now) - i64::from(at(now).date().weekday().number_days_from_monday()) * DAY
}

/// The first of the month `back` months before now's.
fn first_of_month(now: i64, back: u8) -> i64 {
    let date = at(now).date();
    let (mut year, mut month) = (date.year(), date.month());
    for _ in 0..back {
        if month == Month::January {
            year -= 1;
        }
        month = month.previous();
    }
    Date::from_calendar_date(year, month, 1).map(ms).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ask::{parse_time, time_text};

    fn range(question: &str, now: &str) -> Option<(String, String)> {
        let words: Vec<&str> = question.split(' ').collect();
        find(&words, parse_time(now).unwrap()).map(|(r, _)| (time_text(r.start), time_text(r.end)))
    }

    #[test]
    fn calendar_ranges_end_at_now_and_weeks_start_on_monday() {
        let now = "2026-11-26T15:00:00Z"; // a Thursday
        let r = |q| range(q, now).unwrap();
        assert_eq!(r("incidents this week").0, "2026-11-23 00:00:00.000");
        assert_eq!(r("incidents this week").1, "2026-11-26 15:00:00.000");
        assert_eq!(r("last week"), ("2026-11-16 00:00:00.000".into(), "2026-11-23 00:00:00.000".into()));
        assert_eq!(r("yesterday"), ("2026-11-25 00:00:00.000".into(), "2026-11-26 00:00:00.000".into()));
        assert_eq!(r("today").0, "2026-11-26 00:00:00.000");
        assert_eq!(r("last month"), ("2026-10-01 00:00:00.000".into(), "2026-11-01 00:00:00.000".into()));
        assert_eq!(r("this month").0, "2026-11-01 00:00:00.000");
        assert_eq!(r("in the last 3 days").0, "2026-11-23 15:00:00.000");
        assert_eq!(r("past 48 hours").0, "2026-11-24 15:00:00.000");
        assert_eq!(r("last 24h").0, "2026-11-25 15:00:00.000");
        assert_eq!(r("over the past two weeks").0, "2026-11-12 15:00:00.000");
        assert_eq!(r("in october"), ("2026-10-01 00:00:00.000".into(), "2026-11-01 00:00:00.000".into()));
        assert_eq!(range("last month", "2026-01-10T00:00:00Z").unwrap().0, "2025-12-01 00:00:00.000");
        assert_eq!(range("this week", "2026-11-23T08:00:00Z").unwrap().0, "2026-11-23 00:00:00.000");
        assert_eq!(range("how many incidents", now), None);
        // Absurd spans end somewhere, without overflowing.
        assert!(range("in the last 99999999999999 weeks", now).is_none());
        assert_eq!(range("in the last 9999999 weeks", now).unwrap().0, "1900-01-01 00:00:00.000");
    }
}
