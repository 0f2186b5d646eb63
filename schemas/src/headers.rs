//! The Kafka header names Quench writes and reads: part of the topics' contract, like the
//! schemas, so they are named once here for every producer and consumer.

/// On `incidents` records: the number of the worker partition that holds the incident. The
/// acknowledgement API writes the incident's actions to that partition of `incident-actions`.
pub const PARTITION: &str = "quench.partition";

/// On `quench-rekey` records: the id of the route the re-keying stage placed the alert on.
pub const ROUTE: &str = "quench.route";

/// On dead letters (`alerts-dlq`): why the record could not be processed.
pub const REASON: &str = "quench.reason";

/// On dead letters: where the record was read (topic, partition, offset).
pub const SOURCE_TOPIC: &str = "quench.source.topic";
pub const SOURCE_PARTITION: &str = "quench.source.partition";
pub const SOURCE_OFFSET: &str = "quench.source.offset";

/// On `alerts`, `quench-rekey` and `routing` records of a traced alert: the W3C trace context
/// (`00-<trace id>-<span id>-<flags>`) of the span the record was produced under, so that the
/// next process's span joins the same trace.
pub const TRACEPARENT: &str = "traceparent";
