//! Steps 5-10: what the delivery handler does with one batch.
//!
//! 1. Dedupe: a batch with a `BatchDone` record is acknowledged without sending.
//! 2. The campaign's state: canceled -> its recipients are logged `failed/canceled`; paused -> the batch is
//!    parked in Datastore (re-published on resume, never lost); dry run -> LINE's validate endpoint only.
//! 3. Send: multicast in requests of <= 500 recipients for uniform content, push per recipient for
//!    personalised content; every request carries a retry key derived from the batch, so a redelivered batch
//!    sends the same keys and LINE accepts each request at most once (409 = already delivered).
//! 4. Each request ends in a definite outcome (delivered, rejected, rate-limited past the budget, quota) or
//!    stays unknown (5xx, timeout, lost response): unknown ones are retried with the same key until the push's
//!    time budget, then the push is refused so Pub/Sub redelivers it (same keys again).
//! 5. The definite outcomes are published to the delivery-log topic *before* the push is acknowledged, then the
//!    batch is marked done. A crash anywhere in between means a redelivery, which re-sends the same keys
//!    (409 -> delivered) and re-logs with the same log ids (deduplicated in BigQuery): never a second acceptance.
//!
//! A 429 only says that *this* attempt was not accepted. `retryable` (the next diff-retry round sends the
//! recipients again, with new keys) is therefore logged only for a request that no earlier attempt can have
//! delivered: every attempt of it in this handling was refused, and this handling is the batch's first and only
//! one, which it proves by sealing the batch ([`BatchSends`]) before logging. Otherwise (a redelivery after a
//! crash or a lost response, a concurrent copy) the request stays unknown and Pub/Sub brings the batch back
//! until LINE answers its key (200, or 409: accepted before).

use super::Ctx;
use crate::catalog::{BatchDone, BatchSends, ParkedBatch};
use crate::click::links::Rewriter;
use crate::domain::{
    Batch, Campaign, CampaignStatus, DeliveryLogRow, DeliveryMode, FailureReason, Outcome,
};
use crate::gcp::datastore::{Datastore, Inserted};
use crate::line::{Endpoint, LineClient, SendOutcome};
use futures::StreamExt;
use serde_json::Value;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;

/// LINE takes at most 500 recipients per multicast request.
pub const MULTICAST_MAX: usize = 500;

/// What the push endpoint answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Acknowledge (2xx): the batch is settled, parked, or was already done.
    Ack(&'static str),
    /// Refuse (5xx): some outcomes are still unknown; Pub/Sub redelivers later with backoff.
    Retry(String),
    /// Refuse for good (4xx, then dropped with a log once dead-lettered): the batch can never be handled, e.g.
    /// it names a campaign that does not exist. Nothing was sent.
    Refuse(String),
}

/// One LINE request of a batch: its recipients (borrowed from the batch) and its messages. The JSON body is
/// written from them as it is sent, and the log row copies the recipients only once the outcome is known, so
/// a batch in flight holds its recipients once (the handler holds every batch Pub/Sub pushes at once).
struct Request {
    part: String,
    endpoint: Endpoint,
    /// Which of the batch's recipients.
    recipients: std::ops::Range<usize>,
    messages: Vec<Value>,
}

/// The body LINE's push and multicast take.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SendBody<'a> {
    to: To<'a>,
    messages: &'a [Value],
    custom_aggregation_units: [&'a str; 1],
}

#[derive(serde::Serialize)]
#[serde(untagged)]
enum To<'a> {
    /// push: one user ID.
    One(&'a str),
    /// multicast: up to 500.
    Many(UserIds<'a>),
}

/// Recipients' user IDs as a JSON array.
struct UserIds<'a>(&'a [crate::domain::Recipient]);

impl serde::Serialize for UserIds<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|r| r.user_id.as_str()))
    }
}

impl Request {
    fn body<'a>(&'a self, batch: &'a Batch) -> SendBody<'a> {
        let recipients = &batch.recipients[self.recipients.clone()];
        SendBody {
            to: match self.endpoint {
                Endpoint::Push => To::One(recipients.first().map_or("", |r| r.user_id.as_str())),
                _ => To::Many(UserIds(recipients)),
            },
            messages: &self.messages,
            custom_aggregation_units: [batch.campaign_id.as_str()],
        }
    }
}

