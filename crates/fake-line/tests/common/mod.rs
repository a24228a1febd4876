//! Shared helpers for the fake-line integration tests: start the fake on port 0, get a token through
//! `/oauth2/v3/token`, and send LINE requests with reqwest.
#![allow(dead_code)]

use std::time::Duration;

use fake_line::{Config, FakeLine};
use serde_json::{Value, json};

pub const CHANNEL: &str = "1234567890";
pub const SECRET: &str = "channel-secret";

pub struct Env {
    pub fake: FakeLine,
    pub http: reqwest::Client,
    pub url: String,
    pub token: String,
}

/// A user ID from a number: `U` + 32 lowercase hex digits.
pub fn user(i: u64) -> String {
    format!("U{i:032x}")
}

pub fn users(range: std::ops::Range<u64>) -> Vec<String> {
    range.map(user).collect()
}

pub fn text(s: &str) -> Value {
    json!([{"type": "text", "text": s}])
}

pub fn retry_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub async fn start(config: Config) -> Env {
    let fake = FakeLine::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .expect("fake starts");
    let url = fake.url();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let token = issue_token(&http, &url, CHANNEL, SECRET).await;
    Env {
        fake,
        http,
        url,
        token,
    }
}

pub async fn issue_token(http: &reqwest::Client, url: &str, id: &str, secret: &str) -> String {
    let resp = http
        .post(format!("{url}/oauth2/v3/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

impl Env {
    pub async fn post(&self, path: &str, body: &Value, key: Option<&str>) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .json(body);
        if let Some(k) = key {
            req = req.header("X-Line-Retry-Key", k);
        }
        req.send()
            .await
            .expect("request succeeds at the HTTP level")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    pub async fn push(&self, to: &str, unit: &str, key: Option<&str>) -> reqwest::Response {
        let body = json!({"to": to, "messages": text("hello"), "customAggregationUnits": [unit]});
        self.post("/v2/bot/message/push", &body, key).await
    }

    pub async fn multicast(
        &self,
        to: &[String],
        unit: &str,
        key: Option<&str>,
    ) -> reqwest::Response {
        let body = json!({"to": to, "messages": text("hello"), "customAggregationUnits": [unit]});
        self.post("/v2/bot/message/multicast", &body, key).await
    }
}

/// The `details[].property` values of a LINE error body.
pub fn detail_properties(body: &Value) -> Vec<String> {
    body["details"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|x| x["property"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}
