//! Alertmanager's alert fingerprint, so that Quench and Alertmanager show the same id for the same
//! label set: FNV-1a 64 over the label names in sorted order, each name and value followed by a
//! 0xFF separator byte (a byte that cannot occur in UTF-8), printed as 16 lowercase hex digits.

use std::collections::BTreeMap;

use crate::Alert;

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;
const SEPARATOR: u8 = 0xff;

/// The fingerprint of a label set. The map is ordered by name, which is the order the hash needs.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> u64 {
    labels.iter().fold(OFFSET, |hash, (name, value)| {
        let hash = add_byte(add(hash, name.as_bytes()), SEPARATOR);
        add_byte(add(hash, value.as_bytes()), SEPARATOR)
    })
}

/// The alert's fingerprint: the one its sender gave, when that is 16 hex digits (a PagerDuty
/// event keeps one identity across trigger and resolve though their labels differ), otherwise the
/// fingerprint of its labels.
pub fn alert_fingerprint(alert: &Alert) -> u64 {
    alert
        .fingerprint
        .as_deref()
        .filter(|given| given.len() == 16)
        .and_then(|given| u64::from_str_radix(given, 16).ok())
        .unwrap_or_else(|| fingerprint(&alert.labels))
}

/// Plain FNV-1a 64 of a byte stream: for ids and checksums that must be stable across processes
/// and Rust versions, which `std`'s hashers are not.
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(OFFSET, add_byte)
}

/// The fingerprint as Alertmanager prints it.
pub fn fingerprint_hex(labels: &BTreeMap<String, String>) -> String {
    format!("{:016x}", fingerprint(labels))
}

fn add(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().copied().fold(hash, add_byte)
}

fn add_byte(hash: u64, byte: u8) -> u64 {
    (hash ^ u64::from(byte)).wrapping_mul(PRIME)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn empty_label_set_is_the_fnv_offset() {
        assert_eq!(fingerprint(&labels(&[])), OFFSET);
    }

    #[test]
    fn matches_prometheus_common_model_vectors() {
        // Vectors from prometheus/common model/signature_test.go (TestLabelsToSignature /
        // TestFingerprint): the same FNV-1a with 0xFF separators.
        assert_eq!(
            fingerprint(&labels(&[("name", "garland, briggs"), ("fear", "love is not enough")])),
            5_799_056_148_416_392_346
        );
    }

    #[test]
    fn a_given_fingerprint_wins_only_when_well_formed() {
        let mut alert: Alert = serde_json::from_value(serde_json::json!({
            "source": "t", "status": "firing", "labels": {"a": "b"}, "annotations": {}, "starts_at": 0,
            "ends_at": null, "received_at": 0, "generator_url": null, "fingerprint": null, "tenant": "t"
        }))
        .unwrap();
        let own = fingerprint(&alert.labels);
        assert_eq!(alert_fingerprint(&alert), own);
        alert.fingerprint = Some("00000000000000ff".into());
        assert_eq!(alert_fingerprint(&alert), 255);
        alert.fingerprint = Some("not-a-fingerprint".into());
        assert_eq!(alert_fingerprint(&alert), own);
    }

    #[test]
    fn value_boundaries_are_not_ambiguous() {
        assert_ne!(fingerprint(&labels(&[("a", "bc")])), fingerprint(&labels(&[("ab", "c")])));
        assert_eq!(fingerprint_hex(&labels(&[("a", "b")])).len(), 16);
    }
}
