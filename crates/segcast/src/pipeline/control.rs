//! The marketer's commands on a campaign: create and schedule, pause, resume, cancel. Each is one Datastore
//! transaction that checks the state machine, so a command that does not apply changes nothing and says why.

use crate::catalog::ParkedBatch;
use crate::domain::{Campaign, CampaignId, CampaignStatus};
use crate::gcp::datastore::{Datastore, Indexed, Inserted};
use anyhow::{anyhow, bail};
use std::time::Duration;
use time::OffsetDateTime;

/// Stores a new campaign (refuses an existing id).
pub async fn create(ds: &Datastore, campaign: &Campaign) -> anyhow::Result<()> {
    match ds.insert(campaign).await? {
        Inserted::New => Ok(()),
        Inserted::AlreadyExists => bail!("campaign {} already exists", campaign.id),
    }
}

async fn change(
    ds: &Datastore,
    id: &CampaignId,
    f: impl Fn(&mut Campaign) -> anyhow::Result<()>,
) -> anyhow::Result<Campaign> {
    let mut error = None;
    let written = ds
        .update::<Campaign, _>(id.as_str(), |current| {
            error = None;
            let Some(mut c) = current else {
                error = Some(anyhow!("campaign {id} does not exist"));
                return Ok(None);
            };
            match f(&mut c) {
                Ok(()) => Ok(Some(c)),
                Err(e) => {
                    error = Some(e);
                    Ok(None)
                }
            }
        })
        .await?;
    match (written, error) {
        (Some(c), _) => Ok(c),
        (None, Some(e)) => Err(e),
        (None, None) => Err(anyhow!("campaign {id} was not changed")),
    }
}

pub async fn schedule(ds: &Datastore, id: &CampaignId) -> anyhow::Result<Campaign> {
    change(ds, id, |c| c.transition(CampaignStatus::Scheduled, None)).await
}

pub async fn pause(ds: &Datastore, id: &CampaignId, reason: &str) -> anyhow::Result<Campaign> {
    change(ds, id, |c| {
        c.transition(CampaignStatus::Paused, Some(reason.to_owned()))
    })
    .await
}

/// LINE said the channel's monthly quota is used up, for a request sent at `sent_at`. Pausing twice (many
/// handlers see it) is fine. A quota error older than the campaign's last resume does not pause it again (the
/// operator resumed after it, e.g. having raised the quota; a handler's late write must not undo that).
/// Returns whether the campaign is paused now.
pub async fn pause_for_quota(
    ds: &Datastore,
    id: &CampaignId,
    sent_at: OffsetDateTime,
) -> anyhow::Result<bool> {
    let c = change(ds, id, |c| {
        let stale = c.resumed_at.is_some_and(|r| r >= sent_at);
        if c.status == CampaignStatus::Paused || stale || !c.status.is_running() {
            return Ok(());
        }
        c.transition(CampaignStatus::Paused, Some("quota_exhausted".into()))
    })
    .await?;
    Ok(c.status == CampaignStatus::Paused)
}

/// Resumes a paused campaign where it was. Its parked batches are re-published by the scheduler.
pub async fn resume(ds: &Datastore, id: &CampaignId) -> anyhow::Result<Campaign> {
    change(ds, id, |c| {
        let back = c
            .paused_from
            .ok_or_else(|| anyhow!("campaign {} is {}, not paused", c.id, c.status))?;
        c.transition(back, None)?;
        c.resumed_at = Some(OffsetDateTime::now_utc());
        c.lease = None;
        c.next_check_at = None;
        // The time paused is not a stall of the round.
        c.round_progress_at = None;
        Ok(())
    })
    .await
}

/// Cancels a campaign. Batches still in Pub/Sub are settled as `failed/canceled` by the handlers; after
/// `settle_after` (one ack deadline, so no push is still sending) the scheduler settles everything else.
pub async fn cancel(
    ds: &Datastore,
    id: &CampaignId,
    settle_after: Duration,
) -> anyhow::Result<Campaign> {
    change(ds, id, |c| {
        let started = c.started_at.is_some();
        c.transition(CampaignStatus::Canceled, Some("canceled".into()))?;
        c.lease = None;
        if started {
            c.next_check_at = Some(OffsetDateTime::now_utc() + settle_after);
        } else {
            // Nothing was extracted or sent: there is nothing to settle.
            c.completed_at = Some(OffsetDateTime::now_utc());
        }
        Ok(())
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
