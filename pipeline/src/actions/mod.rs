//! People's actions on incidents (acknowledge, resolve, comment) on their way to
//! `incident-actions`: written to the partition number of the worker partition that holds the
//! incident, found in the directory of the `incidents` topic, and answered once Kafka has them.
//! Shared by `quench notify`'s acknowledgement API and `quench api`.

mod directory;

use std::{sync::Arc, time::Duration};

use quench_notify::api::Rejection;
use quench_schemas::{Decoder, Encoder, Incident, IncidentAction, Registry};
use rdkafka::producer::{FutureProducer, FutureRecord};

use directory::Directory;
pub use directory::Located;

use crate::config::Config;

pub struct Actions {
    producer: FutureProducer,
    encoder: Encoder<IncidentAction>,
    directory: Arc<Directory>,
    topic: String,
}

impl Actions {
    /// Registers the action schema and starts following `incidents`; `service` names the
    /// directory's Kafka client (`notify`, `api`).
    pub async fn start(
        config: &Config,
        registry: &Registry,
        producer: FutureProducer,
        service: &str,
    ) -> anyhow::Result<Self> {
        let directory = Directory::spawn(config, Decoder::<Incident>::new(registry.clone()), service)?;
        let encoder = Encoder::<IncidentAction>::register(registry, &config.topics.actions).await?;
        Ok(Self { producer, encoder, directory, topic: config.topics.actions.clone() })
    }

    /// Where the incident is: its tenant and partition. Unknown once the directory has read the
    /// whole topic; unavailable before.
    pub fn locate(&self, incident_id: &str) -> Result<Located, Rejection> {
        self.directory.find(incident_id).ok_or_else(|| {
            if self.directory.caught_up() {
                Rejection::UnknownIncident
            } else {
                Rejection::Unavailable("still reading the incidents topic".into())
            }
        })
    }

    /// Writes `action` to the incident's partition; done once Kafka acknowledged it.
    pub async fn send(&self, action: &IncidentAction, partition: i32) -> Result<(), Rejection> {
        let value = self.encoder.encode(action).map_err(|e| Rejection::Unavailable(e.to_string()))?;
        let record = FutureRecord::to(&self.topic).key(&action.incident_id).payload(&value).partition(partition);
        self.producer
            .send(record, Duration::from_secs(5))
            .await
            .map(|_| ())
            .map_err(|(e, _)| Rejection::Unavailable(e.to_string()))
    }
}
