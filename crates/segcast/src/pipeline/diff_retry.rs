//! Step 12: diff retry. A round is settled when every one of its recipients has a definite outcome in the
//! delivery logs in BigQuery (which also proves the log backlog has landed). Then
//! `targets EXCEPT DISTINCT settled-for-good` gives the recipients still owed: they become the next round
//! (new batches, new retry keys: they are definitely not delivered, so this cannot deliver twice), after a
//! backoff, for a bounded number of rounds; after the last round they are settled as `retries_exhausted`.
//! Then the final counts are read from BigQuery and the campaign completes.

use super::claim::{AdvanceError, advance};
use crate::ctx::Ctx;
use crate::domain::{Campaign, CampaignCounts, CampaignStatus, FailureReason};
use crate::gcp::bigquery::Param;
use crate::sql;
use anyhow::anyhow;
use std::time::Duration;
use time::OffsetDateTime;

pub enum RoundState {
    /// Not every recipient of the round has a logged outcome yet.
    Waiting { settled: u64, expected: u64 },
    /// The campaign moved on (next round or completed).
    Advanced(Box<Campaign>),
}

/// Backoff before round `round` (2 s, 4 s, 8 s, ... at most 5 min).
pub fn round_backoff(round: u32) -> Duration {
    Duration::from_secs(2u64.saturating_pow(round.saturating_sub(1)).min(300))
}

pub async fn check(
    ctx: &Ctx,
    c: &Campaign,
    owner: &str,
    lease: Duration,
) -> Result<RoundState, AdvanceError> {
    let bq = &ctx.gcp.bigquery;
    let values = [("dataset", ctx.dataset()), ("campaign", c.id.as_str())];
    let params = [
        Param::Str("campaign", c.id.to_string()),
        Param::Int("round", i64::from(c.round)),
    ];
    // The exact count unnests every recipient of the round; while the cheap upper bound says the logs cannot
    // cover the round yet, skip it (this check runs every poll while a round is sending).
    let logged = bq
        .query_i64(&sql::ROUND_LOGGED.render(&values), &params, "logged")
        .await? as u64;
    if logged < c.counts.round_targets {
        return Ok(RoundState::Waiting {
            settled: logged,
            expected: c.counts.round_targets,
        });
    }
    let settled = bq
        .query_i64(&sql::ROUND_SETTLED.render(&values), &params, "settled")
        .await? as u64;
    if settled < c.counts.round_targets {
        return Ok(RoundState::Waiting {
            settled,
            expected: c.counts.round_targets,
        });
    }
    let next = c.round + 1;
    let table = format!("round_{}_{next}", c.id);
    let owed = compute_owed(ctx, c, &table).await?;
    if owed == 0 || next > c.max_rounds {
        if owed > 0 {
            log_owed_as_failed(ctx, c, &table, FailureReason::RetriesExhausted).await?;
        }
        let started = std::time::Instant::now();
        let counts = final_counts(ctx, c).await?;
        let stats_ms = started.elapsed().as_millis() as u64;
        tracing::info!(campaign = %c.id, round = c.round, stats_ms, "last round settled: final counts read");
        let done = advance(ctx, &c.id, owner, c.status, lease, |x| {
            complete(x, counts.clone(), ctx.clock.now())
        })
        .await?;
        return Ok(RoundState::Advanced(Box::new(done)));
    }
    tracing::info!(campaign = %c.id, round = next, owed, "diff retry: next round");
    // Already `retrying` when a scheduler was killed (or the campaign paused) while preparing this round:
    // every step from here is idempotent, so it is simply done again.
    let retrying = advance(ctx, &c.id, owner, c.status, lease, |x| {
        if x.status == CampaignStatus::Retrying {
            return Ok(());
        }
        Ok(x.transition(CampaignStatus::Retrying, None, ctx.clock.now())?)
    })
    .await?;
    let files = super::extract::export_round(ctx, &retrying, next, &table).await?;
    let c = advance(ctx, &c.id, owner, CampaignStatus::Retrying, lease, |x| {
        x.round = next;
        x.round_logged = 0;
        x.round_progress_at = None;
        x.counts.round_targets = owed;
        x.counts.round_batches = 0;
        x.round_files = files.clone();
        let now = ctx.clock.now();
        x.next_check_at = Some(now + round_backoff(next));
        Ok(x.transition(CampaignStatus::FanningOut, None, now)?)
    })
    .await?;
    Ok(RoundState::Advanced(Box::new(c)))
}

