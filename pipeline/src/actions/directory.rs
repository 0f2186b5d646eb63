//! Where each incident lives, for the APIs that write actions (`quench notify`'s, `quench api`):
//! a table of the compacted `incidents` topic (incident id to the worker partition number in its
//! `quench.partition` header, and tenant), kept current by a background reader. An action
//! written to that partition number of `incident-actions` reaches the worker that holds the
//! incident.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, RwLock,
    },
    time::Duration,
};

use quench_schemas::{headers, Decoder, Incident};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    error::KafkaResult,
    Message, Offset, TopicPartitionList,
};
use tokio::runtime::Handle;

use crate::{
    config::Config,
    kafka::{header, position, reader_config},
};

#[derive(Debug, Clone)]
pub struct Located {
    pub partition: i32,
    pub tenant: String,
}

#[derive(Default)]
pub struct Directory {
    incidents: RwLock<HashMap<String, Located>>,
    caught_up: AtomicBool,
}

impl Directory {
    pub fn find(&self, incident_id: &str) -> Option<Located> {
        self.incidents.read().expect("directory lock").get(incident_id).cloned()
    }

    /// Whether the reader reached the end of `incidents` once since start.
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::SeqCst)
    }

    /// Starts the reader on a thread of its own; it stops with the process.
    /// `service` names its Kafka client and thread (`notify`, `api`).
    pub fn spawn(config: &Config, decoder: Decoder<Incident>, service: &str) -> anyhow::Result<Arc<Self>> {
        let topic = config.topics.incidents.clone();
        let group = format!("{}-directory", config.notify.group_id);
        let consumer: BaseConsumer = reader_config(&config.kafka, &format!("{service}-directory"), &group).create()?;
        let timeout = config.kafka.connect_timeout();
        let directory = Arc::new(Self::default());
        let table = directory.clone();
        let handle = Handle::current();
        std::thread::Builder::new().name(format!("{service}-directory")).spawn(move || {
            // Until this succeeds nothing is caught up, so the APIs answer "retry": a broker still
            // electing leaders (a topic just created, a restart) delays them, and stops nothing.
            let ends = loop {
                match assign_from_start(&consumer, &topic, timeout) {
                    Ok(ends) => break ends,
                    Err(e) => {
                        tracing::warn!(error = %e, topic, "cannot read where incidents end yet; retrying");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            };
            table.follow(&consumer, &topic, &ends, &decoder, &handle)
        })?;
        Ok(directory)
    }

    /// Reads `topic` for good, keeping the table current.
    fn follow(
        &self,
        consumer: &BaseConsumer,
        topic: &str,
        ends: &HashMap<i32, i64>,
        decoder: &Decoder<Incident>,
        handle: &Handle,
    ) -> ! {
        loop {
            if !self.caught_up() && ends.iter().all(|(p, end)| position(consumer, topic, *p).unwrap_or(0) >= *end) {
                self.caught_up.store(true, Ordering::SeqCst);
            }
            let Some(message) = consumer.poll(Duration::from_millis(200)) else { continue };
            let message = match message {
                Ok(message) => message,
                Err(e) => {
                    tracing::warn!(error = %e, "reading incidents for the API");
                    continue;
                }
            };
            let Some(id) = message.key().map(|k| String::from_utf8_lossy(k).into_owned()) else { continue };
            let partition =
                header(&message, headers::PARTITION).and_then(|v| std::str::from_utf8(v).ok()?.parse().ok());
            // A tombstone removes the incident; a record that cannot be decoded (a registry blip)
            // leaves what was known of it rather than making a real incident unknown.
            let Some(bytes) = message.payload() else {
                self.incidents.write().expect("directory lock").remove(&id);
                continue;
            };
            let incident = match handle.block_on(decoder.decode(bytes)) {
                Ok(incident) => incident,
                Err(e) => {
                    tracing::warn!(error = %e, incident = id, "an incident the directory cannot decode; kept as it was");
                    continue;
                }
            };
            let mut incidents = self.incidents.write().expect("directory lock");
            match partition {
                Some(partition) => incidents.insert(id, Located { partition, tenant: incident.tenant }),
                None => incidents.remove(&id),
            };
        }
    }
}

/// Assigns every partition of `topic` from its start; returns where each ends now.
fn assign_from_start(consumer: &BaseConsumer, topic: &str, timeout: Duration) -> KafkaResult<HashMap<i32, i64>> {
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut assignment = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        assignment.add_partition_offset(topic, partition.id(), Offset::Beginning)?;
        ends.insert(partition.id(), consumer.fetch_watermarks(topic, partition.id(), timeout)?.1);
    }
    consumer.assign(&assignment)?;
    Ok(ends)
}
