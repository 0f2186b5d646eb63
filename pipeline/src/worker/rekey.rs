//! Re-keying, for alert topics that are not keyed by group key (`worker.input_keyed_by_group =
//! false`): as Kafka Streams does with a repartition topic, a first stage reads `alerts`, works out
//! each alert's group key(s) with the same route tree, and writes the original bytes to the internal
//! `quench-rekey` topic keyed by group key, with the route in a `quench.route` header. The worker
//! then reads that topic, so every alert of a group meets in one worker. The stage commits its
//! input offsets in the same transaction as its output, so each alert is re-keyed exactly once.

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use quench_schemas::{headers, Alert, Decoder};
use rdkafka::{
    message::{Header, OwnedHeaders, OwnedMessage},
    producer::BaseRecord,
    Message, Offset, TopicPartitionList,
};
use tokio::runtime::Handle;

use super::{decode, dlq::DeadLetter, transaction::Session};
use crate::{
    config::{Config, TopicsConfig},
    events::DeadLetterReason,
    kafka::{consumed, header, Rebalanced},
    reload::RulesSource,
};
use quench_core::rules::RouteTree;

/// The route a re-keyed record was placed on, if it came through this stage.
pub fn route_of(message: &OwnedMessage) -> Option<String> {
    header(message, headers::ROUTE).map(|v| String::from_utf8_lossy(v).into_owned())
}

pub fn run(
    config: &Config,
    instance: &str,
    (mut rules, mut tree): (RulesSource, RouteTree),
    decoder: &Decoder<Alert>,
    handle: &Handle,
    shutdown: &AtomicBool,
) -> anyhow::Result<()> {
    let group = format!("{}-rekey", config.worker.group_id);
    let session = Session::connect(&config.kafka, &config.worker, "rekey", &group, instance, &[&config.topics.alerts])?;
    tracing::info!(group, from = %config.topics.alerts, to = %config.topics.rekey, "re-keying stage started");
    let interval = Duration::from_millis(config.worker.commit_interval_ms);
    let mut last_commit = Instant::now();
    let mut offsets: BTreeMap<i32, i64> = BTreeMap::new();
    while !shutdown.load(Ordering::SeqCst) {
        let polled = session.consumer.poll(Duration::from_millis(20)).map(|r| r.map(|m| m.detach()));
        for rebalanced in session.rebalances()? {
            match rebalanced {
                Rebalanced::Revoked => offsets.clear(),
                Rebalanced::Assigned(partitions) => {
                    tracing::info!(topic = %config.topics.alerts, ?partitions, "re-keying stage assigned partitions");
                }
            }
        }
        if let Some(message) = polled.map(|polled| consumed(polled, "rekey")).transpose()?.flatten() {
            if !session.in_transaction() {
                session.begin()?;
            }
            rekey(config, &session, &tree, decoder, handle, &message)?;
            offsets.insert(message.partition(), message.offset() + 1);
        }
        if last_commit.elapsed() >= interval {
            commit(&config.topics, &session, &mut offsets)?;
            rules.reload(&mut tree, "windowing");
            last_commit = Instant::now();
        }
    }
    commit(&config.topics, &session, &mut offsets)
}

fn rekey(
    config: &Config,
    session: &Session,
    tree: &RouteTree,
    decoder: &Decoder<Alert>,
    handle: &Handle,
    message: &OwnedMessage,
) -> anyhow::Result<()> {
    let alert = match decode(decoder, handle, message)? {
        Ok(alert) => alert,
        Err(reason) => {
            let letter = DeadLetter::new(message, DeadLetterReason::Undecodable, reason);
            return session.send(letter.record(&config.topics.dlq));
        }
    };
    let placements = tree.place(&alert, None);
    let payload = message.payload().unwrap_or_default();
    let trace = header(message, headers::TRACEPARENT);
    for placement in &placements {
        let mut headers =
            OwnedHeaders::new().insert(Header { key: headers::ROUTE, value: Some(placement.route.as_bytes()) });
        // A traced alert's context goes on to the worker as it came (this stage adds no span).
        if let Some(trace) = trace {
            headers = headers.insert(Header { key: headers::TRACEPARENT, value: Some(trace) });
        }
        // With correlation on, by tenant: all of a tenant's groups in one partition.
        let key = if config.correlate.enabled { &alert.tenant } else { &placement.key.0 };
        session.send(BaseRecord::<str, [u8]>::to(&config.topics.rekey).key(key).payload(payload).headers(headers))?;
    }
    Ok(())
}

fn commit(topics: &TopicsConfig, session: &Session, offsets: &mut BTreeMap<i32, i64>) -> anyhow::Result<()> {
    if !session.in_transaction() {
        return Ok(());
    }
    let mut list = TopicPartitionList::new();
    for (partition, offset) in std::mem::take(offsets) {
        list.add_partition_offset(&topics.alerts, partition, Offset::Offset(offset))?;
    }
    session.commit(&list)
}