fn complete(c: &mut Campaign, counts: CampaignCounts, now: OffsetDateTime) -> anyhow::Result<()> {
    c.counts = CampaignCounts {
        round_targets: c.counts.round_targets,
        round_batches: c.counts.round_batches,
        ..counts
    };
    c.completed_at = Some(now);
    if c.status != CampaignStatus::Canceled {
        c.transition(CampaignStatus::Completed, None, now)?;
    }
    Ok(())
}

/// Writes the recipients `c` still owes (the diff) into `table`; returns how many there are.
async fn compute_owed(ctx: &Ctx, c: &Campaign, table: &str) -> anyhow::Result<u64> {
    let bq = &ctx.gcp.bigquery;
    let values = [
        ("dataset", ctx.dataset()),
        ("campaign", c.id.as_str()),
        ("owed_table", table),
    ];
    bq.execute(
        &sql::DIFF_RETRY.render(&values),
        &[Param::Str("campaign", c.id.to_string())],
    )
    .await?;
    Ok(bq
        .query_i64(&sql::COUNT_OWED.render(&values), &[], "owed")
        .await? as u64)
}

/// Logs each recipient in the owed `table` as failed with `reason`.
async fn log_owed_as_failed(
    ctx: &Ctx,
    c: &Campaign,
    table: &str,
    reason: FailureReason,
) -> anyhow::Result<()> {
    let values = [
        ("dataset", ctx.dataset()),
        ("campaign", c.id.as_str()),
        ("owed_table", table),
    ];
    let params = [
        Param::Str("campaign", c.id.to_string()),
        Param::Int("round", i64::from(c.round)),
        Param::Str("channel", c.channel_id.to_string()),
        Param::Str("reason", reason.as_str().to_owned()),
    ];
    ctx.gcp
        .bigquery
        .execute(&sql::LOG_REMAINING.render(&values), &params)
        .await
}

/// Logs every recipient still owed as failed with `reason` (a canceled campaign's end).
pub async fn settle_remaining(
    ctx: &Ctx,
    c: &Campaign,
    reason: FailureReason,
) -> anyhow::Result<()> {
    let table = format!("owed_{}_final", c.id);
    compute_owed(ctx, c, &table).await?;
    log_owed_as_failed(ctx, c, &table, reason).await
}

/// The campaign's counts from the deduplicated per-recipient outcomes. `targeted = delivered + failed`.
pub async fn final_counts(ctx: &Ctx, c: &Campaign) -> anyhow::Result<CampaignCounts> {
    let rows = ctx
        .gcp
        .bigquery
        .query(
            &sql::CAMPAIGN_OUTCOMES.render(&[("dataset", ctx.dataset())]),
            &[Param::Str("campaign", c.id.to_string())],
        )
        .await?;
    let mut counts = CampaignCounts {
        targeted: c.counts.targeted,
        invalid: c.counts.invalid,
        ..Default::default()
    };
    for row in rows {
        let outcome: String = row.get("outcome").map_err(|e| anyhow!("{e}"))?;
        let reason: String = row.get("reason").map_err(|e| anyhow!("{e}"))?;
        let n: i64 = row.get("recipients").map_err(|e| anyhow!("{e}"))?;
        match outcome.as_str() {
            "delivered" | "validated" => counts.delivered += n as u64,
            _ => {
                counts.failed += n as u64;
                *counts
                    .failed_by_reason
                    .entry(if reason.is_empty() { outcome } else { reason })
                    .or_default() += n as u64;
            }
        }
    }
    if counts.delivered + counts.failed != counts.targeted {
        tracing::error!(
            campaign = %c.id, targeted = counts.targeted, delivered = counts.delivered, failed = counts.failed,
            "counts do not add up"
        );
    }
    Ok(counts)
}
