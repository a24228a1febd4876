//! The scheduler's tick: claim due campaigns and drive each through extraction, fan-out and diff-retry rounds
//! for up to a time budget, then give the lease back. Cloud Scheduler calls the tick every minute; locally a
//! loop calls it every second. Everything a tick does is durable in Datastore (status, checkpoint) or
//! BigQuery (targets, logs), so the next tick — on this instance or another — continues where it stopped.

use super::claim::{self, AdvanceError};
use super::diff_retry::{self, RoundState};
use super::fanout::{self, FanoutResult};
use super::{control, extract};
use crate::ctx::Ctx;
use crate::domain::{Campaign, CampaignStatus, FailureReason};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct TickOptions {
    /// Who we are (unique per process): the lease owner.
    pub owner: String,
    /// How long a tick may work on campaigns before returning.
    pub budget: Duration,
    /// Lease length; renewed at every step, so a crashed scheduler's campaigns are free again this soon.
    pub lease: Duration,
    /// How often a delivering campaign's round is checked within one tick.
    pub poll: Duration,
}

impl TickOptions {
    pub fn new(owner: impl Into<String>) -> Self {
        Self {
            owner: owner.into(),
            budget: Duration::from_secs(50),
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(500),
        }
    }
}

/// What one tick did, for the HTTP response and logs.
#[derive(Debug, Default, serde::Serialize)]
pub struct TickReport {
    pub due: usize,
    pub claimed: Vec<String>,
    pub errors: Vec<String>,
}

pub async fn tick(ctx: &Ctx, opts: &TickOptions) -> anyhow::Result<TickReport> {
    let deadline = Instant::now() + opts.budget;
    // LINE's own numbers for recent campaigns (#8): hourly per campaign, in the background.
    crate::click::insight::on_tick(ctx);
    let due = claim::find_due(&ctx.gcp.datastore, ctx.clock.now()).await?;
    let mut report = TickReport {
        due: due.len(),
        ..Default::default()
    };
    let mut tasks = Vec::new();
    for c in due {
        let Some(c) = claim::claim(ctx, &c.id, &opts.owner, opts.lease).await? else {
            continue;
        };
        report.claimed.push(c.id.to_string());
        let (ctx, opts) = (ctx.clone(), opts.clone());
        tasks.push(tokio::spawn(async move {
            let id = c.id.clone();
            let result = drive(&ctx, c, &opts, deadline).await;
            if let Err(e) = claim::release(&ctx, &id, &opts.owner).await {
                tracing::warn!(campaign = %id, error = %format!("{e:#}"), "could not release the lease (it will expire)");
            }
            result.map_err(|e| format!("{id}: {e:#}"))
        }));
    }
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => report.errors.push(e),
            Err(e) => report.errors.push(format!("task failed: {e}")),
        }
    }
    Ok(report)
}

/// Drives one claimed campaign until it waits, ends, or the deadline passes.
#[tracing::instrument(name = "campaign", skip_all, fields(campaign = %c.id))]
async fn drive(
    ctx: &Ctx,
    mut c: Campaign,
    opts: &TickOptions,
    deadline: Instant,
) -> anyhow::Result<()> {
    let (owner, lease) = (opts.owner.as_str(), opts.lease);
    // Batches parked while the campaign was paused go back out once, when a scheduler takes it up again (a
    // pause stops any drive in progress, so a resumed campaign always starts a new one).
    if c.status.is_running() {
        republish_parked(ctx, &c).await?;
    }
    loop {
        // Stopping (SIGTERM): everything is durable; the next tick, on another instance, goes on from here.
        if Instant::now() >= deadline || ctx.stopping.is_cancelled() {
            return Ok(());
        }
        if c.next_check_at.is_some_and(|t| t > ctx.clock.now()) {
            return Ok(());
        }
        let step: Result<Campaign, AdvanceError> = match c.status {
            CampaignStatus::Extracting => extract::run(ctx, &c, owner, lease).await,
            CampaignStatus::FanningOut => {
                match fanout::run(ctx, &c, owner, lease, deadline).await {
                    Ok(FanoutResult::Completed(c)) => Ok(*c),
                    Ok(FanoutResult::Yielded) => return Ok(()),
                    Err(e) => Err(e),
                }
            }
            CampaignStatus::Delivering | CampaignStatus::Retrying => {
                match diff_retry::check(ctx, &c, owner, lease).await {
                    Ok(RoundState::Advanced(c)) => Ok(*c),
                    Ok(RoundState::Waiting { settled, expected }) => {
                        wait_for_round(ctx, &c, opts, settled, expected).await
                    }
                    Err(e) => Err(e),
                }
            }
            CampaignStatus::Canceled if c.completed_at.is_none() => {
                settle_canceled(ctx, &c, opts).await
            }
            _ => return Ok(()),
        };
        match step {
            Ok(next) => {
                if next.status != c.status {
                    tracing::info!(
                        campaign = %c.id, from = %c.status, to = %next.status, round = next.round,
                        "{}", crate::telemetry::events::CAMPAIGN_ADVANCED
                    );
                }
                c = next;
            }
            Err(AdvanceError::StatusChanged(id, status)) => {
                tracing::info!(campaign = %id, %status, "campaign changed by a command; stopping here");
                return Ok(());
            }
            Err(AdvanceError::LeaseLost(id)) => {
                tracing::warn!(campaign = %id, "lease lost; another scheduler has the campaign");
                return Ok(());
            }
            Err(AdvanceError::Other(e)) => return Err(e),
        }
    }
}

