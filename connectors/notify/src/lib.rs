//! Quench's notifiers: routing events delivered to Slack, PagerDuty, Microsoft Teams, email and
//! webhooks, with escalation policies, on-call schedules and an acknowledgement API.
//!
//! This crate is the core: configuration, templates, channel adapters, delivery with retries and
//! rate limits, escalation and schedules as pure functions of time, the planner that turns
//! routing events into delivery jobs, the lanes that schedule them per target, and the API's router. The `quench notify` command
//! (in the pipeline crate) wires them to Kafka.

pub mod alertmanager;
pub mod api;
pub mod callbacks;
pub mod channel;
pub mod config;
pub mod deliver;
pub mod escalation;
pub mod events;
pub mod lanes;
pub mod planner;
pub mod schedule;
pub mod signing;
pub mod template;

pub use config::NotifyConfig;
