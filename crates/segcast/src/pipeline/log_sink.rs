//! Steps 10 and 11, locally: the delivery-log and click-log topics -> BigQuery. In production a BigQuery subscription writes the
//! same JSON rows into the same table; the emulator cannot, so this sink pulls (unary pull: the emulator's
//! streaming pull is slow), inserts with `insertAll` (insertId = log_id) and acknowledges only after the rows
//! are in. A redelivered message is inserted again with the same log_id, and readers deduplicate by log_id.

use crate::click::ClickRow;
use crate::ctx::Ctx;
use crate::domain::DeliveryLogRow;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Rows per `insertAll`: an insert costs the BigQuery emulator far more per call than per row, and the
/// Pub/Sub emulator's pulls return only what it has at hand, so pulls are gathered up to this many.
const ROWS_PER_INSERT: usize = 2000;
/// Pulls gathered for one insert at most (each returns at once when nothing is waiting).
const PULLS_PER_INSERT: usize = 8;

/// Pulls up to [`ROWS_PER_INSERT`] messages of `sub`, stopping early when a pull comes back empty.
async fn pull_some(ctx: &Ctx, sub: &str) -> anyhow::Result<Vec<crate::gcp::pubsub::Pulled>> {
    let mut all = Vec::new();
    for _ in 0..PULLS_PER_INSERT {
        let want = (ROWS_PER_INSERT - all.len()).min(1000);
        let pulled = ctx.gcp.pubsub.pull(sub, want).await?;
        let empty = pulled.is_empty();
        all.extend(pulled);
        if empty || all.len() >= ROWS_PER_INSERT {
            break;
        }
    }
    Ok(all)
}

/// Moves one insert's worth of rows. Returns how many messages it handled.
pub async fn drain_once(ctx: &Ctx) -> anyhow::Result<usize> {
    let sub = ctx.settings.log_subscription();
    drain::<DeliveryLogRow>(ctx, &sub, "delivery_logs", |r| r.log_id.clone()).await
}

/// Moves one pull's worth of click rows (click topic -> `click_logs`, insertId = click_id; readers deduplicate
/// by click_id). Returns how many messages it handled.
pub async fn drain_clicks_once(ctx: &Ctx) -> anyhow::Result<usize> {
    let sub = ctx.settings.click_subscription();
    drain::<ClickRow>(ctx, &sub, "click_logs", |r| r.click_id.clone()).await
}

/// One pull of `sub` into `table`, each row inserted with `insert_id` (its deduplication key), acknowledged only
/// after the insert. A message that is not a row can never be inserted: it is logged loudly (with a prefix of
/// it) and dropped.
async fn drain<T>(
    ctx: &Ctx,
    sub: &str,
    table: &str,
    insert_id: impl Fn(&T) -> String,
) -> anyhow::Result<usize>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let pulled = pull_some(ctx, sub).await?;
    if pulled.is_empty() {
        return Ok(0);
    }
    let mut rows = Vec::with_capacity(pulled.len());
    let mut acks = Vec::with_capacity(pulled.len());
    for m in pulled {
        match serde_json::from_slice::<T>(&m.data) {
            Ok(row) => rows.push((insert_id(&row), serde_json::to_value(&row)?)),
            Err(e) => {
                let prefix = String::from_utf8_lossy(&m.data[..m.data.len().min(200)]).into_owned();
                tracing::error!(error = %e, message = %prefix, table, "malformed log message dropped");
            }
        }
        acks.push(m.ack_id);
    }
    ctx.gcp.bigquery.insert_all(table, &rows).await?;
    let n = acks.len();
    ctx.gcp.pubsub.acknowledge(sub, acks).await?;
    Ok(n)
}

/// Runs until `stop` is set: delivery logs, and click logs too.
pub async fn run(ctx: Ctx, stop: CancellationToken) {
    let mut click_warned: Option<tokio::time::Instant> = None;
    while !stop.is_cancelled() {
        match drain_clicks_once(&ctx).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(rows = n, "click logs written"),
            // At most once a minute: a deployment without the click subscription still moves delivery logs.
            Err(e) if click_warned.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) => {
                click_warned = Some(tokio::time::Instant::now());
                tracing::warn!(error = %format!("{e:#}"), "click log sink: will retry");
            }
            Err(_) => {}
        }
        match drain_once(&ctx).await {
            Ok(0) => tokio::time::sleep(Duration::from_millis(200)).await,
            Ok(n) => tracing::debug!(rows = n, "delivery logs written"),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "log sink: will retry");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
