use apache_avro::Schema;
use serde::{de::DeserializeOwned, Serialize};

/// A Rust type that is the reader view of one of Quench's Avro schemas.
pub trait Record: Serialize + DeserializeOwned {
    /// Full Avro name, such as `quench.Alert`.
    const NAME: &'static str;
    /// The schema as written in `schemas/avro/`, as registered in the registry.
    const SCHEMA_JSON: &'static str;
    /// The parsed schema, parsed once per process.
    fn schema() -> &'static Schema;
}

/// Implements [`Record`] for a type from its `.avsc` file, checked when the schema is first used.
macro_rules! avro_record {
    ($ty:ty, $name:literal, $file:literal) => {
        impl $crate::record::Record for $ty {
            const NAME: &'static str = $name;
            const SCHEMA_JSON: &'static str = include_str!(concat!("../avro/", $file));
            fn schema() -> &'static ::apache_avro::Schema {
                static SCHEMA: ::std::sync::LazyLock<::apache_avro::Schema> = ::std::sync::LazyLock::new(|| {
                    $crate::record::parse(<$ty as $crate::record::Record>::SCHEMA_JSON, $file)
                });
                &SCHEMA
            }
        }
    };
}
pub(crate) use avro_record;

pub(crate) fn parse(json: &str, file: &str) -> Schema {
    // The files are compiled in and covered by tests, so a failure here is a build defect.
    Schema::parse_str(json).unwrap_or_else(|e| panic!("schemas/avro/{file} is not a valid Avro schema: {e}"))
}
