//! The domain model: types that parse, never trust.

/// The shared half of a validated string newtype `$name(String)` with a `parse` of its own: `as_str`,
/// `Display`, and a `Deserialize` that goes through `parse` (so stored or received values are checked too).
macro_rules! validated_string {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

pub(crate) mod batch;
mod campaign;
mod delivery_log;
mod ids;
pub mod links;
mod messages;
mod user_id;

pub use batch::{Batch, BatchId, DeliveryMode, MAX_RECIPIENTS as MAX_BATCH_RECIPIENTS, Recipient};
pub use campaign::{
    Approval, Campaign, CampaignCounts, CampaignStatus, Lease, NotAllowed, QuietHours,
};
pub use delivery_log::{
    DeliveryLogRow, FailureReason, Outcome, Request as LoggedRequest, all_recipients,
};
pub use ids::{CampaignId, ChannelId, ContentId, SegmentId};
pub use messages::{Messages, Personalization};
pub use user_id::UserId;

/// Why a value was refused. The message is meant for the person who typed the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ParseError {
    pub field: String,
    pub message: String,
}

impl ParseError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
