//! Tracked links in content: `{{link:ID}}` where a URL goes (a `uri` action, or inside text), with the target
//! URL registered under `ID` in the content's `links`. At send time each becomes
//! `<SEGCAST_CLICK_BASE_URL>/c/<token>`; the redirect sends the click on to the registered target, and only there.

use super::link_signature::{Claims, Keys};
use crate::config::ClickSettings;
use crate::domain::links::{collect_link_ids, is_link_id, map_strings, replace_links};
use crate::domain::{CampaignId, Messages, ParseError, UserId};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Longest target URL accepted (LINE's `uri` actions take up to 1,000 characters).
pub const MAX_TARGET_LEN: usize = 1000;

/// Checks a target URL: absolute http(s), a host, no credentials, no whitespace, not too long.
pub fn check_target(url: &str) -> Result<(), String> {
    if url.len() > MAX_TARGET_LEN {
        return Err(format!("is longer than {MAX_TARGET_LEN} characters"));
    }
    if url
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
    {
        return Err("contains whitespace, a control character or a backslash".into());
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err("must start with https:// (or http://)".into());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not contain a user name or password".into());
    }
    Ok(())
}

/// What can be checked when content with tracked links is registered or a campaign created: every link used is
/// registered with a valid target, and this deployment can sign links (keys and base URL are configured).
/// Content with tracked links is never sent untracked.
pub fn check_content(
    click: &ClickSettings,
    messages: &Messages,
    links: &BTreeMap<String, String>,
) -> Result<(), Vec<ParseError>> {
    let mut errors = Vec::new();
    for (id, target) in links {
        if !is_link_id(id) {
            errors.push(ParseError::new(
                format!("links.{id}"),
                "a link id is 1 to 32 lowercase letters, digits or _, starting with a letter",
            ));
        }
        if let Err(e) = check_target(target) {
            errors.push(ParseError::new(
                format!("links.{id}"),
                format!("target URL {e}"),
            ));
        }
    }
    let used = messages.tracked_links();
    for id in &used {
        if !links.contains_key(id) {
            errors.push(ParseError::new(
                "messages",
                format!("{{{{link:{id}}}}} is used but no link {id:?} is registered in the content's links"),
            ));
        }
    }
    if !used.is_empty() && (click.keys.is_none() || click.base_url.is_none()) {
        errors.push(ParseError::new(
            "messages",
            "this content has tracked links, but click tracking is not configured here \
             (SEGCAST_CLICK_KEYS and SEGCAST_CLICK_BASE_URL): it would be sent untracked",
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Rewrites tracked links into signed click URLs at send time.
#[derive(Clone, Debug)]
pub struct Rewriter {
    keys: Keys,
    base_url: String,
    ttl_days: u64,
}

impl Rewriter {
    /// `None` when click tracking is not configured.
    pub fn from_settings(click: &ClickSettings) -> Option<Self> {
        Some(Self {
            keys: click.keys.clone()?,
            base_url: click.base_url.clone()?,
            ttl_days: (click.token_ttl.as_secs() / 86_400).max(1),
        })
    }

    pub fn new(keys: Keys, base_url: &str, ttl_days: u64) -> Self {
        Self {
            keys,
            base_url: base_url.trim_end_matches('/').to_owned(),
            ttl_days,
        }
    }

    /// Expiry: the end of the day `ttl_days` from now, so a redelivered batch signs the same tokens.
    pub fn expires_at(&self, now: u64) -> u64 {
        (now / 86_400 + self.ttl_days + 1) * 86_400
    }

    /// The click URL for one link.
    pub fn url(
        &self,
        campaign: &CampaignId,
        link: &str,
        recipient: Option<&UserId>,
        now: u64,
    ) -> String {
        let token = self.keys.sign(&Claims {
            campaign: campaign.clone(),
            link: link.to_owned(),
            recipient: recipient.cloned(),
            expires_at: self.expires_at(now),
        });
        format!("{}/c/{token}", self.base_url)
    }

    /// `messages` with every `{{link:ID}}` replaced by its click URL (`recipient` only for push sends).
    pub fn rewrite(
        &self,
        messages: &[Value],
        campaign: &CampaignId,
        recipient: Option<&UserId>,
        now: u64,
    ) -> Vec<Value> {
        messages
            .iter()
            .map(|m| {
                map_strings(m, &mut |s| {
                    Value::String(replace_links(s, |id| {
                        self.url(campaign, id, recipient, now)
                    }))
                })
            })
            .collect()
    }
}

/// `messages` with every `{{link:ID}}` replaced by its registered target itself, untracked: for test sends,
/// which stay outside the campaign's logs and stats. An unregistered id becomes an empty string.
pub fn with_targets(messages: &[Value], links: &BTreeMap<String, String>) -> Vec<Value> {
    messages
        .iter()
        .map(|m| {
            map_strings(m, &mut |s| {
                Value::String(replace_links(s, |id| {
                    links.get(id).cloned().unwrap_or_default()
                }))
            })
        })
        .collect()
}

/// Whether any string in `messages` has a tracked link.
pub fn has_tracked_links(messages: &[Value]) -> bool {
    let mut ids = BTreeSet::new();
    for m in messages {
        collect_link_ids(m, &mut ids);
    }
    !ids.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn settings(configured: bool) -> ClickSettings {
        ClickSettings {
            topic: "click-logs".into(),
            keys: configured.then(|| Keys::single("k1", b"0123456789abcdef0123456789abcdef")),
            base_url: configured.then(|| "https://c.example.com".to_owned()),
            token_ttl: Duration::from_secs(90 * 86_400),
            buffer: 100_000,
        }
    }

    fn content() -> Messages {
        Messages::parse(&json!([
            {"type":"text","text":"Sale today: {{link:sale}}"},
            {"type":"template","altText":"menu","template":{"type":"buttons","text":"Pick",
              "actions":[{"type":"uri","label":"FAQ","uri":"{{link:faq}}"}]}}
        ]))
        .unwrap()
    }

    fn links() -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                "sale".to_owned(),
                "https://shop.example.com/sale?utm=line".to_owned(),
            ),
            ("faq".to_owned(), "https://shop.example.com/faq".to_owned()),
        ])
    }

    #[test]
    fn tracked_content_needs_registered_links_and_configured_signing() {
        assert!(check_content(&settings(true), &content(), &links()).is_ok());
        let errs = check_content(&settings(false), &content(), &links()).unwrap_err();
        assert!(errs[0].message.contains("SEGCAST_CLICK_KEYS"), "{errs:?}");
        let mut missing = links();
        missing.remove("faq");
        let errs = check_content(&settings(true), &content(), &missing).unwrap_err();
        assert!(errs[0].message.contains("\"faq\""), "{errs:?}");
        for bad in [
            "javascript:alert(1)",
            "//evil.com",
            "/relative",
            "https://user:pw@evil.com/",
            "https://ex ample.com",
            "data:text/html,x",
            "https://a.example/\\evil",
        ] {
            let mut l = links();
            l.insert("sale".into(), bad.into());
            assert!(
                check_content(&settings(true), &content(), &l).is_err(),
                "{bad}"
            );
        }
        // Untracked content needs no click configuration.
        let plain = Messages::parse(&json!([{"type":"text","text":"hi"}])).unwrap();
        assert!(check_content(&settings(false), &plain, &BTreeMap::new()).is_ok());
    }

    #[test]
    fn links_are_rewritten_to_signed_click_urls() {
        let s = settings(true);
        let r = Rewriter::from_settings(&s).unwrap();
        let c = CampaignId::parse("c_spring").unwrap();
        let u = UserId::parse("U0123456789abcdef0123456789abcdef").unwrap();
        let out = r.rewrite(content().as_slice(), &c, Some(&u), 1_000_000);
        let text = out[0]["text"].as_str().unwrap();
        let url = text.strip_prefix("Sale today: ").unwrap();
        let token = url.strip_prefix("https://c.example.com/c/").unwrap();
        let claims = s.keys.as_ref().unwrap().verify(token, 1_000_000).unwrap();
        assert_eq!(
            (claims.link.as_str(), claims.recipient),
            ("sale", Some(u.clone()))
        );
        let uri = out[1]["template"]["actions"][0]["uri"].as_str().unwrap();
        assert!(uri.starts_with("https://c.example.com/c/"));
        // Same inputs, same day: the same URL (a redelivered batch sends the same message).
        assert_eq!(
            out,
            r.rewrite(content().as_slice(), &c, Some(&u), 1_000_500)
        );
        // Multicast: no recipient in the token.
        let m = r.rewrite(content().as_slice(), &c, None, 1_000_000);
        let token = m[0]["text"].as_str().unwrap().rsplit('/').next().unwrap();
        assert_eq!(
            s.keys
                .as_ref()
                .unwrap()
                .verify(token, 1_000_000)
                .unwrap()
                .recipient,
            None
        );
        assert!(!has_tracked_links(&m));
        // Test sends: the targets themselves.
        let direct = with_targets(content().as_slice(), &links());
        assert_eq!(
            direct[0]["text"],
            "Sale today: https://shop.example.com/sale?utm=line"
        );
        assert_eq!(
            direct[1]["template"]["actions"][0]["uri"],
            "https://shop.example.com/faq"
        );
    }
}
