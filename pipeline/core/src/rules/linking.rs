//! How a route's incidents take part in correlation across groups (`[correlate]`, when on): the
//! thresholds for linking them under a parent, over the global ones, and whether a linked one
//! is notified in its parent's thread or on its own. Inherited as the timers are.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Linking {
    /// Over `[correlate]`'s `min_confidence`, for an incident of this route to join a parent.
    pub min_confidence: Option<f64>,
    /// Over `[correlate]`'s `min_similarity`, likewise.
    pub min_similarity: Option<f64>,
    /// Linked incidents of this route are notified as incidents of their own (paged, escalated,
    /// with a line naming the related incident) rather than as updates in their parent's thread.
    pub separately: bool,
}

impl Linking {
    /// Checks a route's thresholds; `position` names it in the error.
    pub fn check(&self, position: &str) -> Result<(), String> {
        if self.min_confidence.is_some_and(|c| !(0.0..=1.0).contains(&c)) {
            return Err(format!("route {position}: correlate_min_confidence must be between 0 and 1"));
        }
        if self.min_similarity.is_some_and(|s| s.is_nan() || s < 0.0) {
            return Err(format!("route {position}: correlate_min_similarity must be 0 or more"));
        }
        Ok(())
    }
}
