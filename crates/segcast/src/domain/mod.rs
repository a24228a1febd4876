//! The domain model: types that parse, never trust.

mod batch;
mod campaign;
mod delivery_log;
mod ids;
mod messages;
mod user_id;

pub use batch::{Batch, BatchId, DeliveryMode, Recipient};
pub use campaign::{Campaign, CampaignCounts, CampaignStatus, Lease};
pub use delivery_log::{DeliveryLogRow, FailureReason, Outcome};
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