enum Settled {
    Row(Box<DeliveryLogRow>),
    Quota,
    Unknown(String),
}

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A log row for `recipients` of `batch`. `key` names the request (its retry key) or the settlement.
#[allow(clippy::too_many_arguments)]
pub fn log_row(
    batch: &Batch,
    endpoint: &str,
    key: &str,
    retry_key: Option<String>,
    recipients: Vec<String>,
    outcome: Outcome,
    reason: Option<FailureReason>,
    http_status: Option<i64>,
    line_request_id: Option<String>,
    detail: Option<String>,
) -> DeliveryLogRow {
    DeliveryLogRow {
        log_id: DeliveryLogRow::log_id_for(key, outcome, reason),
        campaign_id: batch.campaign_id.to_string(),
        round: i64::from(batch.round),
        batch_id: batch.id.to_string(),
        channel_id: batch.channel_id.to_string(),
        endpoint: endpoint.to_owned(),
        retry_key,
        recipient_count: recipients.len() as i64,
        recipients,
        outcome,
        reason,
        http_status,
        line_request_id,
        detail,
        logged_at: now_rfc3339(),
    }
}

fn requests(batch: &Batch, links: Option<&Rewriter>) -> Vec<Request> {
    let now = crate::click::token::unix_now();
    // Tracked links: one click URL per request, carrying the recipient for push only (a multicast message goes
    // to up to 500 people, so its links cannot say who clicked).
    let rewrite = |messages: &[Value], recipient: Option<&crate::domain::UserId>| -> Vec<Value> {
        match links {
            Some(r) => r.rewrite(messages, &batch.campaign_id, recipient, now),
            None => messages.to_vec(),
        }
    };
    match batch.mode {
        DeliveryMode::Multicast => batch
            .recipients
            .chunks(MULTICAST_MAX)
            .enumerate()
            .map(|(i, chunk)| Request {
                part: format!("m{i}"),
                endpoint: Endpoint::Multicast,
                recipients: i * MULTICAST_MAX..i * MULTICAST_MAX + chunk.len(),
                messages: rewrite(&batch.messages, None),
            })
            .collect(),
        DeliveryMode::Push => {
            let messages =
                crate::domain::Messages::parse(&Value::Array(batch.messages.clone())).ok();
            batch
                .recipients
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let empty = serde_json::Map::new();
                    let rendered = match &messages {
                        Some(m) => m.render(r.attrs.as_ref().unwrap_or(&empty)),
                        None => batch.messages.clone(),
                    };
                    Request {
                        part: format!("p{}", r.user_id),
                        endpoint: Endpoint::Push,
                        recipients: i..i + 1,
                        messages: rewrite(&rendered, Some(&r.user_id)),
                    }
                })
                .collect()
        }
    }
}

/// Sends one request until LINE's answer is definite or the deadline passes. `maybe_accepted`: an earlier
/// handling of the batch may have sent this request (and LINE may have accepted it).
async fn send_until_definite(
    line: &LineClient,
    batch: &Batch,
    req: Request,
    deadline: Instant,
    mut maybe_accepted: bool,
) -> Settled {
    let key = batch.retry_key(&req.part);
    let key_s = key.to_string();
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let outcome = line
            .send(&batch.channel_id, req.endpoint, &req.body(batch), key)
            .await;
        let row = |outcome, reason, status, request_id, detail| {
            Settled::Row(Box::new(log_row(
                batch,
                req.endpoint.as_str(),
                &key_s,
                Some(key_s.clone()),
                batch.recipients[req.recipients.clone()]
                    .iter()
                    .map(|r| r.user_id.to_string())
                    .collect(),
                outcome,
                reason,
                status,
                request_id,
                detail,
            )))
        };
        let wait = Duration::from_millis(
            (100 * 2u64.pow(attempt.min(6))).min(3_000) + rand::random::<u64>() % 100,
        );
        let out_of_time = Instant::now() + wait >= deadline;
        match outcome {
            SendOutcome::Accepted { request_id } => {
                return row(Outcome::Delivered, None, Some(200), request_id, None);
            }
            SendOutcome::AlreadyAccepted { request_id } => {
                return row(
                    Outcome::Delivered,
                    None,
                    Some(409),
                    Some(request_id),
                    Some("retry key already accepted".into()),
                );
            }
            SendOutcome::Rejected { status, message } => {
                return row(
                    Outcome::Failed,
                    Some(FailureReason::LineRejected),
                    Some(i64::from(status)),
                    None,
                    Some(message),
                );
            }
            SendOutcome::QuotaExhausted { .. } => return Settled::Quota,
            SendOutcome::RateLimited if out_of_time && maybe_accepted => {
                // This attempt was refused, but an earlier one with the same key may have been accepted.
                return Settled::Unknown(
                    "rate limited (429) past the budget after an attempt whose outcome is unknown"
                        .into(),
                );
            }
            SendOutcome::RateLimited if out_of_time => {
                // Every attempt was refused: the next diff-retry round may send it with a new key, once the
                // batch is sealed (see `send`).
                return row(
                    Outcome::Retryable,
                    Some(FailureReason::RateLimited),
                    Some(429),
                    None,
                    None,
                );
            }
            SendOutcome::Unknown { detail } if out_of_time => return Settled::Unknown(detail),
            SendOutcome::Unknown { .. } => {
                maybe_accepted = true;
                tokio::time::sleep(wait).await
            }
            SendOutcome::RateLimited => tokio::time::sleep(wait).await,
        }
    }
}

