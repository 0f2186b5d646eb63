//! Trace contexts held until the record that carries them on is made: a group's next routing
//! event (the worker), a routing event's delivery attempts (the notifier).

use std::collections::HashMap;

/// Contexts held at most: some keys are never asked for (a group that emits nothing more), and
/// a trace is worth less than bounded memory, so at this size every context held is dropped.
const CAPACITY: usize = 10_000;

/// `traceparent` values by key, bounded.
#[derive(Debug, Default)]
pub struct Pending(HashMap<String, String>);

impl Pending {
    pub fn insert(&mut self, key: String, traceparent: String) {
        if self.0.len() >= CAPACITY {
            self.0.clear();
        }
        self.0.insert(key, traceparent);
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The context of `key`, given once.
    pub fn take(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_set_is_emptied_before_the_next_context_goes_in() {
        let mut pending = Pending::default();
        for i in 0..CAPACITY {
            pending.insert(format!("k{i}"), "ctx".into());
        }
        assert_eq!(pending.get("k0"), Some("ctx"));
        pending.insert("new".into(), "ctx-new".into());
        assert_eq!(pending.get("k0"), None, "the old contexts are dropped");
        assert_eq!(pending.take("new").as_deref(), Some("ctx-new"));
        assert!(pending.is_empty(), "taken once");
    }
}
