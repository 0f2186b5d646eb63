//! Timestamps as senders write them: RFC 3339 with any offset and up to nanoseconds, as Go's
//! `time.Time` marshals it. Go's zero time (`0001-01-01T00:00:00Z`), which Alertmanager sends for
//! "no end yet", means absent.

use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use super::PayloadError;

/// Milliseconds since the epoch, or `None` for Go's zero time and anything before 1970.
pub fn parse_rfc3339(text: &str, field: &str) -> Result<Option<i64>, PayloadError> {
    let at = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|e| PayloadError::new(field, format!("{text:?} is not an RFC 3339 time: {e}")))?;
    let millis = at.unix_timestamp_nanos() / 1_000_000;
    Ok((millis > 0).then_some(millis as i64))
}

/// An optional time field: absent, empty and Go's zero time all mean "not given".
pub fn optional(text: Option<&str>, field: &str) -> Result<Option<i64>, PayloadError> {
    match text {
        None | Some("") => Ok(None),
        Some(text) => parse_rfc3339(text, field),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_go_times_and_treats_the_zero_time_as_absent() {
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z", "t").unwrap(), Some(1_700_000_000_000));
        assert_eq!(parse_rfc3339("2023-11-14T23:13:20.123456789+01:00", "t").unwrap(), Some(1_700_000_000_123));
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z", "t").unwrap(), None);
        assert_eq!(optional(Some(""), "t").unwrap(), None);
        let e = parse_rfc3339("yesterday", "alerts[0].startsAt").unwrap_err();
        assert_eq!(e.field, "alerts[0].startsAt");
    }
}
