//! Step 1: finding due campaigns and claiming each exactly once.
//!
//! A claim is a Datastore transaction that sets a lease (owner, until) on a campaign whose lease is free or
//! expired. Two schedulers racing: the transaction lets one win. A scheduler that crashes keeps its lease
//! until it expires; then another takes the campaign over and resumes it from its durable state (the status
//! and the fan-out checkpoint). Every later write of the campaign by the scheduler goes through [`advance`],
//! which checks the lease is still ours and the status is still what we think, so a console pause or cancel
//! is never overwritten.

use crate::ctx::Ctx;
use crate::domain::{Campaign, CampaignId, CampaignStatus, Lease};
use crate::gcp::datastore::{Datastore, Indexed};
use std::time::Duration;
use time::OffsetDateTime;

/// Campaigns the scheduler should look at now.
pub async fn find_due(ds: &Datastore, now: OffsetDateTime) -> anyhow::Result<Vec<Campaign>> {
    let all: Vec<Campaign> = ds.query_eq("needs_scheduler", Indexed::Bool(true)).await?;
    Ok(all
        .into_iter()
        .filter(|c| c.send_at <= now && c.next_check_at.is_none_or(|t| t <= now))
        .collect())
}

/// Claims `id` for `owner` until now + `lease`. `None` when someone else holds it or it needs no work.
pub async fn claim(
    ctx: &Ctx,
    id: &CampaignId,
    owner: &str,
    lease: Duration,
) -> anyhow::Result<Option<Campaign>> {
    ctx.gcp
        .datastore
        .update::<Campaign, _>(id.as_str(), |current| {
            let now = ctx.clock.now();
            let Some(mut c) = current else {
                return Ok(None);
            };
            if !c.needs_scheduler() || c.send_at > now || !c.lease_is_free(owner, now) {
                return Ok(None);
            }
            if c.status == CampaignStatus::Scheduled {
                let held = c
                    .quiet_hours
                    .as_ref()
                    .and_then(|q| q.holds_until(c.time_zone.as_deref().unwrap_or("UTC"), now));
                if let Some(until) = held {
                    // Quiet hours: look again when they end (nothing is claimed).
                    c.next_check_at = Some(until);
                    c.status_reason = Some("waiting for quiet hours to end".into());
                    return Ok(Some(c));
                }
                c.transition(CampaignStatus::Extracting, None, now)?;
                c.started_at = Some(now);
                c.next_check_at = None;
            }
            c.lease = Some(Lease {
                owner: owner.to_owned(),
                until: now + lease,
            });
            Ok(Some(c))
        })
        .await
}

/// Why [`advance`] refused.
#[derive(Debug, thiserror::Error)]
pub enum AdvanceError {
    #[error("lease on campaign {0} lost to another scheduler")]
    LeaseLost(CampaignId),
    #[error("campaign {0} changed to {1} meanwhile")]
    StatusChanged(CampaignId, CampaignStatus),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Applies `f` to the stored campaign if `owner` still holds its lease and its status is still `expected`;
/// extends the lease by `lease`. Returns the campaign as written.
pub async fn advance<F>(
    ctx: &Ctx,
    id: &CampaignId,
    owner: &str,
    expected: CampaignStatus,
    lease: Duration,
    mut f: F,
) -> Result<Campaign, AdvanceError>
where
    F: FnMut(&mut Campaign) -> anyhow::Result<()>,
{
    let mut refusal: Option<AdvanceError> = None;
    let written = ctx
        .gcp
        .datastore
        .update::<Campaign, _>(id.as_str(), |current| {
            refusal = None;
            let now = ctx.clock.now();
            let Some(mut c) = current else {
                refusal = Some(AdvanceError::Other(anyhow::anyhow!(
                    "campaign {id} disappeared"
                )));
                return Ok(None);
            };
            if c.lease.as_ref().is_none_or(|l| l.owner != owner) {
                refusal = Some(AdvanceError::LeaseLost(id.clone()));
                return Ok(None);
            }
            if c.status != expected {
                refusal = Some(AdvanceError::StatusChanged(id.clone(), c.status));
                return Ok(None);
            }
            f(&mut c)?;
            c.updated_at = now;
            c.lease = Some(Lease {
                owner: owner.to_owned(),
                until: now + lease,
            });
            Ok(Some(c))
        })
        .await?;
    match (written, refusal) {
        (Some(c), _) => Ok(c),
        (None, Some(r)) => Err(r),
        (None, None) => Err(AdvanceError::Other(anyhow::anyhow!(
            "campaign {id} was not written"
        ))),
    }
}

/// Gives the lease up (the campaign waits for the next tick, by anyone).
pub async fn release(ctx: &Ctx, id: &CampaignId, owner: &str) -> anyhow::Result<()> {
    ctx.gcp
        .datastore
        .update::<Campaign, _>(id.as_str(), |current| {
            Ok(current.and_then(|mut c| {
                if c.lease.as_ref().is_some_and(|l| l.owner == owner) {
                    c.lease = None;
                    Some(c)
                } else {
                    None
                }
            }))
        })
        .await?;
    Ok(())
}
