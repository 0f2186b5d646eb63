//! Dead letters: records the worker cannot turn into alerts, written to the DLQ topic unchanged
//! with the reason and their origin in headers, in the same transaction as everything else.

use quench_schemas::headers;

use crate::events::{DeadLetterReason, DeadLettered};
use rdkafka::{
    message::{Header, OwnedHeaders, OwnedMessage},
    producer::BaseRecord,
    Message,
};

pub struct DeadLetter {
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub reason: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl DeadLetter {
    /// The dead letter of `message`, counted as it is made.
    pub fn new(message: &OwnedMessage, kind: DeadLetterReason, reason: String) -> Self {
        DeadLettered { reason: kind, topic: message.topic(), detail: &reason }.emit();
        Self {
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            reason,
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
        }
    }

    pub fn record<'a>(&'a self, dlq_topic: &'a str) -> BaseRecord<'a, [u8], [u8]> {
        let partition = self.partition.to_string();
        let offset = self.offset.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header { key: headers::REASON, value: Some(self.reason.as_bytes()) })
            .insert(Header { key: headers::SOURCE_TOPIC, value: Some(self.topic.as_bytes()) })
            .insert(Header { key: headers::SOURCE_PARTITION, value: Some(partition.as_bytes()) })
            .insert(Header { key: headers::SOURCE_OFFSET, value: Some(offset.as_bytes()) });
        let mut record = BaseRecord::to(dlq_topic).headers(headers);
        if let Some(key) = &self.key {
            record = record.key(key.as_slice());
        }
        if let Some(payload) = &self.payload {
            record = record.payload(payload.as_slice());
        }
        record
    }
}
