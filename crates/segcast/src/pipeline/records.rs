//! The pipeline's own records in Datastore, one kind each: a batch's dedupe record ([`BatchDone`]), who has sent
//! it ([`BatchSends`], the sealing rule), batches parked while their campaign is paused ([`ParkedBatch`]) and
//! the fan-out's position ([`FanoutCheckpoint`]). What marketers register is in [`crate::catalog`].

use crate::domain::{Batch, CampaignId};
use crate::gcp::datastore::{Datastore, Doc, Indexed};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The dedupe record of a batch: written once the batch's outcomes are logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchDone {
    pub batch_id: String,
    pub campaign_id: CampaignId,
    pub round: u32,
    pub delivered: u64,
    pub failed: u64,
    pub retryable: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub done_at: OffsetDateTime,
}

impl Doc for BatchDone {
    const KIND: &'static str = "BatchDone";
    fn key(&self) -> String {
        self.batch_id.clone()
    }
    fn indexed(&self) -> Vec<(&'static str, Indexed)> {
        vec![("campaign_id", Indexed::Str(self.campaign_id.to_string()))]
    }
}

/// Who has sent a batch to LINE. The first handling to send inserts it; any later handling (a redelivery after
/// a crash or a `Retry`, a copy re-published by a resumed fan-out) marks it `contended` before it sends. A
/// handling may log requests as `retryable` (not accepted: the next round sends them again, with new retry
/// keys) only if it was the first and is still the only one, and it `seals` the batch with its rows in the same
/// transaction: after that no handling sends the batch again; a later one re-publishes the sealed rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchSends {
    pub batch_id: String,
    pub campaign_id: CampaignId,
    /// Another handling has started sending this batch after the first.
    pub contended: bool,
    /// The batch's final log rows, `retryable` ones included, once a sole first handling sealed it.
    #[serde(default)]
    pub sealed: Option<Vec<crate::domain::DeliveryLogRow>>,
}

impl Doc for BatchSends {
    const KIND: &'static str = "BatchSends";
    fn key(&self) -> String {
        self.batch_id.clone()
    }
}

/// A batch that arrived while its campaign was paused; re-published on resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParkedBatch {
    pub batch: Batch,
}

impl Doc for ParkedBatch {
    const KIND: &'static str = "ParkedBatch";
    fn key(&self) -> String {
        self.batch.id.to_string()
    }
    fn indexed(&self) -> Vec<(&'static str, Indexed)> {
        vec![(
            "campaign_id",
            Indexed::Str(self.batch.campaign_id.to_string()),
        )]
    }
}

/// How far the fan-out of a round got: everything before (`file`, `byte_offset`) is published.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FanoutCheckpoint {
    /// `<campaign>.r<round>`
    pub key: String,
    pub file: usize,
    pub byte_offset: u64,
    pub line: u64,
    pub batches: u64,
    pub recipients: u64,
    pub done: bool,
    /// Batch counts at which a scheduler resumed this fan-out from the checkpoint (after a crash or deploy).
    #[serde(default)]
    pub resumed_at: Vec<u64>,
}

impl FanoutCheckpoint {
    pub fn key_for(campaign: &CampaignId, round: u32) -> String {
        format!("{campaign}.r{round}")
    }
}

impl Doc for FanoutCheckpoint {
    const KIND: &'static str = "FanoutCheckpoint";
    fn key(&self) -> String {
        self.key.clone()
    }
}

/// Sums the dedupe records of a campaign: live progress by recipients settled (not batches published).
pub async fn progress(ds: &Datastore, campaign: &CampaignId) -> anyhow::Result<(u64, u64, u64)> {
    let done: Vec<BatchDone> = ds
        .query_eq("campaign_id", Indexed::Str(campaign.to_string()))
        .await?;
    Ok(done.iter().fold((0, 0, 0), |(d, f, r), b| {
        (d + b.delivered, f + b.failed, r + b.retryable)
    }))
}

/// How a handling starts sending a batch (see [`BatchSends`]).
pub enum Start {
    /// The first handling to send it.
    First,
    /// An earlier handling has sent (some of) it: any of its requests may have been accepted.
    Again,
    /// A sole first handling sealed it with these rows: nothing is sent again.
    Sealed(Vec<crate::domain::DeliveryLogRow>),
}

/// Records that this handling is about to send `batch`: the first inserts its [`BatchSends`], any later one
/// marks it contended (unless it is sealed).
pub async fn start_sending(ds: &Datastore, batch: &Batch) -> anyhow::Result<Start> {
    let fresh = BatchSends {
        batch_id: batch.id.to_string(),
        campaign_id: batch.campaign_id.clone(),
        contended: false,
        sealed: None,
    };
    if matches!(
        ds.insert(&fresh).await?,
        crate::gcp::datastore::Inserted::New
    ) {
        return Ok(Start::First);
    }
    let mut sealed = None;
    ds.update::<BatchSends, _>(batch.id.as_str(), |current| {
        let mut s = current.unwrap_or_else(|| fresh.clone());
        sealed = s.sealed.clone();
        if sealed.is_some() {
            return Ok(None);
        }
        s.contended = true;
        Ok(Some(s))
    })
    .await?;
    Ok(sealed.map_or(Start::Again, Start::Sealed))
}

/// Seals the batch with its final `rows` if this (first) handling is still the only one to have sent it.
pub async fn seal(
    ds: &Datastore,
    batch: &Batch,
    rows: &[crate::domain::DeliveryLogRow],
) -> anyhow::Result<bool> {
    let written = ds
        .update::<BatchSends, _>(batch.id.as_str(), |current| {
            Ok(current
                .filter(|s| !s.contended && s.sealed.is_none())
                .map(|s| BatchSends {
                    sealed: Some(rows.to_vec()),
                    ..s
                }))
        })
        .await?;
    Ok(written.is_some())
}

/// Writes the batch's dedupe record with its counts (after its outcomes are logged).
pub async fn mark_done(
    ds: &Datastore,
    batch: &Batch,
    rows: &[crate::domain::DeliveryLogRow],
    at: OffsetDateTime,
) -> anyhow::Result<()> {
    use crate::domain::Outcome;
    let count = |o: Outcome| {
        rows.iter()
            .filter(|r| r.outcome == o)
            .map(|r| r.recipient_count as u64)
            .sum::<u64>()
    };
    ds.upsert(&BatchDone {
        batch_id: batch.id.to_string(),
        campaign_id: batch.campaign_id.clone(),
        round: batch.round,
        delivered: count(Outcome::Delivered) + count(Outcome::Validated),
        failed: count(Outcome::Failed),
        retryable: count(Outcome::Retryable),
        done_at: at,
    })
    .await
}
