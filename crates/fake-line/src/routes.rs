//! The router and the Messaging API handlers: push, multicast, narrowcast, broadcast, reply, validate, quota,
//! narrowcast progress. Every request gets an `X-Line-Request-Id` and is counted by endpoint and status.
//!
//! A sending request goes through: bearer auth (401) -> retry key format (400) -> latency and fault draw ->
//! 429 burst / rate limit (429) -> body size (413), JSON (400), validation against LINE's spec (400) ->
//! injected 500 or timeout -> under the retry key's lock: already accepted (409), monthly quota (429),
//! accept and record -> lost-response drop, or the answer.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use line_spec::{RequestKind, validate_request};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth::{self, authenticate};
use crate::config::Endpoint;
use crate::errors::*;
use crate::faults::FaultAction;
use crate::records::Record;
use crate::server::ConnKill;
use crate::state::{App, Narrowcast};
use crate::stats::Counters;
use crate::util::{iso_ms, now_ms, sha256_canonical};
use crate::{admin, insight};

pub(crate) const RETRY_KEY_HEADER: &str = "x-line-retry-key";
pub(crate) const ACCEPTED_REQUEST_ID_HEADER: &str = "x-line-accepted-request-id";
pub(crate) const REQUEST_ID_HEADER: &str = "x-line-request-id";

/// The id of the request being handled (also sent as `X-Line-Request-Id`).
#[derive(Clone, Copy)]
pub(crate) struct RequestId(pub Uuid);

type Body = Result<Bytes, BytesRejection>;

pub(crate) fn router(app: App) -> Router {
    let body_limit = app.config.limits.max_body_bytes;
    Router::new()
        .route("/oauth2/v3/token", post(auth::issue_stateless))
        .route("/v2/oauth/accessToken", post(auth::issue_short_lived))
        .route("/v2/bot/message/push", post(push))
        .route("/v2/bot/message/multicast", post(multicast))
        .route("/v2/bot/message/narrowcast", post(narrowcast))
        .route("/v2/bot/message/broadcast", post(broadcast))
        .route("/v2/bot/message/reply", post(reply))
        .route("/v2/bot/message/validate/{kind}", post(validate))
        .route("/v2/bot/message/quota", get(quota))
        .route("/v2/bot/message/quota/consumption", get(quota_consumption))
        .route(
            "/v2/bot/message/progress/narrowcast",
            get(narrowcast_progress),
        )
        .route(
            "/v2/bot/insight/message/event/aggregation",
            get(insight::aggregation),
        )
        .merge(admin::router())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(app.clone(), track))
        .with_state(app)
}

/// Assigns the request id, sets `X-Line-Request-Id` and counts the response.
async fn track(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let id = Uuid::new_v4();
    let endpoint = Endpoint::from_path(req.uri().path());
    req.extensions_mut().insert(RequestId(id));
    let mut resp = next.run(req).await;
    app.counters
        .count_response(endpoint, resp.status().as_u16());
    let mut buf = Uuid::encode_buffer();
    if let Ok(v) = HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf)) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    resp
}

async fn not_found() -> Response {
    line_error(StatusCode::NOT_FOUND, "Not found")
}

/// Context of one API request after the common checks.
struct Admitted {
    channel: String,
    retry_key: Option<Uuid>,
    action: FaultAction,
    hang: Duration,
    /// When the rate limit admitted it (ms): the window it counts in, for the limit and for the statistics.
    admitted_ms: u64,
}

/// Auth, retry key header, latency, bursts and rate limit: the steps every API endpoint shares.
async fn admit(app: &App, endpoint: Endpoint, headers: &HeaderMap) -> Result<Admitted, Response> {
    let channel = authenticate(app, headers)?;
    let retry_key = match headers.get(RETRY_KEY_HEADER) {
        None => None,
        Some(_) if !endpoint.is_send() => {
            return Err(line_error(StatusCode::BAD_REQUEST, RETRY_KEY_UNSUPPORTED));
        }
        Some(v) => match v.to_str().ok().and_then(parse_retry_key) {
            Some(k) => Some(k),
            None => return Err(line_error(StatusCode::BAD_REQUEST, RETRY_KEY_INVALID)),
        },
    };
    let (latency, action, hang_ms) = app.faults.roll(endpoint, now_ms());
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let admitted_ms = now_ms();
    if action == FaultAction::Burst429 || !app.rate.try_acquire(&channel, endpoint, admitted_ms) {
        Counters::inc(&app.counters.rate_limited);
        return Err(line_error(StatusCode::TOO_MANY_REQUESTS, RATE_LIMITED));
    }
    Ok(Admitted {
        channel,
        retry_key,
        action,
        hang: Duration::from_millis(hang_ms),
        admitted_ms,
    })
}

