//! What the handler decides, as pure functions from facts to a decision: no I/O, so every branch is unit
//! tested without an emulator. The handler ([`super`]) gathers the facts (a dedupe record, the campaign, LINE's
//! answers, whether its seal was written) and carries the decisions out.
//!
//! **The sealing rule.** A 429 says only that *this* attempt was not accepted. A request may be logged
//! `retryable` (the next diff-retry round sends its recipients again, with new retry keys) only when no attempt
//! of it can have been accepted: every attempt in this handling was refused ([`after_attempt`]: a request that
//! once had an unknown answer stays unknown), and this handling is the batch's first and only one, which it
//! proves by sealing the batch (`BatchSends`) before logging ([`conclude`] asks for the seal; [`unsealed`] says
//! what to do when another handling got there). Otherwise the request stays unknown and Pub/Sub brings the
//! batch back until LINE answers its key (200, or 409: accepted before).

use crate::domain::{
    Batch, Campaign, CampaignStatus, DeliveryLogRow, FailureReason, LoggedRequest, Outcome,
};
use crate::line::SendOutcome;
use time::OffsetDateTime;

/// What to do with a batch that has just arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum Arrival {
    /// It has a dedupe record: acknowledge, send nothing.
    AlreadyDone,
    /// It can never be handled (e.g. its campaign does not exist); nothing is sent.
    Refuse(String),
    /// Its campaign is paused: keep it until the campaign resumes.
    Park,
    /// Its campaign has ended: settle every recipient `failed/canceled` without a request.
    SettleEnded,
    /// A dry run: ask LINE's validate endpoint only.
    Validate,
    /// Send it.
    Send,
}

/// The first decision: from the dedupe record's presence and the campaign (if it exists).
pub fn on_arrival(batch: &Batch, done: bool, campaign: Option<&Campaign>) -> Arrival {
    if done {
        return Arrival::AlreadyDone;
    }
    let Some(campaign) = campaign else {
        return Arrival::Refuse(format!(
            "batch {} names campaign {}, which does not exist",
            batch.id, batch.campaign_id
        ));
    };
    if campaign.channel_id != batch.channel_id {
        return Arrival::Refuse(format!(
            "batch {} is for channel {}, but its campaign sends on {}",
            batch.id, batch.channel_id, campaign.channel_id
        ));
    }
    match campaign.status {
        CampaignStatus::Paused => Arrival::Park,
        CampaignStatus::Canceled | CampaignStatus::Failed | CampaignStatus::Completed => {
            Arrival::SettleEnded
        }
        _ if batch.dry_run => Arrival::Validate,
        _ => Arrival::Send,
    }
}

/// The row settling every recipient of a batch whose campaign has ended.
pub fn ended_row(batch: &Batch, at: OffsetDateTime) -> DeliveryLogRow {
    let request = LoggedRequest::none(batch, "settled", crate::domain::all_recipients(batch));
    DeliveryLogRow::failed(batch, request, FailureReason::Canceled, None, None, at)
}

/// The row for LINE's answer to a dry run's validate request, or why to try again later.
pub fn after_validate(
    batch: &Batch,
    answer: SendOutcome,
    at: OffsetDateTime,
) -> Result<DeliveryLogRow, String> {
    let request = LoggedRequest::validate(batch);
    match answer {
        SendOutcome::Accepted { .. } => Ok(DeliveryLogRow::validated(batch, request, at)),
        SendOutcome::Rejected { status, message } => Ok(DeliveryLogRow::failed(
            batch,
            request,
            FailureReason::LineRejected,
            Some(i64::from(status)),
            Some(message),
            at,
        )),
        other => Err(format!("validate: {other:?}")),
    }
}

/// How one request of a batch ended, as far as this handling knows.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// LINE accepted it: `status` 200, or 409 for a retry key it had accepted before.
    Delivered {
        status: i64,
        request_id: Option<String>,
        detail: Option<String>,
    },
    /// LINE refused it for good (a 4xx other than 409 and 429).
    Rejected { status: i64, message: String },
    /// Every attempt of this handling was refused with 429 until the budget ran out: retryable, once sealed.
    RateLimited,
    /// LINE's monthly quota is used up.
    Quota,
    /// LINE may or may not have accepted it.
    Unknown(String),
}

/// After one attempt at a request: its answer, or try again after a wait.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Settled(Answer),
    /// Wait and send it again with the same retry key; `maybe_accepted`: some attempt so far may have been
    /// accepted.
    Again {
        maybe_accepted: bool,
    },
}

