//! What an LLM is asked and how its answer is read: one request per batch, incidents in as a
//! JSON array with ids, classifications out as a JSON array matched by id and checked against
//! the taxonomy. Shared by both providers.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::{redact::Redactor, subject::Subject, taxonomy::Taxonomy};

/// Name of the tool (Anthropic) or schema (OpenAI) that carries the answer.
pub const ANSWER_NAME: &str = "classify_incidents";

pub const SYSTEM: &str = "You are an SRE triaging monitoring incidents. For every incident in the \
input, decide its severity, its category, a confidence between 0 and 1, and a one-line summary \
(at most 120 characters) saying what is wrong and where. Use only the severities and categories \
listed. Answer for every incident id, in JSON matching the schema.";

/// The user message: the taxonomy, then the incidents (redacted) as a JSON array.
pub fn user_message(taxonomy: &Taxonomy, subjects: &[Subject], redactor: &Redactor) -> String {
    let categories: Vec<Value> =
        taxonomy.categories.iter().map(|c| json!({ "name": c.name, "description": c.description })).collect();
    let incidents: Vec<Value> = subjects
        .iter()
        .map(|s| {
            let labels: HashMap<&str, String> =
                s.labels.iter().map(|(k, v)| (k.as_str(), redactor.redact(v))).collect();
            json!({
                "id": s.id,
                "alertnames": s.alertnames.iter().map(|n| redactor.redact(n)).collect::<Vec<_>>(),
                "labels": labels,
                "summary": redactor.redact(&s.summary),
                "description": redactor.redact(&s.description),
                "alerts": s.alerts,
            })
        })
        .collect();
    format!(
        "Severities, most severe first: {}\nCategories:\n{}\nIncidents:\n{}",
        serde_json::to_string(taxonomy.scale.levels()).expect("strings"),
        serde_json::to_string_pretty(&categories).expect("json"),
        serde_json::to_string(&incidents).expect("json"),
    )
}

/// The answer's JSON schema: the batch's ids and the taxonomy as enums. With `bounds`, also the
/// item count and the summary's length, which grammar-constrained servers (llama.cpp) enforce
/// but OpenAI's strict mode rejects.
pub fn schema(taxonomy: &Taxonomy, ids: &[&str], bounds: bool) -> Value {
    let categories: Vec<&str> = taxonomy.categories.iter().map(|c| c.name.as_str()).collect();
    let mut schema = json!({
        "type": "object",
        "properties": {
            "incidents": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": { "type": "string", "enum": ids },
                        "severity": { "type": "string", "enum": taxonomy.scale.levels() },
                        "category": { "type": "string", "enum": categories },
                        "confidence": { "type": "number" },
                        "summary": { "type": "string" }
                    },
                    "required": ["id", "severity", "category", "confidence", "summary"],
                    "additionalProperties": false
                }
            }
        },
        "required": ["incidents"],
        "additionalProperties": false
    });
    if bounds {
        let incidents = &mut schema["properties"]["incidents"];
        incidents["minItems"] = json!(ids.len());
        incidents["maxItems"] = json!(ids.len());
        incidents["items"]["properties"]["summary"]["maxLength"] = json!(120);
    }
    schema
}

/// One classified incident as the model answered it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Item {
    pub id: String,
    pub severity: String,
    pub category: String,
    #[serde(default)]
    pub confidence: Option<f32>,
    #[serde(default)]
    pub summary: String,
}

#[derive(Deserialize)]
struct Answer {
    incidents: Vec<Value>,
}

/// Reads the answer: the valid items for ids that were asked, by id. Items that do not parse or
/// name a severity or category outside the taxonomy are left out, for the caller to retry or
/// classify locally. `Err` when the answer is not the expected JSON object at all.
pub fn parse(answer: &Value, taxonomy: &Taxonomy, asked: &[Subject]) -> Result<HashMap<String, Item>, String> {
    let answer: Answer =
        serde_json::from_value(answer.clone()).map_err(|e| format!("answer is not {{\"incidents\": [...]}}: {e}"))?;
    let mut items = HashMap::new();
    for value in answer.incidents {
        let Ok(mut item) = serde_json::from_value::<Item>(value) else { continue };
        let Some(severity) = taxonomy.severity(&item.severity) else { continue };
        item.severity = severity.to_string();
        if asked.iter().any(|s| s.id == item.id) && taxonomy.has_category(&item.category) {
            item.confidence = item.confidence.map(|c| c.clamp(0.0, 1.0));
            item.summary = item.summary.lines().next().unwrap_or_default().chars().take(200).collect();
            items.insert(item.id.clone(), item);
        }
    }
    Ok(items)
}

/// Parses text that should be one JSON object, tolerating a Markdown code fence around it.
pub fn json_text(text: &str) -> Result<Value, String> {
    let trimmed = text.trim();
    let unfenced = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|t| t.strip_suffix("```"))
        .unwrap_or(trimmed);
    serde_json::from_str(unfenced).map_err(|e| format!("answer is not valid JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn taxonomy() -> Taxonomy {
        let catalog = crate::catalog::Catalog::load(&[] as &[&str]).unwrap();
        let mut taxonomy = Taxonomy::default();
        taxonomy.fill_categories(&catalog);
        taxonomy
    }

    fn subject(id: &str) -> Subject {
        let labels = BTreeMap::from([("alertname".to_string(), "PostgresqlDown".to_string())]);
        Subject::from_alert(id, &labels, &BTreeMap::new())
    }

    #[test]
    fn valid_items_are_kept_by_id_and_the_rest_left_for_fallback() {
        let answer = json!({ "incidents": [
            { "id": "a", "severity": "critical", "category": "database", "confidence": 0.9, "summary": "PG down\nmore" },
            { "id": "b", "severity": "apocalyptic", "category": "database", "confidence": 0.9, "summary": "x" },
            { "id": "c", "severity": "low", "category": "knitting", "confidence": 0.9, "summary": "x" },
            { "id": "zzz", "severity": "low", "category": "database", "confidence": 0.9, "summary": "not asked" },
            { "id": "d", "severity": "warning", "category": "database", "confidence": 7, "summary": "alias" },
            { "id": 5 }
        ]});
        let asked: Vec<Subject> = ["a", "b", "c", "d"].iter().map(|id| subject(id)).collect();
        let items = parse(&answer, &taxonomy(), &asked).unwrap();
        assert_eq!(items.len(), 2, "{items:?}");
        assert_eq!(items["a"].summary, "PG down");
        assert_eq!(items["d"].severity, "medium", "aliases map onto the scale");
        assert_eq!(items["d"].confidence, Some(1.0));
        assert!(parse(&json!([1, 2]), &taxonomy(), &asked).is_err());
    }

    #[test]
    fn fenced_json_is_accepted_and_broken_json_named() {
        assert_eq!(json_text("```json\n{\"incidents\": []}\n```").unwrap(), json!({"incidents": []}));
        assert!(json_text("{\"incidents\": [").unwrap_err().contains("not valid JSON"));
    }

    #[test]
    fn the_schema_lists_the_taxonomy() {
        let schema = schema(&taxonomy(), &["inc-1", "inc-2"], true);
        let items = &schema["properties"]["incidents"]["items"]["properties"];
        assert_eq!(items["id"]["enum"][1], "inc-2");
        assert_eq!(schema["properties"]["incidents"]["maxItems"], 2);
        assert_eq!(items["severity"]["enum"][0], "critical");
        assert!(items["category"]["enum"].as_array().unwrap().iter().any(|c| c == "database"));
    }
}
