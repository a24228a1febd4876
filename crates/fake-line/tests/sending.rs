//! The sending endpoints: push, multicast, narrowcast (+ progress) and broadcast are accepted with LINE's
//! response shapes and headers, and every accepted request is recorded.

mod common;

use common::*;
use fake_line::{Config, Endpoint};
use serde_json::{Value, json};

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok() && s.len() == 36
}

#[tokio::test]
async fn push_is_accepted_and_recorded() {
    let env = start(Config::default()).await;
    let key = retry_key();
    let body = json!({"to": user(1), "messages": [
        {"type": "text", "text": "Hello"},
        {"type": "sticker", "packageId": "446", "stickerId": "1988"},
        {"type": "location", "title": "t", "address": "a", "latitude": 35.6, "longitude": 139.7}],
        "customAggregationUnits": ["campaign_1"]});
    let resp = env.post("/v2/bot/message/push", &body, Some(&key)).await;
    assert_eq!(resp.status(), 200);
    let request_id = resp.headers()["x-line-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(is_uuid(&request_id));
    let body_out: Value = resp.json().await.unwrap();
    let sent = body_out["sentMessages"].as_array().unwrap();
    assert_eq!(sent.len(), 3, "one id per message");
    assert!(sent.iter().all(|m| {
        m["id"]
            .as_str()
            .unwrap()
            .chars()
            .all(|c| c.is_ascii_digit())
    }));
    assert!(sent[0].get("quoteToken").is_some() && sent[2].get("quoteToken").is_none());

    let records = env.fake.deliveries();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.request_id, request_id);
    assert_eq!(r.retry_key.as_deref(), Some(key.as_str()));
    assert_eq!(r.channel_id, CHANNEL);
    assert_eq!(r.endpoint, Endpoint::Push);
    assert_eq!(r.recipients, vec![user(1)]);
    assert_eq!(r.unit.as_deref(), Some("campaign_1"));
    assert_eq!(r.messages_sha256.len(), 64);
    assert!(!r.lost_response);

    let s = env.fake.stats();
    assert_eq!(s.accepted_requests, 1);
    assert_eq!(s.recipients_accepted, 1);
    assert_eq!(s.unique_recipients, 1);
    assert_eq!(s.responses("push", 200), 1);
    assert_eq!(s.units["campaign_1"].accepted, 1);
    assert_eq!(s.quota[CHANNEL].used, 1);
    env.fake.shutdown().await;
}

#[tokio::test]
async fn multicast_is_accepted_and_recorded() {
    let env = start(Config::default()).await;
    let to = users(0..500);
    let resp = env.multicast(&to, "campaign_2", Some(&retry_key())).await;
    assert_eq!(resp.status(), 200);
    assert!(is_uuid(
        resp.headers()["x-line-request-id"].to_str().unwrap()
    ));
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({}));
    let s = env.fake.stats();
    assert_eq!(s.accepted_requests, 1);
    assert_eq!(s.recipients_accepted, 500);
    assert_eq!(s.unique_recipients, 500);
    assert_eq!(s.duplicates, 0);
    assert_eq!(s.units["campaign_2"].unique, 500);
    let r = &env.fake.deliveries()[0];
    assert_eq!(r.recipients, to);
    assert_eq!(r.recipient_count, 500);
    assert_eq!(r.endpoint, Endpoint::Multicast);
    env.fake.shutdown().await;
}

#[tokio::test]
async fn same_messages_hash_the_same_whatever_the_key_order() {
    let env = start(Config::default()).await;
    let a = json!({"to": [user(1)], "messages": [{"type": "text", "text": "x", "quickReply": {"items": []}}]});
    let b = json!({"messages": [{"quickReply": {"items": []}, "text": "x", "type": "text"}], "to": [user(2)]});
    assert_eq!(
        env.post("/v2/bot/message/multicast", &a, None)
            .await
            .status(),
        200
    );
    assert_eq!(
        env.post("/v2/bot/message/multicast", &b, None)
            .await
            .status(),
        200
    );
    let r = env.fake.deliveries();
    assert_eq!(r[0].messages_sha256, r[1].messages_sha256);
    env.fake.shutdown().await;
}

