//! The verdict on one campaign, from two outside observers: the fake LINE server's records (who LINE
//! accepted, how many times) and segcast's per-recipient outcomes in BigQuery (`recipient_outcomes`, the view
//! segcast's own final counts come from), compared recipient by recipient.

use segcast::domain::{Campaign, CampaignStatus};
use segcast::gcp::bigquery::Param;
use segcast_e2e::TestEnv;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

/// What one campaign came to.
pub struct Verdict {
    pub campaign: String,
    pub mode: &'static str,
    pub channel: String,
    pub status: String,
    pub round: u32,
    pub targeted: u64,
    /// Distinct recipients LINE accepted for the campaign.
    pub delivered: u64,
    /// Recipients LINE accepted more than once.
    pub duplicates: u64,
    /// Targets with no terminal outcome: neither delivered nor failed with a reason.
    pub missing: u64,
    pub failed_by_reason: BTreeMap<String, u64>,
    /// segcast's own final counts.
    pub segcast_delivered: u64,
    pub segcast_failed: u64,
    /// Recipients LINE accepted that segcast counts failed (or not at all).
    pub accepted_not_delivered: u64,
    /// Recipients segcast counts delivered that LINE never accepted.
    pub delivered_not_accepted: u64,
    /// Recipients LINE accepted for the campaign that are not among its targets.
    pub accepted_not_targeted: u64,
    /// LINE requests accepted for the campaign (a multicast request carries up to 500 recipients).
    pub line_requests: u64,
}

impl Verdict {
    /// segcast's counts equal the fake's, recipient by recipient, and add up.
    pub fn counts_equal(&self) -> bool {
        self.segcast_delivered == self.delivered
            && self.accepted_not_delivered == 0
            && self.delivered_not_accepted == 0
            && self.accepted_not_targeted == 0
            && self.segcast_delivered + self.segcast_failed == self.targeted
    }

    pub fn pass(&self) -> bool {
        self.duplicates == 0
            && self.missing == 0
            && self.counts_equal()
            && self.status == CampaignStatus::Completed.as_str()
    }

    /// The fields first, in its order; then the details.
    pub fn to_json(&self) -> String {
        let fields: Vec<(&str, Value)> = vec![
            ("campaign", json!(self.campaign)),
            ("targeted", json!(self.targeted)),
            ("delivered", json!(self.delivered)),
            ("duplicates", json!(self.duplicates)),
            ("missing", json!(self.missing)),
            ("failed_by_reason", json!(self.failed_by_reason)),
            ("counts_equal", json!(self.counts_equal())),
            ("mode", json!(self.mode)),
            ("channel", json!(self.channel)),
            ("status", json!(self.status)),
            ("rounds", json!(self.round)),
            ("segcast_delivered", json!(self.segcast_delivered)),
            ("segcast_failed", json!(self.segcast_failed)),
            ("accepted_not_delivered", json!(self.accepted_not_delivered)),
            ("delivered_not_accepted", json!(self.delivered_not_accepted)),
            ("accepted_not_targeted", json!(self.accepted_not_targeted)),
            ("line_requests", json!(self.line_requests)),
        ];
        let fields: Vec<(&str, String)> = fields
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect();
        ordered(&fields)
    }
}

/// A JSON object with its keys in the given order (values already JSON text).
pub fn ordered(fields: &[(&str, String)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::from(*k)))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// Recipient -> how many times LINE accepted it, per campaign (aggregation unit), from the fake's records.
pub fn accepted_by_campaign(env: &TestEnv) -> HashMap<String, (HashMap<String, u32>, u64)> {
    let mut out: HashMap<String, (HashMap<String, u32>, u64)> = HashMap::new();
    for r in env.fake().deliveries() {
        let Some(unit) = r.unit else { continue };
        let (per_recipient, requests) = out.entry(unit).or_default();
        *requests += 1;
        for to in r.recipients {
            *per_recipient.entry(to).or_default() += 1;
        }
    }
    out
}

pub async fn judge(
    env: &TestEnv,
    c: &Campaign,
    mode: &'static str,
    accepted: Option<&(HashMap<String, u32>, u64)>,
) -> anyhow::Result<Verdict> {
    let empty = (HashMap::new(), 0);
    let (accepted, line_requests) = accepted.unwrap_or(&empty);
    let dataset = &env.ctx.settings.dataset;
    let sql = format!(
        "SELECT t.user_id AS user_id, o.outcome AS outcome, o.reason AS reason \
         FROM `{dataset}.targets_{id}` AS t \
         LEFT JOIN (SELECT recipient, outcome, reason FROM `{dataset}.recipient_outcomes` \
                    WHERE campaign_id = @campaign) AS o \
         ON o.recipient = t.user_id",
        id = c.id
    );
    let mut rows = env
        .ctx
        .gcp
        .bigquery
        .query_stream(&sql, &[Param::Str("campaign", c.id.to_string())])
        .await?;
    let mut v = Verdict {
        campaign: c.id.to_string(),
        mode,
        channel: c.channel_id.to_string(),
        status: c.status.as_str().to_owned(),
        round: c.round,
        targeted: c.counts.targeted,
        delivered: accepted.len() as u64,
        duplicates: accepted.values().filter(|n| **n > 1).count() as u64,
        missing: 0,
        failed_by_reason: c.counts.failed_by_reason.clone(),
        segcast_delivered: c.counts.delivered,
        segcast_failed: c.counts.failed,
        accepted_not_delivered: 0,
        delivered_not_accepted: 0,
        accepted_not_targeted: 0,
        line_requests: *line_requests,
    };
    let mut targets_accepted = 0u64;
    let mut samples: Vec<String> = Vec::new();
    while let Some(row) = rows.next().await {
        let row = row?;
        let user: String = row.get("user_id").map_err(|e| anyhow::anyhow!("{e}"))?;
        let outcome: Option<String> = row.get("outcome").map_err(|e| anyhow::anyhow!("{e}"))?;
        let reason: Option<String> = row.get("reason").map_err(|e| anyhow::anyhow!("{e}"))?;
        let was_accepted = accepted.contains_key(&user);
        targets_accepted += u64::from(was_accepted);
        let terminal = match outcome.as_deref() {
            Some("delivered") => true,
            Some("failed") => reason.as_deref().is_some_and(|r| !r.is_empty()),
            _ => false,
        };
        if !terminal {
            v.missing += 1;
        }
        let delivered = outcome.as_deref() == Some("delivered");
        if was_accepted && !delivered {
            v.accepted_not_delivered += 1;
        }
        if delivered && !was_accepted {
            v.delivered_not_accepted += 1;
        }
        if (!terminal || was_accepted != delivered) && samples.len() < 5 {
            samples.push(format!(
                "{user}: {outcome:?} {reason:?} accepted={was_accepted}"
            ));
        }
    }
    v.accepted_not_targeted = accepted.len() as u64 - targets_accepted;
    if !samples.is_empty() {
        eprintln!(
            "   {} ({mode}): recipients in question, e.g. {samples:?}",
            c.id
        );
    }
    Ok(v)
}
