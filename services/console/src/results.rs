//! Progress and results of a campaign: live progress by recipients settled (the handlers' dedupe records, not
//! batches published), rate and ETA; final counts from BigQuery (set on the campaign when it completes) with
//! clicks; deliveries over time for the chart; failed recipients with reasons as CSV.

use super::ConsoleApp;
use super::auth::Identity;
use super::error::ApiResult;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use segcast::domain::CampaignStatus;
use segcast::gcp::bigquery::Param;
use serde::Serialize;
use std::collections::BTreeMap;
use time::OffsetDateTime;

pub fn routes() -> Router<ConsoleApp> {
    Router::new()
        .route("/api/campaigns/{id}/progress", get(progress))
        .route("/api/campaigns/{id}/results", get(results))
        .route("/api/campaigns/{id}/timeline", get(timeline))
        .route("/api/campaigns/{id}/failures.csv", get(failures_csv))
        .route("/api/audit", get(audit_log))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub status: CampaignStatus,
    pub status_reason: Option<String>,
    pub round: u32,
    pub max_rounds: u32,
    /// Distinct user IDs the segment returned (known once extracted).
    pub targeted: u64,
    /// Recipients LINE accepted so far.
    pub delivered: u64,
    /// Recipients that failed for good so far.
    pub failed: u64,
    /// Recipients left for a diff-retry round so far (rate limited past the budget, unknown outcome).
    pub retryable: u64,
    /// `delivered + failed` over `targeted` (0..1).
    pub done_ratio: f64,
    /// Recipients settled per second since the campaign started.
    pub rate_per_s: f64,
    /// Seconds to go at that rate (while sending).
    pub eta_s: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Results {
    pub status: CampaignStatus,
    pub targeted: u64,
    pub delivered: u64,
    pub failed: u64,
    pub failed_by_reason: BTreeMap<String, u64>,
    /// Clicks on tracked links (deduplicated, no bots).
    pub clicks: i64,
    /// Distinct recipients who clicked (push campaigns; multicast clicks carry no recipient).
    pub unique_clickers: Option<i64>,
    /// `unique_clickers / delivered`, or `clicks / delivered` for multicast.
    pub click_rate: Option<f64>,
    /// Final counts come from BigQuery when the campaign ends; until then these are the live ones.
    pub is_final: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TimelinePoint {
    /// Start of the second (or minute, for long campaigns), RFC 3339 UTC.
    pub t: String,
    pub delivered: i64,
    pub failed: i64,
}

#[utoipa::path(get, path = "/api/campaigns/{id}/progress", tag = "results",
    responses((status = 200, body = Progress), (status = 404, body = super::error::ErrorBody)))]
pub async fn progress(
    State(app): State<ConsoleApp>,
    _who: Identity,
    Path(id): Path<String>,
) -> ApiResult<Json<Progress>> {
    let c = super::campaigns::get_campaign(&app, &id).await?;
    let (delivered, failed, retryable) = if c.completed_at.is_some() {
        (c.counts.delivered, c.counts.failed, 0)
    } else {
        segcast::pipeline::records::progress(app.ds(), &c.id).await?
    };
    // Invalid user IDs never reach a batch: they are settled as failed by the scheduler.
    let failed = if c.completed_at.is_some() {
        failed
    } else {
        failed + c.counts.invalid
    };
    let settled = delivered + failed;
    let elapsed = c
        .started_at
        .map(|s| (c.completed_at.unwrap_or_else(OffsetDateTime::now_utc) - s).as_seconds_f64())
        .unwrap_or(0.0);
    let rate = if elapsed > 0.5 {
        settled as f64 / elapsed
    } else {
        0.0
    };
    let left = c.counts.targeted.saturating_sub(settled);
    let eta_s = (c.status.is_running() && rate > 0.0).then(|| (left as f64 / rate).ceil() as u64);
    Ok(Json(Progress {
        status: c.status,
        status_reason: c.status_reason.clone(),
        round: c.round,
        max_rounds: c.max_rounds,
        targeted: c.counts.targeted,
        delivered,
        failed,
        retryable,
        done_ratio: if c.counts.targeted > 0 {
            (settled as f64 / c.counts.targeted as f64).min(1.0)
        } else {
            0.0
        },
        rate_per_s: (rate * 10.0).round() / 10.0,
        eta_s,
    }))
}

#[utoipa::path(get, path = "/api/campaigns/{id}/results", tag = "results",
    responses((status = 200, body = Results), (status = 404, body = super::error::ErrorBody)))]
