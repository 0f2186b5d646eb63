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
    /// Each partition's consumer lag from librdkafka's statistics.
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, stats) in &statistics.topics {
            for (partition, lag) in
                stats.partitions.iter().filter(|(id, _)| **id >= 0).filter_map(|(id, p)| Some((id, lag(p)?)))
            {
                ConsumerLag { topic, partition: *partition, lag }.emit();
            }
        }
    }
}

/// The last stable offset (what a read_committed consumer can reach; the high watermark when the
/// broker gave none) minus this consumer's position. librdkafka's own `consumer_lag` counts from
/// the *committed* offset, which a transactional worker commits through its producer: the
/// consumer never learns of those commits, so for a group that started in this process it stays
/// unknown (-1) for good. Before the first record, only that committed figure is known.
fn lag(p: &rdkafka::statistics::Partition) -> Option<i64> {
    // Not (or no longer) this consumer's: its owner reports it. Zero rather than nothing, so
    // that the figure this consumer reported while it owned the partition does not stay.
    if !p.desired {
        return Some(0);
    }
    let end = if p.ls_offset >= 0 { p.ls_offset } else { p.hi_offset };
    match (end, p.app_offset) {
        (end, position) if end >= 0 && position >= 0 => Some((end - position).max(0)),
        _ if p.consumer_lag >= 0 => Some(p.consumer_lag),
        _ => None,
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

#[cfg(test)]
mod tests {
    use rdkafka::statistics::Partition;

    use super::lag;

    fn partition(app: i64, ls: i64, hi: i64, committed_lag: i64) -> Partition {
        let desired = true;
        Partition {
            app_offset: app,
            ls_offset: ls,
            hi_offset: hi,
            consumer_lag: committed_lag,
            desired,
            ..Default::default()
        }
    }

    #[test]
    fn lag_counts_from_the_position_even_when_commits_go_through_the_transactional_producer() {
        // librdkafka says -1: the consumer never saw a commit of its own.
        assert_eq!(lag(&partition(120, 150, 155, -1)), Some(30), "to the last stable offset");
        assert_eq!(lag(&partition(120, -1, 155, -1)), Some(35), "to the high watermark without one");
        assert_eq!(lag(&partition(-1, 150, 155, 12)), Some(12), "before the first record: from the commit");
        assert_eq!(lag(&partition(-1, 150, 155, -1)), None, "nothing known");
        let revoked = Partition { desired: false, ..partition(120, 150, 155, -1) };
        assert_eq!(lag(&revoked), Some(0), "another consumer's now");
    }
}