#[tokio::test]
async fn narrowcast_answers_202_and_reports_progress() {
    let env = start(Config {
        friends_count: 300,
        narrowcast_processing_ms: 150,
        ..Config::default()
    })
    .await;
    let body = json!({"messages": text("sale"), "limit": {"max": 100}});
    let resp = env
        .post("/v2/bot/message/narrowcast", &body, Some(&retry_key()))
        .await;
    assert_eq!(resp.status(), 202);
    let id = resp.headers()["x-line-request-id"]
        .to_str()
        .unwrap()
        .to_string();

    let p: Value = env
        .get(&format!(
            "/v2/bot/message/progress/narrowcast?requestId={id}"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(p["phase"], "waiting");
    assert!(p["acceptedTime"].as_str().unwrap().ends_with('Z'));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let p: Value = env
        .get(&format!(
            "/v2/bot/message/progress/narrowcast?requestId={id}"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(p["phase"], "succeeded");
    assert_eq!(p["successCount"], 100, "limit.max caps the audience");
    assert_eq!(p["targetCount"], 100);
    assert!(line_spec::validate_schema("NarrowcastProgressResponse", &p).is_empty());

    let unknown = uuid::Uuid::new_v4();
    let resp = env
        .get(&format!(
            "/v2/bot/message/progress/narrowcast?requestId={unknown}"
        ))
        .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(
        env.get("/v2/bot/message/progress/narrowcast")
            .await
            .status(),
        400
    );
    assert_eq!(env.fake.stats().recipients_accepted, 100);
    env.fake.shutdown().await;
}

#[tokio::test]
async fn broadcast_bills_every_friend() {
    let env = start(Config {
        friends_count: 42,
        ..Config::default()
    })
    .await;
    let resp = env
        .post(
            "/v2/bot/message/broadcast",
            &json!({"messages": text("all")}),
            None,
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({}));
    let s = env.fake.stats();
    assert_eq!(s.recipients_accepted, 42);
    assert_eq!(s.quota[CHANNEL].used, 42);
    assert_eq!(env.fake.deliveries()[0].endpoint, Endpoint::Broadcast);
    env.fake.shutdown().await;
}

#[tokio::test]
async fn push_to_a_nonexistent_user_fails_to_send() {
    let env = start(Config {
        nonexistent_users: vec![user(9)],
        ..Config::default()
    })
    .await;
    let resp = env.push(&user(9), "u", None).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["message"], "Failed to send messages");
    assert_eq!(env.push(&user(8), "u", None).await.status(), 200);
    assert_eq!(env.fake.stats().accepted_requests, 1);
    env.fake.shutdown().await;
}

#[tokio::test]
async fn reply_has_no_valid_tokens_and_unknown_paths_are_404() {
    let env = start(Config::default()).await;
    let resp = env
        .post(
            "/v2/bot/message/reply",
            &json!({"replyToken": "x", "messages": text("hi")}),
            None,
        )
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["message"],
        "Invalid reply token"
    );
    let resp = env.get("/v2/bot/nothing").await;
    assert_eq!(resp.status(), 404);
    assert!(resp.headers().contains_key("x-line-request-id"));
    env.fake.shutdown().await;
}

#[tokio::test]
async fn retry_keys_are_forgotten_after_24_hours_and_the_quota_starts_again_each_month() {
    let clock = segcast_clock::Clock::manual(time::macros::datetime!(2026-01-31 12:00 UTC));
    let env = start(Config {
        default_quota: Some(2),
        clock: clock.clone(),
        ..Config::default()
    })
    .await;
    let key = retry_key();
    let push = |to: u64| json!({"to": user(to), "messages": [{"type": "text", "text": "Hi"}]});
    assert_eq!(
        env.post("/v2/bot/message/push", &push(1), Some(&key))
            .await
            .status(),
        200
    );
    // LINE remembers the key for 24 hours: within them the repeat is 409, after them it is a new request.
    clock.advance(std::time::Duration::from_secs(23 * 3600));
    assert_eq!(
        env.post("/v2/bot/message/push", &push(1), Some(&key))
            .await
            .status(),
        409
    );
    clock.advance(std::time::Duration::from_secs(2 * 3600));
    assert_eq!(
        env.post("/v2/bot/message/push", &push(1), Some(&key))
            .await
            .status(),
        200,
        "a key older than 24 hours is forgotten: the same request is accepted again"
    );
    // That was February's first message: one left of February's 2, then the quota is spent until March.
    assert_eq!(
        env.post("/v2/bot/message/push", &push(2), Some(&retry_key()))
            .await
            .status(),
        200
    );
    assert_eq!(
        env.post("/v2/bot/message/push", &push(3), Some(&retry_key()))
            .await
            .status(),
        429
    );
    clock.advance(std::time::Duration::from_secs(30 * 86_400));
    assert_eq!(
        env.post("/v2/bot/message/push", &push(3), Some(&retry_key()))
            .await
            .status(),
        200
    );
    assert_eq!(env.fake.stats().quota[CHANNEL].used, 1, "March's usage");
}