/// What one attempt's answer means. `out_of_time`: the push's budget does not allow another attempt.
/// `maybe_accepted`: an earlier attempt (in this handling or an earlier one) may have been accepted.
pub fn after_attempt(answer: SendOutcome, out_of_time: bool, maybe_accepted: bool) -> Next {
    let settled = match answer {
        SendOutcome::Accepted { request_id } => Answer::Delivered {
            status: 200,
            request_id,
            detail: None,
        },
        SendOutcome::AlreadyAccepted { request_id } => Answer::Delivered {
            status: 409,
            request_id: Some(request_id),
            detail: Some("retry key already accepted".into()),
        },
        SendOutcome::Rejected { status, message } => Answer::Rejected {
            status: i64::from(status),
            message,
        },
        SendOutcome::QuotaExhausted { .. } => Answer::Quota,
        // This attempt was refused, but an earlier one with the same key may have been accepted.
        SendOutcome::RateLimited if out_of_time && maybe_accepted => Answer::Unknown(
            "rate limited (429) past the budget after an attempt whose outcome is unknown".into(),
        ),
        SendOutcome::RateLimited if out_of_time => Answer::RateLimited,
        SendOutcome::Unknown { detail } if out_of_time => Answer::Unknown(detail),
        SendOutcome::Unknown { .. } => {
            return Next::Again {
                maybe_accepted: true,
            };
        }
        SendOutcome::RateLimited => return Next::Again { maybe_accepted },
    };
    Next::Settled(settled)
}

/// One request of the batch and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    pub request: LoggedRequest,
    pub answer: Answer,
    /// What sending it took (for the logs and metrics, not for any decision).
    pub stats: RequestStats,
}

/// What sending one request took.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RequestStats {
    pub attempts: u32,
    /// Attempts LINE answered 429 (rate limit; not the monthly quota).
    pub rate_limited: u32,
    /// Time spent waiting for LINE's answers (all attempts).
    pub line_time: std::time::Duration,
}

/// A batch's requests summed by how they ended, for the `batch outcomes` log lines (the per-channel metrics).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutcomeSummary {
    /// `delivered`, `failed`, `retryable` or `unknown` (still open: the batch comes back).
    pub outcome: &'static str,
    /// The failure reason (`line_rejected`, `rate_limited`, `quota_exhausted`), empty otherwise.
    pub reason: &'static str,
    pub recipients: u64,
    pub requests: u64,
    pub rate_limited: u64,
    pub line_time: std::time::Duration,
}

/// Sums `settled` by outcome and reason, in a stable order.
pub fn summarize(settled: &[Settled]) -> Vec<OutcomeSummary> {
    let mut out: Vec<OutcomeSummary> = Vec::new();
    for s in settled {
        let (outcome, reason) = match &s.answer {
            Answer::Delivered { .. } => ("delivered", ""),
            Answer::Rejected { .. } => ("failed", "line_rejected"),
            Answer::RateLimited => ("retryable", "rate_limited"),
            Answer::Quota => ("unknown", "quota_exhausted"),
            Answer::Unknown(_) => ("unknown", ""),
        };
        let i = match out
            .iter()
            .position(|o| (o.outcome, o.reason) == (outcome, reason))
        {
            Some(i) => i,
            None => {
                out.push(OutcomeSummary {
                    outcome,
                    reason,
                    ..Default::default()
                });
                out.len() - 1
            }
        };
        let o = &mut out[i];
        o.recipients += s.request.recipients.len() as u64;
        o.requests += 1;
        o.rate_limited += u64::from(s.stats.rate_limited);
        o.line_time += s.stats.line_time;
    }
    out.sort_by_key(|o| (o.outcome, o.reason));
    out
}

/// What to do once every request of a handling has ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Conclusion {
    /// LINE's monthly quota ran out: log what LINE accepted or refused for good, pause the campaign, park the
    /// batch (re-sending it on resume repeats the same keys: the accepted requests come back as 409).
    Quota { log: Vec<DeliveryLogRow> },
    /// Some outcomes are unknown: log what is known, and let Pub/Sub redeliver the batch.
    Retry {
        log: Vec<DeliveryLogRow>,
        why: String,
    },
    /// Settle the batch with `rows` (log them, mark it done). `seal`: some rows are `retryable`, which holds
    /// only if this handling seals the batch first ([`unsealed`] otherwise).
    Settle {
        rows: Vec<DeliveryLogRow>,
        seal: bool,
    },
}

