use serde::{Deserialize, Serialize};

use crate::record::avro_record;

/// What a person did to an incident, as `schemas/avro/incident_action.avsc` documents it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentAction {
    pub action_id: String,
    pub incident_id: String,
    pub kind: ActionKind,
    /// Who the request says acted (a person's name); as claimed, not verified.
    pub actor: String,
    pub comment: Option<String>,
    pub at: i64,
    pub tenant: String,
    /// The credential that made the request: the API token's name, or `slack`/`pagerduty` for a
    /// signed callback. Verified, unlike `actor`; empty in actions written before it existed.
    #[serde(default)]
    pub token: String,
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
