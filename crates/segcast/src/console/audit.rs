//! The audit log: every change made through the console (who, what, when, before/after), in Datastore.
//! Secrets never reach it: channels are recorded without their secret (only whether one is stored).

use super::auth::Identity;
use crate::gcp::datastore::{Datastore, Doc, Indexed};
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

/// Records one change. `before`/`after` are the stored documents (any `Serialize`).
pub async fn record<B: Serialize, A: Serialize>(
    ds: &Datastore,
    who: &Identity,
    action: &str,
    target: &str,
    before: Option<&B>,
    after: Option<&A>,
) -> anyhow::Result<()> {
    let at = OffsetDateTime::now_utc();
    let entry = AuditEntry {
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
    };
    ds.upsert(&entry).await
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
