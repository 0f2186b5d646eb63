//! Retry timing shared by Quench's HTTP clients (the LLM providers and the notifiers): when to try
//! again after a failure, what a server's Retry-After asks for, and how fast a budget refills.

mod backoff;
mod bucket;
mod retry_after;

pub use backoff::Backoff;
pub use bucket::TokenBucket;
pub use retry_after::retry_after;