/// Concludes a handling from its requests' answers. `last_attempt`: the batch came from the dead-letter topic,
/// so what is still unknown is settled `failed/outcome_unknown` (reported, never re-sent with a new key).
/// `cut_short`: the handler is stopping (SIGTERM); the batch goes back to Pub/Sub whatever happened, logging only
/// what is true for good: its 429s are not retryable (the redelivery may find them accepted by this handling's
/// attempts in flight), and a last attempt is not the last (it was not given its time).
pub fn conclude(
    batch: &Batch,
    settled: Vec<Settled>,
    last_attempt: bool,
    cut_short: bool,
    at: OffsetDateTime,
) -> Conclusion {
    // `truths`: delivered or failed for good, whatever happens to the batch next. `retryable`: final only once
    // the batch is sealed.
    let (mut truths, mut retryable, mut unknown, mut quota) = (vec![], vec![], vec![], false);
    for Settled {
        request, answer, ..
    } in settled
    {
        match answer {
            Answer::Delivered {
                status,
                request_id,
                detail,
            } => truths.push(DeliveryLogRow::delivered(
                batch, request, status, request_id, detail, at,
            )),
            Answer::Rejected { status, message } => truths.push(DeliveryLogRow::failed(
                batch,
                request,
                FailureReason::LineRejected,
                Some(status),
                Some(message),
                at,
            )),
            Answer::RateLimited => retryable.push(DeliveryLogRow::retryable(
                batch,
                request,
                FailureReason::RateLimited,
                Some(429),
                at,
            )),
            Answer::Quota => quota = true,
            Answer::Unknown(detail) => unknown.push(detail),
        }
    }
    if cut_short {
        return Conclusion::Retry {
            log: truths,
            why: "the handler is shutting down: the batch is handed back".into(),
        };
    }
    if quota {
        return Conclusion::Quota { log: truths };
    }
    if !unknown.is_empty() && !last_attempt {
        return Conclusion::Retry {
            log: truths,
            why: format!(
                "{} request(s) with unknown outcome: {}",
                unknown.len(),
                unknown[0]
            ),
        };
    }
    let seal = !retryable.is_empty();
    let mut rows = truths;
    rows.extend(retryable);
    if let Some(first) = unknown.first() {
        let row = unknown_row(batch, &rows, first, at);
        rows.push(row);
    }
    Conclusion::Settle { rows, seal }
}

/// The seal asked for by [`Conclusion::Settle`] was not written: another handling has sent this batch too, so
/// the refused requests may be accepted by it (or were, by an earlier one). They are not retryable: the batch
/// comes back (or, on its last attempt, they are settled `failed/outcome_unknown`).
pub fn unsealed(
    batch: &Batch,
    mut rows: Vec<DeliveryLogRow>,
    last_attempt: bool,
    at: OffsetDateTime,
) -> Conclusion {
    let before = rows.len();
    rows.retain(|r| r.outcome != Outcome::Retryable);
    let refused = before - rows.len();
    if !last_attempt {
        return Conclusion::Retry {
            log: rows,
            why: format!(
                "{refused} request(s) rate-limited past the budget while another handling sent this batch"
            ),
        };
    }
    rows.retain(|r| r.reason != Some(FailureReason::OutcomeUnknown));
    let row = unknown_row(
        batch,
        &rows,
        "rate limited past the budget; another handling sent this batch",
        at,
    );
    rows.push(row);
    Conclusion::Settle { rows, seal: false }
}

/// A `failed/outcome_unknown` row for the recipients of `batch` that `rows` do not settle (a dead-lettered
/// batch's last handling gives up on them: reported, never re-sent with a new key).
fn unknown_row(
    batch: &Batch,
    rows: &[DeliveryLogRow],
    detail: &str,
    at: OffsetDateTime,
) -> DeliveryLogRow {
    let done: std::collections::HashSet<&String> =
        rows.iter().flat_map(|r| r.recipients.iter()).collect();
    let left: Vec<String> = batch
        .recipients
        .iter()
        .map(|r| r.user_id.to_string())
        .filter(|u| !done.contains(u))
        .collect();
    let request = LoggedRequest::none(batch, "dead-lettered", left);
    DeliveryLogRow::failed(
        batch,
        request,
        FailureReason::OutcomeUnknown,
        None,
        Some(detail.to_owned()),
        at,
    )
}

#[cfg(test)]
mod tests;
