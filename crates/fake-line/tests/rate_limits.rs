//! Per-channel rate limits: requests over the limit get LINE's 429, the 429s are counted, and the most requests
//! accepted in one second (`max_rate_1s`) never exceeds the limit; with limits off, rates are still tracked.

mod common;

use common::*;
use fake_line::{Config, RateLimit, RateLimits};
use serde_json::Value;

async fn burst_of_pushes(env: &std::sync::Arc<Env>, n: u64) -> Vec<(u16, Value)> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let env = env.clone();
            tokio::spawn(async move {
                let r = env.push(&user(i), "rl", None).await;
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_limit_is_429_and_max_rate_stays_under_it() {
    let env = std::sync::Arc::new(
        start(Config {
            rate_limits: RateLimits {
                push: RateLimit::per_second(5),
                ..RateLimits::default()
            },
            ..Config::default()
        })
        .await,
    );
    let results = burst_of_pushes(&env, 30).await;
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let limited: Vec<_> = results.iter().filter(|r| r.0 == 429).collect();
    assert_eq!(ok + limited.len(), 30);
    // 30 requests land in one or two clock seconds.
    assert!((5..=10).contains(&ok), "accepted {ok}");
    for (_, body) in &limited {
        assert_eq!(
            body["message"],
            "The API rate limit has been exceeded. Try again later."
        );
    }
    let s = env.fake.stats();
    assert_eq!(s.rate_limited, limited.len() as u64);
    assert_eq!(s.responses("push", 429), limited.len() as u64);
    assert_eq!(s.accepted_requests, ok as u64);
    let max = s.max_rate_1s[CHANNEL]["push"];
    assert!((1..=5).contains(&max), "max_rate_1s {max}");
    assert_eq!(s.max_rate("push"), max);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_enforcement_rates_are_still_tracked() {
    let env = std::sync::Arc::new(
        start(Config {
            rate_limits: RateLimits {
                push: RateLimit::per_second(5),
                ..RateLimits::default()
            },
            rate_limits_enabled: false,
            ..Config::default()
        })
        .await,
    );
    let results = burst_of_pushes(&env, 30).await;
    assert!(results.iter().all(|r| r.0 == 200));
    let s = env.fake.stats();
    assert!(s.max_rate("push") >= 15, "{:?}", s.max_rate_1s);
    assert_eq!(s.rate_limited, 0);
}

#[tokio::test]
async fn other_endpoints_share_the_other_limit_and_hourly_windows_work() {
    let env = start(Config {
        rate_limits: RateLimits {
            other: RateLimit {
                requests: 2,
                per_secs: 3600,
            },
            broadcast: RateLimit::per_hour(1),
            ..RateLimits::default()
        },
        ..Config::default()
    })
    .await;
    // Limits are per endpoint: two quota calls, then 429; consumption has its own window.
    assert_eq!(env.get("/v2/bot/message/quota").await.status(), 200);
    assert_eq!(env.get("/v2/bot/message/quota").await.status(), 200);
    assert_eq!(env.get("/v2/bot/message/quota").await.status(), 429);
    assert_eq!(
        env.get("/v2/bot/message/quota/consumption").await.status(),
        200
    );
    let b = serde_json::json!({"messages": text("x")});
    assert_eq!(
        env.post("/v2/bot/message/broadcast", &b, None)
            .await
            .status(),
        200
    );
    assert_eq!(
        env.post("/v2/bot/message/broadcast", &b, None)
            .await
            .status(),
        429
    );
    // Token issuing is not rate limited.
    for _ in 0..5 {
        issue_token(&env.http, &env.url, "1", "s").await;
    }
    env.fake.shutdown().await;
}
