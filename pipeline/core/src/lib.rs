//! Quench's pure core: every decision the stream worker makes, as functions of (state, input,
//! time) with no I/O, so that each can be unit-tested and benchmarked alone and replayed the same
//! way after a crash ("functional core, imperative shell", as in Kafka Streams' processors).
//!
//! - [`rules`]: the route tree SREs tune (Alertmanager's), which places an alert in its groups;
//! - [`window`]: aggregation groups with Alertmanager's timings, the incidents they make;
//! - [`mute`]: silences and inhibition, which keep muted alerts out of what is announced;
//! - [`routing`]: routing rules, which stamp team, targets and escalation policy on events;
//! - [`clock`]: per-partition event time with allowed lateness and idle advance;
//! - [`operator`]: one partition's worker, stage by stage, with classification as an input;
//! - [`predict`]: onsets, the precursor learner, forecasts and their evaluation;
//! - [`correlate`]: incidents of different groups linked under a parent, by topology, learned
//!   co-occurrence and time;
//! - [`replay`]: stored alerts through the operator in virtual time, and what a rules change does.
//!
//! The Kafka shell (`quench-pipeline`'s `worker`) decodes records, feeds them in with the time,
//! and ships what comes out in one transaction. This crate depends on neither rdkafka,
//! clickhouse nor tokio, and the compiler keeps it that way.

pub mod clock;
pub mod correlate;
pub mod mute;
pub mod operator;
pub mod predict;
pub mod replay;
pub mod routing;
pub mod rules;
#[cfg(test)]
mod testing;
pub mod window;
