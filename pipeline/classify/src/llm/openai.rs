//! OpenAI-compatible chat completions (`POST /v1/chat/completions`): OpenAI, vLLM, the llama.cpp
//! server, Ollama. The answer's schema goes in `response_format`, as `json_schema` (OpenAI, vLLM)
//! or as `json_object` with a `schema` beside it (llama.cpp's server).

use quench_secret::Secret;
use serde_json::{json, Value};

use super::{prompt, send, CallError, Reply, Task};
use crate::config::{JsonMode, LlmConfig};

pub struct OpenAi {
    client: reqwest::Client,
    endpoint: String,
    api_key: Option<Secret>,
    model: String,
    max_tokens: u32,
    json_mode: JsonMode,
}

impl OpenAi {
    pub fn new(client: reqwest::Client, config: &LlmConfig) -> Self {
        let base = config.url.clone().unwrap_or_else(|| "https://api.openai.com".into());
        Self {
            client,
            endpoint: format!("{}/v1/chat/completions", base.trim_end_matches('/')),
            // Local servers need no key; OpenAI itself answers 401 without one, which names it.
            api_key: config.api_key.clone().or_else(|| std::env::var("OPENAI_API_KEY").ok().map(Secret::new)),
            model: config.model.clone(),
            max_tokens: config.max_tokens,
            json_mode: config.json_mode,
        }
    }

    pub fn accepts_bounds(&self) -> bool {
        self.json_mode == JsonMode::JsonObject
    }

    pub async fn call(&self, task: &Task<'_>, user: &str, schema: &Value) -> Result<Reply, CallError> {
        let response_format = match self.json_mode {
            JsonMode::JsonSchema => json!({
                "type": "json_schema",
                "json_schema": { "name": task.name, "strict": true, "schema": schema },
            }),
            JsonMode::JsonObject => json!({ "type": "json_object", "schema": schema }),
        };
        let body = json!({
            "model": self.model,
            "max_tokens": self.max_tokens,
            "temperature": 0,
            "messages": [
                { "role": "system", "content": task.system },
                { "role": "user", "content": user },
            ],
            "response_format": response_format,
        });
        let mut request = self.client.post(&self.endpoint).json(&body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose());
        }
        let response = send(request).await?;
        let content = response["choices"][0]["message"]["content"]
            .as_str()
            .ok_or_else(|| CallError::Malformed("answer has no choices[0].message.content".into()))?;
        let usage = &response["usage"];
        Ok(Reply {
            answer: prompt::json_text(content).map_err(CallError::Malformed)?,
            input_tokens: usage["prompt_tokens"].as_u64().unwrap_or(0),
            output_tokens: usage["completion_tokens"].as_u64().unwrap_or(0),
        })
    }
}