/// Handles one batch. `last_attempt` is set for batches arriving from the dead-letter topic: what is still
/// unknown then is settled as `failed/outcome_unknown` (reported, never re-sent with a new key).
pub async fn handle(
    ctx: &Ctx,
    line: &LineClient,
    batch: Batch,
    last_attempt: bool,
) -> anyhow::Result<Disposition> {
    let ds = &ctx.gcp.datastore;
    // Both reads at once: they are the handler's fixed cost per batch.
    let (done, campaign) = tokio::join!(
        ds.get::<BatchDone>(batch.id.as_str()),
        ds.get::<Campaign>(batch.campaign_id.as_str())
    );
    if done?.is_some() {
        return Ok(Disposition::Ack("already done"));
    }
    let Some(campaign) = campaign? else {
        return Ok(Disposition::Refuse(format!(
            "batch {} names campaign {}, which does not exist",
            batch.id, batch.campaign_id
        )));
    };
    if campaign.channel_id != batch.channel_id {
        return Ok(Disposition::Refuse(format!(
            "batch {} is for channel {}, but its campaign sends on {}",
            batch.id, batch.channel_id, campaign.channel_id
        )));
    }
    // Every recipient of the batch, for the paths that settle it in one row (built only there: the sending path
    // holds its recipients once, in the requests).
    let all = || -> Vec<String> {
        batch
            .recipients
            .iter()
            .map(|r| r.user_id.to_string())
            .collect()
    };
    let rows = match campaign.status {
        CampaignStatus::Paused => {
            tracing::info!(batch = %batch.id, "campaign paused: batch parked until it resumes");
            return park(ds, &batch, "parked").await;
        }
        CampaignStatus::Canceled | CampaignStatus::Failed | CampaignStatus::Completed => {
            let key = format!("{}:settled", batch.id);
            vec![log_row(
                &batch,
                "none",
                &key,
                None,
                all(),
                Outcome::Failed,
                Some(FailureReason::Canceled),
                None,
                None,
                None,
            )]
        }
        _ if batch.dry_run => {
            let endpoint = if batch.mode == DeliveryMode::Push {
                Endpoint::Push
            } else {
                Endpoint::Multicast
            };
            let key = format!("{}:validate", batch.id);
            let messages = match tracked_links(ctx, &batch) {
                Ok(Some(r)) => r.rewrite(
                    &batch.messages,
                    &batch.campaign_id,
                    None,
                    crate::click::token::unix_now(),
                ),
                Ok(None) => batch.messages.clone(),
                Err(d) => return Ok(d),
            };
            match line.validate(&batch.channel_id, endpoint, &messages).await {
                SendOutcome::Accepted { .. } => {
                    vec![log_row(
                        &batch,
                        "validate",
                        &key,
                        None,
                        all(),
                        Outcome::Validated,
                        None,
                        Some(200),
                        None,
                        None,
                    )]
                }
                SendOutcome::Rejected { status, message } => vec![log_row(
                    &batch,
                    "validate",
                    &key,
                    None,
                    all(),
                    Outcome::Failed,
                    Some(FailureReason::LineRejected),
                    Some(i64::from(status)),
                    None,
                    Some(message),
                )],
                other => return Ok(Disposition::Retry(format!("validate: {other:?}"))),
            }
        }
        _ => return send(ctx, line, batch, last_attempt).await,
    };
    finish(ctx, &batch, rows).await?;
    Ok(Disposition::Ack("settled without sending"))
}

