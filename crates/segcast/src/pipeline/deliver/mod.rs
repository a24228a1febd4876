//! Steps 5-10: what the delivery handler does with one batch, in the order it does it.
//!
//! 1. [`decision::on_arrival`]: a batch with a dedupe record (`BatchDone`) is acknowledged without sending; a
//!    canceled campaign's recipients are logged `failed/canceled`; a paused campaign's batch is parked in
//!    Datastore (re-published on resume, never lost); a dry run asks LINE's validate endpoint only.
//! 2. [`requests`]: multicast in requests of <= 500 recipients for uniform content, push per recipient for
//!    personalised content; every request carries a retry key derived from the batch, so a redelivered batch
//!    sends the same keys and LINE accepts each request at most once (409 = already delivered). Each request is
//!    sent until its answer is definite or the push's time budget runs out ([`decision::after_attempt`]).
//! 3. [`decision::conclude`]: delivered and failed-for-good outcomes are logged; unknown ones make the push
//!    refused so Pub/Sub redelivers it (same keys again); `retryable` only under the sealing rule
//!    ([`decision`]'s module docs); LINE's monthly quota pauses the campaign and parks the batch.
//! 4. The outcomes are published to the delivery-log topic *before* the push is acknowledged, then the batch is
//!    marked done. A crash anywhere in between means a redelivery, which re-sends the same keys
//!    (409 -> delivered) and re-logs with the same log ids (deduplicated in BigQuery): never a second acceptance.
//!
//! This module is the I/O around those decisions; the decisions themselves are pure and unit-tested.

pub mod decision;
pub mod requests;

use super::records::{self, BatchDone, ParkedBatch, Start};
use crate::catalog::change_campaign;
use crate::click::links::Rewriter;
use crate::ctx::Ctx;
use crate::domain::{Batch, Campaign, CampaignStatus, DeliveryLogRow, DeliveryMode};
use crate::gcp::datastore::Datastore;
use crate::line::{Endpoint, LineClient};
use crate::telemetry::events;
use decision::{Arrival, Conclusion};
use futures::StreamExt;
use tokio::time::Instant;

pub use requests::MULTICAST_MAX;

/// What the push endpoint answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Acknowledge (2xx): the batch is settled, parked, or was already done.
    Ack(&'static str),
    /// Refuse (5xx): some outcomes are still unknown; Pub/Sub redelivers later with backoff.
    Retry(String),
    /// Refuse for good (4xx, then dropped with a log once dead-lettered): the batch can never be handled, e.g.
    /// it names a campaign that does not exist. Nothing was sent.
    Refuse(String),
}

/// Handles one batch (every line logged meanwhile carries its campaign, batch and channel). `last_attempt` is set for batches arriving from the dead-letter topic: what is still
/// unknown then is settled as `failed/outcome_unknown` (reported, never re-sent with a new key).
#[tracing::instrument(name = "batch", skip_all, fields(
    campaign = %batch.campaign_id, batch = %batch.id, channel = %batch.channel_id, round = batch.round
))]
pub async fn handle(
    ctx: &Ctx,
    line: &LineClient,
    batch: Batch,
    last_attempt: bool,
) -> anyhow::Result<Disposition> {
    let ds = &ctx.gcp.datastore;
    // Both reads at once: they are the handler's fixed cost per batch.
    let (done, campaign) = tokio::join!(
        ds.get::<BatchDone>(batch.id.as_str()),
        ds.get::<Campaign>(batch.campaign_id.as_str())
    );
    match decision::on_arrival(&batch, done?.is_some(), campaign?.as_ref()) {
        Arrival::AlreadyDone => Ok(Disposition::Ack("already done")),
        Arrival::Refuse(why) => Ok(Disposition::Refuse(why)),
        Arrival::Park => {
            tracing::info!(batch = %batch.id, "campaign paused: batch parked until it resumes");
            park(ds, &batch, "parked").await
        }
        Arrival::SettleEnded => {
            let row = decision::ended_row(&batch, ctx.clock.now());
            finish(ctx, &batch, vec![row]).await?;
            Ok(Disposition::Ack("settled without sending"))
        }
        Arrival::Validate => validate(ctx, line, &batch).await,
        Arrival::Send => send(ctx, line, batch, last_attempt).await,
    }
}

