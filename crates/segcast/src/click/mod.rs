//! Click tracking and campaign analytics (issue #8).
//!
//! - [`link_signature`]: signed click links (HMAC-SHA256, rotating keys, expiry).
//! - [`links`]: `{{link:ID}}` in content, checked at registration and rewritten at send time.
//! - [`ClickRow`]: one click, as published to the click topic and stored in `click_logs`.
//! - [`insight`]: LINE's own per-campaign numbers (`customAggregationUnits`), fetched and stored beside ours.
//! - [`export`]: a campaign's per-recipient outcomes and clicks as CSV, streamed from BigQuery.
//! - [`analytics`]: campaign dimensions in BigQuery (for per-segment and per-content stats) and the stats queries.
//!
//! The redirect itself is [`crate::http::click_redirect`]; the binary is `segcast-click-redirect`.

pub mod analytics;
pub mod export;
pub mod insight;
pub mod link_signature;
pub mod links;

use serde::{Deserialize, Serialize};

/// One click through the redirect. The fields are exactly the columns of `click_logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClickRow {
    pub click_id: String,
    pub campaign_id: String,
    pub link_id: String,
    /// Push sends only; `None` for multicast (never guessed).
    pub recipient: Option<String>,
    pub user_agent_class: Option<String>,
    pub country: Option<String>,
    /// RFC 3339.
    pub clicked_at: String,
}

/// A coarse class of the user agent (the full string is personal data and is not kept): `line` (LINE's in-app
/// browser), `bot` (crawlers, link previews), `ios`, `android`, `desktop`, `other`.
pub fn user_agent_class(ua: Option<&str>) -> &'static str {
    let Some(ua) = ua else { return "other" };
    let lower = ua.to_ascii_lowercase();
    if [
        "bot",
        "crawler",
        "spider",
        "preview",
        "facebookexternalhit",
        "curl/",
        "wget/",
        "python-",
    ]
    .iter()
    .any(|s| lower.contains(s))
    {
        "bot"
    } else if lower.contains(" line/") {
        "line"
    } else if lower.contains("iphone") || lower.contains("ipad") || lower.contains("ios") {
        "ios"
    } else if lower.contains("android") {
        "android"
    } else if lower.contains("windows") || lower.contains("macintosh") || lower.contains("x11") {
        "desktop"
    } else {
        "other"
    }
}

/// The country from a load balancer / platform header (`X-Client-Geo-Location: JP,Tokyo` or
/// `X-Appengine-Country: JP`): an ISO 3166 code, or `None` when absent or not one (`ZZ` = unknown).
pub fn country(header: Option<&str>) -> Option<String> {
    let code = header?.split([',', ';', '-']).next()?.trim();
    (code.len() == 2
        && code.bytes().all(|b| b.is_ascii_alphabetic())
        && !code.eq_ignore_ascii_case("zz"))
    .then(|| code.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_classed_coarsely() {
        let line = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari Line/13.20.0";
        assert_eq!(user_agent_class(Some(line)), "line");
        assert_eq!(
            user_agent_class(Some("Mozilla/5.0 (Linux; Android 14) Chrome/120")),
            "android"
        );
        assert_eq!(user_agent_class(Some("facebookexternalhit/1.1")), "bot");
        assert_eq!(
            user_agent_class(Some("Mozilla/5.0 (Windows NT 10.0)")),
            "desktop"
        );
        assert_eq!(user_agent_class(None), "other");
    }

    #[test]
    fn countries_come_from_headers_when_they_are_codes() {
        assert_eq!(country(Some("jp,Tokyo")).as_deref(), Some("JP"));
        assert_eq!(country(Some("US")).as_deref(), Some("US"));
        assert_eq!(country(Some("ZZ")), None);
        assert_eq!(country(Some("<script>")), None);
        assert_eq!(country(None), None);
    }
}
