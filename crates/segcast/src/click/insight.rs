//! LINE's own numbers for a campaign: segcast sends every request with `customAggregationUnits = [campaign id]`,
//! and LINE's `GET /v2/bot/insight/message/event/aggregation` reports impressions and clicks per unit. They are
//! fetched for campaigns of the last 30 days, at most once an hour each (on the scheduler's tick), and stored in
//! Datastore (`LineInsight`, keyed by campaign) beside segcast's own numbers in BigQuery. LINE answers null when
//! fewer than 20 users are involved: that is kept as the explicit state [`InsightState::TooFewToReport`], never 0.

use crate::ctx::Ctx;
use crate::domain::{Campaign, CampaignId, CampaignStatus};
use crate::gcp::datastore::{Doc, Indexed};
use crate::line::LineClient;
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;
use time::{OffsetDateTime, UtcOffset};

/// How often one campaign's numbers are fetched at most.
pub const REFRESH_EVERY: Duration = Duration::from_secs(3600);
/// Campaigns this recent (by start) are refreshed.
pub const WINDOW_DAYS: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InsightState {
    /// LINE reported numbers.
    Reported,
    /// LINE answered null: fewer than 20 users, too few to report (not zero).
    TooFewToReport,
}

/// A LINE number: a count, or too few users to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "value")]
pub enum Count {
    Value(i64),
    TooFewToReport,
}

impl Count {
    fn from_json(v: &Value) -> Self {
        v.as_i64().map_or(Count::TooFewToReport, Count::Value)
    }
}

/// One link's clicks as LINE counts them (LINE sees the click URL, i.e. segcast's redirect URL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkInsight {
    pub seq: i64,
    pub url: String,
    pub click: Count,
    pub unique_click: Count,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineInsight {
    pub campaign_id: CampaignId,
    pub state: InsightState,
    pub unique_impression: Count,
    pub unique_click: Count,
    pub unique_media_played: Count,
    pub links: Vec<LinkInsight>,
    /// The date range asked for (yyyyMMdd, LINE's time zone UTC+9).
    pub from: String,
    pub to: String,
    #[serde(with = "time::serde::rfc3339")]
    pub fetched_at: OffsetDateTime,
}

impl Doc for LineInsight {
    const KIND: &'static str = "LineInsight";
    fn key(&self) -> String {
        self.campaign_id.to_string()
    }
}

/// Reads LINE's answer (the OpenAPI `GetStatisticsPerUnitResponse`).
pub fn parse_response(
    campaign: &CampaignId,
    body: &Value,
    from: &str,
    to: &str,
    now: OffsetDateTime,
) -> anyhow::Result<LineInsight> {
    let overview = body
        .get("overview")
        .filter(|o| o.is_object())
        .context("LINE's insight answer has no overview")?;
    let unique_impression = Count::from_json(&overview["uniqueImpression"]);
    let unique_click = Count::from_json(&overview["uniqueClick"]);
    let links = body["clicks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| LinkInsight {
            seq: c["seq"].as_i64().unwrap_or(0),
            url: c["url"].as_str().unwrap_or_default().to_owned(),
            click: Count::from_json(&c["click"]),
            unique_click: Count::from_json(&c["uniqueClick"]),
        })
        .collect();
    let state = if unique_impression == Count::TooFewToReport {
        InsightState::TooFewToReport
    } else {
        InsightState::Reported
    };
    Ok(LineInsight {
        campaign_id: campaign.clone(),
        state,
        unique_impression,
        unique_click,
        unique_media_played: Count::from_json(&overview["uniqueMediaPlayed"]),
        links,
        from: from.to_owned(),
        to: to.to_owned(),
        fetched_at: now,
    })
}

fn line_day(t: OffsetDateTime) -> String {
    let jst = t.to_offset(UtcOffset::from_hms(9, 0, 0).expect("UTC+9"));
    format!(
        "{:04}{:02}{:02}",
        jst.year(),
        u8::from(jst.month()),
        jst.day()
    )
}

/// Fetches and stores LINE's numbers for one campaign (from its start to today). Called by the console too.
pub async fn fetch(
    ctx: &Ctx,
    line: &LineClient,
    campaign: &Campaign,
) -> anyhow::Result<LineInsight> {
    let now = OffsetDateTime::now_utc();
    let start = campaign.started_at.unwrap_or(campaign.send_at);
    let (from, to) = (line_day(start), line_day(now.max(start)));
    let token = line.tokens.token(&campaign.channel_id).await?;
    let http = reqwest::Client::builder()
        .timeout(ctx.settings.line.request_timeout)
        .build()?;
    let resp = http
        .get(format!(
            "{}/v2/bot/insight/message/event/aggregation",
            ctx.settings.line.base_url.trim_end_matches('/')
        ))
        .query(&[
            ("customAggregationUnit", campaign.id.as_str()),
            ("from", from.as_str()),
            ("to", to.as_str()),
        ])
        .bearer_auth(token.expose())
        .send()
        .await
        .context("LINE insight request")?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!(
            "LINE insight for {}: HTTP {status}: {}",
            campaign.id,
            body["message"].as_str().unwrap_or("")
        );
    }
    let insight = parse_response(&campaign.id, &body, &from, &to, now)?;
    ctx.gcp.datastore.upsert(&insight).await?;
    Ok(insight)
}

