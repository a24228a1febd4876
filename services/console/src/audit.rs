//! The audit log: every change made through the console (who, what, when, before/after), in Datastore.
//! Secrets never reach it: channels are recorded without their secret (only whether one is stored).

use super::auth::Identity;
use segcast::catalog::CommandError;
use segcast::domain::{Campaign, NotAllowed};
use segcast::gcp::datastore::{Datastore, Doc, Indexed, Inserted};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Sorts by time: `<unix nanos, zero-padded>-<random>`.
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    pub actor: String,
    /// e.g. `campaign.schedule`, `content.update`.
    pub action: String,
    /// The id of what changed.
    pub target: String,
    #[serde(default)]
    pub before: Option<Value>,
    #[serde(default)]
    pub after: Option<Value>,
}

impl Doc for AuditEntry {
    const KIND: &'static str = "AuditEntry";
    fn key(&self) -> String {
        self.id.clone()
    }
    fn indexed(&self) -> Vec<(&'static str, Indexed)> {
        vec![("target", Indexed::Str(self.target.clone()))]
    }
}

/// Records one change. `before`/`after` are the stored documents (any `Serialize`). Where the change itself is
/// a Datastore write, use [`save`], [`change_campaign`] or [`create_campaign`], which save both in one commit.
pub async fn record<B: Serialize, A: Serialize>(
    ds: &Datastore,
    who: &Identity,
    action: &str,
    target: &str,
    before: Option<&B>,
    after: Option<&A>,
) -> anyhow::Result<()> {
    ds.upsert(&entry(who, action, target, before, after)?).await
}

/// Saves `after` (a channel, content, segment or user) and its audit entry (with `before`) in one commit.
pub async fn save<T: Doc>(
    ds: &Datastore,
    who: &Identity,
    action: &str,
    target: &str,
    before: Option<&T>,
    after: &T,
) -> anyhow::Result<()> {
    ds.upsert_with(after, &entry(who, action, target, before, Some(after))?)
        .await
}

/// Changes a stored campaign by `f` (a rule of [`Campaign`]) and records the change with before/after, in one
/// Datastore transaction: a refusal, a missing campaign or a failed write saves neither.
pub async fn change_campaign(
    ds: &Datastore,
    who: &Identity,
    action: &str,
    id: &str,
    f: impl FnMut(&mut Campaign) -> Result<(), NotAllowed>,
) -> Result<Campaign, CommandError> {
    let (_, after) = segcast::catalog::change_campaign_and_record(ds, id, f, |before, after| {
        // A campaign always serialises; an entry that could not be built would fail the change below.
        entry(who, action, id, Some(before), Some(after)).ok()
    })
    .await?;
    Ok(after)
}

/// Stores a new campaign and its audit entry in one commit (refuses an existing id).
pub async fn create_campaign(
    ds: &Datastore,
    who: &Identity,
    action: &str,
    before: Option<&Value>,
    campaign: &Campaign,
) -> Result<(), CommandError> {
    let entry = entry(who, action, campaign.id.as_str(), before, Some(campaign))?;
    match ds.insert_with(campaign, Some(&entry)).await? {
        Inserted::New => Ok(()),
        Inserted::AlreadyExists => Err(NotAllowed::new(
            "already_exists",
            format!("campaign {} already exists", campaign.id),
        )
        .into()),
    }
}

fn entry<B: Serialize, A: Serialize>(
    who: &Identity,
    action: &str,
    target: &str,
    before: Option<&B>,
    after: Option<&A>,
) -> anyhow::Result<AuditEntry> {
    let at = OffsetDateTime::now_utc();
    Ok(AuditEntry {
        id: format!(
            "{:024}-{}",
            at.unix_timestamp_nanos(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ),
        at,
        actor: who.email.clone(),
        action: action.to_owned(),
        target: target.to_owned(),
        before: before.map(serde_json::to_value).transpose()?,
        after: after.map(serde_json::to_value).transpose()?,
    })
}

/// The newest `limit` entries, for one target or all.
pub async fn list(
    ds: &Datastore,
    target: Option<&str>,
    limit: usize,
) -> anyhow::Result<Vec<AuditEntry>> {
    let mut all: Vec<AuditEntry> = match target {
        Some(t) => ds.query_eq("target", Indexed::Str(t.to_owned())).await?,
        None => ds.list().await?,
    };
    all.sort_by(|a, b| b.id.cmp(&a.id));
    all.truncate(limit);
    Ok(all)
}
