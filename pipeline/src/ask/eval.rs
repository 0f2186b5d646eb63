//! `quench eval ask`: loads the fixed data set ([`super::fixture`]) into a database of its own,
//! asks every question of a JSON-lines file at its `now`, and scores result-set accuracy against
//! the line's reference SQL ([`super::compare`]). A reference that returns nothing, or only zeros
//! and NULLs, is refused: it could not tell a right answer from a wrong one.

use std::{path::PathBuf, time::Instant};

use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{compare, fetch, fixture, Asker, Via};
use crate::{clickhouse, config::Config};

#[derive(Debug, Clone, clap::Args)]
pub struct EvalAskArgs {
    /// Questions, one JSON object a line: `{"question": "...", "sql": "reference SQL",
    /// "now": "RFC 3339 time it is asked at"}`.
    #[arg(long)]
    pub input: PathBuf,
    /// Who answers: the local parser, or the configured LLM (`classify.provider` and
    /// `classify.llm`) writing SQL, without falling back.
    #[arg(long, value_enum, default_value = "local")]
    pub via: Via,
    /// The database the data set is loaded into (dropped and made again).
    #[arg(long, default_value = "quench_ask_eval")]
    pub database: String,
    /// Print one JSON object per question instead of a report line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Question {
    question: String,
    sql: String,
    now: String,
}

pub async fn run(config: &Config, args: &EvalAskArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let questions = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            let question: Question =
                serde_json::from_str(line).with_context(|| format!("{}:{}", args.input.display(), n + 1))?;
            let now =
                super::parse_time(&question.now).with_context(|| format!("{}:{}: now", args.input.display(), n + 1))?;
            Ok((n + 1, question, now))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if questions.is_empty() {
        bail!("{} holds no questions", args.input.display());
    }
    if args.database.is_empty() || !args.database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        bail!("--database must be a plain identifier (letters, digits, _), not `{}`", args.database);
    }
    let mut config = config.clone();
    config.clickhouse.database.clone_from(&args.database);
    let loading = Instant::now();
    let rows = load(&config).await?;
    eprintln!("loaded {rows} rows into {} in {:.1?}", args.database, loading.elapsed());
    let reference_client = clickhouse::client(&config.clickhouse).with_setting("readonly", "1");
    let asker = Asker::new(&config, args.via)?;
    let (mut correct, started) = (0, Instant::now());
    for (line, question, now) in &questions {
        let reference = fetch(&reference_client, &question.sql)
            .await
            .with_context(|| format!("{}:{line}: the reference SQL failed", args.input.display()))?;
        if reference.rows.iter().flatten().all(|v| v.is_null() || v.as_f64() == Some(0.0) || v == "0") {
            bail!("{}:{line}: the reference answers nothing but zeros and NULLs on the data set", args.input.display());
        }
        let ordered = question.sql.to_ascii_uppercase().contains("ORDER BY");
        let outcome = match asker.ask(&question.question, *now, None).await {
            Ok(answer) => compare::same(&reference, &answer.table, ordered)
                .map(|()| answer.sql.clone())
                .map_err(|why| format!("{why}; answered with: {}", answer.sql)),
            Err(e) => Err(e.to_string()),
        };
        correct += usize::from(outcome.is_ok());
        if args.json {
            let (ok, detail) = match &outcome {
                Ok(sql) => (true, sql),
                Err(why) => (false, why),
            };
            println!("{}", json!({"line": line, "question": question.question, "correct": ok, "detail": detail}));
        } else {
            match &outcome {
                Ok(_) => println!("ok    {}", question.question),
                Err(why) => println!("MISS  {}\n      {why}", question.question),
            }
        }
    }
    let total = questions.len();
    eprintln!("{correct} of {total} answered right in {:.1?} ({:?})", started.elapsed(), args.via);
    let accuracy = correct as f64 / total as f64;
    println!("{}", json!({"questions": total, "correct": correct, "accuracy": (accuracy * 1e4).round() / 1e4}));
    Ok(())
}

/// Makes the database again with Quench's migrations and inserts the data set; returns the
/// number of rows.
pub async fn load(config: &Config) -> anyhow::Result<usize> {
    // The data set is a fixed stretch of the past (September to November 2026): its alerts are
    // kept for ever, or their 30-day retention drops the older ones as they are inserted and the
    // answers change with the date the evaluation runs.
    let mut settings = config.clickhouse.clone();
    settings.ttl_days.insert("alerts".into(), 0);
    let server = clickhouse::server_client(&settings);
    let database = &settings.database;
    server.query(&format!("DROP DATABASE IF EXISTS `{database}`")).execute().await?;
    clickhouse::migrate(&settings, clickhouse::MIGRATIONS).await?;
    let client = clickhouse::client(&settings);
    let mut total = 0;
    for (table, rows) in fixture::generate().tables {
        let lines: Vec<String> = rows.iter().map(Value::to_string).collect();
        let sql = format!("INSERT INTO {table} FORMAT JSONEachRow\n{}", lines.join("\n"));
        client.query(&sql).execute().await.with_context(|| format!("loading {table}"))?;
        total += rows.len();
    }
    Ok(total)
}
