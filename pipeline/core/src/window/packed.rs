//! Labels and annotations as a group keeps them for each of its alerts: one allocation of
//! length-prefixed names and values instead of a map of strings (a tree node and two strings per
//! label), since a worker holds one set per open alert. Read in place when a flush asks about
//! mutes, unpacked when it lists the alert. In the changelog, a plain map.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::rules::Labels;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Packed(Box<[u8]>);

impl Packed {
    pub fn pack(map: &BTreeMap<String, String>) -> Self {
        Self::pack_within(map, usize::MAX)
    }

    /// The pairs that fit in `budget` bytes of names and values, whole, in name order.
    pub fn pack_within(map: &BTreeMap<String, String>, budget: usize) -> Self {
        let mut left = budget;
        let mut bytes = Vec::with_capacity(map.iter().map(|(k, v)| 8 + k.len() + v.len()).sum::<usize>().min(budget));
        for (name, value) in map {
            let size = name.len() + value.len();
            if size > left {
                continue;
            }
            left -= size;
            for text in [name, value] {
                bytes.extend_from_slice(&u32::try_from(text.len()).unwrap_or(u32::MAX).to_le_bytes());
                bytes.extend_from_slice(text.as_bytes());
            }
        }
        Self(bytes.into_boxed_slice())
    }

    pub fn unpack(&self) -> BTreeMap<String, String> {
        self.pairs().map(|(name, value)| (name.to_string(), value.to_string())).collect()
    }

    /// The names and values, borrowed, in name order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut rest: &[u8] = &self.0;
        let mut next = move || -> Option<&str> {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let len = u32::from_le_bytes(*len) as usize;
            let (text, tail) = tail.split_at_checked(len)?;
            rest = tail;
            // Packed from strings, so always UTF-8.
            std::str::from_utf8(text).ok()
        };
        std::iter::from_fn(move || Some((next()?, next()?)))
    }
}

impl Labels for Packed {
    fn label(&self, name: &str) -> Option<&str> {
        self.pairs().find(|(n, _)| *n == name).map(|(_, value)| value)
    }
}

impl Serialize for Packed {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The changelog writes every alert of a group at each flush: no allocation per label.
        serializer.collect_map(self.pairs())
    }
}

impl<'de> Deserialize<'de> for Packed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::pack(&BTreeMap::deserialize(deserializer)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_keeps_every_name_and_value_whatever_they_hold() {
        let map: BTreeMap<String, String> = [("alertname", "Down"), ("empty", ""), ("odd", "a\u{0}b\u{1f}c=d é")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let packed = Packed::pack(&map);
        assert_eq!(packed.unpack(), map);
        assert_eq!(
            (packed.label("odd"), packed.label("empty"), packed.label("none")),
            (Some("a\u{0}b\u{1f}c=d é"), Some(""), None)
        );
        assert_eq!(Packed::pack(&BTreeMap::new()).unpack(), BTreeMap::new());
        let within = Packed::pack_within(&map, 18).unpack();
        assert_eq!(within.keys().collect::<Vec<_>>(), ["alertname", "empty"], "whole pairs within the budget");
        let json = serde_json::to_string(&packed).unwrap();
        assert_eq!(serde_json::from_str::<Packed>(&json).unwrap(), packed, "a plain map in the changelog: {json}");
    }
}
