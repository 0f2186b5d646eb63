//! Side inputs: compacted topics that a process reads in full and then keeps following (silences,
//! inhibition sources), as Kafka Streams' global tables. The follower belongs to no consumer
//! group: it assigns itself every partition from the beginning and commits nothing, so every
//! process sees every record.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    Message, Offset, TopicPartitionList,
};

use super::{consumed, position, reader_config};
use crate::config::KafkaConfig;

/// One record as the follower hands it on: topic, key, and value (`None`: a tombstone).
pub type FollowedRecord<'a> = (&'a str, &'a str, Option<&'a [u8]>);

pub struct Follower {
    consumer: BaseConsumer,
    /// Every followed partition, with its end when the follower started.
    ends: Vec<(String, i32, i64)>,
}

impl Follower {
    /// Follows every partition of `topics` from the beginning, as `role` (for logs and the
    /// client id), waiting up to `deadline` for the topics' metadata.
    pub fn start(kafka: &KafkaConfig, role: &str, topics: &[&str], deadline: Duration) -> anyhow::Result<Self> {
        let consumer: BaseConsumer = reader_config(kafka, role, &format!("quench-{role}")).create()?;
        let started = Instant::now();
        let mut assignment = TopicPartitionList::new();
        let mut ends = Vec::new();
        for topic in topics {
            let partitions = loop {
                let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10));
                let found = consumed(metadata, role)?.and_then(|m| {
                    let t = m.topics().iter().find(|t| t.name() == *topic)?;
                    let ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
                    (t.error().is_none() && !ids.is_empty()).then_some(ids)
                });
                if let Some(ids) = found {
                    break ids;
                }
                if started.elapsed() > deadline {
                    bail!("topic {topic} has no partitions within {deadline:?}: did `quench init` create it?");
                }
                std::thread::sleep(Duration::from_millis(500));
            };
            for partition in partitions {
                // A broker going down meanwhile fails the request ("Meta data fetch error"): asked
                // again, like the metadata, until the deadline rather than ending the process.
                let high = loop {
                    let watermarks = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10));
                    let found =
                        consumed(watermarks, role).with_context(|| format!("watermarks of {topic}/{partition}"))?;
                    if let Some((_, high)) = found {
                        break high;
                    }
                    if started.elapsed() > deadline {
                        bail!("the end of {topic}/{partition} is not known within {deadline:?}");
                    }
                    std::thread::sleep(Duration::from_millis(500));
                };
                assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
                ends.push((topic.to_string(), partition, high));
            }
        }
        consumer.assign(&assignment)?;
        Ok(Self { consumer, ends })
    }

    /// Reads every partition up to where it ended when the follower started, so that decisions
    /// made from here on see what was written before.
    pub fn catch_up(&mut self, deadline: Duration, apply: &mut dyn FnMut(FollowedRecord)) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            self.poll(Duration::from_millis(100), apply)?;
            let mut behind = false;
            for (topic, partition, end) in &self.ends {
                behind |= position(&self.consumer, topic, *partition)? < *end;
            }
            if !behind {
                return Ok(());
            }
            if started.elapsed() > deadline {
                bail!("reading the side inputs did not reach their end within {deadline:?}");
            }
        }
    }

    /// Hands on what arrived, waiting at most `wait` for the first record.
    pub fn poll(&mut self, wait: Duration, apply: &mut dyn FnMut(FollowedRecord)) -> anyhow::Result<()> {
        let mut wait = wait;
        while let Some(polled) = self.consumer.poll(wait) {
            wait = Duration::ZERO;
            let Some(message) = consumed(polled, "follower")? else { continue };
            let Some(key) = message.key() else { continue };
            apply((message.topic(), &String::from_utf8_lossy(key), message.payload()));
        }
        Ok(())
    }
}