/// A dry run: LINE's validate endpoint checks the messages (as they would be sent) once for the batch.
async fn validate(ctx: &Ctx, line: &LineClient, batch: &Batch) -> anyhow::Result<Disposition> {
    let messages = match tracked_links(ctx, batch) {
        Ok(Some(r)) => r.rewrite(
            batch.messages.as_slice(),
            &batch.campaign_id,
            None,
            ctx.clock.unix_now() as u64,
        ),
        Ok(None) => batch.messages.as_slice().to_vec(),
        Err(d) => return Ok(d),
    };
    let endpoint = match batch.mode {
        DeliveryMode::Push => Endpoint::Push,
        DeliveryMode::Multicast => Endpoint::Multicast,
    };
    let answer = line.validate(&batch.channel_id, endpoint, &messages).await;
    match decision::after_validate(batch, answer, ctx.clock.now()) {
        Ok(row) => {
            finish(ctx, batch, vec![row]).await?;
            Ok(Disposition::Ack("settled without sending"))
        }
        Err(why) => Ok(Disposition::Retry(why)),
    }
}

/// Sends the batch's requests and carries out the conclusion ([`decision::conclude`]).
async fn send(
    ctx: &Ctx,
    line: &LineClient,
    batch: Batch,
    last_attempt: bool,
) -> anyhow::Result<Disposition> {
    let links = match tracked_links(ctx, &batch) {
        Ok(l) => l,
        Err(d) => return Ok(d),
    };
    let ds = &ctx.gcp.datastore;
    let first = match records::start_sending(ds, &batch).await? {
        Start::First => true,
        Start::Again => false,
        Start::Sealed(rows) => {
            finish(ctx, &batch, rows).await?;
            return Ok(Disposition::Ack(
                "sealed by an earlier handling; logs re-published",
            ));
        }
    };
    let deadline = Instant::now() + ctx.settings.delivery.push_budget;
    let sent_at = ctx.clock.now();
    let sends = requests::requests(&batch, links.as_ref(), sent_at.unix_timestamp() as u64)
        .into_iter()
        .map(|req| {
            requests::send_until_definite(line, &batch, req, deadline, !first, &ctx.stopping)
        });
    let settled: Vec<decision::Settled> = futures::stream::iter(sends)
        .buffer_unordered(ctx.settings.delivery.batch_concurrency)
        .collect()
        .await;
    log_outcomes(&batch, &settled);
    let cut_short = ctx.stopping.is_cancelled();
    let mut conclusion =
        decision::conclude(&batch, settled, last_attempt, cut_short, ctx.clock.now());
    if let Conclusion::Settle { rows, seal: true } = conclusion {
        conclusion = if records::seal(ds, &batch, &rows).await? {
            Conclusion::Settle { rows, seal: true }
        } else {
            decision::unsealed(&batch, rows, last_attempt, ctx.clock.now())
        };
    }
    match conclusion {
        Conclusion::Quota { log } => {
            publish_rows(ctx, &log).await?;
            pause_for_quota(ctx, &batch, sent_at).await
        }
        Conclusion::Retry { log, why } => {
            publish_rows(ctx, &log).await?;
            Ok(Disposition::Retry(why))
        }
        Conclusion::Settle { rows, .. } => {
            finish(ctx, &batch, rows).await?;
            Ok(Disposition::Ack("sent"))
        }
    }
}

