//! The delivery handler's HTTP face: Pub/Sub push endpoints for the delivery topics and the dead-letter topic.
//!
//! Answers: 204 acknowledges; 503 makes Pub/Sub redeliver later (retry policy backoff); 400 refuses a
//! malformed message or a batch that can never be handled (it is retried until dead-lettered, where it is
//! logged and dropped); 401 refuses a caller that is not Pub/Sub; 413 a body over [`MAX_PUSH_BODY`].
//! (202 is never used: the emulator does not treat it as an ack.) A refused message never reaches LINE.

use super::push_auth::PushAuth;
use crate::domain::{Batch, Messages};
use crate::line::LineClient;
use crate::pipeline::Ctx;
use crate::pipeline::deliver::{self, Disposition};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::{get, post};
use base64::Engine;
use serde::Deserialize;

/// Pub/Sub push bodies are at most 10 MB of message plus base64 and envelope.
pub const MAX_PUSH_BODY: usize = 16 * 1024 * 1024;

#[derive(Clone)]
pub struct DeliveryApp {
    pub ctx: Ctx,
    pub line: LineClient,
    pub auth: PushAuth,
}

/// The push envelope, borrowing from the body where it can: the base64 data is the bulk of it (a copy per
/// batch in flight is memory the handler does not need).
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    message: PushMessage<'a>,
}

#[derive(Deserialize)]
struct PushMessage<'a> {
    #[serde(default, borrow)]
    data: std::borrow::Cow<'a, str>,
    #[serde(default, rename = "messageId")]
    message_id: String,
}

pub fn router(app: DeliveryApp) -> Router {
    Router::new()
        .route("/push/delivery", post(delivery))
        .route("/push/dead-letter", post(dead_letter))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_PUSH_BODY))
        .with_state(app)
}

/// The most recipients one pushed batch may hold (the batch sizes of [`crate::config`] are capped to it).
pub const MAX_BATCH_RECIPIENTS: usize = crate::domain::MAX_BATCH_RECIPIENTS;

/// A decoded and checked push: the batch and the Pub/Sub message id.
#[derive(Debug)]
pub struct Pushed {
    pub batch: Batch,
    pub message_id: String,
}

/// Decodes a Pub/Sub push body (the JSON envelope, base64 `message.data`, the batch's JSON) and checks the batch
/// as the fan-out makes them: recipients valid LINE user IDs (1 to [`MAX_BATCH_RECIPIENTS`], each once), a
/// batch id of its own campaign and round, and messages that LINE's schema and limits accept. Anything else is
/// refused here, before any lookup or request: the reason is for the log. Pure, and never panics (fuzzed).
pub fn decode_push(body: &[u8]) -> Result<Pushed, String> {
    let env: Envelope =
        serde_json::from_slice(body).map_err(|e| format!("not a Pub/Sub push envelope: {e}"))?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(env.message.data.as_bytes())
        .map_err(|e| format!("message data is not base64: {e}"))?;
    let mut batch: Batch =
        serde_json::from_slice(&data).map_err(|e| format!("message is not a batch: {e}"))?;
    // The array grew by doubling while parsed: up to twice the room it needs, held while the batch is sent.
    batch.recipients.shrink_to_fit();
    check_batch(&batch)?;
    Ok(Pushed {
        batch,
        message_id: env.message.message_id,
    })
}

fn check_batch(batch: &Batch) -> Result<(), String> {
    let n = batch.recipients.len();
    if n == 0 {
        return Err("batch has no recipients".into());
    }
    if n > MAX_BATCH_RECIPIENTS {
        return Err(format!(
            "batch has {n} recipients, more than {MAX_BATCH_RECIPIENTS}"
        ));
    }
    let own = format!("{}.r{}.", batch.campaign_id, batch.round);
    if batch.round == 0 || !batch.id.as_str().starts_with(&own) {
        return Err(format!(
            "batch id {:?} is not a batch of round {} of campaign {}",
            batch.id.as_str(),
            batch.round,
            batch.campaign_id
        ));
    }
    let mut seen = std::collections::HashSet::with_capacity(n);
    if let Some(dup) = batch.recipients.iter().find(|r| !seen.insert(&r.user_id)) {
        return Err(format!(
            "recipient {} appears twice in the batch",
            dup.user_id
        ));
    }
    if let Err(errs) = Messages::parse(&serde_json::Value::Array(batch.messages.clone())) {
        let first = errs
            .first()
            .map(|e| format!("{}: {}", e.field, e.message))
            .unwrap_or_default();
        return Err(format!(
            "batch messages are not valid LINE messages ({} problem(s), first: {first})",
            errs.len()
        ));
    }
    Ok(())
}

async fn delivery(
    State(app): State<DeliveryApp>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> StatusCode {
    handle(app, headers, uri, body, false).await
}

async fn dead_letter(
    State(app): State<DeliveryApp>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> StatusCode {
    handle(app, headers, uri, body, true).await
}

async fn handle(
    app: DeliveryApp,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
    dead_lettered: bool,
) -> StatusCode {
    if let Err(why) = app.auth.check(&headers, &uri).await {
        tracing::warn!(reason = %why, path = %uri.path(), "push refused: unauthenticated");
        return StatusCode::UNAUTHORIZED;
    }
    let Pushed { batch, message_id } = match decode_push(&body) {
        Ok(p) => p,
        Err(why) if dead_lettered => {
            // A malformed message that has been retried to the end: record it in the log and let it go.
            tracing::error!(reason = %why, bytes = body.len(), "dead-lettered malformed message dropped");
            return StatusCode::NO_CONTENT;
        }
        Err(why) => {
            tracing::error!(reason = %why, bytes = body.len(), "malformed push refused");
            return StatusCode::BAD_REQUEST;
        }
    };
    // The body (the batch again, base64) is not needed past here: a handler holds many batches at once.
    drop(body);
    let batch_id = batch.id.clone();
    let started = std::time::Instant::now();
    let result = deliver::handle(&app.ctx, &app.line, batch, dead_lettered).await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(Disposition::Ack(what)) => {
            tracing::info!(batch = %batch_id, message_id, dead_lettered, result = what, elapsed_ms, "batch handled");
            StatusCode::NO_CONTENT
        }
        Ok(Disposition::Refuse(why)) if dead_lettered => {
            tracing::error!(batch = %batch_id, message_id, reason = %why, "dead-lettered batch dropped: it can never be handled");
            StatusCode::NO_CONTENT
        }
        Ok(Disposition::Refuse(why)) => {
            tracing::error!(batch = %batch_id, message_id, reason = %why, "batch refused: it can never be handled");
            StatusCode::BAD_REQUEST
        }
        Ok(Disposition::Retry(why)) => {
            tracing::warn!(batch = %batch_id, message_id, reason = %why, "batch not settled; Pub/Sub will redeliver");
            StatusCode::SERVICE_UNAVAILABLE
        }
        Err(e) => {
            tracing::error!(batch = %batch_id, message_id, error = %format!("{e:#}"), "batch failed; Pub/Sub will redeliver");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}
