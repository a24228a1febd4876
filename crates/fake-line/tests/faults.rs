//! Injected faults: 500 (not accepted), timeout (hang, not accepted), lost response (accepted and recorded,
//! then the connection drops; the retry with the same key gets 409), 429 bursts, latency, endpoint targeting,
//! and replay of a seeded fault sequence.

mod common;

use std::time::{Duration, Instant};

use common::*;
use fake_line::{Config, Endpoint, Faults, Latency};
use serde_json::{Value, json};

#[tokio::test]
async fn p_500_answers_500_without_accepting() {
    let env = start(Config::default()).await;
    env.fake.set_faults(Faults {
        p_500: 1.0,
        ..Faults::default()
    });
    let key = retry_key();
    let resp = env.push(&user(1), "f", Some(&key)).await;
    assert_eq!(resp.status(), 500);
    assert!(resp.json::<Value>().await.unwrap()["message"].is_string());
    let s = env.fake.stats();
    assert_eq!(s.accepted_requests, 0);
    assert_eq!(s.faults.error_500, 1);
    assert_eq!(s.responses("push", 500), 1);
    // The key was not consumed: the retry goes through.
    env.fake.set_faults(Faults::default());
    assert_eq!(env.push(&user(1), "f", Some(&key)).await.status(), 200);
    assert_eq!(env.fake.stats().accepted_requests, 1);
    env.fake.shutdown().await;
}

#[tokio::test]
async fn p_timeout_hangs_without_accepting() {
    let env = start(Config::default()).await;
    env.fake.set_faults(Faults {
        p_timeout: 1.0,
        timeout_hang_ms: 5_000,
        ..Faults::default()
    });
    let key = retry_key();
    let started = Instant::now();
    let err = env
        .http
        .post(format!("{}/v2/bot/message/push", env.url))
        .bearer_auth(&env.token)
        .header("X-Line-Retry-Key", &key)
        .timeout(Duration::from_millis(300))
        .json(&json!({"to": user(1), "messages": text("x")}))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let s = env.fake.stats();
    assert_eq!(s.accepted_requests, 0);
    assert_eq!(s.faults.timeout, 1);

    // A short hang ends with the connection dropped, still without accepting.
    env.fake.set_faults(Faults {
        p_timeout: 1.0,
        timeout_hang_ms: 100,
        ..Faults::default()
    });
    let err = env
        .http
        .post(format!("{}/v2/bot/message/push", env.url))
        .bearer_auth(&env.token)
        .json(&json!({"to": user(1), "messages": text("x")}))
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_timeout(), "{err:?}");
    env.fake.set_faults(Faults::default());
    assert_eq!(
        env.push(&user(1), "f", Some(&key)).await.status(),
        200,
        "key not consumed"
    );
    assert_eq!(env.fake.stats().accepted_requests, 1);
    env.fake.shutdown().await;
}

