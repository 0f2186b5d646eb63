use serde::{Deserialize, Serialize};

use crate::record::avro_record;

/// What a person did to an incident, as `schemas/avro/incident_action.avsc` documents it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentAction {
    pub action_id: String,
    pub incident_id: String,
    pub kind: ActionKind,
    pub actor: String,
    pub comment: Option<String>,
    pub at: i64,
    pub tenant: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Acknowledge,
    Resolve,
    Comment,
    /// A symbol added by a newer writer that this reader does not know (the schema's enum default).
    Unknown,
}

avro_record!(IncidentAction, "quench.IncidentAction", "incident_action.avsc");
