//! The scheduler's HTTP face: `POST /tick` (Cloud Scheduler, every minute, OIDC-authenticated) and a local
//! loop that ticks every second instead.

use super::push_auth::PushAuth;
use crate::ctx::Ctx;
use crate::pipeline::scheduler::{TickOptions, tick};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Json};
use axum::routing::{get, post};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct SchedulerApp {
    pub ctx: Ctx,
    pub opts: TickOptions,
    pub auth: PushAuth,
}

pub fn router(app: SchedulerApp) -> Router {
    let stopping = app.ctx.stopping.clone();
    Router::new()
        .route("/tick", post(tick_endpoint))
        .route("/healthz", get(|| async { "ok" }))
        .layer(axum::middleware::from_fn_with_state(
            stopping,
            super::refuse_when_stopping,
        ))
        .with_state(app)
}

async fn tick_endpoint(
    State(app): State<SchedulerApp>,
    headers: HeaderMap,
    uri: Uri,
) -> impl IntoResponse {
    let span = crate::telemetry::request_span("tick", &headers, &app.ctx.settings.project_id);
    tracing::Instrument::instrument(tick_in_span(app, headers, uri), span).await
}

async fn tick_in_span(
    app: SchedulerApp,
    headers: HeaderMap,
    uri: Uri,
) -> (StatusCode, Json<serde_json::Value>) {
    if let Err(why) = app.auth.check(&headers, &uri).await {
        tracing::warn!(reason = %why, "tick refused: unauthenticated");
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": "unauthenticated"})),
        );
    }
    match tick(&app.ctx, &app.opts).await {
        Ok(report) => (
            StatusCode::OK,
            Json(serde_json::to_value(report).unwrap_or_default()),
        ),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "tick failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(serde_json::json!({"error": "tick failed"})),
            )
        }
    }
}

/// Ticks every `every` until `stop`.
pub async fn run_loop(ctx: Ctx, opts: TickOptions, every: Duration, stop: CancellationToken) {
    while !stop.is_cancelled() {
        match tick(&ctx, &opts).await {
            Ok(r) if !r.errors.is_empty() => {
                tracing::warn!(errors = ?r.errors, "tick finished with errors")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "tick failed"),
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
