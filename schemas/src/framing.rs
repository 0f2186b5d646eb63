//! The Confluent wire format: `[0x00][schema id: u32 big-endian][Avro binary datum]`.

use crate::error::DecodeError;

pub const MAGIC_BYTE: u8 = 0;
const HEADER_LEN: usize = 5;

/// Prefixes an Avro datum with the Confluent header for `schema_id`.
pub fn frame(schema_id: u32, datum: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + datum.len());
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(datum);
    out
}

/// Splits a Confluent-framed record into its schema id and Avro datum.
pub fn unframe(bytes: &[u8]) -> Result<(u32, &[u8]), DecodeError> {
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::Truncated { len: bytes.len() });
    }
    if bytes[0] != MAGIC_BYTE {
        return Err(DecodeError::BadMagic { found: bytes[0] });
    }
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Ok((id, &bytes[HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_then_unframe_returns_id_and_datum() {
        let framed = frame(0x0102_0304, b"datum");
        assert_eq!(&framed[..5], &[0, 1, 2, 3, 4]);
        assert_eq!(unframe(&framed).unwrap(), (0x0102_0304, &b"datum"[..]));
    }

    #[test]
    fn short_and_unframed_bytes_are_rejected_with_a_reason() {
        assert!(matches!(unframe(&[0, 0, 1]), Err(DecodeError::Truncated { len: 3 })));
        assert!(matches!(unframe(b"{\"json\": 1}"), Err(DecodeError::BadMagic { found: b'{' })));
    }
}