/// What the console shows: the stored numbers (`None`: not fetched yet).
pub async fn stored(ctx: &Ctx, campaign: &CampaignId) -> anyhow::Result<Option<LineInsight>> {
    ctx.gcp.datastore.get(campaign.as_str()).await
}

/// Refreshes every campaign of the last 30 days whose numbers are older than an hour (or missing). Returns how
/// many were fetched; a campaign whose fetch fails is logged and skipped.
pub async fn refresh_due(ctx: &Ctx, line: &LineClient) -> anyhow::Result<usize> {
    let now = OffsetDateTime::now_utc();
    let mut campaigns: Vec<Campaign> = Vec::new();
    for status in [CampaignStatus::Completed, CampaignStatus::Delivering] {
        campaigns.extend(
            ctx.gcp
                .datastore
                .query_eq::<Campaign>("status", Indexed::Str(status.as_str().to_owned()))
                .await?,
        );
    }
    let mut fetched = 0;
    for c in campaigns {
        if c.dry_run {
            continue;
        }
        let Some(started) = c.started_at else {
            continue;
        };
        if now - started > time::Duration::days(WINDOW_DAYS) {
            continue;
        }
        if let Some(prev) = stored(ctx, &c.id).await?
            && now - prev.fetched_at < REFRESH_EVERY
        {
            continue;
        }
        match fetch(ctx, line, &c).await {
            Ok(_) => fetched += 1,
            Err(e) => {
                tracing::warn!(campaign = %c.id, error = %format!("{e:#}"), "LINE insight not fetched")
            }
        }
        crate::click::analytics::record_campaign(ctx, &c)
            .await
            .unwrap_or_else(|e| tracing::warn!(campaign = %c.id, error = %format!("{e:#}"), "campaign dimensions not recorded"));
    }
    Ok(fetched)
}

/// The scheduler's hook: at most once every few minutes per process, in the background, best effort (never
/// delays or fails the tick). Uses the channel credentials in the environment, as the delivery handler does.
pub fn on_tick(ctx: &Ctx) {
    use std::sync::{Mutex, OnceLock};
    static LAST: Mutex<Option<tokio::time::Instant>> = Mutex::new(None);
    static LINE: OnceLock<Option<LineClient>> = OnceLock::new();
    {
        let mut last = LAST.lock().expect("insight tick");
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(300)) {
            return;
        }
        *last = Some(tokio::time::Instant::now());
    }
    let Some(line) = LINE
        .get_or_init(|| LineClient::new(&ctx.settings.line).ok())
        .clone()
    else {
        return;
    };
    let ctx = ctx.clone();
    tokio::spawn(async move {
        match tokio::time::timeout(Duration::from_secs(50), refresh_due(&ctx, &line)).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(campaigns = n, "LINE insight refreshed"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "LINE insight refresh failed"),
            Err(_) => tracing::warn!("LINE insight refresh took too long; continuing next time"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nulls_are_too_few_to_report_not_zero() {
        let c = CampaignId::parse("c_x").unwrap();
        let now = OffsetDateTime::now_utc();
        let few = json!({"overview":{"uniqueImpression":null,"uniqueClick":null,"uniqueMediaPlayed":null,
            "uniqueMediaPlayed100Percent":null},"messages":[],"clicks":[]});
        let i = parse_response(&c, &few, "20260101", "20260102", now).unwrap();
        assert_eq!(i.state, InsightState::TooFewToReport);
        assert_eq!(i.unique_click, Count::TooFewToReport);
        let many = json!({"overview":{"uniqueImpression":40,"uniqueClick":0,"uniqueMediaPlayed":null},
            "messages":[],"clicks":[{"seq":1,"url":"https://c.example.com/c/x","click":3,"uniqueClick":2,"uniqueClickOfRequest":2}]});
        let i = parse_response(&c, &many, "20260101", "20260102", now).unwrap();
        assert_eq!(i.state, InsightState::Reported);
        assert_eq!(
            (i.unique_impression, i.unique_click),
            (Count::Value(40), Count::Value(0))
        );
        assert_eq!(i.links[0].click, Count::Value(3));
        assert!(parse_response(&c, &json!({}), "a", "b", now).is_err());
    }

    #[test]
    fn days_are_line_days() {
        let t = time::macros::datetime!(2026-03-31 16:00 UTC);
        assert_eq!(line_day(t), "20260401");
    }
}
