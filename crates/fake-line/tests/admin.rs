//! The `/fake/*` admin endpoints: health, stats, deliveries (NDJSON, in memory or from the records file),
//! faults, quota, reset, config.

mod common;

use common::*;
use fake_line::{Config, Faults, Record, Stats};
use serde_json::{Value, json};

async fn admin_get(env: &Env, path: &str) -> reqwest::Response {
    env.http
        .get(format!("{}{path}", env.url))
        .send()
        .await
        .unwrap()
}

async fn admin_post(env: &Env, path: &str, body: Value) -> reqwest::Response {
    env.http
        .post(format!("{}{path}", env.url))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn health_stats_and_deliveries() {
    let env = start(Config::default()).await;
    let health: Value = admin_get(&env, "/fake/health").await.json().await.unwrap();
    assert_eq!(health, json!({"status": "ok"}));

    assert_eq!(env.multicast(&users(0..3), "a", None).await.status(), 200);
    assert_eq!(env.push(&user(9), "b", None).await.status(), 200);
    let stats: Stats = admin_get(&env, "/fake/stats").await.json().await.unwrap();
    let mut direct = env.fake.stats();
    // The admin call itself is counted between the two snapshots.
    direct.requests.remove("admin");
    let mut via_http = stats.clone();
    via_http.requests.remove("admin");
    assert_eq!(via_http, direct);
    assert_eq!(stats.accepted_requests, 2);
    assert_eq!(stats.responses("multicast", 200), 1);

    let resp = admin_get(&env, "/fake/deliveries").await;
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let text = resp.text().await.unwrap();
    let records: Vec<Record> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].recipients, users(0..3));
    let only_b = admin_get(&env, "/fake/deliveries?unit=b")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(only_b.lines().count(), 1);
    assert!(only_b.contains(&user(9)));
    env.fake.shutdown().await;
}

#[tokio::test]
async fn faults_quota_reset_and_config() {
    let env = start(Config {
        default_quota: Some(100),
        ..Config::default()
    })
    .await;
    let set: Faults = admin_post(
        &env,
        "/fake/faults",
        json!({"p_500": 1.0, "latency_ms": [1, 2]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(set.p_500, 1.0);
    assert_eq!((set.latency_ms.min, set.latency_ms.max), (1, 2));
    assert_eq!(env.fake.faults(), set);
    assert_eq!(env.push(&user(1), "x", None).await.status(), 500);
    let got: Faults = admin_get(&env, "/fake/faults").await.json().await.unwrap();
    assert_eq!(got, set);
    admin_post(&env, "/fake/faults", json!({})).await;
    assert_eq!(env.push(&user(1), "x", None).await.status(), 200);

    let q: Value = admin_post(
        &env,
        "/fake/quota",
        json!({"channel_id": CHANNEL, "quota": 1}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(q, json!({"channel_id": CHANNEL, "limit": 1, "used": 1}));
    assert_eq!(env.push(&user(2), "x", None).await.status(), 429);
    admin_post(
        &env,
        "/fake/quota",
        json!({"channel_id": CHANNEL, "quota": null}),
    )
    .await;
    assert_eq!(env.push(&user(2), "x", None).await.status(), 200);

    let key = retry_key();
    assert_eq!(env.push(&user(3), "x", Some(&key)).await.status(), 200);
    assert_eq!(
        admin_post(&env, "/fake/reset", json!({})).await.status(),
        200
    );
    let s = env.fake.stats();
    assert_eq!(s.accepted_requests, 0);
    assert_eq!(s.retry_keys, 0);
    assert!(s.units.is_empty());
    assert!(env.fake.deliveries().is_empty());
    assert_eq!(
        env.push(&user(3), "x", Some(&key)).await.status(),
        200,
        "reset forgets retry keys"
    );
    assert_eq!(
        env.fake.stats().quota[CHANNEL].limit,
        Some(100),
        "configured quota restored"
    );

    let cfg: Config = admin_get(&env, "/fake/config").await.json().await.unwrap();
    assert_eq!(cfg.default_quota, Some(100));
    env.fake.shutdown().await;
}

#[tokio::test]
async fn records_file_without_memory() {
    let dir = std::env::temp_dir().join(format!("fake-line-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("deliveries.ndjson");
    let env = start(Config {
        keep_records: false,
        records_file: Some(path.clone()),
        ..Config::default()
    })
    .await;
    for i in 0..3 {
        assert_eq!(env.push(&user(i), "file", None).await.status(), 200);
    }
    let text = admin_get(&env, "/fake/deliveries")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(text.lines().count(), 3);
    assert_eq!(env.fake.deliveries().len(), 3);
    let on_disk = std::fs::read_to_string(&path).unwrap();
    assert_eq!(on_disk.lines().count(), 3);
    assert_eq!(
        env.fake.stats().unique_recipients,
        3,
        "stats do not need the records"
    );
    env.fake.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();

    let env = start(Config {
        keep_records: false,
        ..Config::default()
    })
    .await;
    assert_eq!(env.push(&user(1), "none", None).await.status(), 200);
    assert_eq!(admin_get(&env, "/fake/deliveries").await.status(), 404);
    assert_eq!(env.fake.stats().accepted_requests, 1);
    env.fake.shutdown().await;
}