/// A UUID in its hyphenated form (`123e4567-e89b-12d3-a456-426614174000`), any case.
fn parse_retry_key(s: &str) -> Option<Uuid> {
    if s.len() != 36 {
        return None;
    }
    Uuid::try_parse(s).ok()
}

fn parse_body(app: &App, body: Body) -> Result<Value, Response> {
    let bytes = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(line_error(StatusCode::PAYLOAD_TOO_LARGE, BODY_TOO_LARGE));
        }
        Err(_) => return Err(line_error(StatusCode::BAD_REQUEST, MALFORMED_JSON)),
    };
    if bytes.len() > app.config.limits.max_body_bytes {
        return Err(line_error(StatusCode::PAYLOAD_TOO_LARGE, BODY_TOO_LARGE));
    }
    serde_json::from_slice(&bytes).map_err(|_| line_error(StatusCode::BAD_REQUEST, MALFORMED_JSON))
}

/// Drops the connection without answering (never returns).
async fn drop_connection(kill: Option<Extension<ConnKill>>) -> Response {
    if let Some(Extension(k)) = kill {
        k.kill();
    }
    std::future::pending().await
}

/// Applies the faults that happen before acceptance: 500, or a hang and a dropped connection.
async fn pre_accept_fault(
    adm: &Admitted,
    kill: Option<Extension<ConnKill>>,
) -> Result<Option<Extension<ConnKill>>, Response> {
    match adm.action {
        FaultAction::Error500 => Err(line_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            INTERNAL_ERROR,
        )),
        FaultAction::Timeout => {
            tokio::time::sleep(adm.hang).await;
            Err(drop_connection(kill).await)
        }
        _ => Ok(kill),
    }
}

macro_rules! send_handler {
    ($name:ident, $endpoint:expr) => {
        async fn $name(
            State(app): State<App>,
            Extension(rid): Extension<RequestId>,
            kill: Option<Extension<ConnKill>>,
            headers: HeaderMap,
            body: Body,
        ) -> Response {
            match send(app, $endpoint, rid.0, kill, headers, body).await {
                Ok(r) | Err(r) => r,
            }
        }
    };
}

send_handler!(push, Endpoint::Push);
send_handler!(multicast, Endpoint::Multicast);
send_handler!(narrowcast, Endpoint::Narrowcast);
send_handler!(broadcast, Endpoint::Broadcast);

