//! Inserting a batch into ClickHouse, table by table, telling the failures that pass (the server
//! unreachable, overloaded, out of memory) from those that never will (a row the table refuses):
//! a batch that fails for good is split in halves until the refused rows stand alone, so that one
//! bad row costs only itself, never the batch and every table behind it.

use std::{future::Future, pin::Pin};

use anyhow::Context;
use clickhouse::{Client, Row};
use quench_schemas::RefusedRow;
use serde::Serialize;

use super::batch::Batch;

/// Inserts every table of the batch; returns the rows refused for good. An error is a failure
/// that may pass: the caller retries the whole batch (the same insert tokens make it idempotent).
pub async fn insert(client: &Client, batch: &Batch) -> anyhow::Result<Vec<RefusedRow>> {
    let mut refused = Vec::new();
    insert_table(client, "alerts", &batch.alerts, batch.token("alerts"), &mut refused).await?;
    insert_table(client, "incidents", &batch.incidents, batch.token("incidents"), &mut refused).await?;
    insert_table(client, "incident_alerts", &batch.incident_alerts, batch.token("incident_alerts"), &mut refused)
        .await?;
    insert_table(client, "routing_events", &batch.routing, batch.token("routing_events"), &mut refused).await?;
    insert_table(client, "notifications", &batch.notifications, batch.token("notifications"), &mut refused).await?;
    insert_table(client, "predictions", &batch.predictions, batch.token("predictions"), &mut refused).await?;
    insert_table(client, "actions", &batch.actions, batch.token("actions"), &mut refused).await?;
    Ok(refused)
}

/// Inserts `rows`, halving on a permanent failure; `token` (ClickHouse's insert deduplication
/// token) is derived from the batch's offsets and the half's place, so a retry repeats it.
fn insert_table<'a, T>(
    client: &'a Client,
    table: &'static str,
    rows: &'a [T],
    token: String,
    refused: &'a mut Vec<RefusedRow>,
) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>
where
    T: Serialize + Sync + for<'r> Row<Value<'r> = T>,
{
    Box::pin(async move {
        if rows.is_empty() {
            return Ok(());
        }
        let error = match write(client, table, rows, &token).await {
            Ok(()) => return Ok(()),
            Err(e) if transient(&e) => {
                return Err(anyhow::Error::from(e))
                    .with_context(|| format!("inserting {} rows into {table}", rows.len()))
            }
            Err(e) => e,
        };
        if let [row] = rows {
            refused.push(RefusedRow {
                table: table.to_string(),
                error: error.to_string(),
                row: serde_json::to_value(row).unwrap_or_default(),
                at: quench_schemas::now_ms(),
            });
            return Ok(());
        }
        let (first, second) = rows.split_at(rows.len() / 2);
        insert_table(client, table, first, format!("{token}/0"), refused).await?;
        insert_table(client, table, second, format!("{token}/1"), refused).await
    })
}

async fn write<T>(client: &Client, table: &str, rows: &[T], token: &str) -> clickhouse::error::Result<()>
where
    T: Serialize + for<'r> Row<Value<'r> = T>,
{
    let mut insert = client.insert::<T>(table).await?.with_setting("insert_deduplication_token", token);
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await
}

/// Whether another attempt may succeed: no answer, or an answer that says the server, not the
/// rows, is the problem. ClickHouse's codes: 159 timeout, 164 readonly, 202 too many queries,
/// 203 no free connection, 209/210 socket and network, 241 memory limit, 242 table read-only,
/// 252 too many parts (merges behind), 285 too few replicas, 319 insert status unknown,
/// 425 system error, 999 Keeper. "Too many partitions for single INSERT block" is 252 too, but
/// the same rows always fail it, so it is not.
fn transient(error: &clickhouse::error::Error) -> bool {
    use clickhouse::error::Error;
    match error {
        Error::Network(_) | Error::TimedOut => true,
        Error::BadResponse(answer) => {
            let code = answer
                .split("Code: ")
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|digits| digits.parse::<u32>().ok());
            let partitions = answer.contains("Too many partitions for single INSERT block");
            !partitions
                && (code.is_none()
                    || matches!(
                        code,
                        Some(159 | 164 | 202 | 203 | 209 | 210 | 241 | 242 | 252 | 285 | 319 | 425 | 999)
                    ))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_of_the_server_pass_and_failures_of_the_rows_do_not() {
        use clickhouse::error::Error;
        let answer = |text: &str| Error::BadResponse(text.to_string());
        assert!(transient(&Error::TimedOut));
        assert!(transient(&answer("Code: 241. DB::Exception: Memory limit (total) exceeded")));
        assert!(transient(&answer("Code: 252. DB::Exception: Too many parts (300). Merges are processing")));
        assert!(!transient(&answer(
            "Code: 252. DB::Exception: Too many partitions for single INSERT block (more than 100)"
        )));
        assert!(!transient(&answer("Code: 469. DB::Exception: Constraint `c` for table alerts is violated")));
        assert!(transient(&answer("<html>502 Bad Gateway</html>")), "no ClickHouse answer at all: a proxy");
    }
}
