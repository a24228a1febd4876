//! `X-Line-Retry-Key`: a repeat of an accepted key answers 409 with `x-line-accepted-request-id` and is not
//! delivered again, also under concurrent repeats; invalid keys are 400; a rejected request does not consume
//! its key; keys expire after the configured TTL.

mod common;

use common::*;
use fake_line::{Config, RateLimit, RateLimits};
use serde_json::{Value, json};

#[tokio::test]
async fn repeat_of_an_accepted_key_is_409_and_not_counted() {
    let env = start(Config::default()).await;
    let key = retry_key();
    let first = env.multicast(&users(0..10), "c", Some(&key)).await;
    assert_eq!(first.status(), 200);
    let first_id = first.headers()["x-line-request-id"]
        .to_str()
        .unwrap()
        .to_string();

    for _ in 0..2 {
        let again = env.multicast(&users(0..10), "c", Some(&key)).await;
        assert_eq!(again.status(), 409);
        assert_eq!(
            again.headers()["x-line-accepted-request-id"]
                .to_str()
                .unwrap(),
            first_id
        );
        let own_id = again.headers()["x-line-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        assert_ne!(own_id, first_id);
        assert_eq!(
            again.json::<Value>().await.unwrap(),
            json!({"message": "The retry key is already accepted"})
        );
    }
    let s = env.fake.stats();
    assert_eq!(s.accepted_requests, 1);
    assert_eq!(s.recipients_accepted, 10);
    assert_eq!(s.duplicates, 0);
    assert_eq!(s.retry_key_conflicts, 2);
    assert_eq!(s.responses("multicast", 409), 2);
    assert_eq!(s.quota[CHANNEL].used, 10, "a 409 is not billed");
    // Keys are per channel: the same key from another channel is a new request.
    let other_token = issue_token(&env.http, &env.url, "999", "s").await;
    let resp = env
        .http
        .post(format!("{}/v2/bot/message/multicast", env.url))
        .bearer_auth(other_token)
        .header("X-Line-Retry-Key", &key)
        .json(&json!({"to": users(0..10), "messages": text("hello")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    env.fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_repeats_of_one_key_deliver_exactly_once() {
    let env = start(Config::default()).await;
    let key = retry_key();
    let env = std::sync::Arc::new(env);
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let env = env.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let r = env.push(&user(5), "c", Some(&key)).await;
                let status = r.status().as_u16();
                let own = r.headers()["x-line-request-id"]
                    .to_str()
                    .unwrap()
                    .to_string();
                let accepted = r
                    .headers()
                    .get("x-line-accepted-request-id")
                    .map(|v| v.to_str().unwrap().to_string());
                (status, own, accepted)
            })
        })
        .collect();
    let results: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let winners: Vec<_> = results.iter().filter(|r| r.0 == 200).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let winner_id = &winners[0].1;
    for r in results.iter().filter(|r| r.0 != 200) {
        assert_eq!(r.0, 409);
        assert_eq!(r.2.as_ref(), Some(winner_id));
    }
    let s = env.fake.stats();
    assert_eq!(s.accepted_requests, 1);
    assert_eq!(s.duplicates, 0);
    assert_eq!(s.retry_key_conflicts, 31);
}

#[tokio::test]
async fn invalid_retry_keys_are_400() {
    let env = start(Config::default()).await;
    for bad in [
        "abc",
        "123e4567e89b12d3a456426614174000",
        "123e4567-e89b-12d3-a456-42661417400g",
        "",
    ] {
        let resp = env.push(&user(1), "c", Some(bad)).await;
        assert_eq!(resp.status(), 400, "{bad:?}");
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("X-Line-Retry-Key")
        );
    }
    // Upper-case hex is still a UUID.
    let upper = retry_key().to_uppercase();
    assert_eq!(env.push(&user(1), "c", Some(&upper)).await.status(), 200);
    // Other endpoints refuse the header.
    let resp = env
        .http
        .get(format!("{}/v2/bot/message/quota", env.url))
        .bearer_auth(&env.token)
        .header("X-Line-Retry-Key", retry_key())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(env.fake.stats().accepted_requests, 1);
    env.fake.shutdown().await;
}

#[tokio::test]
async fn a_rejected_request_does_not_consume_its_key() {
    let env = start(Config {
        rate_limits: RateLimits {
            multicast: RateLimit {
                requests: 3,
                per_secs: 3600,
            },
            ..RateLimits::default()
        },
        default_quota: Some(5),
        ..Config::default()
    })
    .await;
    let key = retry_key();
    // Over quota: 429, key not recorded.
    let resp = env.multicast(&users(0..6), "c", Some(&key)).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["message"],
        "You have reached your monthly limit."
    );
    env.fake.set_quota(CHANNEL, Some(100));
    // Invalid body: 400, key not recorded either.
    let resp = env
        .post(
            "/v2/bot/message/multicast",
            &json!({"to": users(0..6)}),
            Some(&key),
        )
        .await;
    assert_eq!(resp.status(), 400);
    // Now it is accepted; then the rate limiter (3 per hour) refuses the next request, also unrecorded.
    assert_eq!(
        env.multicast(&users(0..6), "c", Some(&key)).await.status(),
        200
    );
    let key2 = retry_key();
    assert_eq!(
        env.multicast(&users(6..7), "c", Some(&key2)).await.status(),
        429
    );
    assert_eq!(env.fake.stats().retry_keys, 1);
    env.fake.shutdown().await;
}

#[tokio::test]
async fn keys_expire_after_the_ttl() {
    let env = start(Config {
        retry_key_ttl_secs: 1,
        ..Config::default()
    })
    .await;
    let key = retry_key();
    assert_eq!(env.push(&user(1), "c", Some(&key)).await.status(), 200);
    assert_eq!(env.push(&user(1), "c", Some(&key)).await.status(), 409);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(env.push(&user(1), "c", Some(&key)).await.status(), 200);
    let s = env.fake.stats();
    assert_eq!(s.accepted_requests, 2);
    assert_eq!(
        s.duplicates, 1,
        "a delivery after the key expired is a real duplicate"
    );
    env.fake.shutdown().await;
}
