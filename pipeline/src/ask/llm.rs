//! The configured LLM writes the SQL of a question: it is told the views, their columns and the
//! conventions of [`super`], and answers `{"sql": "..."}`, which [`super::check`] then holds to
//! the allowlist. Only the question goes to the model, never rows of the data, so nothing an alert
//! says can reach the prompt.

use quench_classify::{
    llm::{Llm, Task},
    redact::Redactor,
    ClassifyConfig, ProviderKind,
};
use serde_json::{json, Value};

use super::views::VIEWS;

pub struct SqlWriter {
    llm: Llm,
    system: String,
    /// The question is redacted like alert text: a user may paste a secret into it.
    redactor: Redactor,
}

const INSTRUCTIONS: &str = "You translate questions about incidents into one ClickHouse SELECT. \
Use only these views and columns (times are DateTime64 in UTC, durations in seconds, `day` is a Date):\n{views}\n\
incident_facts has one row per incident; `status` is 'open', 'acknowledged' or 'resolved'; `severity` is \
critical, high, medium or low; `priority` P1..P5; `tta_s`/`ttr_s` are seconds to acknowledge/resolve (MTTA/MTTR \
are their averages). actions has one row per acknowledge, resolve or comment, by `actor`. alert_kind_noise \
counts alerts per alert name and day. Time ranges apply to `first_seen` (incidents), `at` (actions) or `day`. \
Weeks start on Monday; every range ends at the time the question is asked, which is given: write times as \
literals (toDateTime64('2026-11-26 15:00:00', 3, 'UTC')), never now() or today(). No WITH clauses, no \
SETTINGS, no other tables. Answer {\"sql\": \"...\"} only.";

/// The prompt's description of the views, one line each.
fn views() -> String {
    VIEWS.iter().map(|(view, columns)| format!("- {view}({})", columns.join(", "))).collect::<Vec<_>>().join("\n")
}

impl SqlWriter {
    /// The writer of the classifier's LLM, if one is configured.
    pub fn configured(config: &ClassifyConfig) -> anyhow::Result<Option<Self>> {
        if config.provider == ProviderKind::Local {
            return Ok(None);
        }
        let redactor = Redactor::new(&config.redact.patterns)?;
        let llm = Llm::new(config.provider, &config.llm, config.taxonomy.clone(), redactor.clone())?;
        Ok(Some(Self { llm, system: INSTRUCTIONS.replace("{views}", &views()), redactor }))
    }

    pub fn label(&self) -> &str {
        self.llm.label()
    }

    /// The model's SQL for `question`, asked at `now` (RFC 3339).
    pub async fn write(&self, question: &str, now: &str) -> Result<String, String> {
        let task =
            Task { system: &self.system, name: "answer_with_sql", description: "The SQL that answers the question." };
        let schema = json!({
            "type": "object",
            "properties": {"sql": {"type": "string"}},
            "required": ["sql"],
            "additionalProperties": false,
        });
        let user = format!("Asked at {now}.\nQuestion: {}", self.redactor.redact(question));
        let answer = self.llm.complete(&task, &user, &schema).await.map_err(|e| format!("the LLM failed: {e}"))?;
        match answer.get("sql").and_then(Value::as_str) {
            Some(sql) if !sql.trim().is_empty() => Ok(sql.to_string()),
            _ => Err(format!("the LLM's answer has no `sql`: {answer}")),
        }
    }
}
