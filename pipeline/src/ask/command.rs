//! `quench ask "QUESTION"`: the answer as a table with the SQL that made it, or as JSON.

use serde_json::Value;

use super::{parse_time, Answer, Asker, Via};
use crate::config::Config;

#[derive(Debug, Clone, clap::Args)]
pub struct AskArgs {
    /// The question, in plain language ("how many database incidents this week?").
    pub question: String,
    /// Print the answer as one JSON object (question, sql, via, columns, rows, note).
    #[arg(long)]
    pub json: bool,
    /// Answer over these tenants only, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub tenant: Vec<String>,
    /// Ask as at this RFC 3339 time instead of now (for "this week", "yesterday"...).
    #[arg(long)]
    pub now: Option<String>,
    /// Who writes the SQL: `auto` uses the configured LLM and falls back to the local parser.
    #[arg(long, value_enum, default_value = "auto")]
    pub via: Via,
}

pub async fn run(config: &Config, args: &AskArgs) -> anyhow::Result<()> {
    let now = match &args.now {
        Some(text) => parse_time(text)?,
        None => quench_schemas::now_ms(),
    };
    let asker = Asker::new(config, args.via)?;
    let tenants = (!args.tenant.is_empty()).then_some(args.tenant.as_slice());
    let answer = asker.ask(&args.question, now, tenants).await?;
    if args.json {
        println!("{}", serde_json::to_string(&answer)?);
    } else {
        print!("{}", render(&answer));
    }
    Ok(())
}

/// The rows as aligned text columns, then where they came from.
fn render(answer: &Answer) -> String {
    let cell = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    let table = &answer.table;
    let mut widths: Vec<usize> = table.columns.iter().map(String::len).collect();
    for row in &table.rows {
        for (w, v) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell(v).chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(table.columns.clone());
    for row in &table.rows {
        out += &line(row.iter().map(cell).collect());
    }
    out += &format!("({} rows, via {})\nSQL: {}\n", table.rows.len(), answer.via, answer.sql);
    if let Some(note) = &answer.note {
        out += &format!("note: {note}\n");
    }
    out
}
