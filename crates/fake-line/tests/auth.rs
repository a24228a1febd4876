//! Channel access tokens: issuing (`/oauth2/v3/token`, `/v2/oauth/accessToken`), LINE's OAuth error shapes,
//! restricted channels, long-lived tokens, and 401 for missing, invalid and expired bearer tokens.

mod common;

use std::collections::BTreeMap;

use common::*;
use fake_line::{Config, FakeLine};
use serde_json::{Value, json};

const AUTH_FAILED: &str =
    "Authentication failed. Confirm that the access token in the authorization header is valid.";

async fn token_request(http: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = http
        .post(format!("{url}/oauth2/v3/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn push_with(http: &reqwest::Client, url: &str, auth: Option<&str>) -> (u16, Value) {
    let mut req = http
        .post(format!("{url}/v2/bot/message/push"))
        .json(&json!({"to": user(1), "messages": text("x")}));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn stateless_token_is_issued_and_accepted() {
    let env = start(Config::default()).await;
    let (status, body) = token_request(
        &env.http,
        &env.url,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "42"),
            ("client_secret", "s"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["token_type"], "Bearer");
    let token = body["access_token"].as_str().unwrap();
    let schema = line_spec::channel_access_token();
    assert!(
        line_spec::validate_schema_in(schema, "IssueStatelessChannelAccessTokenResponse", &body)
            .is_empty()
    );

    let (status, _) = push_with(&env.http, &env.url, Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, 200);
    assert_eq!(
        env.fake.deliveries()[0].channel_id,
        "42",
        "the token carries its channel"
    );

    // Short-lived tokens (v2) work the same way.
    let resp = env
        .http
        .post(format!("{}/v2/oauth/accessToken", env.url))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "43"),
            ("client_secret", "s"),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["expires_in"], 30 * 24 * 3600);
    env.fake.shutdown().await;
}

#[tokio::test]
async fn token_request_errors_use_the_oauth_shape() {
    let env = start(Config::default()).await;
    let (status, body) = token_request(
        &env.http,
        &env.url,
        &[
            ("grant_type", "password"),
            ("client_id", "1"),
            ("client_secret", "s"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "unsupported_grant_type");
    assert!(body["error_description"].is_string());
    let (status, body) = token_request(
        &env.http,
        &env.url,
        &[("grant_type", "client_credentials"), ("client_id", "1")],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_request");
    let (status, body) = token_request(
        &env.http,
        &env.url,
        &[("client_id", "1"), ("client_secret", "s")],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_request");
    // Not a form at all.
    let resp = env
        .http
        .post(format!("{}/oauth2/v3/token", env.url))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    env.fake.shutdown().await;
}

#[tokio::test]
async fn restricted_channels_refuse_unknown_credentials() {
    let fake = FakeLine::start(
        "127.0.0.1:0".parse().unwrap(),
        Config {
            allowed_channels: BTreeMap::from([("111".to_string(), "right".to_string())]),
            ..Config::default()
        },
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let url = fake.url();
    let ok = [
        ("grant_type", "client_credentials"),
        ("client_id", "111"),
        ("client_secret", "right"),
    ];
    assert_eq!(token_request(&http, &url, &ok).await.0, 200);
    for form in [
        [
            ("grant_type", "client_credentials"),
            ("client_id", "111"),
            ("client_secret", "wrong"),
        ],
        [
            ("grant_type", "client_credentials"),
            ("client_id", "222"),
            ("client_secret", "right"),
        ],
    ] {
        let (status, body) = token_request(&http, &url, &form).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], "invalid_client");
    }
    fake.shutdown().await;
}

#[tokio::test]
async fn missing_invalid_and_forged_tokens_are_401() {
    let env = start(Config::default()).await;
    let forged = {
        // Another server's secret signs a token this one must refuse.
        let other = FakeLine::start(
            "127.0.0.1:0".parse().unwrap(),
            Config {
                token_secret: "another-secret".into(),
                ..Config::default()
            },
        )
        .await
        .unwrap();
        let t = other.issue_token(CHANNEL);
        other.shutdown().await;
        t
    };
    for auth in [
        None,
        Some("Bearer".to_string()),
        Some("Bearer not-a-token".to_string()),
        Some(format!("Basic {}", env.token)),
        Some(format!("Bearer {forged}")),
    ] {
        let (status, body) = push_with(&env.http, &env.url, auth.as_deref()).await;
        assert_eq!(status, 401, "{auth:?}");
        assert_eq!(body, json!({"message": AUTH_FAILED}));
    }
    for path in ["/v2/bot/message/quota", "/v2/bot/message/quota/consumption"] {
        let resp = env
            .http
            .get(format!("{}{path}", env.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
    }
    assert_eq!(env.fake.stats().responses("push", 401), 5);
    assert_eq!(env.fake.stats().accepted_requests, 0);
    env.fake.shutdown().await;
}

#[tokio::test]
async fn expired_token_is_401() {
    let env = start(Config {
        token_lifetime_secs: 1,
        ..Config::default()
    })
    .await;
    let (status, _) = push_with(&env.http, &env.url, Some(&format!("Bearer {}", env.token))).await;
    assert_eq!(status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, body) =
        push_with(&env.http, &env.url, Some(&format!("Bearer {}", env.token))).await;
    assert_eq!(status, 401);
    assert_eq!(body["message"], AUTH_FAILED);
    env.fake.shutdown().await;
}

#[tokio::test]
async fn long_lived_tokens_map_to_their_channel() {
    let fake = FakeLine::start(
        "127.0.0.1:0".parse().unwrap(),
        Config {
            long_lived_tokens: BTreeMap::from([("LONG-LIVED".to_string(), "777".to_string())]),
            token_lifetime_secs: 0,
            ..Config::default()
        },
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let (status, _) = push_with(&http, &fake.url(), Some("Bearer LONG-LIVED")).await;
    assert_eq!(status, 200);
    assert_eq!(fake.deliveries()[0].channel_id, "777");
    // With a zero lifetime, issued tokens are expired at once.
    let t = issue_token(&http, &fake.url(), "1", "s").await;
    assert_eq!(
        push_with(&http, &fake.url(), Some(&format!("Bearer {t}")))
            .await
            .0,
        401
    );
    fake.shutdown().await;
}
