//! Sending to LINE: push and multicast with `X-Line-Retry-Key`, validate for dry runs, and the classification of
//! every answer into what segcast does next (see [`SendOutcome`]).

use super::access_token::TokenProvider;
use super::rate_limit::RateLimiter;
use crate::config::LineSettings;
use crate::domain::ChannelId;
use serde_json::Value;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Push,
    Multicast,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Push => "push",
            Endpoint::Multicast => "multicast",
        }
    }
}

/// What LINE's answer means for the recipients of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// 2xx: accepted.
    Accepted { request_id: Option<String> },
    /// 409 with `x-line-accepted-request-id`: this retry key was accepted before. Delivered, not an error.
    AlreadyAccepted { request_id: String },
    /// 429 rate limit: not accepted; back off and try again.
    RateLimited,
    /// 429 "You have reached your monthly limit.": not accepted; stop the campaign's sending.
    QuotaExhausted { message: String },
    /// Another 4xx: not accepted and never will be (retrying won't change it).
    Rejected { status: u16, message: String },
    /// 5xx, a timeout or a dropped connection: LINE may or may not have accepted it. Retry with the same key.
    Unknown { detail: String },
}

impl SendOutcome {
    /// A sentence for people (the console's test-send answer).
    pub fn describe(&self) -> String {
        match self {
            Self::Accepted { .. } => "LINE accepted it".into(),
            Self::AlreadyAccepted { .. } => "LINE had already accepted it".into(),
            Self::RateLimited => "LINE's rate limit was reached: try again in a moment".into(),
            Self::QuotaExhausted { message } => {
                format!("the channel's monthly message quota is used up ({message})")
            }
            Self::Rejected { status, message } => {
                format!("LINE refused it (HTTP {status}): {message}")
            }
            Self::Unknown { detail } => format!("LINE could not be reached: {detail}"),
        }
    }
}

#[derive(Clone)]
pub struct LineClient {
    http: reqwest::Client,
    base_url: String,
    pub tokens: TokenProvider,
    pub limiter: RateLimiter,
    settings: LineSettings,
}

impl LineClient {
    pub fn new(settings: &LineSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .pool_max_idle_per_host(256)
            .build()?;
        let tokens = TokenProvider::from_settings(http.clone(), settings);
        Ok(Self::with_tokens(settings, http, tokens))
    }

    /// The HTTP client and base URL this client talks to LINE with (for one-off calls such as a credentials check).
    pub fn http(&self) -> (&reqwest::Client, &str) {
        (&self.http, &self.base_url)
    }

    pub fn with_tokens(
        settings: &LineSettings,
        http: reqwest::Client,
        tokens: TokenProvider,
    ) -> Self {
        let tokens = tokens.with_store(settings.channel_secrets.clone(), &settings.secrets_project);
        Self {
            http,
            base_url: settings.base_url.trim_end_matches('/').to_owned(),
            tokens,
            limiter: RateLimiter::default(),
            settings: settings.clone(),
        }
    }

    fn rate(&self, endpoint: Endpoint) -> u32 {
        match endpoint {
            Endpoint::Push => self.settings.push_rate,
            Endpoint::Multicast => self.settings.multicast_rate,
        }
    }

    /// Sends one request (waiting for the rate limiter first). A 401 refreshes the token and retries once.
    pub async fn send(
        &self,
        channel: &ChannelId,
        endpoint: Endpoint,
        body: &(impl serde::Serialize + ?Sized),
        retry_key: uuid::Uuid,
    ) -> SendOutcome {
        self.send_timed(channel, endpoint, body, retry_key).await.0
    }

    /// [`LineClient::send`], and how long LINE took to answer (the HTTP exchanges, without the wait for a
    /// permit or a token).
    pub async fn send_timed(
        &self,
        channel: &ChannelId,
        endpoint: Endpoint,
        body: &(impl serde::Serialize + ?Sized),
        retry_key: uuid::Uuid,
    ) -> (SendOutcome, std::time::Duration) {
        let mut waited_for_line = std::time::Duration::ZERO;
        let outcome = self
            .send_counting(channel, endpoint, body, retry_key, &mut waited_for_line)
            .await;
        (outcome, waited_for_line)
    }

