//! Any bytes given to the pagerduty parser yield alerts or a named error, never a panic, and accepted
//! alerts respect the limits.
#![no_main]

libfuzzer_sys::fuzz_target!(|body: &[u8]| quench_ingest::payload::fuzz(quench_ingest::payload::Format::Pagerduty, body));
