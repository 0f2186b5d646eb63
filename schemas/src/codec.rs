//! Encoding and decoding of Quench's records in Confluent framing.
//!
//! The hot path never parses a schema: the encoder serialises straight into the output buffer with
//! the schema compiled into the binary, and the decoder keeps one prepared reader per writer schema
//! id. When the writer schema is the reader's own (the common case), records deserialise directly;
//! otherwise they go through Avro schema resolution, so older and newer writers stay readable.

use std::{
    collections::HashMap,
    marker::PhantomData,
    sync::{Arc, RwLock},
};

use apache_avro::{from_value, reader::datum::GenericDatumReader, writer::datum::GenericDatumWriter, Schema};

use crate::{
    error::{DecodeError, RegistryError},
    framing::{frame, unframe},
    record::Record,
    registry::Registry,
};

/// Encodes `T` under the schema id the registry assigned to it.
pub struct Encoder<T: Record> {
    schema_id: u32,
    writer: GenericDatumWriter<'static>,
    _record: PhantomData<fn(&T)>,
}

impl<T: Record> Encoder<T> {
    /// An encoder for an id obtained elsewhere (for example from [`Registry::register`]).
    pub fn new(schema_id: u32) -> Self {
        let writer = GenericDatumWriter::builder(T::schema()).build().expect("a parsed schema always resolves");
        Self { schema_id, writer, _record: PhantomData }
    }

    /// Registers `T`'s schema for `topic`'s values and returns an encoder for it.
    pub async fn register(registry: &Registry, topic: &str) -> Result<Self, RegistryError> {
        let id = registry.register::<T>(&Registry::value_subject(topic)).await?;
        Ok(Self::new(id))
    }

    pub fn schema_id(&self) -> u32 {
        self.schema_id
    }

    /// The record in Confluent framing.
    pub fn encode(&self, record: &T) -> Result<Vec<u8>, apache_avro::Error> {
        let mut out = frame(self.schema_id, &[]);
        self.writer.write_ser(&mut out, record)?;
        Ok(out)
    }
}

/// A prepared reader for one writer schema. Schemas are leaked on purpose: there are a handful per
/// process (one per registered schema version), and `'static` lets readers be shared without
/// self-referential structs.
enum Prepared {
    /// The writer schema is the reader's own: deserialise straight from the bytes.
    Direct(GenericDatumReader<'static>),
    /// A different version: decode with the writer schema, resolve to the reader schema.
    Resolving(GenericDatumReader<'static>),
}

/// How long a decoder waits for an unavailable registry before giving up on a record (which is
/// then retried by its process, never dead-lettered): below Kafka's default
/// `max.poll.interval.ms` of 5 minutes, so that the consumer keeps its partitions meanwhile.
const REGISTRY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

/// Decodes Confluent-framed records into `T`, fetching unknown writer schemas from the registry once.
pub struct Decoder<T: Record> {
    registry: Registry,
    prepared: RwLock<HashMap<u32, Arc<Prepared>>>,
    _record: PhantomData<fn() -> T>,
}

impl<T: Record> Decoder<T> {
    pub fn new(registry: Registry) -> Self {
        Self { registry, prepared: RwLock::new(HashMap::new()), _record: PhantomData }
    }

    /// Decodes a record, fetching its writer schema from the registry the first time its id is seen.
    /// A registry that does not answer is asked again, with backoff, for up to `REGISTRY_PATIENCE`;
    /// then the error is [`DecodeError::RegistryUnavailable`], which callers retry, never
    /// dead-letter.
    pub async fn decode(&self, bytes: &[u8]) -> Result<T, DecodeError> {
        if let Some(decoded) = self.try_decode(bytes) {
            return decoded;
        }
        let (id, _) = unframe(bytes)?;
        let started = std::time::Instant::now();
        let mut backoff = std::time::Duration::from_millis(200);
        let json = loop {
            match self.registry.schema_by_id(id).await {
                Ok(json) => break json,
                Err(e) if e.transient && started.elapsed() + backoff < REGISTRY_PATIENCE => {
                    tracing::warn!(id, error = %e, "schema registry unavailable; asking again");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
                }
                Err(e) if e.transient => return Err(DecodeError::RegistryUnavailable { id, reason: e.message }),
                Err(e) => return Err(DecodeError::UnknownSchema { id, reason: e.message }),
            }
        };
        self.insert_writer_schema(id, &json)?;
        self.try_decode(bytes).expect("the writer schema was just prepared")
    }

    /// Whether decoding `bytes` needs no registry call (its writer schema is prepared, or it is
    /// not framed at all).
    pub fn knows(&self, bytes: &[u8]) -> bool {
        unframe(bytes).map_or(true, |(id, _)| self.prepared.read().expect("decoder cache lock").contains_key(&id))
    }

    /// Decodes without any I/O; `None` when the record's writer schema is not prepared yet. The
    /// hot path of the worker, which only falls back to [`Decoder::decode`] on a new schema id.
    pub fn try_decode(&self, bytes: &[u8]) -> Option<Result<T, DecodeError>> {
        let (id, datum) = match unframe(bytes) {
            Ok(framed) => framed,
            Err(e) => return Some(Err(e)),
        };
        let prepared = self.prepared.read().expect("decoder cache lock").get(&id).cloned()?;
        Some(Self::read(&prepared, id, datum))
    }

    fn read(prepared: &Prepared, id: u32, mut datum: &[u8]) -> Result<T, DecodeError> {
        let avro_error = |e: apache_avro::Error| DecodeError::Avro { id, record: T::NAME, reason: e.to_string() };
        let record = match prepared {
            Prepared::Direct(reader) => reader.read_deser(&mut datum).map_err(avro_error)?,
            Prepared::Resolving(reader) => {
                from_value(&reader.read_value(&mut datum).map_err(avro_error)?).map_err(avro_error)?
            }
        };
        if !datum.is_empty() {
            return Err(DecodeError::Avro {
                id,
                record: T::NAME,
                reason: format!("{} trailing bytes after the datum", datum.len()),
            });
        }
        Ok(record)
    }

    /// Prepares a reader for the writer schema registered under `id`.
    pub fn insert_writer_schema(&self, id: u32, json: &str) -> Result<(), DecodeError> {
        let writer: &'static Schema = Box::leak(Box::new(
            Schema::parse_str(json)
                .map_err(|e| DecodeError::UnknownSchema { id, reason: format!("not a valid Avro schema: {e}") })?,
        ));
        let incompatible = |e: apache_avro::Error| DecodeError::UnknownSchema {
            id,
            reason: format!("writer schema cannot be read as {}: {e}", T::NAME),
        };
        let prepared = if writer.canonical_form() == T::schema().canonical_form() {
            Prepared::Direct(GenericDatumReader::builder(writer).build().map_err(incompatible)?)
        } else {
            Prepared::Resolving(
                GenericDatumReader::builder(writer).reader_schema(T::schema()).build().map_err(incompatible)?,
            )
        };
        self.prepared.write().expect("decoder cache lock").insert(id, Arc::new(prepared));
        Ok(())
    }
}
