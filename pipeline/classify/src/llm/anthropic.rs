//! The Anthropic Messages API (`POST /v1/messages`). The answer is forced through a tool whose
//! input schema is the answer's schema, so it arrives as a parsed `tool_use` block; a text block
//! holding the JSON is accepted too.

use quench_secret::Secret;
use serde_json::{json, Value};

use super::{prompt, send, CallError, Reply, Task};
use crate::config::LlmConfig;

pub struct Anthropic {
    client: reqwest::Client,
    endpoint: String,
    api_key: Secret,
    model: String,
    max_tokens: u32,
}

const API_VERSION: &str = "2023-06-01";

impl Anthropic {
    pub fn new(client: reqwest::Client, config: &LlmConfig) -> anyhow::Result<Self> {
        let api_key = config
            .api_key
            .clone()
            .or_else(|| std::env::var("ANTHROPIC_API_KEY").ok().map(Secret::new))
            .ok_or_else(|| anyhow::anyhow!("invalid configuration: key `classify.llm.api_key`: the Anthropic provider needs an API key (or ANTHROPIC_API_KEY)"))?;
        let base = config.url.clone().unwrap_or_else(|| "https://api.anthropic.com".into());
        Ok(Self {
            client,
            endpoint: format!("{}/v1/messages", base.trim_end_matches('/')),
            api_key,
            model: config.model.clone(),
            max_tokens: config.max_tokens,
        })
    }

    pub async fn call(&self, task: &Task<'_>, user: &str, schema: &Value) -> Result<Reply, CallError> {
        let body = json!({
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": task.system,
            "messages": [{ "role": "user", "content": user }],
            "tools": [{
                "name": task.name,
                "description": task.description,
                "input_schema": schema,
            }],
            "tool_choice": { "type": "tool", "name": task.name },
        });
        let request = self
            .client
            .post(&self.endpoint)
            .header("x-api-key", self.api_key.expose())
            .header("anthropic-version", API_VERSION)
            .json(&body);
        let response = send(request).await?;
        let usage = &response["usage"];
        let blocks =
            response["content"].as_array().ok_or_else(|| CallError::Malformed("answer has no content".into()))?;
        let answer = match blocks.iter().find(|b| b["type"] == "tool_use") {
            Some(block) => block["input"].clone(),
            None => {
                let text: String = blocks.iter().filter_map(|b| b["text"].as_str()).collect();
                prompt::json_text(&text).map_err(CallError::Malformed)?
            }
        };
        Ok(Reply {
            answer,
            input_tokens: usage["input_tokens"].as_u64().unwrap_or(0),
            output_tokens: usage["output_tokens"].as_u64().unwrap_or(0),
        })
    }
}
