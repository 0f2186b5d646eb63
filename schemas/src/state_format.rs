//! Format numbers of the state records Quench keeps in its compacted topics (the worker's
//! changelog groups, the notifier's escalation and pending records). A number is raised when a
//! record changes in a way an older reader would get wrong: a field it would drop when it writes
//! the record again, a value it cannot read. Readers refuse a record of a later format, naming it,
//! rather than lose what they do not know; records written before formats were numbered are
//! format 1.

use serde::Deserialize;

/// The format of records without a number.
pub fn first() -> u32 {
    1
}

#[derive(Deserialize)]
struct Numbered {
    #[serde(default = "first")]
    format: u32,
}

/// Checks, before reading the rest of it, that the JSON record `value` is of a format up to
/// `known`; the error names the record (`what`) and both formats.
pub fn check(value: &[u8], known: u32, what: &str) -> Result<(), String> {
    let Numbered { format } = serde_json::from_slice(value).map_err(|e| format!("{what}: {e}"))?;
    if format > known {
        return Err(format!(
            "{what} is in format {format}, written by a newer Quench; this version reads formats up to {known}: \
             finish the upgrade (or roll back the processes that wrote it)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_up_to_the_known_format_pass_and_later_ones_are_refused_by_name() {
        assert!(check(br#"{"a": 1}"#, 1, "record x").is_ok(), "unnumbered: format 1");
        assert!(check(br#"{"format": 1, "a": 1}"#, 1, "record x").is_ok());
        let refused = check(br#"{"format": 2, "a": {"new": true}}"#, 1, "record x").unwrap_err();
        assert!(refused.starts_with("record x is in format 2") && refused.contains("up to 1"), "{refused}");
        assert!(check(b"not json", 1, "record x").unwrap_err().starts_with("record x: "));
    }
}