/// Parks a batch of a paused campaign in Datastore; the scheduler re-publishes it when the campaign resumes.
/// A resume can land between the status read and the park, after the scheduler re-published what was parked
/// then: the status is read again after parking, and if the campaign runs again the batch is redelivered by
/// Pub/Sub instead (if the scheduler also re-publishes it, the dedupe record makes the second copy a no-op).
async fn park(
    ds: &crate::gcp::datastore::Datastore,
    batch: &Batch,
    why: &'static str,
) -> anyhow::Result<Disposition> {
    ds.upsert(&ParkedBatch {
        batch: batch.clone(),
    })
    .await?;
    let now = ds.get::<Campaign>(batch.campaign_id.as_str()).await?;
    if now.is_some_and(|c| c.status != CampaignStatus::Paused) {
        return Ok(Disposition::Retry(
            "the campaign was resumed while the batch was being parked".into(),
        ));
    }
    Ok(Disposition::Ack(why))
}

/// How a handling starts sending a batch (see [`BatchSends`]).
enum Start {
    /// The first handling to send it.
    First,
    /// An earlier handling has sent (some of) it: any of its requests may have been accepted.
    Again,
    /// A sole first handling sealed it with these rows: nothing is sent again.
    Sealed(Vec<DeliveryLogRow>),
}

async fn start_sending(ds: &Datastore, batch: &Batch) -> anyhow::Result<Start> {
    let fresh = BatchSends {
        batch_id: batch.id.to_string(),
        campaign_id: batch.campaign_id.clone(),
        contended: false,
        sealed: None,
    };
    if matches!(ds.insert(&fresh).await?, Inserted::New) {
        return Ok(Start::First);
    }
    let mut sealed = None;
    ds.update::<BatchSends, _>(batch.id.as_str(), |current| {
        let mut s = current.unwrap_or_else(|| fresh.clone());
        sealed = s.sealed.clone();
        if sealed.is_some() {
            return Ok(None);
        }
        s.contended = true;
        Ok(Some(s))
    })
    .await?;
    Ok(sealed.map_or(Start::Again, Start::Sealed))
}

/// Seals the batch with its final `rows` if this (first) handling is still the only one to have sent it.
async fn seal(ds: &Datastore, batch: &Batch, rows: &[DeliveryLogRow]) -> anyhow::Result<bool> {
    let written = ds
        .update::<BatchSends, _>(batch.id.as_str(), |current| {
            Ok(current
                .filter(|s| !s.contended && s.sealed.is_none())
                .map(|s| BatchSends {
                    sealed: Some(rows.to_vec()),
                    ..s
                }))
        })
        .await?;
    Ok(written.is_some())
}

/// A `failed/outcome_unknown` row for the recipients of `batch` that `rows` do not settle (a dead-lettered
/// batch's last handling gives up on them: reported, never re-sent with a new key).
fn unknown_row(batch: &Batch, rows: &[DeliveryLogRow], detail: &str) -> DeliveryLogRow {
    let done: std::collections::HashSet<&String> =
        rows.iter().flat_map(|r| r.recipients.iter()).collect();
    let left: Vec<String> = batch
        .recipients
        .iter()
        .map(|r| r.user_id.to_string())
        .filter(|u| !done.contains(u))
        .collect();
    let key = format!("{}:dead-lettered", batch.id);
    log_row(
        batch,
        "none",
        &key,
        None,
        left,
        Outcome::Failed,
        Some(FailureReason::OutcomeUnknown),
        None,
        None,
        Some(detail.to_owned()),
    )
}

