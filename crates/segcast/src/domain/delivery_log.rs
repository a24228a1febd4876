//! One delivery-log row: the outcome of one LINE request (or of recipients settled without one).
//!
//! The same JSON is the Pub/Sub message on the delivery-log topic and the BigQuery row: in production a BigQuery
//! subscription writes it with the table's schema (`sql/ddl/delivery_logs.sql`), locally the log sink does.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// LINE accepted the request (2xx, or 409 for a retry key it had already accepted).
    Delivered,
    /// Definitely not delivered, for good: see the reason.
    Failed,
    /// Definitely not delivered, may be sent in the next diff-retry round (e.g. rate-limited past the budget).
    Retryable,
    /// Dry run: LINE's validate endpoint accepted the messages.
    Validated,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Retryable => "retryable",
            Self::Validated => "validated",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    InvalidUserId,
    LineRejected,
    QuotaExhausted,
    RateLimited,
    RetriesExhausted,
    OutcomeUnknown,
    Canceled,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidUserId => "invalid_user_id",
            Self::LineRejected => "line_rejected",
            Self::QuotaExhausted => "quota_exhausted",
            Self::RateLimited => "rate_limited",
            Self::RetriesExhausted => "retries_exhausted",
            Self::OutcomeUnknown => "outcome_unknown",
            Self::Canceled => "canceled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryLogRow {
    /// Deterministic: a redelivered log message carries the same id, and the stats views count it once.
    pub log_id: String,
    pub campaign_id: String,
    pub round: i64,
    pub batch_id: String,
    pub channel_id: String,
    /// `multicast`, `push`, `validate` or `none` (settled without a request).
    pub endpoint: String,
    pub retry_key: Option<String>,
    pub recipients: Vec<String>,
    pub recipient_count: i64,
    pub outcome: Outcome,
    pub reason: Option<FailureReason>,
    pub http_status: Option<i64>,
    pub line_request_id: Option<String>,
    /// LINE's error message, when it gave one.
    pub detail: Option<String>,
    /// RFC 3339.
    pub logged_at: String,
}

impl DeliveryLogRow {
    /// The log id for an outcome of a request identified by `key` (a retry key or another stable name).
    pub fn log_id_for(key: &str, outcome: Outcome, reason: Option<FailureReason>) -> String {
        match reason {
            Some(r) => format!("{key}:{}:{}", outcome.as_str(), r.as_str()),
            None => format!("{key}:{}", outcome.as_str()),
        }
    }
}
