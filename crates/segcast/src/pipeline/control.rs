//! The marketer's commands on a campaign: create and schedule, pause, resume, cancel (for the CLI-less callers:
//! tests, the demo, chaos; the console applies the same rules with its audit entry). Each is a rule of
//! [`Campaign`] applied in one Datastore transaction ([`crate::catalog::change_campaign`]), so a command that does
//! not apply changes nothing and says why ([`CommandError`]).

use super::records::ParkedBatch;
use crate::catalog::{CommandError, change_campaign};
use crate::ctx::Ctx;
use crate::domain::{Campaign, CampaignId, CampaignStatus};
use crate::gcp::datastore::{Datastore, Indexed};
use anyhow::{anyhow, bail};
use std::time::Duration;

/// Stores a new campaign (refuses an existing id).
pub async fn create(ctx: &Ctx, campaign: &Campaign) -> Result<(), CommandError> {
    crate::catalog::create_campaign(&ctx.gcp.datastore, campaign).await
}

pub async fn schedule(ctx: &Ctx, id: &CampaignId) -> Result<Campaign, CommandError> {
    let now = ctx.clock.now();
    change_campaign(&ctx.gcp.datastore, id.as_str(), |c| {
        c.transition(CampaignStatus::Scheduled, None, now)
    })
    .await
}

pub async fn pause(ctx: &Ctx, id: &CampaignId, reason: &str) -> Result<Campaign, CommandError> {
    let now = ctx.clock.now();
    change_campaign(&ctx.gcp.datastore, id.as_str(), |c| c.pause(reason, now)).await
}

/// Resumes a paused campaign where it was. Its parked batches are re-published by the scheduler.
pub async fn resume(ctx: &Ctx, id: &CampaignId) -> Result<Campaign, CommandError> {
    let now = ctx.clock.now();
    change_campaign(&ctx.gcp.datastore, id.as_str(), |c| c.resume(now)).await
}

/// Cancels a campaign (see [`Campaign::cancel`]).
pub async fn cancel(
    ctx: &Ctx,
    id: &CampaignId,
    settle_after: Duration,
) -> Result<Campaign, CommandError> {
    let now = ctx.clock.now();
    change_campaign(&ctx.gcp.datastore, id.as_str(), |c| {
        c.cancel(now, settle_after)
    })
    .await
}

/// Parked batches read at once: a parked batch holds its recipients (a multicast batch ~100 KB), and a
/// Datastore response holds at most 4 MB.
pub const PARKED_GROUP: usize = 20;

/// The ids of a campaign's parked batches (paused while they arrived), to be read [`PARKED_GROUP`] at a time.
pub async fn parked_ids(ds: &Datastore, id: &CampaignId) -> anyhow::Result<Vec<String>> {
    ds.query_keys_eq::<ParkedBatch>("campaign_id", Indexed::Str(id.to_string()))
        .await
}

/// Parked batches of a campaign (paused while they arrived), all in memory: for tests and small campaigns
/// (the scheduler reads them a group at a time).
pub async fn parked(ds: &Datastore, id: &CampaignId) -> anyhow::Result<Vec<ParkedBatch>> {
    let mut out = Vec::new();
    for ids in parked_ids(ds, id).await?.chunks(PARKED_GROUP) {
        out.extend(ds.get_many::<ParkedBatch>(ids).await?.into_values());
    }
    Ok(out)
}

/// What a test send did for one user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TestSendResult {
    pub user_id: String,
    pub delivered: bool,
    pub detail: Option<String>,
}

/// Test send: the campaign's content, now, by push, to a short list of users (at most
/// [`TEST_SEND_MAX`]), e.g. the marketer's own LINE account. It is not part of the campaign: no batches, no
/// delivery logs, no aggregation unit (LINE's campaign statistics stay clean), and a fresh retry key per call
/// (sending a test twice is meant to deliver twice). Placeholders are filled from `attrs`.
pub async fn test_send(
    ds: &Datastore,
    line: &crate::line::LineClient,
    id: &CampaignId,
    users: &[crate::domain::UserId],
    attrs: &serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<Vec<TestSendResult>> {
    use crate::line::{Endpoint, SendOutcome};
    if users.is_empty() || users.len() > TEST_SEND_MAX {
        bail!(
            "a test send goes to 1 to {TEST_SEND_MAX} users, not {}",
            users.len()
        );
    }
    let campaign: Campaign = ds
        .get(id.as_str())
        .await?
        .ok_or_else(|| anyhow!("campaign {id} does not exist"))?;
    let content: crate::catalog::Content = ds
        .get(campaign.content_id.as_str())
        .await?
        .ok_or_else(|| anyhow!("content {} does not exist", campaign.content_id))?;
    // Tracked links go straight to their targets: a test send is not part of the campaign's click stats.
    let messages =
        crate::click::links::with_targets(&content.messages.render(attrs), &content.links);
    let mut out = Vec::with_capacity(users.len());
    for user in users {
        let body = serde_json::json!({ "to": user.as_str(), "messages": messages });
        let outcome = line
            .send(
                &campaign.channel_id,
                Endpoint::Push,
                &body,
                uuid::Uuid::new_v4(),
            )
            .await;
        let (delivered, detail) = match outcome {
            SendOutcome::Accepted { .. } | SendOutcome::AlreadyAccepted { .. } => (true, None),
            other => (false, Some(other.describe())),
        };
        out.push(TestSendResult {
            user_id: user.to_string(),
            delivered,
            detail,
        });
    }
    Ok(out)
}

/// The most users a test send may go to.
pub const TEST_SEND_MAX: usize = 20;
