//! The delivery handler's HTTP face: Pub/Sub push endpoints for the delivery topics and the dead-letter topic.
//!
//! Answers: 204 acknowledges; 503 makes Pub/Sub redeliver later (retry policy backoff); 400 refuses a
//! malformed message or a batch that can never be handled (it is retried until dead-lettered, where it is
//! logged and dropped); 401 refuses a caller that is not Pub/Sub; 413 a body over [`MAX_PUSH_BODY`].
//! (202 is never used: the emulator does not treat it as an ack.) A refused message never reaches LINE.

use super::push_auth::PushAuth;
use crate::ctx::Ctx;
use crate::line::LineClient;
use crate::pipeline::batch_wire::{MAX_PUSH_BODY, Pushed, decode_push};
use crate::pipeline::deliver::{self, Disposition};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::{get, post};
use tracing::Instrument;

#[derive(Clone)]
pub struct DeliveryApp {
    pub ctx: Ctx,
    pub line: LineClient,
    pub auth: PushAuth,
}

pub fn router(app: DeliveryApp) -> Router {
    let stopping = app.ctx.stopping.clone();
    Router::new()
        .route("/push/delivery", post(delivery))
        .route("/push/dead-letter", post(dead_letter))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_PUSH_BODY))
        .layer(axum::middleware::from_fn_with_state(
            stopping,
            super::refuse_when_stopping,
        ))
        .with_state(app)
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
    let span = crate::telemetry::request_span("push", &headers, &app.ctx.settings.project_id);
    handle_in_span(app, headers, uri, body, dead_lettered)
        .instrument(span)
        .await
}

async fn handle_in_span(
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
    let (batch_id, channel) = (batch.id.clone(), batch.channel_id.clone());
    let started = std::time::Instant::now();
    let result = deliver::handle(&app.ctx, &app.line, batch, dead_lettered).await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(Disposition::Ack(what)) => {
            tracing::info!(
                batch = %batch_id, channel = %channel, message_id, dead_lettered, result = what, elapsed_ms,
                "{}", crate::telemetry::events::BATCH_HANDLED
            );
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
