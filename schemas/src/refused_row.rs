//! The ClickHouse sink's dead letters: JSON, like Quench's other bookkeeping topics.

use serde::{Deserialize, Serialize};

/// A row ClickHouse refused for good, on the sink's dead-letter topic (`clickhouse-dlq`), with
/// ClickHouse's answer: the rest of its batch was written and committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefusedRow {
    pub table: String,
    pub error: String,
    /// The row as the sink would have inserted it.
    pub row: serde_json::Value,
    pub at: i64,
}
