//! Open groups in the `quench-state` changelog, in records that stay far below Kafka's message
//! limit however large a group grows: one record for the group itself, keyed by its group key,
//! and one per non-empty bucket of its alerts (by fingerprint, see [`BUCKETS`]), keyed
//! `#<bucket>|<group key>`. Group keys start with a route id (`{`), never with `#`, so the two
//! kinds of key never meet. A change rewrites the group and only the buckets it touched; a
//! bucket that emptied and an ended group leave tombstones, so compaction drops them.

use std::collections::HashMap;

use quench_schemas::state_format;

use super::group::{bucket, Entry, Group, ALL_BUCKETS, BUCKETS};
use crate::rules::GroupKey;

/// The format of the group records this version writes (see `quench_schemas::state_format`): a
/// rolling upgrade that raises it must finish before the new format is written (README,
/// "Deployment", upgrades).
pub const FORMAT: u32 = 1;

/// A changelog record: key, and value or `None` for a tombstone.
pub type Record = (String, Option<Vec<u8>>);

fn bucket_key(bucket: u32, key: &GroupKey) -> String {
    format!("#{bucket}|{}", key.0)
}

/// Appends the records that bring the changelog up to date with `group`.
pub fn write(group: &mut Group, out: &mut Vec<Record>) -> serde_json::Result<()> {
    // Lists rather than maps: fingerprints are distinct keys already, and hashing each alert of
    // every changed bucket at every commit showed in the worker's profile.
    let mut buckets: Vec<Vec<(u64, &Entry)>> = vec![Vec::new(); BUCKETS as usize];
    for (fingerprint, entry) in &group.alerts {
        if group.changed_buckets & (1 << bucket(*fingerprint)) != 0 {
            buckets[bucket(*fingerprint) as usize].push((*fingerprint, entry));
        }
    }
    let mut records = Vec::new();
    let mut written = group.written_buckets;
    for (b, entries) in buckets.iter().enumerate() {
        let bit = 1 << b;
        if group.changed_buckets & bit == 0 {
            continue;
        }
        let key = bucket_key(b as u32, group.key());
        if !entries.is_empty() {
            records.push((key, Some(serde_json::to_vec(&AsMap(entries))?)));
            written |= bit;
        } else if written & bit != 0 {
            records.push((key, None));
            written &= !bit;
        }
    }
    group.changed_buckets = 0;
    group.written_buckets = written;
    group.format = FORMAT;
    out.push((group.key().0.clone(), Some(serde_json::to_vec(&*group)?)));
    out.extend(records);
    Ok(())
}

/// Entries written as the JSON object `{"<fingerprint>": entry, ...}` that [`read`] takes back
/// as a map.
struct AsMap<'a>(&'a [(u64, &'a Entry)]);

impl serde::Serialize for AsMap<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(fingerprint, entry)| (fingerprint, entry)))
    }
}

/// Appends tombstones for an ended group whose changelog held `buckets`.
pub fn erase(key: &GroupKey, buckets: u32, out: &mut Vec<Record>) {
    out.push((key.0.clone(), None));
    for b in (0..BUCKETS).filter(|b| buckets & (1 << b) != 0) {
        out.push((bucket_key(b, key), None));
    }
}

/// Reassembles the open groups from a changelog partition's latest records (key and value).
pub fn read(records: impl IntoIterator<Item = (String, Vec<u8>)>) -> Result<Vec<Group>, String> {
    let mut groups: HashMap<String, Group> = HashMap::new();
    let mut buckets = Vec::new();
    for (key, value) in records {
        match key.strip_prefix('#').and_then(|rest| rest.split_once('|')) {
            Some((_, group)) => buckets.push((key.clone(), group.to_string(), value)),
            None => {
                // The format first: a later one may not parse as a group of this one at all.
                state_format::check(&value, FORMAT, &format!("changelog record {key:?}"))?;
                let mut group: Group =
                    serde_json::from_slice(&value).map_err(|e| format!("changelog record {key:?}: {e}"))?;
                if !group.alerts.is_empty() {
                    // Written before buckets, with the alerts inside: the next write moves them.
                    group.changed_buckets = ALL_BUCKETS;
                }
                groups.insert(key, group);
            }
        }
    }
    for (key, group, value) in buckets {
        let entries: HashMap<u64, Entry> =
            serde_json::from_slice(&value).map_err(|e| format!("changelog record {key:?}: {e}"))?;
        // A bucket whose group record is gone belongs to a group that ended between the two
        // records' compactions: nothing to restore.
        let Some(group) = groups.get_mut(&group) else { continue };
        group.alerts.extend(entries);
    }
    Ok(groups.into_values().collect())
}

/// Where the records of one changelog partition go when groups change partitions (`quench
/// repartition`): `place` gives the partition a group's alerts now land in.
#[derive(Debug, Default, PartialEq)]
pub struct Relocation {
    /// Records to move: key, and the partition to copy it to, or `None` for a bucket whose
    /// group record is gone (only its tombstone is written here).
    pub records: Vec<(String, Option<i32>)>,
    /// The incidents of the moved groups, with their new partition.
    pub incidents: Vec<(String, i32)>,
}

/// The records of partition `here` (its latest, by key) that belong elsewhere under `place`.
pub fn relocate(
    records: &HashMap<String, Vec<u8>>,
    here: i32,
    place: impl Fn(&Group) -> i32,
) -> Result<Relocation, String> {
    let mut moved: HashMap<&str, i32> = HashMap::new();
    let mut out = Relocation::default();
    for (key, value) in records.iter().filter(|(key, _)| !key.starts_with('#')) {
        state_format::check(value, FORMAT, &format!("changelog record {key:?}"))?;
        let group: Group = serde_json::from_slice(value).map_err(|e| format!("changelog record {key:?}: {e}"))?;
        let there = place(&group);
        if there != here {
            moved.insert(key, there);
            out.records.push((key.clone(), Some(there)));
            if let Some(id) = group.incident_id() {
                out.incidents.push((id.to_string(), there));
            }
        }
    }
    for key in records.keys() {
        let Some((_, group)) = key.strip_prefix('#').and_then(|rest| rest.split_once('|')) else { continue };
        match (moved.get(group), records.contains_key(group)) {
            (Some(there), _) => out.records.push((key.clone(), Some(*there))),
            (None, false) => out.records.push((key.clone(), None)),
            (None, true) => {}
        }
    }
    Ok(out)
}
