//! A batch: the unit of work published to a delivery topic and handled by one push.
//!
//! Batches are deterministic: the same campaign, round, file and line offset always give the same batch id and
//! the same recipients, and the LINE retry keys are derived from the batch id. Re-publishing a batch (after a
//! scheduler crash) or Pub/Sub redelivering it therefore can never make LINE accept a recipient twice.

use super::{CampaignId, ChannelId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The most recipients a batch holds (`SEGCAST_MULTICAST_BATCH` and `SEGCAST_PUSH_BATCH` are capped to it; the
/// delivery handler refuses bigger ones).
pub const MAX_RECIPIENTS: usize = 10_000;

/// `<campaign>.r<round>.f<file>.o<line offset>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BatchId(String);

impl BatchId {
    pub fn new(campaign: &CampaignId, round: u32, file: usize, offset: u64) -> Self {
        Self(format!("{campaign}.r{round}.f{file}.o{offset}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for BatchId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryMode {
    /// Same messages for everyone: up to 500 recipients per request.
    Multicast,
    /// Personalised messages: one request per recipient.
    Push,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipient {
    pub user_id: UserId,
    /// Segment columns for personalised content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attrs: Option<serde_json::Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub id: BatchId,
    pub campaign_id: CampaignId,
    pub round: u32,
    pub channel_id: ChannelId,
    pub mode: DeliveryMode,
    #[serde(default)]
    pub dry_run: bool,
    /// The campaign's messages (placeholders unrendered), carried so a handler needs no lookup to send.
    pub messages: Vec<Value>,
    pub recipients: Vec<Recipient>,
}

/// segcast's UUIDv5 namespace for LINE retry keys.
const RETRY_KEY_NAMESPACE: uuid::Uuid = uuid::uuid!("6c1f7b2e-5d0a-4f4e-9a53-2f6f3c1f0b8d");

impl Batch {
    /// The `X-Line-Retry-Key` for request `part` of this batch (a multicast chunk index or a push recipient).
    pub fn retry_key(&self, part: &str) -> uuid::Uuid {
        uuid::Uuid::new_v5(
            &RETRY_KEY_NAMESPACE,
            format!("{}/{part}", self.id).as_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_ids_and_retry_keys_are_deterministic() {
        let c = CampaignId::parse("c_demo").unwrap();
        let a = BatchId::new(&c, 1, 3, 1500);
        assert_eq!(a.as_str(), "c_demo.r1.f3.o1500");
        let batch = |id: BatchId| Batch {
            id,
            campaign_id: c.clone(),
            round: 1,
            channel_id: ChannelId::parse("1").unwrap(),
            mode: DeliveryMode::Multicast,
            dry_run: false,
            messages: vec![],
            recipients: vec![],
        };
        let b1 = batch(a.clone());
        let b2 = batch(a);
        assert_eq!(b1.retry_key("0"), b2.retry_key("0"));
        assert_ne!(b1.retry_key("0"), b1.retry_key("1"));
        let other = batch(BatchId::new(&c, 2, 3, 1500));
        assert_ne!(
            b1.retry_key("0"),
            other.retry_key("0"),
            "a new round gets new keys"
        );
    }
}
