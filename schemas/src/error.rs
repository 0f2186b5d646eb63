use quench_secret::mask_url_password;
use thiserror::Error;

/// Why a Kafka record could not be decoded. The worker writes `to_string()` into the DLQ's reason
/// header, so each message says what was wrong with the bytes.
#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("record of {len} bytes is too short for the Confluent wire format (5-byte header)")]
    Truncated { len: usize },
    #[error("record does not start with the Confluent magic byte 0 (found {found:#04x}); not Confluent-framed Avro")]
    BadMagic { found: u8 },
    #[error("schema id {id} is unknown to the schema registry: {reason}")]
    UnknownSchema { id: u32, reason: String },
    /// The registry did not answer (or answered 5xx) while the record's writer schema was
    /// fetched: nothing is wrong with the record, which must be retried, never dead-lettered.
    #[error("schema id {id} could not be fetched, the schema registry is unavailable: {reason}")]
    RegistryUnavailable { id: u32, reason: String },
    #[error("Avro datum with writer schema id {id} does not decode as {record}: {reason}")]
    Avro { id: u32, record: &'static str, reason: String },
}

impl DecodeError {
    /// Whether another attempt later may decode the record (a dependency failed, not the bytes).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::RegistryUnavailable { .. })
    }
}

/// A failed call to the schema registry, naming the registry's address (its password masked,
/// in the message too: the registry client's own errors may quote the URL).
#[derive(Debug, Error)]
#[error("schema registry at {}: {}", mask_url_password(.url), .message.replace(.url.as_str(), &mask_url_password(.url)))]
pub struct RegistryError {
    pub url: String,
    pub message: String,
    /// The registry was unreachable, timed out or failed (5xx): the call may succeed later.
    pub transient: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_error_masks_the_password_of_its_url_wherever_it_appears() {
        let url = "https://quench:reg-pass-7@registry:8081/apis/ccompat/v7";
        let error = RegistryError {
            url: url.into(),
            message: format!("error sending request for url ({url})"),
            transient: true,
        };
        let text = error.to_string();
        assert!(!text.contains("reg-pass-7"), "{text}");
        assert!(text.contains("https://quench:<redacted>@registry:8081"), "{text}");
    }
}
