//! `quench predict`: prediction from learned precursors, and its offline evaluation.

pub mod eval;