/// One `batch outcomes` line per outcome and reason of the batch's requests: the per-channel metrics (requests,
/// recipients, 429s, LINE's latency by channel and outcome) are log-based metrics on these fields. Campaign and
/// batch are on the line (from the handling's span) for reading, never metric labels.
fn log_outcomes(batch: &Batch, settled: &[decision::Settled]) {
    for o in decision::summarize(settled) {
        let line_latency_ms = o.line_time.as_millis() as u64 / o.requests.max(1);
        tracing::info!(
            channel = %batch.channel_id, outcome = o.outcome, reason = o.reason, recipients = o.recipients,
            requests = o.requests, rate_limited = o.rate_limited, line_latency_ms,
            "{}", events::BATCH_OUTCOMES
        );
    }
}

/// LINE's monthly quota ran out for a request sent at `sent_at`: the campaign pauses (a campaign rule:
/// [`Campaign::pause_for_quota`]) and the batch is parked for when it resumes.
async fn pause_for_quota(
    ctx: &Ctx,
    batch: &Batch,
    sent_at: time::OffsetDateTime,
) -> anyhow::Result<Disposition> {
    let now = ctx.clock.now();
    let ds = &ctx.gcp.datastore;
    let c = change_campaign(ds, batch.campaign_id.as_str(), |c| {
        c.pause_for_quota(sent_at, now);
        Ok(())
    })
    .await?;
    if c.status != CampaignStatus::Paused {
        // Resumed since this batch went out (the quota was raised): send it again.
        return Ok(Disposition::Retry(
            "quota exhausted before the campaign was resumed".into(),
        ));
    }
    tracing::warn!(
        batch = %batch.id, campaign = %batch.campaign_id, channel = %batch.channel_id,
        "{}", events::QUOTA_EXHAUSTED
    );
    park(ds, batch, "quota exhausted; parked").await
}

/// Parks a batch of a paused campaign in Datastore; the scheduler re-publishes it when the campaign resumes.
/// A resume can land between the status read and the park, after the scheduler re-published what was parked
/// then: the status is read again after parking, and if the campaign runs again the batch is redelivered by
/// Pub/Sub instead (if the scheduler also re-publishes it, the dedupe record makes the second copy a no-op).
async fn park(ds: &Datastore, batch: &Batch, why: &'static str) -> anyhow::Result<Disposition> {
    ds.upsert(&ParkedBatch {
        batch: batch.clone(),
    })
    .await?;
    let now = ds.get::<Campaign>(batch.campaign_id.as_str()).await?;
    if now.is_some_and(|c| c.status != CampaignStatus::Paused) {
        return Ok(Disposition::Retry(
            "the campaign was resumed while the batch was being parked".into(),
        ));
    }
    Ok(Disposition::Ack(why))
}

/// The link rewriter when the batch has tracked links; `Err(Retry)` when it has some but this handler cannot
/// sign them (never send tracked content untracked: the campaign check refuses it, this is the backstop).
fn tracked_links(ctx: &Ctx, batch: &Batch) -> Result<Option<Rewriter>, Disposition> {
    if !crate::click::links::has_tracked_links(batch.messages.as_slice()) {
        return Ok(None);
    }
    match Rewriter::from_settings(&ctx.settings.click) {
        Some(r) => Ok(Some(r)),
        None => {
            tracing::error!(batch = %batch.id, "content has tracked links but SEGCAST_CLICK_KEYS / SEGCAST_CLICK_BASE_URL are not set: not sending");
            Err(Disposition::Retry(
                "tracked links but click tracking is not configured".into(),
            ))
        }
    }
}

async fn publish_rows(ctx: &Ctx, rows: &[DeliveryLogRow]) -> anyhow::Result<()> {
    let data = rows
        .iter()
        .map(serde_json::to_vec)
        .collect::<Result<Vec<_>, _>>()?;
    ctx.gcp
        .pubsub
        .publish_all(&ctx.settings.log_topic, data)
        .await
}

/// Logs the outcomes (before the ack), then marks the batch done.
async fn finish(ctx: &Ctx, batch: &Batch, rows: Vec<DeliveryLogRow>) -> anyhow::Result<()> {
    publish_rows(ctx, &rows).await?;
    records::mark_done(&ctx.gcp.datastore, batch, &rows, ctx.clock.now()).await
}
