//! A campaign's per-recipient outcomes and clicks as CSV (RFC 4180), for the console to serve as a download.
//! Rows stream from BigQuery page by page into the writer: memory does not grow with the campaign's size.

use crate::ctx::Ctx;
use crate::domain::CampaignId;
use crate::gcp::bigquery::Param;
use crate::sql;
use anyhow::anyhow;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// The CSV columns, in order (the columns of `sql/stats/export_recipients.sql`).
pub const COLUMNS: &[&str] = &[
    "campaign_id",
    "recipient",
    "outcome",
    "reason",
    "outcome_at",
    "clicks",
    "links_clicked",
    "first_click_at",
    "last_click_at",
];

/// One CSV field: quoted when it holds a comma, quote or line break; a leading `=`, `+`, `-` or `@` is
/// prefixed with `'` so a spreadsheet does not run it as a formula.
pub fn field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Writes the CSV (header + one line per recipient, ordered by recipient). Returns the number of rows.
pub async fn write_csv<W: AsyncWrite + Unpin + Send>(
    ctx: &Ctx,
    campaign: &CampaignId,
    out: &mut W,
) -> anyhow::Result<u64> {
    out.write_all(format!("{}\r\n", COLUMNS.join(",")).as_bytes())
        .await?;
    let q = sql::EXPORT_RECIPIENTS.render(&[("dataset", ctx.dataset())]);
    let mut rows = ctx
        .gcp
        .bigquery
        .query_stream(&q, &[Param::Str("campaign", campaign.to_string())])
        .await?;
    let mut n = 0u64;
    let mut line = String::new();
    while let Some(row) = rows.next().await {
        let row = row?;
        line.clear();
        for (i, col) in COLUMNS.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            let v: Option<String> = row.get(*col).map_err(|e| anyhow!("column {col}: {e}"))?;
            line.push_str(&field(v.as_deref().unwrap_or("")));
        }
        line.push_str("\r\n");
        out.write_all(line.as_bytes()).await?;
        n += 1;
    }
    out.flush().await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("delivered"), "delivered");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(field(""), "");
    }
}
