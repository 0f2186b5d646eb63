//! The mute stage's side inputs in a process: silences (written by the Alertmanager API) and
//! inhibition sources (written by the workers), followed from their compacted topics into a
//! [`Mutes`]. The worker polls them between records; the API keeps them for its answers.

use std::time::Duration;

use quench_core::mute::{Mutes, Silence, Source};

use crate::{
    config::Config,
    kafka::{FollowedRecord, Follower},
};

pub struct SideInputs {
    follower: Follower,
    silences: String,
    sources: String,
}

impl SideInputs {
    /// Follows both topics and reads them up to their current end.
    pub fn start(config: &Config, role: &str) -> anyhow::Result<(Self, Mutes)> {
        let topics = [config.topics.silences.as_str(), config.topics.inhibit_sources.as_str()];
        let follower = Follower::start(&config.kafka, role, &topics, Duration::from_secs(120))?;
        let mut inputs =
            Self { follower, silences: config.topics.silences.clone(), sources: config.topics.inhibit_sources.clone() };
        let mut mutes = Mutes::default();
        let (silences, sources) = (inputs.silences.clone(), inputs.sources.clone());
        inputs
            .follower
            .catch_up(Duration::from_secs(120), &mut |record| apply(&silences, &sources, &mut mutes, record))?;
        tracing::info!(
            silences = mutes.silences.iter().count(),
            inhibition_sources = mutes.sources.len(),
            "side inputs read"
        );
        Ok((inputs, mutes))
    }

    /// Applies what arrived since the last call, waiting at most `wait`.
    pub fn poll(&mut self, mutes: &mut Mutes, wait: Duration) -> anyhow::Result<()> {
        let (silences, sources) = (&self.silences, &self.sources);
        self.follower.poll(wait, &mut |record| apply(silences, sources, mutes, record))
    }
}

fn apply(silences: &str, sources: &str, mutes: &mut Mutes, (topic, key, value): FollowedRecord) {
    match (topic, value) {
        (t, None) if t == silences => mutes.silences.remove(key),
        (t, None) if t == sources => mutes.sources.remove(key),
        (t, Some(value)) if t == silences => {
            match serde_json::from_slice::<Silence>(value)
                .map_err(|e| e.to_string())
                .and_then(|s| mutes.silences.upsert(s))
            {
                Ok(()) => {}
                Err(error) => tracing::warn!(topic, key, %error, "silence record ignored"),
            }
        }
        (t, Some(value)) if t == sources => match serde_json::from_slice::<Source>(value) {
            Ok(source) => {
                mutes.sources.update(source);
            }
            Err(error) => tracing::warn!(topic, key, %error, "inhibition source record ignored"),
        },
        _ => {}
    }
}