pub async fn results(
    State(app): State<ConsoleApp>,
    who: Identity,
    Path(id): Path<String>,
) -> ApiResult<Json<Results>> {
    let c = super::campaigns::get_campaign(&app, &id).await?;
    let is_final = c.completed_at.is_some();
    let (delivered, failed, failed_by_reason) = if is_final {
        (
            c.counts.delivered,
            c.counts.failed,
            c.counts.failed_by_reason.clone(),
        )
    } else {
        let Json(p) = progress(State(app.clone()), who, Path(id.clone())).await?;
        (p.delivered, p.failed, BTreeMap::new())
    };
    let clicks = segcast::click::analytics::campaign_clicks(&app.ctx, &c.id).await?;
    let click_rate = (delivered > 0)
        .then(|| clicks.unique_clickers.unwrap_or(clicks.clicks) as f64 / delivered as f64);
    Ok(Json(Results {
        status: c.status,
        targeted: c.counts.targeted,
        delivered,
        failed,
        failed_by_reason,
        clicks: clicks.clicks,
        unique_clickers: clicks.unique_clickers,
        click_rate,
        is_final,
    }))
}

#[utoipa::path(get, path = "/api/campaigns/{id}/timeline", tag = "results",
    responses((status = 200, body = Vec<TimelinePoint>)))]
pub async fn timeline(
    State(app): State<ConsoleApp>,
    _who: Identity,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<TimelinePoint>>> {
    let c = super::campaigns::get_campaign(&app, &id).await?;
    let span = match (c.started_at, c.completed_at) {
        (Some(s), Some(e)) => (e - s).whole_seconds(),
        (Some(s), None) => (OffsetDateTime::now_utc() - s).whole_seconds(),
        _ => 0,
    };
    let unit = if span > 900 { "MINUTE" } else { "SECOND" };
    let q = segcast::sql::DELIVERIES_OVER_TIME
        .render(&[("dataset", app.ctx.dataset()), ("unit", unit)]);
    let rows = app
        .ctx
        .gcp
        .bigquery
        .query(&q, &[Param::Str("campaign", c.id.to_string())])
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(TimelinePoint {
            t: r.get::<Option<String>>("t")
                .map_err(|e| anyhow::anyhow!("t: {e}"))?
                .unwrap_or_default(),
            delivered: r
                .get::<Option<i64>>("delivered")
                .map_err(|e| anyhow::anyhow!("delivered: {e}"))?
                .unwrap_or(0),
            failed: r
                .get::<Option<i64>>("failed")
                .map_err(|e| anyhow::anyhow!("failed: {e}"))?
                .unwrap_or(0),
        });
    }
    Ok(Json(out))
}

/// Streams `user_id,reason,failed_at` lines from BigQuery page by page (memory stays flat however many failed).
#[utoipa::path(get, path = "/api/campaigns/{id}/failures.csv", tag = "results",
    responses((status = 200, content_type = "text/csv", body = String)))]
pub async fn failures_csv(
    State(app): State<ConsoleApp>,
    _who: Identity,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    use tokio::io::AsyncWriteExt;
    let c = super::campaigns::get_campaign(&app, &id).await?;
    let q = segcast::sql::FAILED_RECIPIENTS.render(&[("dataset", app.ctx.dataset())]);
    let mut rows = app
        .ctx
        .gcp
        .bigquery
        .query_stream(&q, &[Param::Str("campaign", c.id.to_string())])
        .await?;
    let (mut tx, rx) = tokio::io::duplex(64 * 1024);
    let campaign = c.id.clone();
    tokio::spawn(async move {
        let field = segcast::click::export::field;
        if tx.write_all(b"user_id,reason,failed_at\r\n").await.is_err() {
            return;
        }
        while let Some(row) = rows.next().await {
            let line = row.and_then(|r| {
                let get = |c: &str| -> anyhow::Result<String> {
                    Ok(r.get::<Option<String>>(c)
                        .map_err(|e| anyhow::anyhow!("{c}: {e}"))?
                        .unwrap_or_default())
                };
                Ok(format!(
                    "{},{},{}\r\n",
                    field(&get("user_id")?),
                    field(&get("reason")?),
                    field(&get("failed_at")?)
                ))
            });
            match line {
                Ok(l) => {
                    if tx.write_all(l.as_bytes()).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    // The download ends short; the error is logged (a CSV has no place for it).
                    tracing::error!(campaign = %campaign, error = %format!("{e:#}"), "failures CSV cut short");
                    return;
                }
            }
        }
    });
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(rx));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}-failures.csv\""),
            ),
        ],
        body,
    )
        .into_response())
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Only entries about this id (a campaign, content, segment, channel or user).
    pub target: Option<String>,
}

#[utoipa::path(get, path = "/api/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Vec<super::audit::AuditEntry>)))]
pub async fn audit_log(
    State(app): State<ConsoleApp>,
    _who: Identity,
    axum::extract::Query(q): axum::extract::Query<AuditQuery>,
) -> ApiResult<Json<Vec<super::audit::AuditEntry>>> {
    Ok(Json(
        super::audit::list(app.ds(), q.target.as_deref(), 500).await?,
    ))
}