async fn send(
    app: App,
    endpoint: Endpoint,
    request_id: Uuid,
    kill: Option<Extension<ConnKill>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Response> {
    let adm = admit(&app, endpoint, &headers).await?;
    let body = parse_body(&app, body)?;
    let kind = match endpoint {
        Endpoint::Push => RequestKind::Push,
        Endpoint::Multicast => RequestKind::Multicast,
        Endpoint::Narrowcast => RequestKind::Narrowcast,
        _ => RequestKind::Broadcast,
    };
    let violations = validate_request(kind, &body, &app.config.limits);
    if !violations.is_empty() {
        return Err(validation_error(&violations));
    }
    let (recipients, count) = recipients_of(&app, endpoint, &body);
    if endpoint == Endpoint::Push
        && recipients
            .iter()
            .any(|r| app.config.nonexistent_users.contains(r))
    {
        return Err(line_error(StatusCode::BAD_REQUEST, FAILED_TO_SEND));
    }
    let kill = pre_accept_fault(&adm, kill).await?;

    // Accept atomically with respect to the retry key: check, charge the quota, record the key (LINE's calendar:
    // the configured clock).
    let now = app.config.clock.unix_ms();
    {
        let slot = adm.retry_key.map(|k| app.retry_keys.slot(&adm.channel, k));
        if let Some(first) = slot.as_ref().and_then(|s| s.accepted(now)) {
            Counters::inc(&app.counters.retry_key_conflicts);
            let mut resp = line_error(StatusCode::CONFLICT, RETRY_KEY_ACCEPTED);
            if let Ok(v) = HeaderValue::from_str(&first.to_string()) {
                resp.headers_mut().insert(ACCEPTED_REQUEST_ID_HEADER, v);
            }
            return Err(resp);
        }
        if !app
            .quotas
            .try_consume(&adm.channel, count, app.config.clock.month())
        {
            Counters::inc(&app.counters.quota_exceeded);
            return Err(line_error(StatusCode::TOO_MANY_REQUESTS, MONTHLY_LIMIT));
        }
        if let Some(slot) = slot {
            slot.record(request_id, now);
        }
    }
    // Counted in the window that admitted it (body parsing and validation since may have crossed into the next
    // second: counting it there would report a window over the limit that the limit never let in).
    app.rate
        .note_accepted(&adm.channel, endpoint, adm.admitted_ms);
    let lost = adm.action == FaultAction::LostResponse;
    let messages = body.get("messages").cloned().unwrap_or(Value::Null);
    let unit = body
        .get("customAggregationUnits")
        .and_then(|u| u.get(0))
        .and_then(Value::as_str)
        .map(str::to_string);
    let record = Record {
        request_id: request_id.to_string(),
        retry_key: adm.retry_key.map(|k| k.to_string()),
        channel_id: adm.channel.clone(),
        endpoint,
        recipients,
        recipient_count: count,
        messages_sha256: sha256_canonical(&messages),
        unit,
        accepted_at: iso_ms(now),
        accepted_at_ms: now,
        lost_response: lost,
    };
    app.deliveries.record(record, &messages);
    if endpoint == Endpoint::Narrowcast {
        app.narrowcasts.lock().insert(
            request_id,
            Narrowcast {
                channel_id: adm.channel.clone(),
                accepted_ms: now,
                target: count,
            },
        );
    }
    tracing::debug!(%request_id, channel = %adm.channel, endpoint = endpoint.as_str(), recipients = count, lost, "accepted");

    if lost {
        app.faults.count_lost_response();
        return Err(drop_connection(kill).await);
    }
    Ok(match endpoint {
        Endpoint::Push => {
            let sent: Vec<Value> = messages
                .as_array()
                .map(|ms| {
                    ms.iter()
                        .map(|m| {
                            let id = app
                                .next_message_id
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                                .to_string();
                            let quotable = matches!(
                                m.get("type").and_then(Value::as_str),
                                Some("text" | "textV2" | "sticker" | "image" | "video")
                            );
                            if quotable {
                                json!({"id": id, "quoteToken": format!("q{id}")})
                            } else {
                                json!({ "id": id })
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            Json(json!({ "sentMessages": sent })).into_response()
        }
        Endpoint::Narrowcast => (StatusCode::ACCEPTED, Json(json!({}))).into_response(),
        _ => Json(json!({})).into_response(),
    })
}

/// The recipients of a valid request and how many messages it bills.
fn recipients_of(app: &App, endpoint: Endpoint, body: &Value) -> (Vec<String>, u64) {
    match endpoint {
        Endpoint::Push => {
            let to = body.get("to").and_then(Value::as_str).unwrap_or_default();
            (vec![to.to_string()], 1)
        }
        Endpoint::Multicast => {
            let to: Vec<String> = body
                .get("to")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let n = to.len() as u64;
            (to, n)
        }
        Endpoint::Narrowcast => {
            let max = body
                .get("limit")
                .and_then(|l| l.get("max"))
                .and_then(Value::as_u64);
            let n = max.map_or(app.config.friends_count, |m| {
                m.min(app.config.friends_count)
            });
            (Vec::new(), n)
        }
        _ => (Vec::new(), app.config.friends_count),
    }
}

/// `POST /v2/bot/message/reply`: validated like LINE does, but the fake never issues reply tokens.
async fn reply(
    State(app): State<App>,
    kill: Option<Extension<ConnKill>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let run = async {
        let adm = admit(&app, Endpoint::Reply, &headers).await?;
        let body = parse_body(&app, body)?;
        let v = validate_request(RequestKind::Reply, &body, &app.config.limits);
        if !v.is_empty() {
            return Err(validation_error(&v));
        }
        pre_accept_fault(&adm, kill).await?;
        Ok(line_error(StatusCode::BAD_REQUEST, "Invalid reply token"))
    };
    match run.await {
        Ok(r) | Err(r) => r,
    }
}

/// `POST /v2/bot/message/validate/{push,multicast,narrowcast,broadcast,reply}`: `{messages}` only; 200 with an
/// empty body when valid.
async fn validate(
    State(app): State<App>,
    Path(kind): Path<String>,
    kill: Option<Extension<ConnKill>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !matches!(
        kind.as_str(),
        "push" | "multicast" | "narrowcast" | "broadcast" | "reply"
    ) {
        return not_found().await;
    }
    let run = async {
        let adm = admit(&app, Endpoint::Validate, &headers).await?;
        let body = parse_body(&app, body)?;
        let v = validate_request(RequestKind::Validate, &body, &app.config.limits);
        if !v.is_empty() {
            return Err(validation_error(&v));
        }
        pre_accept_fault(&adm, kill).await?;
        Ok(StatusCode::OK.into_response())
    };
    match run.await {
        Ok(r) | Err(r) => r,
    }
}

/// `GET /v2/bot/message/quota`: `{"type":"limited","value":N}` or `{"type":"none"}`.
async fn quota(
    State(app): State<App>,
    kill: Option<Extension<ConnKill>>,
    headers: HeaderMap,
) -> Response {
    let run = async {
        let adm = admit(&app, Endpoint::Quota, &headers).await?;
        pre_accept_fault(&adm, kill).await?;
        Ok(match app.quotas.get(&adm.channel).limit {
            Some(n) => Json(json!({"type": "limited", "value": n})),
            None => Json(json!({"type": "none"})),
        }
        .into_response())
    };
    match run.await {
        Ok(r) | Err(r) => r,
    }
}

/// `GET /v2/bot/message/quota/consumption`: `{"totalUsage":N}`.
async fn quota_consumption(
    State(app): State<App>,
    kill: Option<Extension<ConnKill>>,
    headers: HeaderMap,
) -> Response {
    let run = async {
        let adm = admit(&app, Endpoint::QuotaConsumption, &headers).await?;
        pre_accept_fault(&adm, kill).await?;
        Ok(Json(json!({"totalUsage": app.quotas.get(&adm.channel).used})).into_response())
    };
    match run.await {
        Ok(r) | Err(r) => r,
    }
}

#[derive(Deserialize)]
struct ProgressQuery {
    #[serde(rename = "requestId")]
    request_id: Option<String>,
}

/// `GET /v2/bot/message/progress/narrowcast?requestId=`: `waiting` for `narrowcast_processing_ms`, then
/// `succeeded` with every target delivered.
async fn narrowcast_progress(
    State(app): State<App>,
    kill: Option<Extension<ConnKill>>,
    headers: HeaderMap,
    query: Result<Query<ProgressQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let run = async {
        let adm = admit(&app, Endpoint::NarrowcastProgress, &headers).await?;
        pre_accept_fault(&adm, kill).await?;
        let Some(id) = query.ok().and_then(|q| q.0.request_id) else {
            return Err(line_error(
                StatusCode::BAD_REQUEST,
                "The request parameter 'requestId' is required",
            ));
        };
        let not_found = || line_error(StatusCode::NOT_FOUND, "Not found");
        let id = Uuid::try_parse(&id).map_err(|_| not_found())?;
        let casts = app.narrowcasts.lock();
        let n = casts
            .get(&id)
            .filter(|n| n.channel_id == adm.channel)
            .ok_or_else(not_found)?;
        let done_at = n.accepted_ms + app.config.narrowcast_processing_ms;
        let body = if now_ms() < done_at {
            json!({"phase": "waiting", "acceptedTime": iso_ms(n.accepted_ms)})
        } else {
            json!({"phase": "succeeded", "successCount": n.target, "failureCount": 0,
                   "targetCount": n.target, "acceptedTime": iso_ms(n.accepted_ms),
                   "completedTime": iso_ms(done_at)})
        };
        Ok(Json(body).into_response())
    };
    match run.await {
        Ok(r) | Err(r) => r,
    }
}

/// Shared by the insight handler.
pub(crate) async fn admit_get(
    app: &App,
    endpoint: Endpoint,
    headers: &HeaderMap,
    kill: Option<Extension<ConnKill>>,
) -> Result<String, Response> {
    let adm = admit(app, endpoint, headers).await?;
    pre_accept_fault(&adm, kill).await?;
    Ok(adm.channel)
}
