//! A bounded least-recently-used map with an optional time to live: the classification cache
//! (by incident signature) and the embedding cache (by template text) are both one of these.

use std::{
    borrow::Borrow,
    collections::{BTreeMap, HashMap},
    hash::Hash,
    num::NonZeroUsize,
    time::{Duration, Instant},
};

struct Slot<V> {
    value: V,
    used: u64,
    inserted: Instant,
}

pub struct Lru<K, V> {
    capacity: NonZeroUsize,
    ttl: Option<Duration>,
    slots: HashMap<K, Slot<V>>,
    /// Use counter → key, oldest first.
    order: BTreeMap<u64, K>,
    clock: u64,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    pub fn new(capacity: NonZeroUsize, ttl: Option<Duration>) -> Self {
        Self { capacity, ttl, slots: HashMap::new(), order: BTreeMap::new(), clock: 0 }
    }

    /// The value for `key` unless it expired; a hit makes the entry the most recently used.
    pub fn get<Q>(&mut self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_at(key, Instant::now())
    }

    /// [`Lru::get`] at time `now` (tests give the time rather than wait for it).
    fn get_at<Q>(&mut self, key: &Q, now: Instant) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let expired = match (self.slots.get(key), self.ttl) {
            (None, _) => return None,
            (Some(slot), Some(ttl)) => now.saturating_duration_since(slot.inserted) >= ttl,
            (Some(_), None) => false,
        };
        if expired {
            let slot = self.slots.remove(key).expect("present");
            self.order.remove(&slot.used);
            return None;
        }
        self.clock += 1;
        let clock = self.clock;
        let slot = self.slots.get_mut(key).expect("present");
        let owner = self.order.remove(&slot.used).expect("ordered");
        slot.used = clock;
        self.order.insert(clock, owner);
        Some(&slot.value)
    }

    /// Inserts or replaces, evicting the least recently used entry when full.
    pub fn insert(&mut self, key: K, value: V) {
        self.insert_at(key, value, Instant::now());
    }

    /// [`Lru::insert`] at time `now`.
    fn insert_at(&mut self, key: K, value: V, now: Instant) {
        self.clock += 1;
        if let Some(old) = self.slots.remove(&key) {
            self.order.remove(&old.used);
        } else if self.slots.len() >= self.capacity.get() {
            if let Some((_, oldest)) = self.order.pop_first() {
                self.slots.remove(&oldest);
            }
        }
        self.order.insert(self.clock, key.clone());
        self.slots.insert(key, Slot { value, used: self.clock, inserted: now });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lru(capacity: usize, ttl: Option<Duration>) -> Lru<String, u32> {
        Lru::new(NonZeroUsize::new(capacity).unwrap(), ttl)
    }

    #[test]
    fn the_least_recently_used_entry_is_evicted() {
        let mut cache = lru(2, None);
        cache.insert("a".into(), 1);
        cache.insert("b".into(), 2);
        assert_eq!(cache.get("a"), Some(&1));
        cache.insert("c".into(), 3);
        assert_eq!(cache.get("b"), None, "b was used least recently");
        assert_eq!(cache.get("a"), Some(&1));
        assert_eq!(cache.get("c"), Some(&3));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn replacing_a_key_does_not_evict_another() {
        let mut cache = lru(2, None);
        cache.insert("a".into(), 1);
        cache.insert("b".into(), 2);
        cache.insert("a".into(), 10);
        assert_eq!(cache.get("a"), Some(&10));
        assert_eq!(cache.get("b"), Some(&2));
    }

    #[test]
    fn entries_expire_after_their_time_to_live() {
        let ttl = Duration::from_secs(30);
        let mut cache = lru(4, Some(ttl));
        let t0 = Instant::now();
        cache.insert_at("a".into(), 1, t0);
        assert_eq!(cache.get_at("a", t0 + ttl - Duration::from_millis(1)), Some(&1));
        assert_eq!(cache.get_at("a", t0 + ttl), None);
        assert_eq!(cache.len(), 0);
    }
}
