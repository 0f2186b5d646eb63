use serde::{Deserialize, Serialize};

use crate::record::avro_record;

/// An alert kind expected on an entity, as `schemas/avro/prediction.avsc` documents it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub prediction_id: String,
    pub tenant: String,
    pub alertname: String,
    pub entity: String,
    pub entity_label: String,
    pub probability: f64,
    pub issued_at: i64,
    pub window_start: i64,
    pub window_end: i64,
    pub expected_lead_s: i64,
    pub evidence_alertname: String,
    pub evidence_entity: String,
    pub evidence_fingerprint: String,
    pub edge_support: i64,
    pub model_version: i64,
    pub outcome: PredictionOutcome,
    pub came_at: Option<i64>,
    pub lead_s: Option<i64>,
    pub version: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictionOutcome {
    Pending,
    CameTrue,
    Missed,
    /// A symbol added by a newer writer that this reader does not know (the schema's enum default).
    Unknown,
}

avro_record!(Prediction, "quench.Prediction", "prediction.avsc");
