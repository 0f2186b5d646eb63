//! `quench repartition --partitions N`: adds partitions to `alerts` when workers read it keyed by
//! group (the default), without stranding state.
//!
//! A worker keeps each group's state in the `quench-state` partition numbered like the `alerts`
//! partition its alerts arrive in, and producers place an alert by its key (librdkafka's default
//! partitioner: CRC-32 of the key modulo the partition count). Adding partitions to `alerts`
//! alone sends a group's next alerts elsewhere, where a new incident would open. So `alerts`,
//! `incident-actions` and `quench-state` grow together, and every open group's changelog records
//! move, in one transaction, to the partition its alerts will now land in; each moved incident's
//! record on `incidents` is written again with its new partition, where the API and notifier
//! send acknowledgements.
//!
//! Offline, because an alert or action read after the move by the worker of the group's old
//! partition would open a second incident or be lost: ingest, the notifier and the API (which
//! write acknowledgements) stopped, the workers drained (lag 0) and stopped. It refuses while
//! workers run or records are unread. Everything is read before one short transaction writes the
//! move, and `alerts` grows only after it committed: until then its partition count differs from
//! the changelog's, so workers refuse to start, and a failed run is simply run again (its
//! transaction is aborted, or fenced by the next run; only what is not where it belongs moves).

use std::{collections::HashMap, time::Duration};

use anyhow::{bail, Context};
use quench_core::window::{changelog, Group};
use quench_schemas::headers;
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewPartitions},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    message::{Header, OwnedHeaders},
    producer::{BaseProducer, BaseRecord, Producer},
    Message, Offset, TopicPartitionList,
};

use crate::{
    config::Config,
    kafka::{abort_transaction, client_config, partition_count, read_compacted, reader_config, scan, send_waiting},
};

const TIMEOUT: Duration = Duration::from_secs(10);
/// Reading a whole partition of the changelog or of `incidents`.
const READ_DEADLINE: Duration = Duration::from_secs(600);
/// The broker's default `transaction.max.timeout.ms`: the move is one transaction, however large.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(900);

/// What a run changed.
#[derive(Debug, Default)]
pub struct Report {
    /// Topics grown: name, partitions before, after.
    pub grown: Vec<(String, usize, usize)>,
    pub groups_moved: usize,
    pub records_moved: usize,
    pub incidents_relocated: usize,
}

impl Report {
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> =
            self.grown.iter().map(|(topic, from, to)| format!("topic {topic}: {from} -> {to} partitions")).collect();
        lines.push(format!(
            "{} open groups moved ({} changelog records), {} incidents' partitions rewritten",
            self.groups_moved, self.records_moved, self.incidents_relocated
        ));
        lines
    }
}

/// The partition librdkafka's default partitioner (`consistent_random`) gives a non-empty key.
pub fn partition_for(key: &str, partitions: usize) -> i32 {
    (crc32fast::hash(key.as_bytes()) % partitions as u32) as i32
}

/// Grows the worker's topics to `partitions` and moves the open groups; `rekeyed` says that the
/// workers read the re-keyed topic (which keeps its partitions), where none of this is needed.
pub fn run(config: &Config, rekeyed: bool, partitions: usize) -> anyhow::Result<Report> {
    let t = &config.topics;
    if rekeyed {
        bail!(
            "the workers read the re-keyed topic `{}`, whose partitions do not change: add partitions to `{}` \
             with the Kafka tools directly (README, \"Deployment\", growing topics)",
            t.rekey,
            t.alerts
        );
    }
    if let Some(partitioner) = config.kafka.properties.get("partitioner") {
        if !matches!(partitioner.as_str(), "consistent" | "consistent_random") {
            bail!(
                "kafka.properties.partitioner = {partitioner}: this command places groups as librdkafka's default \
                 partitioner (CRC-32 of the key) does, and cannot move them for another"
            );
        }
    }
    let group = &config.worker.group_id;
    let probe: BaseConsumer = client_config(&config.kafka, "repartition").create()?;
    refuse_running_members(&probe, config, true)?;
    let topics = [t.alerts.as_str(), t.actions.as_str(), t.state.as_str()];
    let mut counts = Vec::new();
    for topic in topics {
        counts.push(partition_count(&probe, topic)?);
    }
    if let Some((topic, count)) = topics.iter().zip(&counts).find(|(_, count)| **count > partitions) {
        bail!("topic {topic} has {count} partitions already, more than --partitions {partitions}: Kafka cannot remove partitions");
    }
    for topic in [t.alerts.as_str(), t.actions.as_str()] {
        let unread = unread(config, &probe, topic)?;
        if unread > 0 {
            bail!(
                "{unread} records of {topic} are not read by the workers of group `{group}` yet: stop ingest, run \
                 the workers until their consumer lag is 0, stop them, then repartition"
            );
        }
    }
    let mut report = Report::default();
    // `alerts` last, once the move is committed: until then its count differs from the
    // changelog's and workers refuse to start, so a failed move strands nothing.
    let [alerts, state_and_actions @ ..] = topics;
    for (topic, count) in state_and_actions.iter().zip(&counts[1..]).filter(|(_, count)| **count < partitions) {
        grow(config, topic, partitions)?;
        report.grown.push((topic.to_string(), *count, partitions));
    }
    wait_for_partitions(&probe, &state_and_actions, partitions)?;
    let plan = plan(config, partitions, &mut report)?;
    move_groups(config, &probe, &plan)?;
    if counts[0] < partitions {
        grow(config, alerts, partitions)?;
        report.grown.insert(0, (alerts.to_string(), counts[0], partitions));
    }
    Ok(report)
}

