//! The delivery handler's HTTP face: Pub/Sub push endpoints for the delivery topics and the dead-letter topic.
//!
//! Answers: 204 acknowledges; 503 makes Pub/Sub redeliver later (retry policy backoff); 400 refuses a
//! malformed message (it is retried until dead-lettered, where it is logged and dropped); 401 refuses a caller
//! that is not Pub/Sub. (202 is never used: the emulator does not treat it as an ack.)

use super::push_auth::PushAuth;
use crate::domain::Batch;
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
const MAX_PUSH_BODY: usize = 16 * 1024 * 1024;

#[derive(Clone)]
pub struct DeliveryApp {
    pub ctx: Ctx,
    pub line: LineClient,
    pub auth: PushAuth,
}

#[derive(Deserialize)]
struct Envelope {
    message: PushMessage,
}

#[derive(Deserialize)]
struct PushMessage {
    #[serde(default)]
    data: String,
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

fn decode(body: &[u8]) -> Result<(Batch, String), String> {
    let env: Envelope =
        serde_json::from_slice(body).map_err(|e| format!("not a Pub/Sub push envelope: {e}"))?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(env.message.data.as_bytes())
        .map_err(|e| format!("message data is not base64: {e}"))?;
    let batch: Batch =
        serde_json::from_slice(&data).map_err(|e| format!("message is not a batch: {e}"))?;
    if batch.recipients.is_empty() {
        return Err("batch has no recipients".into());
    }
    Ok((batch, env.message.message_id))
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
    let (batch, message_id) = match decode(&body) {
        Ok(b) => b,
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
    let batch_id = batch.id.clone();
    match deliver::handle(&app.ctx, &app.line, batch, dead_lettered).await {
        Ok(Disposition::Ack(what)) => {
            tracing::info!(batch = %batch_id, message_id, dead_lettered, result = what, "batch handled");
            StatusCode::NO_CONTENT
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
