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

/// A failed call to the schema registry, naming the registry's address.
#[derive(Debug, Error)]
#[error("schema registry at {url}: {message}")]
pub struct RegistryError {
    pub url: String,
    pub message: String,
    /// The registry was unreachable, timed out or failed (5xx): the call may succeed later.
    pub transient: bool,
}
