//! What marketers register — contents, segments, channels — and campaigns, stored as Datastore entities. The
//! pipeline's own records (dedupe, sends, parked batches, checkpoints) are in [`crate::pipeline::records`].

use crate::domain::{Campaign, ChannelId, ContentId, Messages, NotAllowed, ParseError, SegmentId};
use crate::gcp::datastore::{Datastore, Doc, Indexed, Inserted};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Content {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: ContentId,
    pub name: String,
    /// 1 to 5 LINE message objects.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub messages: Messages,
    /// Tracked links: link id -> target URL, used in the messages as `{{link:ID}}` (see [`crate::click::links`]).
    /// The click redirect only ever redirects to these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContentVersion {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Segment {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: SegmentId,
    pub name: String,
    /// A single read-only SELECT returning a `user_id` column (plus columns for personalisation).
    pub sql: String,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Channel {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: ChannelId,
    pub name: String,
    /// Whether a secret was stored for it in the console.
    #[serde(default)]
    pub has_secret: bool,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
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

/// Why a command on a stored entity did not happen. Callers branch on it: the console answers 404, 409 and
/// 500 (without the internal text, which is logged).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{kind} {id} does not exist")]
    NotFound { kind: &'static str, id: String },
    #[error(transparent)]
    NotAllowed(#[from] NotAllowed),
    #[error("the store failed: {0:#}")]
    Store(anyhow::Error),
}

impl From<anyhow::Error> for CommandError {
    fn from(e: anyhow::Error) -> Self {
        Self::Store(e)
    }
}

/// Stores a new campaign (refuses an existing id).
pub async fn create_campaign(ds: &Datastore, campaign: &Campaign) -> Result<(), CommandError> {
    match ds.insert(campaign).await? {
        Inserted::New => Ok(()),
        Inserted::AlreadyExists => Err(NotAllowed::new(
            "already_exists",
            format!("campaign {} already exists", campaign.id),
        )
        .into()),
    }
}

/// The one way a stored campaign changes: read, apply `f` (a rule of [`Campaign`]), write, in one Datastore
/// transaction (retried when contended, so `f` may run more than once). A refusal changes nothing.
pub async fn change_campaign(
    ds: &Datastore,
    id: &str,
    f: impl FnMut(&mut Campaign) -> Result<(), NotAllowed>,
) -> Result<Campaign, CommandError> {
    let (_, after) = change_campaign_and_record(ds, id, f, |_, _| None::<Campaign>).await?;
    Ok(after)
}

/// [`change_campaign`], and writes `record(before, after)` (e.g. the change's audit entry) in the same
/// transaction: the change and its record are saved together or not at all. Returns (before, after).
pub async fn change_campaign_and_record<E: Doc>(
    ds: &Datastore,
    id: &str,
    mut f: impl FnMut(&mut Campaign) -> Result<(), NotAllowed>,
    mut record: impl FnMut(&Campaign, &Campaign) -> Option<E>,
) -> Result<(Campaign, Campaign), CommandError> {
    let mut outcome: Option<Result<Campaign, CommandError>> = None;
    let written = ds
        .update_with::<Campaign, E, _>(id, |current| {
            let Some(before) = current else {
                outcome = Some(Err(CommandError::NotFound {
                    kind: "campaign",
                    id: id.to_owned(),
                }));
                return Ok(None);
            };
            let mut after = before.clone();
            match f(&mut after) {
                Ok(()) => {
                    let also = record(&before, &after);
                    outcome = Some(Ok(before));
                    Ok(Some((after, also)))
                }
                Err(refused) => {
                    outcome = Some(Err(refused.into()));
                    Ok(None)
                }
            }
        })
        .await?;
    match (written, outcome) {
        (Some(after), Some(Ok(before))) => Ok((before, after)),
        (_, Some(Err(e))) => Err(e),
        _ => Err(anyhow::anyhow!("campaign {id} was not changed").into()),
    }
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
