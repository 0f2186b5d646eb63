//! Durations as SREs write them in Alertmanager and Prometheus: `30s`, `5m`, `1h30m`, `250ms`.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("`{text}` is not a duration such as 30s, 5m or 1h30m"));
        }
        let number: u64 = rest[..digits].parse().map_err(|_| format!("`{text}`: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let millis = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            unit => return Err(format!("`{text}`: unknown unit `{unit}` (use ms, s, m, h, d, w or y)")),
        };
        total += Duration::from_millis(number.saturating_mul(millis));
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// `#[serde(deserialize_with = "duration::optional")]` for optional duration fields.
pub fn optional<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    Option::<String>::deserialize(deserializer)?.map(|s| parse(&s).map_err(serde::de::Error::custom)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_style_durations() {
        assert_eq!(parse("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5_400));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        assert!(parse("").is_err());
        assert!(parse("5").unwrap_err().contains("unknown unit"));
        assert!(parse("m5").is_err());
        assert!(parse("5 minutes").is_err());
    }
}