#[tokio::test]
async fn lost_response_is_delivered_and_the_retry_gets_409() {
    let env = start(Config::default()).await;
    env.fake.set_faults(Faults {
        p_lost_response: 1.0,
        ..Faults::default()
    });
    let key = retry_key();
    let body =
        json!({"to": users(0..3), "messages": text("x"), "customAggregationUnits": ["lost"]});
    let started = Instant::now();
    let err = env
        .http
        .post(format!("{}/v2/bot/message/multicast", env.url))
        .bearer_auth(&env.token)
        .header("X-Line-Retry-Key", &key)
        .json(&body)
        .send()
        .await
        .unwrap_err();
    assert!(
        !err.is_timeout(),
        "the connection is dropped at once: {err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    let records = env.fake.deliveries();
    assert_eq!(
        records.len(),
        1,
        "delivered although the client saw an error"
    );
    assert!(records[0].lost_response);
    assert_eq!(records[0].retry_key.as_deref(), Some(key.as_str()));
    let s = env.fake.stats();
    assert_eq!(s.faults.lost_response, 1);
    assert_eq!(s.recipients_accepted, 3);

    // The sender retries with the same key: 409 naming the delivered request, nothing sent twice.
    env.fake.set_faults(Faults::default());
    let resp = env
        .post("/v2/bot/message/multicast", &body, Some(&key))
        .await;
    assert_eq!(resp.status(), 409);
    assert_eq!(
        resp.headers()["x-line-accepted-request-id"]
            .to_str()
            .unwrap(),
        records[0].request_id
    );
    // Without a key, the retry is a duplicate delivery, which the stats expose.
    assert_eq!(
        env.post("/v2/bot/message/multicast", &body, None)
            .await
            .status(),
        200
    );
    let s = env.fake.stats();
    assert_eq!(s.duplicates, 3);
    assert_eq!(s.units["lost"].duplicates, 3);
    env.fake.shutdown().await;
}

#[tokio::test]
async fn a_429_burst_refuses_requests_for_its_duration() {
    let env = start(Config::default()).await;
    env.fake.set_faults(Faults {
        p_429_burst: 1.0,
        burst_429_ms: 300,
        ..Faults::default()
    });
    for _ in 0..5 {
        let resp = env.push(&user(1), "b", None).await;
        assert_eq!(resp.status(), 429);
        assert_eq!(
            resp.json::<Value>().await.unwrap()["message"],
            "The API rate limit has been exceeded. Try again later."
        );
    }
    let s = env.fake.stats();
    assert_eq!(s.faults.bursts, 1, "one burst covered all five");
    assert_eq!(s.faults.burst_429, 5);
    assert_eq!(s.rate_limited, 5);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(env.push(&user(1), "b", None).await.status(), 429);
    assert_eq!(
        env.fake.stats().faults.bursts,
        2,
        "a new burst after the first ended"
    );
    env.fake.set_faults(Faults::default());
    assert_eq!(env.push(&user(1), "b", None).await.status(), 200);
    env.fake.shutdown().await;
}

#[tokio::test]
async fn latency_is_added() {
    let env = start(Config::default()).await;
    env.fake.set_faults(Faults {
        latency_ms: Latency::fixed(150),
        ..Faults::default()
    });
    let t = Instant::now();
    assert_eq!(env.push(&user(1), "l", None).await.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(150));
    // Only the fault endpoints are slowed down.
    let t = Instant::now();
    assert_eq!(env.get("/v2/bot/message/quota").await.status(), 200);
    assert!(t.elapsed() < Duration::from_millis(150));
    env.fake.set_faults(Faults {
        latency_ms: Latency { min: 40, max: 60 },
        ..Faults::default()
    });
    let t = Instant::now();
    assert_eq!(env.push(&user(2), "l", None).await.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(40));
    env.fake.shutdown().await;
}

#[tokio::test]
async fn faults_target_the_configured_endpoints() {
    let env = start(Config {
        faults: Faults {
            p_500: 1.0,
            endpoints: vec![Endpoint::Multicast, Endpoint::Quota],
            ..Faults::default()
        },
        ..Config::default()
    })
    .await;
    assert_eq!(env.push(&user(1), "t", None).await.status(), 200);
    assert_eq!(env.multicast(&users(0..2), "t", None).await.status(), 500);
    assert_eq!(env.get("/v2/bot/message/quota").await.status(), 500);
    assert_eq!(
        env.get("/v2/bot/message/quota/consumption").await.status(),
        200
    );
    env.fake.shutdown().await;
}

#[tokio::test]
async fn seeded_faults_replay() {
    let faults = Faults {
        seed: Some(7),
        p_500: 0.5,
        ..Faults::default()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let env = start(Config {
            faults: faults.clone(),
            ..Config::default()
        })
        .await;
        let mut statuses = Vec::new();
        for i in 0..20 {
            statuses.push(env.push(&user(i), "s", None).await.status().as_u16());
        }
        env.fake.shutdown().await;
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(
        runs[0].contains(&200) && runs[0].contains(&500),
        "{:?}",
        runs[0]
    );
}
