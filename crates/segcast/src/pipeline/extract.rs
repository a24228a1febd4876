//! Step 3: segment extraction. The segment SQL runs into the campaign's target table (distinct, valid user
//! IDs with their columns); invalid values are logged as failed; the counts are recorded; the round's
//! recipients are exported to Cloud Storage as sharded NDJSON, the durable work list the fan-out streams.
//! Every statement is idempotent, so a crash here just means running it again.

use super::claim::{AdvanceError, advance};
use crate::catalog::Segment;
use crate::ctx::Ctx;
use crate::domain::{Campaign, CampaignStatus};
use crate::gcp::bigquery::Param;
use crate::sql;
use anyhow::{Context, anyhow};
use std::time::Duration;

/// Exports `round_table` as round `round` of `campaign` and returns the exported object names, in order.
pub async fn export_round(
    ctx: &Ctx,
    campaign: &Campaign,
    round: u32,
    round_table: &str,
) -> anyhow::Result<Vec<String>> {
    let round_s = round.to_string();
    let stmt = sql::EXPORT_ROUND.render(&[
        ("dataset", ctx.dataset()),
        ("campaign", campaign.id.as_str()),
        ("round", &round_s),
        ("bucket", &ctx.settings.bucket),
        ("round_table", round_table),
    ]);
    ctx.gcp
        .bigquery
        .execute(&stmt, &[])
        .await
        .context("exporting the round's recipients")?;
    let prefix = format!("campaigns/{}/round-{round}/", campaign.id);
    let files = ctx.gcp.storage.list(&prefix).await?;
    Ok(files.into_iter().map(|f| f.name).collect())
}

/// Runs the extraction of a campaign in `extracting` and moves it to `fanning_out`.
pub async fn run(
    ctx: &Ctx,
    campaign: &Campaign,
    owner: &str,
    lease: Duration,
) -> Result<Campaign, AdvanceError> {
    let segment: Segment = ctx
        .gcp
        .datastore
        .get(campaign.segment_id.as_str())
        .await?
        .ok_or_else(|| {
            anyhow!(
                "segment {} of campaign {} does not exist",
                campaign.segment_id,
                campaign.id
            )
        })?;
    let segment_sql = match Segment::parse_sql(&segment.sql) {
        Ok(sql) => sql,
        Err(e) => {
            // A stored segment that does not pass the pre-check (saved before the check existed, or written
            // around it) never reaches BigQuery, and retrying cannot fix it: the campaign fails with the reason.
            let reason = format!("segment {}: {e}", segment.id);
            tracing::error!(campaign = %campaign.id, reason = %reason, "segment SQL refused: campaign failed");
            return advance(
                ctx,
                &campaign.id,
                owner,
                CampaignStatus::Extracting,
                lease,
                |c| {
                    let now = ctx.clock.now();
                    c.completed_at = Some(now);
                    Ok(c.transition(CampaignStatus::Failed, Some(reason.clone()), now)?)
                },
            )
            .await;
        }
    };
    let started = std::time::Instant::now();
    let (valid, invalid) = snapshot(ctx, campaign, &segment_sql).await?;
    let snapshot_ms = started.elapsed().as_millis() as u64;
    let files = export_round(ctx, campaign, 1, &format!("targets_{}", campaign.id)).await?;
    let export_ms = started.elapsed().as_millis() as u64 - snapshot_ms;
    tracing::info!(
        campaign = %campaign.id, valid, invalid, files = files.len(), snapshot_ms, export_ms,
        "segment extracted and exported"
    );
    advance(
        ctx,
        &campaign.id,
        owner,
        CampaignStatus::Extracting,
        lease,
        |c| {
            c.counts.targeted = (valid + invalid) as u64;
            c.counts.invalid = invalid as u64;
            c.counts.round_targets = valid as u64;
            c.round = 1;
            c.round_files = files.clone();
            Ok(c.transition(CampaignStatus::FanningOut, None, ctx.clock.now())?)
        },
    )
    .await
}

/// Runs the segment into the campaign's target table, logs its invalid user IDs as failed, and counts
/// (valid, invalid) targets.
async fn snapshot(ctx: &Ctx, campaign: &Campaign, segment_sql: &str) -> anyhow::Result<(i64, i64)> {
    let bq = &ctx.gcp.bigquery;
    let values = [
        ("dataset", ctx.dataset()),
        ("campaign", campaign.id.as_str()),
        ("segment_sql", segment_sql),
    ];
    let params = [
        Param::Str("campaign", campaign.id.to_string()),
        Param::Str("channel", campaign.channel_id.to_string()),
    ];
    bq.execute(&sql::SNAPSHOT_TARGETS.render(&values), &[])
        .await
        .context("running the segment into the target table")?;
    bq.execute(&sql::LOG_INVALID_TARGETS.render(&values), &params)
        .await
        .context("logging invalid user IDs")?;
    let rows = bq
        .query(&sql::COUNT_TARGETS.render(&values), &params[..1])
        .await?;
    let row = rows.first().ok_or_else(|| anyhow!("no counts"))?;
    let count = |column: &str| -> anyhow::Result<i64> {
        Ok(row
            .get::<Option<i64>>(column)
            .map_err(|e| anyhow!("{e}"))?
            .unwrap_or(0))
    };
    Ok((count("valid_targets")?, count("invalid_targets")?))
}
