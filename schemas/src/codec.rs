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

    pub async fn decode(&self, bytes: &[u8]) -> Result<T, DecodeError> {
        let (id, mut datum) = unframe(bytes)?;
        let prepared = match self.cached(id) {
            Some(prepared) => prepared,
            None => self.prepare(id).await?,
        };
        let avro_error = |e: apache_avro::Error| DecodeError::Avro { id, record: T::NAME, reason: e.to_string() };
        let record = match prepared.as_ref() {
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

    fn cached(&self, id: u32) -> Option<Arc<Prepared>> {
        self.prepared.read().expect("decoder cache lock").get(&id).cloned()
    }

    async fn prepare(&self, id: u32) -> Result<Arc<Prepared>, DecodeError> {
        let json =
            self.registry.schema_by_id(id).await.map_err(|e| DecodeError::UnknownSchema { id, reason: e.message })?;
        let writer: &'static Schema = Box::leak(Box::new(Schema::parse_str(&json).map_err(|e| {
            DecodeError::UnknownSchema { id, reason: format!("registry returned an invalid Avro schema: {e}") }
        })?));
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
        let prepared = Arc::new(prepared);
        self.prepared.write().expect("decoder cache lock").insert(id, prepared.clone());
        Ok(prepared)
    }
}