/// A round still in progress: waits a poll, re-drives the round if it has stopped growing for
/// `SEGCAST_REDRIVE_SECONDS`, renews the lease (noticing a pause or cancel) and notes the progress.
async fn wait_for_round(
    ctx: &Ctx,
    c: &Campaign,
    opts: &TickOptions,
    settled: u64,
    expected: u64,
) -> Result<Campaign, AdvanceError> {
    tracing::debug!(campaign = %c.id, settled, expected, "round in progress");
    tokio::time::sleep(opts.poll).await;
    let now = ctx.clock.now();
    let stalled = settled == c.round_logged
        && c.round_progress_at
            .is_some_and(|t| now - t >= ctx.settings.delivery.redrive_after);
    if stalled {
        let (published, batches) = fanout::redrive(ctx, c).await?;
        tracing::warn!(
            campaign = %c.id, round = c.round, settled, expected, published, batches,
            "{}", crate::telemetry::events::ROUND_STALLED
        );
    }
    claim::advance(ctx, &c.id, &opts.owner, c.status, opts.lease, |x| {
        if stalled || x.round_logged != settled || x.round_progress_at.is_none() {
            x.round_logged = settled;
            x.round_progress_at = Some(now);
        }
        Ok(())
    })
    .await
}

/// A canceled campaign that had started: once no push can still be sending, everything not settled is logged
/// `failed/canceled` and the final counts are taken.
async fn settle_canceled(
    ctx: &Ctx,
    c: &Campaign,
    opts: &TickOptions,
) -> Result<Campaign, AdvanceError> {
    diff_retry::settle_remaining(ctx, c, FailureReason::Canceled).await?;
    let counts = diff_retry::final_counts(ctx, c).await?;
    claim::advance(
        ctx,
        &c.id,
        &opts.owner,
        CampaignStatus::Canceled,
        opts.lease,
        |x| {
            x.counts = counts.clone();
            x.completed_at = Some(ctx.clock.now());
            Ok(())
        },
    )
    .await
}

/// A resumed campaign's parked batches go back to the delivery topics (same ids, same keys), a group at a time
/// (they hold their recipients: all of a big campaign's would not fit in one Datastore response, or in memory).
async fn republish_parked(ctx: &Ctx, c: &Campaign) -> anyhow::Result<()> {
    let ds = &ctx.gcp.datastore;
    let ids = control::parked_ids(ds, &c.id).await?;
    let mut topics = super::batch_wire::BatchTopics::open(ctx, 0).await?;
    let mut n = 0usize;
    for group in ids.chunks(control::PARKED_GROUP) {
        let batches: Vec<_> = ds
            .get_many::<super::records::ParkedBatch>(group)
            .await?
            .into_values()
            .map(|p| p.batch)
            .collect();
        // Published (and confirmed) before the parked copies are deleted: never neither.
        topics.publish_all(&batches).await?;
        for b in &batches {
            ds.delete::<super::records::ParkedBatch>(b.id.as_str())
                .await?;
        }
        n += batches.len();
    }
    if n > 0 {
        tracing::info!(campaign = %c.id, batches = n, "re-published parked batches");
    }
    Ok(())
}
