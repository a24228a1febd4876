//! What marketers register — contents, segments, channels — and campaigns, stored as Datastore entities, plus
//! the per-batch and per-round state the pipeline keeps there (dedupe records, fan-out checkpoints, parked
//! batches of paused campaigns).

use crate::domain::{
    Batch, Campaign, CampaignId, ChannelId, ContentId, Messages, ParseError, SegmentId,
};
use crate::gcp::datastore::{Datastore, Doc, Indexed};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Content {
    #[schema(value_type = String)]
    pub id: ContentId,
    pub name: String,
    /// 1 to 5 LINE message objects.
    #[schema(value_type = Vec<Object>)]
    pub messages: Messages,
    /// Tracked links: link id -> target URL, used in the messages as `{{link:ID}}` (see [`crate::click::links`]).
    /// The click redirect only ever redirects to these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// Starts at 1; every edit in the console adds one and keeps the previous version ([`ContentVersion`]).
    #[serde(default = "first_version")]
    pub version: u32,
    #[serde(default)]
    pub updated_by: Option<String>,
}

fn first_version() -> u32 {
    1
}

/// A past version of a content (kind `ContentVersion`, keyed `<content id>@<version>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ContentVersion {
    #[schema(value_type = String)]
    pub content_id: ContentId,
    pub content: Content,
}

impl Doc for ContentVersion {
    const KIND: &'static str = "ContentVersion";
    fn key(&self) -> String {
        format!("{}@{:06}", self.content_id, self.content.version)
    }
    fn indexed(&self) -> Vec<(&'static str, Indexed)> {
        vec![("content_id", Indexed::Str(self.content_id.to_string()))]
    }
}

impl Content {
    /// Checks the content's tracked links against this deployment's click settings (call when content is
    /// registered and when a campaign is created: tracked content is refused where it would go out untracked).
    pub fn check_links(&self, click: &crate::config::ClickSettings) -> Result<(), Vec<ParseError>> {
        crate::click::links::check_content(click, &self.messages, &self.links)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Segment {
    #[schema(value_type = String)]
    pub id: SegmentId,
    pub name: String,
    /// A single read-only SELECT returning a `user_id` column (plus columns for personalisation).
    pub sql: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// The columns it returns (from BigQuery's dry run when saved in the console).
    #[serde(default)]
    pub columns: Vec<String>,
    #[serde(default)]
    pub updated_by: Option<String>,
}

impl Segment {
    /// Checks what can be checked without BigQuery: one statement, a query (SELECT, or WITH ... SELECT),
    /// balanced parentheses, nothing that writes or scripts (see [`crate::segment_sql`], a tokenizer-based
    /// pre-parse). Returns the SQL ready to be spliced into segcast's statements. The console additionally
    /// dry-runs it in BigQuery before saving.
    pub fn parse_sql(sql: &str) -> Result<String, ParseError> {
        crate::segment_sql::check(sql)
    }
}

/// A LINE channel campaigns send on. Its secret is never part of it: it lives in the secret store
/// ([`crate::line::secrets`]) or the environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Channel {
    #[schema(value_type = String)]
    pub id: ChannelId,
    pub name: String,
    /// Whether a secret was stored for it in the console.
    #[serde(default)]
    pub has_secret: bool,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub updated_by: Option<String>,
}

impl Doc for Content {
    const KIND: &'static str = "Content";
    fn key(&self) -> String {
        self.id.to_string()
    }
}

impl Doc for Segment {
    const KIND: &'static str = "Segment";
    fn key(&self) -> String {
        self.id.to_string()
    }
}

impl Doc for Channel {
    const KIND: &'static str = "Channel";
    fn key(&self) -> String {
        self.id.to_string()
    }
}

impl Doc for Campaign {
    const KIND: &'static str = "Campaign";
    fn key(&self) -> String {
        self.id.to_string()
    }
    fn indexed(&self) -> Vec<(&'static str, Indexed)> {
        vec![
            ("needs_scheduler", Indexed::Bool(self.needs_scheduler())),
            ("status", Indexed::Str(self.status.as_str().to_owned())),
        ]
    }
}

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

#[cfg(test)]
mod tests {
    use super::Segment;

    #[test]
    fn segment_sql_must_be_one_select() {
        assert!(Segment::parse_sql("SELECT user_id FROM t;").is_ok());
        assert!(Segment::parse_sql("WITH a AS (SELECT 1) SELECT * FROM a").is_ok());
        for bad in [
            "",
            "DELETE FROM t",
            "SELECT 1; DROP TABLE t",
            "EXPORT DATA OPTIONS() AS SELECT 1",
        ] {
            assert!(Segment::parse_sql(bad).is_err(), "{bad:?} accepted");
        }
    }
}
