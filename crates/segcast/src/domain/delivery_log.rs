//! One delivery-log row: the outcome of one LINE request (or of recipients settled without one).
//!
//! The same JSON is the Pub/Sub message on the delivery-log topic and the BigQuery row: in production a BigQuery
//! subscription writes it with the table's schema (`sql/ddl/delivery_logs.sql`), locally the log sink does.

use super::Batch;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

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

    /// LINE accepted the request (`status` 200, or 409: its retry key was accepted before).
    pub fn delivered(
        batch: &Batch,
        request: Request,
        status: i64,
        line_request_id: Option<String>,
        detail: Option<String>,
        at: OffsetDateTime,
    ) -> Self {
        Self::row(
            batch,
            request,
            Outcome::Delivered,
            None,
            Some(status),
            line_request_id,
            detail,
            at,
        )
    }

    /// Not delivered, for good, for `reason` (LINE's answer `status` and message when it gave one).
    pub fn failed(
        batch: &Batch,
        request: Request,
        reason: FailureReason,
        status: Option<i64>,
        detail: Option<String>,
        at: OffsetDateTime,
    ) -> Self {
        Self::row(
            batch,
            request,
            Outcome::Failed,
            Some(reason),
            status,
            None,
            detail,
            at,
        )
    }

    /// Not delivered; the next diff-retry round sends the recipients again (with new retry keys).
    pub fn retryable(
        batch: &Batch,
        request: Request,
        reason: FailureReason,
        status: Option<i64>,
        at: OffsetDateTime,
    ) -> Self {
        Self::row(
            batch,
            request,
            Outcome::Retryable,
            Some(reason),
            status,
            None,
            None,
            at,
        )
    }

    /// LINE's validate endpoint accepted the messages of a dry run for these recipients.
    pub fn validated(batch: &Batch, request: Request, at: OffsetDateTime) -> Self {
        Self::row(
            batch,
            request,
            Outcome::Validated,
            None,
            Some(200),
            None,
            None,
            at,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn row(
        batch: &Batch,
        request: Request,
        outcome: Outcome,
        reason: Option<FailureReason>,
        http_status: Option<i64>,
        line_request_id: Option<String>,
        detail: Option<String>,
        at: OffsetDateTime,
    ) -> Self {
        Self {
            log_id: Self::log_id_for(&request.key, outcome, reason),
            campaign_id: batch.campaign_id.to_string(),
            round: i64::from(batch.round),
            batch_id: batch.id.to_string(),
            channel_id: batch.channel_id.to_string(),
            endpoint: request.endpoint.to_owned(),
            retry_key: request.retry_key,
            recipient_count: request.recipients.len() as i64,
            recipients: request.recipients,
            outcome,
            reason,
            http_status,
            line_request_id,
            detail,
            logged_at: at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        }
    }
}

/// What a row is about: one LINE request, or recipients settled without one.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `multicast`, `push`, `validate` or `none`.
    pub endpoint: &'static str,
    /// Names the request in the row's log id: its retry key, or `<batch>:<settlement>`.
    pub key: String,
    pub retry_key: Option<String>,
    pub recipients: Vec<String>,
}

impl Request {
    /// A request LINE was sent with `retry_key`.
    pub fn sent(endpoint: &'static str, retry_key: uuid::Uuid, recipients: Vec<String>) -> Self {
        let key = retry_key.to_string();
        Self {
            endpoint,
            retry_key: Some(key.clone()),
            key,
            recipients,
        }
    }

    /// A dry run's validate request for the batch's recipients (no retry key: validation sends nothing).
    pub fn validate(batch: &Batch) -> Self {
        Self {
            endpoint: "validate",
            key: format!("{}:validate", batch.id),
            retry_key: None,
            recipients: all_recipients(batch),
        }
    }

    /// Recipients settled without a request (`settlement` names how: `settled`, `dead-lettered`).
    pub fn none(batch: &Batch, settlement: &str, recipients: Vec<String>) -> Self {
        Self {
            endpoint: "none",
            key: format!("{}:{settlement}", batch.id),
            retry_key: None,
            recipients,
        }
    }
}

/// Every recipient of `batch`, as logged.
pub fn all_recipients(batch: &Batch) -> Vec<String> {
    batch
        .recipients
        .iter()
        .map(|r| r.user_id.to_string())
        .collect()
}