async fn send(
    ctx: &Ctx,
    line: &LineClient,
    batch: Batch,
    last_attempt: bool,
) -> anyhow::Result<Disposition> {
    let links = match tracked_links(ctx, &batch) {
        Ok(l) => l,
        Err(d) => return Ok(d),
    };
    let ds = &ctx.gcp.datastore;
    let first = match start_sending(ds, &batch).await? {
        Start::First => true,
        Start::Again => false,
        Start::Sealed(rows) => {
            finish(ctx, &batch, rows).await?;
            return Ok(Disposition::Ack(
                "sealed by an earlier handling; logs re-published",
            ));
        }
    };
    let deadline = Instant::now() + ctx.settings.delivery.push_budget;
    let sent_at = OffsetDateTime::now_utc();
    let concurrency = ctx.settings.delivery.batch_concurrency;
    let sends = requests(&batch, links.as_ref())
        .into_iter()
        .map(|req| send_until_definite(line, &batch, req, deadline, !first));
    let settled: Vec<Settled> = futures::stream::iter(sends)
        .buffer_unordered(concurrency)
        .collect()
        .await;
    // `truths`: delivered or failed for good, whatever happens to the batch next. `retryable`: final only once
    // the batch is sealed.
    let mut truths = Vec::new();
    let mut retryable = Vec::new();
    let mut unknown = Vec::new();
    let mut quota = false;
    for s in settled {
        match s {
            Settled::Row(r) if r.outcome == Outcome::Retryable => retryable.push(*r),
            Settled::Row(r) => truths.push(*r),
            Settled::Quota => quota = true,
            Settled::Unknown(d) => unknown.push(d),
        }
    }
    if quota {
        // Log what LINE did accept, then stop the campaign and keep the batch for when it resumes: re-sending
        // it then repeats the same keys, so the accepted requests come back as 409 (delivered), not twice.
        publish_rows(ctx, &truths).await?;
        if !super::control::pause_for_quota(ds, &batch.campaign_id, sent_at).await? {
            // Resumed since this batch went out (the quota was raised): send it again.
            return Ok(Disposition::Retry(
                "quota exhausted before the campaign was resumed".into(),
            ));
        }
        tracing::warn!(batch = %batch.id, campaign = %batch.campaign_id, "LINE monthly quota exhausted: campaign paused");
        return park(ds, &batch, "quota exhausted; parked").await;
    }
    if !unknown.is_empty() && !last_attempt {
        publish_rows(ctx, &truths).await?;
        return Ok(Disposition::Retry(format!(
            "{} request(s) with unknown outcome: {}",
            unknown.len(),
            unknown[0]
        )));
    }
    let mut rows = truths;
    let n_retryable = retryable.len();
    rows.extend(retryable);
    if !unknown.is_empty() {
        // Dead-lettered: settle what is still unknown as failed, with the reason.
        let row = unknown_row(&batch, &rows, &unknown[0]);
        rows.push(row);
    }
    if n_retryable > 0 && !seal(ds, &batch, &rows).await? {
        // Another handling has sent this batch too: the refused requests may be accepted by it (or were, by an
        // earlier one). They are not retryable.
        rows.retain(|r| r.outcome != Outcome::Retryable);
        if !last_attempt {
            publish_rows(ctx, &rows).await?;
            return Ok(Disposition::Retry(format!(
                "{n_retryable} request(s) rate-limited past the budget while another handling sent this batch"
            )));
        }
        rows.retain(|r| r.reason != Some(FailureReason::OutcomeUnknown));
        let row = unknown_row(
            &batch,
            &rows,
            "rate limited past the budget; another handling sent this batch",
        );
        rows.push(row);
    }
    finish(ctx, &batch, rows).await?;
    Ok(Disposition::Ack("sent"))
}

/// The link rewriter when the batch has tracked links; `Err(Retry)` when it has some but this handler cannot
/// sign them (never send tracked content untracked: the campaign check refuses it, this is the backstop).
fn tracked_links(ctx: &Ctx, batch: &Batch) -> Result<Option<Rewriter>, Disposition> {
    if !crate::click::links::has_tracked_links(&batch.messages) {
        return Ok(None);
    }
    match Rewriter::from_settings(&ctx.settings.click) {
        Some(r) => Ok(Some(r)),
        None => {
            tracing::error!(batch = %batch.id, "content has tracked links but SEGCAST_CLICK_KEYS / SEGCAST_CLICK_BASE_URL are not set: not sending");
            Err(Disposition::Retry(
                "tracked links but click tracking is not configured".into(),
            ))
        }
    }
}

async fn publish_rows(ctx: &Ctx, rows: &[DeliveryLogRow]) -> anyhow::Result<()> {
    let data = rows
        .iter()
        .map(serde_json::to_vec)
        .collect::<Result<Vec<_>, _>>()?;
    ctx.gcp
        .pubsub
        .publish_all(&ctx.settings.log_topic, data)
        .await
}

/// Logs the outcomes (before the ack), then marks the batch done.
async fn finish(ctx: &Ctx, batch: &Batch, rows: Vec<DeliveryLogRow>) -> anyhow::Result<()> {
    publish_rows(ctx, &rows).await?;
    let count = |o: Outcome| {
        rows.iter()
            .filter(|r| r.outcome == o)
            .map(|r| r.recipient_count as u64)
            .sum::<u64>()
    };
    ctx.gcp
        .datastore
        .upsert(&BatchDone {
            batch_id: batch.id.to_string(),
            campaign_id: batch.campaign_id.clone(),
            round: batch.round,
            delivered: count(Outcome::Delivered) + count(Outcome::Validated),
            failed: count(Outcome::Failed),
            retryable: count(Outcome::Retryable),
            done_at: OffsetDateTime::now_utc(),
        })
        .await
}
