//! `quench predict`: predictions from precursors learned on ClickHouse history, and their
//! offline evaluation on alarm recordings.

mod config;
pub mod eval;
pub mod service;

pub use config::PredictConfig;
