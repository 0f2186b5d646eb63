//! Which entities are linked, and which entity an alert is about.
//!
//! An entity is what an alert is raised on: a device in an alarm CSV, the value of the first of
//! a list of labels (`instance`, `host`, `node`, …) for an alert. Links come from a topology
//! file of undirected pairs (`device_a,device_b`); without one, an entity is linked to nothing
//! and precursors are learned on the same entity only.

use std::collections::BTreeMap;

use super::Interner;

/// Undirected links between interned entities.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    neighbours: Vec<Vec<u32>>,
}

impl Topology {
    /// Reads `a,b` lines (a header line without digits-only fields is skipped; `#` starts a
    /// comment), interning entity names through `entities`.
    pub fn parse(text: &str, entities: &mut Interner) -> Result<Self, String> {
        let mut topology = Self::default();
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let [a, b] = fields[..] else {
                return Err(format!("topology line {}: expected two entities `a,b`, found {line:?}", number + 1));
            };
            if number == 0 && (a.starts_with("device") || a.starts_with("entity") || a.starts_with("source")) {
                continue;
            }
            let (a, b) = (entities.id(a), entities.id(b));
            topology.link(a, b);
        }
        Ok(topology)
    }

    pub fn link(&mut self, a: u32, b: u32) {
        if a == b {
            return;
        }
        let needed = a.max(b) as usize + 1;
        if self.neighbours.len() < needed {
            self.neighbours.resize(needed, Vec::new());
        }
        for (from, to) in [(a, b), (b, a)] {
            let list = &mut self.neighbours[from as usize];
            if !list.contains(&to) {
                list.push(to);
            }
        }
    }

    /// The entities linked to `entity` (not itself).
    pub fn neighbours(&self, entity: u32) -> &[u32] {
        self.neighbours.get(entity as usize).map_or(&[], Vec::as_slice)
    }
}

/// The labels that name an alert's entity, most specific first.
pub const DEFAULT_ENTITY_LABELS: &[&str] = &["instance", "host", "hostname", "node", "pod", "device", "service", "job"];

/// An alert's entity: the first of `labels` it carries, and its value.
pub fn entity_of<'a>(alert_labels: &'a BTreeMap<String, String>, labels: &'a [String]) -> Option<(&'a str, &'a str)> {
    labels.iter().find_map(|name| {
        let value = alert_labels.get(name).filter(|v| !v.is_empty())?;
        Some((name.as_str(), value.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topology_file_links_both_ways_and_skips_its_header() {
        let mut entities = Interner::default();
        let topology = Topology::parse("device_a,device_b\n3,4\n4,5 # a comment\n\n", &mut entities).unwrap();
        let four = entities.get("4").unwrap();
        assert_eq!(topology.neighbours(four).len(), 2);
        assert_eq!(topology.neighbours(entities.get("3").unwrap()), &[four]);
        let error = Topology::parse("1,2\n1,2,3\n", &mut Interner::default()).unwrap_err();
        assert!(error.contains("line 2"), "{error}");
    }

    #[test]
    fn the_entity_is_the_first_entity_label_present() {
        let labels: BTreeMap<String, String> =
            [("job", "node"), ("instance", "db-1:9100")].map(|(k, v)| (k.to_string(), v.to_string())).into();
        let names: Vec<String> = DEFAULT_ENTITY_LABELS.iter().map(|s| s.to_string()).collect();
        assert_eq!(entity_of(&labels, &names), Some(("instance", "db-1:9100")));
        assert_eq!(entity_of(&BTreeMap::new(), &names), None);
    }
}
