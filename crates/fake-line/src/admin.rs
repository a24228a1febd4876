//! Admin endpoints under `/fake/` (no auth): stats, deliveries (NDJSON), faults, quotas, reset, health, config,
//! recent messages per recipient, and recorded user interactions (for the insight endpoint).

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::config::Faults;
use crate::errors::line_error;
use crate::state::App;

pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/fake/health", get(health))
        .route("/fake/stats", get(stats))
        .route("/fake/deliveries", get(deliveries))
        .route("/fake/faults", get(get_faults).post(set_faults))
        .route("/fake/quota", post(set_quota))
        .route("/fake/reset", post(reset))
        .route("/fake/config", get(config))
        .route("/fake/messages", get(messages))
        .route("/fake/interactions", post(interactions))
}

#[derive(Deserialize)]
struct MessagesQuery {
    to: String,
}

/// `GET /fake/messages?to=U...`: `{"to": ..., "requests": [[message, ...], ...]}`, the messages of the recent
/// accepted requests to that recipient, oldest first (the last 2,000 requests are kept).
async fn messages(State(app): State<App>, Query(q): Query<MessagesQuery>) -> Response {
    match app.deliveries.messages_to(&q.to) {
        Some(requests) => Json(json!({"to": q.to, "requests": requests})).into_response(),
        None => line_error(
            StatusCode::NOT_FOUND,
            "messages are not kept: set keep_records",
        ),
    }
}

#[derive(Deserialize)]
struct InteractionRequest {
    unit: String,
    user: String,
    /// `impression` or `click`.
    event: String,
    seq: Option<usize>,
    url: Option<String>,
}

/// `POST /fake/interactions` `{"unit": "c_x", "user": "U...", "event": "impression"}` or
/// `{"unit": ..., "user": ..., "event": "click", "seq": 1, "url": "https://..."}`: what a user did with a
/// delivered message, for the insight endpoint to count. 404 when the user was never sent the unit.
async fn interactions(State(app): State<App>, Json(r): Json<InteractionRequest>) -> Response {
    let what = match (r.event.as_str(), r.url) {
        ("impression", _) => crate::records::Interaction::Impression,
        ("click", Some(url)) => crate::records::Interaction::Click {
            seq: r.seq.unwrap_or(1),
            url,
        },
        _ => {
            return line_error(
                StatusCode::BAD_REQUEST,
                "event is impression, or click with a url",
            );
        }
    };
    if app.deliveries.interact(&r.unit, &r.user, what) {
        Json(json!({})).into_response()
    } else {
        line_error(
            StatusCode::NOT_FOUND,
            "that user was not sent that unit's messages",
        )
    }
}

async fn health() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

async fn stats(State(app): State<App>) -> Response {
    Json(app.stats()).into_response()
}

#[derive(Deserialize)]
struct DeliveriesQuery {
    unit: Option<String>,
}

/// One accepted request per line; `?unit=` keeps those of one aggregation unit.
async fn deliveries(State(app): State<App>, Query(q): Query<DeliveriesQuery>) -> Response {
    let text = if app.deliveries.reads_file() {
        let app = app.clone();
        tokio::task::spawn_blocking(move || app.deliveries.ndjson(q.unit.as_deref()))
            .await
            .ok()
            .flatten()
    } else {
        app.deliveries.ndjson(q.unit.as_deref())
    };
    match text {
        Some(t) => ([(header::CONTENT_TYPE, "application/x-ndjson")], t).into_response(),
        None => line_error(
            StatusCode::NOT_FOUND,
            "records are not kept: set keep_records or records_file",
        ),
    }
}

async fn get_faults(State(app): State<App>) -> Response {
    Json(app.faults.get()).into_response()
}

/// Replaces the faults (fields left out take their defaults, so `{}` turns every fault off).
async fn set_faults(State(app): State<App>, Json(f): Json<Faults>) -> Response {
    tracing::info!(faults = ?f, "faults changed");
    app.faults.set(f);
    Json(app.faults.get()).into_response()
}

#[derive(Deserialize)]
struct QuotaRequest {
    channel_id: String,
    quota: Option<u64>,
}

/// `{"channel_id": "...", "quota": N | null}` (null: unlimited).
async fn set_quota(State(app): State<App>, Json(q): Json<QuotaRequest>) -> Response {
    app.quotas.set_limit(&q.channel_id, q.quota);
    let s = app.quotas.get(&q.channel_id);
    Json(json!({"channel_id": q.channel_id, "limit": s.limit, "used": s.used})).into_response()
}

async fn reset(State(app): State<App>) -> Response {
    app.reset();
    Json(json!({})).into_response()
}

async fn config(State(app): State<App>) -> Response {
    Json(&app.config).into_response()
}