/// A member still running would go on writing state where it no longer belongs. A stopped
/// worker stays a member until its session times out (static membership keeps its place for
/// the restart), so with `wait` members are waited for that long before they count as running.
fn refuse_running_members(probe: &BaseConsumer, config: &Config, wait: bool) -> anyhow::Result<()> {
    let group = &config.worker.group_id;
    let patience = match wait {
        true => Duration::from_millis(config.worker.session_timeout_ms) + Duration::from_secs(5),
        false => Duration::ZERO,
    };
    let (started, mut waiting) = (std::time::Instant::now(), false);
    loop {
        let groups = probe.fetch_group_list(Some(group), TIMEOUT).context("describing the worker group")?;
        let Some(found) = groups.groups().iter().find(|g| !g.members().is_empty()) else { return Ok(()) };
        if started.elapsed() > patience {
            bail!(
                "{} workers of group `{group}` are running (state {}): stop every `quench run` of the group first",
                found.members().len(),
                found.state()
            );
        }
        if !waiting {
            waiting = true;
            tracing::info!(
                group,
                ?patience,
                "waiting for the group's members to leave (a stopped worker's session ends after \
                 worker.session_timeout_ms)"
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Records of `topic` after the worker group's committed offsets (the whole partition where it
/// committed none).
fn unread(config: &Config, probe: &BaseConsumer, topic: &str) -> anyhow::Result<usize> {
    let group = &config.worker.group_id;
    let reader: BaseConsumer = reader_config(&config.kafka, "repartition", group).create()?;
    let mut asked = TopicPartitionList::new();
    for partition in 0..partition_count(probe, topic)? as i32 {
        asked.add_partition(topic, partition);
    }
    let committed = reader.committed_offsets(asked, TIMEOUT).with_context(|| format!("offsets of {group}"))?;
    let mut unread = 0;
    for element in committed.elements() {
        let start = match element.offset() {
            Offset::Offset(offset) => Some(offset),
            _ => None,
        };
        scan(&config.kafka, group, topic, element.partition(), start, READ_DEADLINE, |_| unread += 1)?;
    }
    Ok(unread)
}

fn grow(config: &Config, topic: &str, partitions: usize) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(&config.kafka, "repartition").create()?;
    let grown = futures::executor::block_on(
        admin.create_partitions(&[NewPartitions::new(topic, partitions)], &AdminOptions::new()),
    )?;
    for result in grown {
        result.map_err(|(topic, code)| anyhow::anyhow!("adding partitions to {topic}: {code}"))?;
    }
    tracing::info!(topic, partitions, "partitions added");
    Ok(())
}

/// New partitions reach every broker's metadata a moment after they are created.
fn wait_for_partitions(probe: &BaseConsumer, topics: &[&str], partitions: usize) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    for topic in topics {
        while partition_count(probe, topic)? < partitions {
            if started.elapsed() > Duration::from_secs(60) {
                bail!("topic {topic} does not show {partitions} partitions within a minute");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

/// What to write: changelog records (key, value or `None` for a tombstone, partition) and
/// incident records.
#[derive(Default)]
struct Plan {
    state: Vec<(String, Option<Vec<u8>>, i32)>,
    incidents: Vec<MovedIncident>,
}

/// An incident's latest record, to be written again naming the worker partition it moved to.
struct MovedIncident {
    id: String,
    value: Vec<u8>,
    /// Its partition of `incidents`, which does not change.
    partition: i32,
    worker_partition: i32,
}

/// Reads every changelog partition and the moved groups' incidents, before any transaction
/// begins: a transaction left open while reading would hold back every read_committed reader
/// of the topics it writes to.
fn plan(config: &Config, partitions: usize, report: &mut Report) -> anyhow::Result<Plan> {
    let (t, group) = (&config.topics, format!("{}-repartition", config.worker.group_id));
    // As ingest keys alerts: by tenant with correlation on, else by group key.
    let place = |g: &Group| match config.correlate.enabled {
        true => partition_for(g.tenant(), partitions),
        false => partition_for(&g.key().0, partitions),
    };
    let mut plan = Plan::default();
    let mut incidents: HashMap<String, i32> = HashMap::new();
    for partition in 0..partitions as i32 {
        let latest = read_compacted(&config.kafka, &group, &t.state, partition, READ_DEADLINE)?;
        let mut values: HashMap<String, Vec<u8>> = latest.into_iter().map(|(key, (_, value))| (key, value)).collect();
        let relocation = changelog::relocate(&values, partition, place)
            .map_err(|e| anyhow::anyhow!("changelog {}/{partition}: {e}", t.state))?;
        report.groups_moved += relocation.records.iter().filter(|(key, _)| !key.starts_with('#')).count();
        report.records_moved += relocation.records.len();
        for (key, there) in relocation.records {
            if let Some(there) = there {
                plan.state.push((key.clone(), values.remove(&key), there));
            }
            plan.state.push((key, None, partition));
        }
        incidents.extend(relocation.incidents);
    }
    plan.incidents = latest_incidents(config, &group, &incidents)?;
    report.incidents_relocated = plan.incidents.len();
    Ok(plan)
}

/// Writes the plan in one transaction, aborted on any failure: either every group moved, or
/// none did. Workers started meanwhile are refused again just before the commit.
fn move_groups(config: &Config, probe: &BaseConsumer, plan: &Plan) -> anyhow::Result<()> {
    let (t, id) = (&config.topics, format!("{}-repartition", config.worker.group_id));
    let producer: BaseProducer = client_config(&config.kafka, "repartition")
        .set("transactional.id", &id)
        .set("enable.idempotence", "true")
        .set("transaction.timeout.ms", TRANSACTION_TIMEOUT.as_millis().to_string())
        .create()?;
    // Also fences (aborts) the transaction of an earlier run that was killed.
    producer.init_transactions(TIMEOUT).context("initialising the transactional producer")?;
    producer.begin_transaction()?;
    let written = (|| {
        for (key, value, partition) in &plan.state {
            let record = BaseRecord::<_, Vec<u8>>::to(&t.state).key(key).partition(*partition);
            send_waiting(
                &producer,
                match value {
                    Some(value) => record.payload(value),
                    None => record,
                },
            )?;
        }
        for MovedIncident { id, value, partition, worker_partition } in &plan.incidents {
            let number = worker_partition.to_string();
            let headers = OwnedHeaders::new().insert(Header { key: headers::PARTITION, value: Some(&number) });
            let record = BaseRecord::to(&t.incidents).key(id).payload(value).partition(*partition).headers(headers);
            send_waiting(&producer, record)?;
        }
        refuse_running_members(probe, config, false)?;
        producer.commit_transaction(TRANSACTION_TIMEOUT).context("committing the move")
    })();
    if written.is_err() {
        if let Err(e) = abort_transaction(&producer, TIMEOUT) {
            tracing::error!(error = %e, "aborting the move failed; the broker aborts it after its timeout");
        }
    }
    written
}

/// The latest record of each incident in `moved` (id → the worker partition it moves to).
fn latest_incidents(config: &Config, group: &str, moved: &HashMap<String, i32>) -> anyhow::Result<Vec<MovedIncident>> {
    if moved.is_empty() {
        return Ok(Vec::new());
    }
    let topic = &config.topics.incidents;
    let probe: BaseConsumer = client_config(&config.kafka, "repartition").create()?;
    let mut latest: HashMap<String, (i32, Vec<u8>)> = HashMap::new();
    for partition in 0..partition_count(&probe, topic)? as i32 {
        scan(&config.kafka, group, topic, partition, None, READ_DEADLINE, |message| {
            let Some(id) = message.key().and_then(|k| std::str::from_utf8(k).ok()) else { return };
            if moved.contains_key(id) {
                match message.payload() {
                    Some(value) => latest.insert(id.to_string(), (partition, value.to_vec())),
                    None => latest.remove(id),
                };
            }
        })?;
    }
    Ok(latest
        .into_iter()
        .map(|(id, (partition, value))| MovedIncident { worker_partition: moved[&id], id, value, partition })
        .collect())
}
