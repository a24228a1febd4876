//! A batch's LINE requests: multicast in requests of at most [`MULTICAST_MAX`] recipients for content that is the
//! same for everyone, one push per recipient for personalised content. Each carries a retry key derived from
//! the batch ([`Batch::retry_key`]), so any handling of the batch sends the same keys. [`send_until_definite`]
//! sends one request until its answer is definite or the push's time budget runs out
//! ([`decision::after_attempt`] says which).

use super::decision::{self, Answer, Next, RequestStats, Settled};
use crate::click::links::Rewriter;
use crate::domain::{Batch, DeliveryMode, LoggedRequest, Recipient, UserId};
use crate::line::{Endpoint, LineClient, SendOutcome};
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

/// LINE takes at most 500 recipients per multicast request.
pub const MULTICAST_MAX: usize = 500;

/// One LINE request of a batch: its recipients (borrowed from the batch) and its messages. The JSON body is
/// written from them as it is sent, and the log row copies the recipients only once the outcome is known, so
/// a batch in flight holds its recipients once (the handler holds every batch Pub/Sub pushes at once).
pub struct Request {
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
struct UserIds<'a>(&'a [Recipient]);

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
                Endpoint::Multicast => To::Many(UserIds(recipients)),
            },
            messages: &self.messages,
            custom_aggregation_units: [batch.campaign_id.as_str()],
        }
    }

    /// The request as its log row names it.
    fn logged(&self, batch: &Batch) -> LoggedRequest {
        LoggedRequest::sent(
            self.endpoint.as_str(),
            batch.retry_key(&self.part),
            batch.recipients[self.recipients.clone()]
                .iter()
                .map(|r| r.user_id.to_string())
                .collect(),
        )
    }
}

/// The batch's requests. Tracked links get one click URL per request, carrying the recipient for push only (a
/// multicast message goes to up to 500 people, so its links cannot say who clicked). `now`: Unix seconds, for
/// the links' signatures.
pub fn requests(batch: &Batch, links: Option<&Rewriter>, now: u64) -> Vec<Request> {
    let rewrite = |messages: Vec<Value>, recipient: Option<&UserId>| -> Vec<Value> {
        match links {
            Some(r) => r.rewrite(&messages, &batch.campaign_id, recipient, now),
            None => messages,
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
                messages: rewrite(batch.messages.as_slice().to_vec(), None),
            })
            .collect(),
        DeliveryMode::Push => {
            let empty = serde_json::Map::new();
            batch
                .recipients
                .iter()
                .enumerate()
                .map(|(i, r)| Request {
                    part: format!("p{}", r.user_id),
                    endpoint: Endpoint::Push,
                    recipients: i..i + 1,
                    messages: rewrite(
                        batch.messages.render(r.attrs.as_ref().unwrap_or(&empty)),
                        Some(&r.user_id),
                    ),
                })
                .collect()
        }
    }
}

/// Why a request's outcome is unknown when the handler stops in the middle of it.
pub const CUT_SHORT: &str = "the handler is shutting down";

/// Sends one request until LINE's answer is definite or `deadline` passes (or the handler is `stopping`), with
/// backoff between attempts.
/// `maybe_accepted`: an earlier handling of the batch may have sent this request (and LINE accepted it).
pub async fn send_until_definite(
    line: &LineClient,
    batch: &Batch,
    req: Request,
    deadline: Instant,
    mut maybe_accepted: bool,
    stopping: &tokio_util::sync::CancellationToken,
) -> Settled {
    let key = batch.retry_key(&req.part);
    let mut attempt: u32 = 0;
    let mut stats = RequestStats::default();
    let answer: Answer = loop {
        attempt += 1;
        // Stopping: no new attempt, and one in flight is given up (its outcome is unknown: the batch comes
        // back with the same keys).
        let body = req.body(batch);
        let sent = tokio::select! {
            biased;
            () = stopping.cancelled() => None,
            sent = line.send_timed(&batch.channel_id, req.endpoint, &body, key) => Some(sent),
        };
        let Some((outcome, line_time)) = sent else {
            break Answer::Unknown(CUT_SHORT.into());
        };
        stats.attempts += 1;
        stats.line_time += line_time;
        if outcome == SendOutcome::RateLimited {
            stats.rate_limited += 1;
        }
        let wait = Duration::from_millis(
            (100 * 2u64.pow(attempt.min(6))).min(3_000) + rand::random::<u64>() % 100,
        );
        let out_of_time = Instant::now() + wait >= deadline;
        match decision::after_attempt(outcome, out_of_time, maybe_accepted) {
            Next::Settled(answer) => break answer,
            Next::Again { maybe_accepted: m } => {
                maybe_accepted = m;
                tokio::select! {
                    () = stopping.cancelled() => break Answer::Unknown(CUT_SHORT.into()),
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    };
    Settled {
        request: req.logged(batch),
        answer,
        stats,
    }
}