    async fn send_counting(
        &self,
        channel: &ChannelId,
        endpoint: Endpoint,
        body: &(impl serde::Serialize + ?Sized),
        retry_key: uuid::Uuid,
        waited_for_line: &mut std::time::Duration,
    ) -> SendOutcome {
        let mut refreshed = false;
        loop {
            let token = match self.tokens.token(channel).await {
                Ok(t) => t,
                Err(e) => {
                    return SendOutcome::Unknown {
                        detail: format!("no access token: {e:#}"),
                    };
                }
            };
            // Held until the answer's headers are in: LINE counted the request somewhere in between.
            let permit = self
                .limiter
                .acquire(channel.as_str(), endpoint.as_str(), self.rate(endpoint))
                .await;
            let asked = std::time::Instant::now();
            let resp = self
                .http
                .post(format!(
                    "{}/v2/bot/message/{}",
                    self.base_url,
                    endpoint.as_str()
                ))
                .bearer_auth(token.expose())
                .header("X-Line-Retry-Key", retry_key.to_string())
                .json(body)
                .send()
                .await;
            *waited_for_line += asked.elapsed();
            drop(permit);
            let resp = match resp {
                Ok(r) => r,
                Err(e) => {
                    return SendOutcome::Unknown {
                        detail: describe(&e),
                    };
                }
            };
            let status = resp.status().as_u16();
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let request_id = header("x-line-request-id");
            let accepted_id = header("x-line-accepted-request-id");
            let text = resp.text().await.unwrap_or_default();
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| text.chars().take(200).collect());
            match status {
                200..=299 => return SendOutcome::Accepted { request_id },
                409 if accepted_id.is_some() => {
                    return SendOutcome::AlreadyAccepted {
                        request_id: accepted_id.unwrap_or_default(),
                    };
                }
                401 if !refreshed => {
                    refreshed = true;
                    self.tokens.invalidate(channel, &token).await;
                }
                429 if message.contains("monthly limit") => {
                    return SendOutcome::QuotaExhausted { message };
                }
                429 => {
                    self.limiter.back_off(
                        channel.as_str(),
                        endpoint.as_str(),
                        Duration::from_millis(1000),
                    );
                    return SendOutcome::RateLimited;
                }
                500..=599 => {
                    return SendOutcome::Unknown {
                        detail: format!("HTTP {status}: {message}"),
                    };
                }
                _ => return SendOutcome::Rejected { status, message },
            }
        }
    }

    /// Dry run: asks LINE whether `messages` are valid for `endpoint`, sending nothing.
    pub async fn validate(
        &self,
        channel: &ChannelId,
        endpoint: Endpoint,
        messages: &[Value],
    ) -> SendOutcome {
        let token = match self.tokens.token(channel).await {
            Ok(t) => t,
            Err(e) => {
                return SendOutcome::Unknown {
                    detail: format!("no access token: {e:#}"),
                };
            }
        };
        let resp = self
            .http
            .post(format!(
                "{}/v2/bot/message/validate/{}",
                self.base_url,
                endpoint.as_str()
            ))
            .bearer_auth(token.expose())
            .json(&serde_json::json!({ "messages": messages }))
            .send()
            .await;
        match resp {
            Err(e) => SendOutcome::Unknown {
                detail: describe(&e),
            },
            Ok(r) if r.status().is_success() => SendOutcome::Accepted { request_id: None },
            Ok(r) => {
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                if status >= 500 {
                    SendOutcome::Unknown {
                        detail: format!("HTTP {status}"),
                    }
                } else {
                    SendOutcome::Rejected {
                        status,
                        message: text.chars().take(500).collect(),
                    }
                }
            }
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out waiting for LINE".into()
    } else if e.is_connect() {
        "could not connect to LINE".into()
    } else {
        // reqwest errors carry the URL, never headers: no token can leak here.
        format!("request failed: {e}")
    }
}
