//! `quench ask`: plain-language questions about incidents, answered from ClickHouse.
//!
//! Two ways to an answer, both ending in one SELECT that [`check`] has parsed, confined to the
//! views in [`views::VIEWS`] and their columns, narrowed to the caller's tenants and capped, and
//! that runs read-only with a time limit:
//! - with an LLM configured (`classify.provider` = anthropic or openai, `classify.llm`), the
//!   model writes the SQL; if that fails or is refused, the local parser answers and says so;
//! - the local parser ([`local`]) reads the common questions itself.
//!
//! What the words mean (the parser's conventions; the questions of `quench eval ask` use them):
//! - Times are UTC. A time range applies to when the incident opened (`first_seen`), to when
//!   an action was taken (`at`), and to the days of the per-day views. `today` is from midnight,
//!   `yesterday` the day before it, `this week` from Monday 00:00, `last week` the Monday to
//!   Monday before, `this month` / `last month` likewise, `last N days` / `past N hours` the N
//!   days or hours before now. Every range ends at now. Without one, all time counts.
//! - `open` is status open (not acknowledged), `acknowledged` and `resolved` (or `closed`) their
//!   status; `unresolved`, `active` and `still open` are everything not resolved.
//! - MTTA and MTTR are means in seconds from the first notification (`tta_s`, `ttr_s`).
//! - `top N` and `most` order by the count, ties by name; without a number, a singular noun
//!   ("which service") asks for one and a plural for five.

pub mod check;
mod command;
pub mod compare;
pub mod eval;
pub mod fixture;
mod llm;
pub mod local;
pub mod views;
mod when;

use std::time::Duration;

use anyhow::Context;
pub use command::{run, AskArgs};
use serde::Serialize;
use serde_json::Value;

use crate::{clickhouse, config::Config};

/// Who writes the SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    /// The local parser only.
    Local,
    /// The configured LLM, falling back to the local parser when it fails or is refused.
    Auto,
    /// The configured LLM only (to measure it).
    Llm,
}

/// A query's result: column names and rows of JSON values.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// An answer: the SQL that ran, who wrote it, its rows, and anything the asker should know.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub question: String,
    pub sql: String,
    /// `local`, or the LLM's `provider/model`.
    pub via: String,
    #[serde(flatten)]
    pub table: Table,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Why there is no answer.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// The question is not one the parser reads (and no LLM answered it).
    #[error("{0}")]
    NotUnderstood(String),
    /// The SQL was refused by [`check`].
    #[error("refused: {0}")]
    Refused(String),
    #[error("ClickHouse did not answer: {0}")]
    ClickHouse(String),
}

pub struct Asker {
    clickhouse: ::clickhouse::Client,
    llm: Option<llm::SqlWriter>,
    via: Via,
    max_rows: u64,
}

impl Asker {
    pub fn new(config: &Config, via: Via) -> anyhow::Result<Self> {
        let llm = match via {
            Via::Local => None,
            Via::Auto => llm::SqlWriter::configured(&config.classify)?,
            Via::Llm => Some(
                llm::SqlWriter::configured(&config.classify)?
                    .context("--via llm needs classify.provider = \"anthropic\" or \"openai\"")?,
            ),
        };
        let clickhouse = clickhouse::client(&config.clickhouse)
            .with_setting("readonly", "1")
            .with_setting("max_execution_time", config.api.query_timeout_s.to_string());
        Ok(Self { clickhouse, llm, via, max_rows: config.api.max_limit.max(1000) as u64 })
    }

    /// Answers `question` as asked at `now_ms`, over `tenants` only (`None`: every tenant).
    pub async fn ask(&self, question: &str, now_ms: i64, tenants: Option<&[String]>) -> Result<Answer, AskError> {
        let mut note = None;
        if let Some(llm) = &self.llm {
            match self.by_llm(llm, question, now_ms, tenants).await {
                Ok((sql, table)) => {
                    return Ok(Answer { question: question.into(), sql, via: llm.label().into(), table, note })
                }
                Err(e) if self.via == Via::Llm => return Err(e),
                Err(e) => {
                    // ClickHouse's own text may describe tables the question may not read: logged only.
                    let why = match e {
                        AskError::ClickHouse(detail) => {
                            tracing::warn!(error = %detail, "the LLM's SQL failed in ClickHouse");
                            "its SQL failed in ClickHouse".to_string()
                        }
                        other => other.to_string(),
                    };
                    note = Some(format!("the LLM's answer was not used ({why}); answered by the local parser"));
                }
            }
        }
        let vocabulary = views::Vocabulary::load(&self.clickhouse, tenants).await?;
        let query = local::parse(question, now_ms, &vocabulary).map_err(AskError::NotUnderstood)?;
        let sql = check::checked(&query.sql(), tenants, self.max_rows).map_err(AskError::Refused)?;
        let table = self.run(&sql).await?;
        Ok(Answer { question: question.into(), sql, via: "local".into(), table, note })
    }

    async fn by_llm(
        &self,
        llm: &llm::SqlWriter,
        question: &str,
        now_ms: i64,
        tenants: Option<&[String]>,
    ) -> Result<(String, Table), AskError> {
        let now = time_text(now_ms).replace(' ', "T") + "Z";
        let written = llm.write(question, &now).await.map_err(AskError::NotUnderstood)?;
        let sql = check::checked(&written, tenants, self.max_rows).map_err(AskError::Refused)?;
        let table = self.run(&sql).await?;
        Ok((sql, table))
    }

    async fn run(&self, sql: &str) -> Result<Table, AskError> {
        let client = self.clickhouse.clone().with_setting("max_result_rows", self.max_rows.to_string());
        tokio::time::timeout(Duration::from_secs(60), fetch(&client, sql))
            .await
            .map_err(|_| AskError::ClickHouse("no answer in 60 s".into()))?
            .map_err(|e| AskError::ClickHouse(e.to_string()))
    }
}

/// Runs `sql` and returns its columns and rows (times as ClickHouse's text, 64-bit integers as
/// numbers).
pub async fn fetch(client: &::clickhouse::Client, sql: &str) -> Result<Table, ::clickhouse::error::Error> {
    let bytes = client
        .query(sql)
        .with_setting("output_format_json_quote_64bit_integers", "0")
        .with_setting("output_format_json_quote_decimals", "0")
        .fetch_bytes("JSONCompactEachRowWithNames")?
        .collect()
        .await?;
    let mut lines = std::str::from_utf8(&bytes).unwrap_or_default().lines();
    let columns = lines.next().and_then(|l| serde_json::from_str(l).ok()).unwrap_or_default();
    let rows = lines.filter_map(|l| serde_json::from_str(l).ok()).collect();
    Ok(Table { columns, rows })
}

/// `2026-09-28 00:00:00.000`: how JSONEachRow takes a DateTime64(3) (a number would be seconds).
pub fn time_text(ms: i64) -> String {
    // 1900 to 2299: what ClickHouse's DateTime64 holds, whatever range a question names.
    let ms = ms.clamp(-2_208_988_800_000, 10_413_791_999_000);
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).expect("clamped");
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]");
    at.format(&format).expect("formats")
}

/// An RFC 3339 time as milliseconds.
pub fn parse_time(text: &str) -> anyhow::Result<i64> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("`{text}` is not an RFC 3339 time"))?;
    Ok((at.unix_timestamp_nanos() / 1_000_000) as i64)
}
