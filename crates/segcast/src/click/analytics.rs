//! Campaign analytics in BigQuery: the campaign dimensions (which content and segment each campaign used, for
//! the per-segment and per-content stats) and the stats queries of `sql/stats/` as typed results.
//!
//! Counting rules (see `sql/ddl/click_events.sql`): a click row counts once per `click_id` (Pub/Sub delivers
//! at least once); bot user agents (link previews, crawlers) are left out; a repeat by the same recipient on the
//! same link within 5 seconds of their previous tap is a double tap and does not count again. Unique clickers
//! exist for push sends only; for multicast the recipient is unknown and the numbers say so (NULL).

use crate::ctx::Ctx;
use crate::domain::{Campaign, CampaignId};
use crate::gcp::bigquery::{Param, Row};
use crate::sql;
use anyhow::anyhow;
use serde::Serialize;
use time::OffsetDateTime;

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Writes (appends) the campaign's dimensions to the `campaigns` table; readers take the latest row.
pub async fn record_campaign(ctx: &Ctx, c: &Campaign) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc();
    let row = serde_json::json!({
        "campaign_id": c.id.as_str(),
        "name": c.name,
        "content_id": c.content_id.as_str(),
        "segment_id": c.segment_id.as_str(),
        "channel_id": c.channel_id.as_str(),
        "send_at": rfc3339(c.send_at),
        "recorded_at": rfc3339(now),
    });
    let id = format!("{}:{}", c.id, now.unix_timestamp());
    ctx.gcp.bigquery.insert_all("campaigns", &[(id, row)]).await
}

/// One campaign's (or one link's) click numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClickStats {
    /// `None` for the campaign total, the link id for a per-link row.
    pub link_id: Option<String>,
    /// Recipients LINE accepted.
    pub delivered: i64,
    /// Clicks, deduplicated (each click once, double taps once, no bots).
    pub clicks: i64,
    /// Click rows before deduplication (what the redirect logged, bots included).
    pub raw_clicks: i64,
    /// Distinct recipients who clicked: push sends only (`None`: multicast, unknowable).
    pub unique_clickers: Option<i64>,
    /// `unique_clickers / delivered` (`None` for multicast or nothing delivered).
    pub ctr: Option<f64>,
    /// `clicks / delivered`: defined for multicast too.
    pub clicks_per_delivered: Option<f64>,
}

fn get<T: google_cloud_bigquery::query::FromSql>(row: &Row, col: &str) -> anyhow::Result<T> {
    row.get::<T>(col).map_err(|e| anyhow!("column {col}: {e}"))
}

fn stats_row(row: &Row, link: bool) -> anyhow::Result<ClickStats> {
    Ok(ClickStats {
        link_id: if link { get(row, "link_id")? } else { None },
        delivered: get::<Option<i64>>(row, "delivered")?.unwrap_or(0),
        clicks: get::<Option<i64>>(row, "clicks")?.unwrap_or(0),
        raw_clicks: get::<Option<i64>>(row, "raw_clicks")?.unwrap_or(0),
        unique_clickers: get(row, "unique_clickers")?,
        ctr: get(row, "ctr")?,
        clicks_per_delivered: get(row, "clicks_per_delivered")?,
    })
}

/// The campaign's totals.
pub async fn campaign_clicks(ctx: &Ctx, campaign: &CampaignId) -> anyhow::Result<ClickStats> {
    let q = sql::CAMPAIGN_CLICKS.render(&[("dataset", ctx.dataset())]);
    let rows = ctx
        .gcp
        .bigquery
        .query(&q, &[Param::Str("campaign", campaign.to_string())])
        .await?;
    stats_row(rows.first().ok_or_else(|| anyhow!("no stats row"))?, false)
}

/// Per link, by link id.
pub async fn link_clicks(ctx: &Ctx, campaign: &CampaignId) -> anyhow::Result<Vec<ClickStats>> {
    let q = sql::LINK_CLICKS.render(&[("dataset", ctx.dataset())]);
    let rows = ctx
        .gcp
        .bigquery
        .query(&q, &[Param::Str("campaign", campaign.to_string())])
        .await?;
    rows.iter().map(|r| stats_row(r, true)).collect()
}

/// Clicks per hour since the campaign started: `(hour start RFC 3339, clicks, unique clickers)`.
pub async fn clicks_over_time(
    ctx: &Ctx,
    campaign: &CampaignId,
) -> anyhow::Result<Vec<(String, i64, Option<i64>)>> {
    let q = sql::CLICKS_OVER_TIME.render(&[("dataset", ctx.dataset())]);
    let rows = ctx
        .gcp
        .bigquery
        .query(&q, &[Param::Str("campaign", campaign.to_string())])
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                get::<Option<String>>(r, "hour")?.unwrap_or_default(),
                get::<Option<i64>>(r, "clicks")?.unwrap_or(0),
                get(r, "unique_clickers")?,
            ))
        })
        .collect()
}

/// Clicks of all campaigns of one segment or one content (see `sql/stats/segment_clicks.sql`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupClicks {
    /// The segment or content id.
    pub id: String,
    pub campaigns: i64,
    pub delivered: i64,
    pub clicks: i64,
    /// Summed per campaign, push campaigns only.
    pub unique_clickers: i64,
    /// Over the campaigns whose clicks carry recipients (`None`: none do).
    pub ctr: Option<f64>,
}

async fn group_clicks(ctx: &Ctx, stmt: sql::Sql, column: &str) -> anyhow::Result<Vec<GroupClicks>> {
    let q = stmt.render(&[("dataset", ctx.dataset())]);
    let rows = ctx.gcp.bigquery.query(&q, &[]).await?;
    rows.iter()
        .map(|r| {
            Ok(GroupClicks {
                id: get::<Option<String>>(r, column)?.unwrap_or_default(),
                campaigns: get::<Option<i64>>(r, "campaigns")?.unwrap_or(0),
                delivered: get::<Option<i64>>(r, "delivered")?.unwrap_or(0),
                clicks: get::<Option<i64>>(r, "clicks")?.unwrap_or(0),
                unique_clickers: get::<Option<i64>>(r, "unique_clickers")?.unwrap_or(0),
                ctr: get(r, "ctr")?,
            })
        })
        .collect()
}

/// Per segment, across the campaigns recorded with [`record_campaign`].
pub async fn segment_clicks(ctx: &Ctx) -> anyhow::Result<Vec<GroupClicks>> {
    group_clicks(ctx, sql::SEGMENT_CLICKS, "segment_id").await
}

/// Per content, across the campaigns recorded with [`record_campaign`].
pub async fn content_clicks(ctx: &Ctx) -> anyhow::Result<Vec<GroupClicks>> {
    group_clicks(ctx, sql::CONTENT_CLICKS, "content_id").await
}
