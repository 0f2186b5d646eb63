//! The consumer context of Quench's group members (the worker, the re-keying stage, the
//! notifier): rebalances are queued for the poll loop, which applies them between records, an
//! optional hook runs before partitions are revoked, and librdkafka's statistics become each
//! partition's consumer lag.

use std::sync::Mutex;

use crate::events::ConsumerLag;
use rdkafka::{
    consumer::{BaseConsumer, ConsumerContext, Rebalance},
    ClientContext,
};

/// What the consumer's rebalance callbacks tell the loop.
#[derive(Debug, PartialEq, Eq)]
pub enum Rebalanced {
    Revoked,
    Assigned(Vec<i32>),
}

pub struct Rebalances {
    events: Mutex<Vec<Rebalanced>>,
    before_revoke: Box<dyn Fn() + Send + Sync>,
}

impl Rebalances {
    /// A context that runs `before_revoke` before partitions move away (the worker aborts its
    /// open transaction there, so that the next owner's read_committed reads are not held up).
    pub fn new(before_revoke: impl Fn() + Send + Sync + 'static) -> Self {
        Self { events: Mutex::new(Vec::new()), before_revoke: Box::new(before_revoke) }
    }

    /// Rebalances since the last call, in order.
    pub fn take(&self) -> Vec<Rebalanced> {
        std::mem::take(&mut *self.events.lock().expect("rebalance events"))
    }
}

impl ClientContext for Rebalances {
    /// librdkafka's statistics carry each partition's consumer lag (high watermark minus position).
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, stats) in &statistics.topics {
            for (partition, p) in stats.partitions.iter().filter(|(id, p)| **id >= 0 && p.consumer_lag >= 0) {
                ConsumerLag { topic, partition: *partition, lag: p.consumer_lag }.emit();
            }
        }
    }
}

impl ConsumerContext for Rebalances {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            (self.before_revoke)();
            self.events.lock().expect("rebalance events").push(Rebalanced::Revoked);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let partitions = list.elements().iter().map(|e| e.partition()).collect();
            self.events.lock().expect("rebalance events").push(Rebalanced::Assigned(partitions));
        }
    }
}
