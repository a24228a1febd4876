//! Monthly quotas: each accepted recipient consumes one message, a request that would exceed the quota gets
//! 429 "You have reached your monthly limit." and is not delivered, raising the quota resumes sending, and the
//! quota endpoints report the limit and the usage.

mod common;

use common::*;
use fake_line::Config;
use serde_json::{Value, json};

#[tokio::test]
async fn quota_is_enforced_and_raising_it_resumes() {
    let env = start(Config {
        default_quota: Some(5),
        ..Config::default()
    })
    .await;
    assert_eq!(env.multicast(&users(0..3), "q", None).await.status(), 200);
    let resp = env.multicast(&users(3..6), "q", None).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"message": "You have reached your monthly limit."})
    );
    assert_eq!(
        env.push(&user(3), "q", None).await.status(),
        200,
        "2 left: a push fits"
    );
    assert_eq!(env.push(&user(4), "q", None).await.status(), 200);
    assert_eq!(env.push(&user(5), "q", None).await.status(), 429);

    let quota: Value = env.get("/v2/bot/message/quota").await.json().await.unwrap();
    assert_eq!(quota, json!({"type": "limited", "value": 5}));
    assert!(line_spec::validate_schema("MessageQuotaResponse", &quota).is_empty());
    let used: Value = env
        .get("/v2/bot/message/quota/consumption")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(used, json!({"totalUsage": 5}));
    assert!(line_spec::validate_schema("QuotaConsumptionResponse", &used).is_empty());

    env.fake.set_quota(CHANNEL, Some(8));
    assert_eq!(env.multicast(&users(5..8), "q", None).await.status(), 200);
    let s = env.fake.stats();
    assert_eq!(s.quota_exceeded, 2);
    assert_eq!(s.recipients_accepted, 8);
    assert_eq!(s.unique_recipients, 8, "refused requests delivered nothing");
    assert_eq!(s.quota[CHANNEL].used, 8);
    assert_eq!(s.quota[CHANNEL].limit, Some(8));

    env.fake.set_quota(CHANNEL, None);
    let quota: Value = env.get("/v2/bot/message/quota").await.json().await.unwrap();
    assert_eq!(quota, json!({"type": "none"}));
    assert_eq!(env.multicast(&users(8..508), "q", None).await.status(), 200);
    env.fake.shutdown().await;
}

#[tokio::test]
async fn per_channel_quotas_from_config() {
    let env = start(Config {
        quotas: [(CHANNEL.to_string(), 1)].into_iter().collect(),
        ..Config::default()
    })
    .await;
    assert_eq!(env.push(&user(1), "q", None).await.status(), 200);
    assert_eq!(env.push(&user(2), "q", None).await.status(), 429);
    // Other channels are unlimited.
    let other = issue_token(&env.http, &env.url, "other", "s").await;
    let resp = env
        .http
        .post(format!("{}/v2/bot/message/push", env.url))
        .bearer_auth(other)
        .json(&json!({"to": user(2), "messages": text("x")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    env.fake.shutdown().await;
}
