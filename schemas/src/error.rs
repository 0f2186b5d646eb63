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
    #[error("Avro datum with writer schema id {id} does not decode as {record}: {reason}")]
    Avro { id: u32, record: &'static str, reason: String },
}

/// A failed call to the schema registry, naming the registry's address.
#[derive(Debug, Error)]
#[error("schema registry at {url}: {message}")]
pub struct RegistryError {
    pub url: String,
    pub message: String,
}
