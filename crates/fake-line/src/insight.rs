//! `GET /v2/bot/insight/message/event/aggregation` (LINE's "get statistics per unit"), answered from the
//! records: the unit's accepted deliveries in the date range, and the interactions recorded for its recipients
//! (`POST /fake/interactions`: the fake has no users, so a test says who opened or tapped what). Every value is
//! null below `min_users` recipients, as LINE does under 20 users.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use line_spec::Violation;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::Endpoint;
use crate::errors::validation_error;
use crate::routes::admit_get;
use crate::server::ConnKill;
use crate::state::App;

#[derive(Deserialize)]
pub(crate) struct AggregationQuery {
    #[serde(rename = "customAggregationUnit")]
    unit: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

pub(crate) async fn aggregation(
    State(app): State<App>,
    kill: Option<Extension<ConnKill>>,
    headers: HeaderMap,
    query: Result<Query<AggregationQuery>, QueryRejection>,
) -> Response {
    if let Err(r) = admit_get(&app, Endpoint::Insight, &headers, kill).await {
        return r;
    }
    let q = query.map(|q| q.0).unwrap_or(AggregationQuery {
        unit: None,
        from: None,
        to: None,
    });
    let mut violations = Vec::new();
    let unit = q.unit.unwrap_or_default();
    if unit.is_empty()
        || unit.len() > 30
        || !unit.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        violations.push(Violation::new(
            "customAggregationUnit",
            "must match ^[a-zA-Z0-9_]{1,30}$",
        ));
    }
    let day = |name: &str, v: &Option<String>, out: &mut Vec<Violation>| -> u32 {
        match v.as_deref() {
            Some(s) if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse().unwrap_or(0)
            }
            _ => {
                out.push(Violation::new(name, "must be a date in yyyyMMdd format"));
                0
            }
        }
    };
    let from = day("from", &q.from, &mut violations);
    let to = day("to", &q.to, &mut violations);
    if violations.is_empty() && to < from {
        violations.push(Violation::new("to", "must not be before from"));
    }
    if !violations.is_empty() {
        return validation_error(&violations);
    }

    let cfg = app.config.insight;
    let info = app.deliveries.unit_insight(&unit, from, to);
    let unique = info.as_ref().map_or(0, |i| i.unique_in_range);
    // LINE reports nothing (null) for a unit with fewer than 20 users.
    let enough = unique >= cfg.min_users;
    let n = |v: u64| -> Value { if enough { json!(v) } else { Value::Null } };
    let activity = app.deliveries.interactions(&unit);
    let (message_count, urls) = info.map(|i| (i.message_count, i.urls)).unwrap_or_default();
    // Impressions are per unit (the fake does not know which message of a unit a user opened): each message
    // reports the unit's opens, as a single-message campaign would.
    let messages: Vec<Value> = (1..=message_count)
        .map(|seq| {
            json!({"seq": seq, "impression": n(activity.impressions), "mediaPlayed": null,
                   "mediaPlayed25Percent": null, "mediaPlayed50Percent": null, "mediaPlayed75Percent": null,
                   "mediaPlayed100Percent": null, "uniqueImpression": n(activity.unique_impressions),
                   "uniqueMediaPlayed": null, "uniqueMediaPlayed25Percent": null,
                   "uniqueMediaPlayed50Percent": null, "uniqueMediaPlayed75Percent": null,
                   "uniqueMediaPlayed100Percent": null})
        })
        .collect();
    // Every URL of the unit's messages, with the clicks recorded on it; then clicked URLs not among them
    // (personalised messages carry a different URL per recipient).
    let mut clicks: Vec<Value> = Vec::new();
    let mut listed = std::collections::BTreeSet::new();
    for (seq, url) in &urls {
        let (c, u) = activity
            .clicks
            .iter()
            .find(|(s, x, _, _)| s == seq && x == url)
            .map_or((0, 0), |(_, _, c, u)| (*c, *u));
        listed.insert((*seq, url.clone()));
        clicks.push(
            json!({"seq": seq, "url": url, "click": n(c), "uniqueClick": n(u),
                           "uniqueClickOfRequest": n(u)}),
        );
    }
    for (seq, url, c, u) in &activity.clicks {
        if !listed.contains(&(*seq, url.clone())) {
            clicks.push(
                json!({"seq": seq, "url": url, "click": n(*c), "uniqueClick": n(*u),
                               "uniqueClickOfRequest": n(*u)}),
            );
        }
    }
    let body = json!({
        "overview": {"uniqueImpression": n(activity.unique_impressions),
                     "uniqueClick": n(activity.unique_clickers),
                     "uniqueMediaPlayed": null, "uniqueMediaPlayed100Percent": null},
        "messages": messages,
        "clicks": clicks,
    });
    (StatusCode::OK, Json(body)).into_response()
}
