//! `GET /v2/bot/insight/message/event/aggregation`: LINE's per-unit statistics shape, null values under 20
//! unique users, numbers counted from the unit's deliveries in the date range and the interactions recorded for
//! its recipients, and parameter checks.

mod common;

use common::*;
use fake_line::{Config, Interaction};
use serde_json::{Value, json};

fn today_jst() -> String {
    let now =
        time::OffsetDateTime::now_utc().to_offset(time::UtcOffset::from_hms(9, 0, 0).unwrap());
    let d = now.date();
    format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
}

#[tokio::test]
async fn statistics_per_unit() {
    let env = start(Config::default()).await;
    let flex = json!({"type": "flex", "altText": "sale", "contents": {"type": "bubble",
        "footer": {"type": "box", "layout": "vertical", "contents": [
            {"type": "button", "action": {"type": "uri", "label": "Go", "uri": "https://example.com/sale"}}]}}});
    let small = json!({"to": users(0..10), "messages": [{"type": "text", "text": "hi"}, flex], "customAggregationUnits": ["small"]});
    assert_eq!(
        env.post("/v2/bot/message/multicast", &small, None)
            .await
            .status(),
        200
    );
    let big = json!({"to": users(0..100), "messages": [{"type": "text", "text": "hi"}, flex], "customAggregationUnits": ["big"]});
    assert_eq!(
        env.post("/v2/bot/message/multicast", &big, None)
            .await
            .status(),
        200
    );

    let day = today_jst();
    let q = |unit: &str| {
        format!(
            "/v2/bot/insight/message/event/aggregation?customAggregationUnit={unit}&from={day}&to={day}"
        )
    };

    let small: Value = env.get(&q("small")).await.json().await.unwrap();
    assert_eq!(
        small["overview"]["uniqueImpression"],
        Value::Null,
        "under 20 users: null"
    );
    assert_eq!(small["messages"].as_array().unwrap().len(), 2);
    assert_eq!(small["messages"][0]["impression"], Value::Null);

    // Nobody did anything yet: zeros (not nulls: there are enough users).
    let big: Value = env.get(&q("big")).await.json().await.unwrap();
    assert_eq!(big["overview"]["uniqueImpression"], 0);
    assert_eq!(big["overview"]["uniqueClick"], 0);

    // The numbers come from what users did: 30 opened, 7 of them tapped the link (one of them twice), and a
    // user who was never sent the unit cannot count.
    let all = users(0..100);
    for (i, u) in all.iter().enumerate().take(30) {
        let u = u.as_str();
        assert!(env.fake.interact("big", u, Interaction::Impression));
        if i < 7 {
            let click = Interaction::Click {
                seq: 2,
                url: "https://example.com/sale".into(),
            };
            assert!(env.fake.interact("big", u, click.clone()));
            if i == 0 {
                assert!(env.fake.interact("big", u, click));
            }
        }
    }
    let stranger = users(500..501)[0].clone();
    assert!(!env.fake.interact("big", &stranger, Interaction::Impression));
    let big: Value = env.get(&q("big")).await.json().await.unwrap();
    assert_eq!(big["overview"]["uniqueImpression"], 30);
    assert_eq!(big["overview"]["uniqueClick"], 7);
    assert_eq!(big["overview"]["uniqueMediaPlayed"], Value::Null);
    assert_eq!(big["messages"][1]["seq"], 2);
    assert_eq!(big["messages"][0]["uniqueImpression"], 30);
    assert_eq!(
        big["clicks"],
        json!([{"seq": 2, "url": "https://example.com/sale", "click": 8,
                                       "uniqueClick": 7, "uniqueClickOfRequest": 7}])
    );
    // Under 20 users, even recorded activity is reported as null.
    let u0 = users(0..1)[0].clone();
    assert!(env.fake.interact("small", &u0, Interaction::Impression));
    let small: Value = env.get(&q("small")).await.json().await.unwrap();
    assert_eq!(small["overview"]["uniqueImpression"], Value::Null);

    // Another day range sees nothing; unknown units answer nulls and empty lists.
    let old: Value = env
        .get("/v2/bot/insight/message/event/aggregation?customAggregationUnit=big&from=20200101&to=20200131")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(old["overview"]["uniqueImpression"], Value::Null);
    let none: Value = env.get(&q("nothing")).await.json().await.unwrap();
    assert_eq!(none["messages"], json!([]));
    assert_eq!(none["clicks"], json!([]));
    env.fake.shutdown().await;
}

#[tokio::test]
async fn parameters_are_checked() {
    let env = start(Config::default()).await;
    let resp = env
        .get("/v2/bot/insight/message/event/aggregation?customAggregationUnit=bad-name&from=2024&to=20240101")
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    let mut props = detail_properties(&body);
    props.sort();
    assert_eq!(props, vec!["customAggregationUnit", "from"]);
    let resp = env.get("/v2/bot/insight/message/event/aggregation").await;
    assert_eq!(resp.status(), 400);
    let resp = env
        .http
        .get(format!("{}/v2/bot/insight/message/event/aggregation?customAggregationUnit=a&from=20240101&to=20240101", env.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    env.fake.shutdown().await;
}

#[tokio::test]
async fn admin_endpoints_record_interactions_and_show_recent_messages() {
    let env = start(Config::default()).await;
    let to = users(0..25);
    let body = json!({"to": to, "messages": [{"type": "text", "text": "hello"}], "customAggregationUnits": ["adm"]});
    assert_eq!(
        env.post("/v2/bot/message/multicast", &body, None)
            .await
            .status(),
        200
    );
    let push = json!({"to": to[3], "messages": [{"type": "text", "text": "just you"}]});
    assert_eq!(
        env.post("/v2/bot/message/push", &push, None).await.status(),
        200
    );
    // The messages each recipient was sent, oldest first.
    let got: Value = env
        .get(&format!("/fake/messages?to={}", to[3]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        got["requests"],
        json!([[{"type": "text", "text": "hello"}], [{"type": "text", "text": "just you"}]])
    );
    let other: Value = env
        .get(&format!("/fake/messages?to={}", users(99..100)[0]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(other["requests"], json!([]));

    let post = |b: Value| {
        let env = &env;
        async move {
            env.http
                .post(format!("{}/fake/interactions", env.url))
                .json(&b)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        post(json!({"unit": "adm", "user": to[0], "event": "impression"})).await,
        200
    );
    assert_eq!(
        post(json!({"unit": "adm", "user": to[1], "event": "click", "seq": 1, "url": "https://x.example/a"})).await,
        200
    );
    assert_eq!(
        post(json!({"unit": "adm", "user": users(99..100)[0], "event": "impression"})).await,
        404
    );
    assert_eq!(
        post(json!({"unit": "adm", "user": to[0], "event": "click"})).await,
        400
    );
    let day = today_jst();
    let stats: Value = env
        .get(&format!(
            "/v2/bot/insight/message/event/aggregation?customAggregationUnit=adm&from={day}&to={day}"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats["overview"]["uniqueImpression"], 2,
        "a click implies an impression"
    );
    assert_eq!(stats["overview"]["uniqueClick"], 1);
    assert_eq!(
        stats["clicks"],
        json!([{"seq": 1, "url": "https://x.example/a", "click": 1, "uniqueClick": 1, "uniqueClickOfRequest": 1}])
    );
    env.fake.shutdown().await;
}
