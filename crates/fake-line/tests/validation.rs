//! Request bodies are validated against LINE's spec: invalid ones get 400 with LINE's error shape and
//! `details[].property`, malformed JSON 400, oversized bodies 413; the validate endpoints answer 200 with an
//! empty body when valid. Nothing invalid is recorded.

mod common;

use common::*;
use fake_line::Config;
use serde_json::{Value, json};

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn invalid_push_and_multicast_bodies_are_400_with_properties() {
    let env = start(Config::default()).await;
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "/v2/bot/message/push",
            json!({"messages": text("x")}),
            vec!["to"],
        ),
        (
            "/v2/bot/message/push",
            json!({"to": user(1)}),
            vec!["messages"],
        ),
        (
            "/v2/bot/message/push",
            json!({"to": "not-an-id", "messages": text("x")}),
            vec!["to"],
        ),
        (
            "/v2/bot/message/push",
            json!({"to": user(1), "messages": [{"type": "text"}]}),
            vec!["messages[0].text"],
        ),
        (
            "/v2/bot/message/push",
            json!({"to": user(1), "messages": [{"type": "video", "originalContentUrl": "https://e.com/v.mp4"}]}),
            vec!["messages[0].previewImageUrl"],
        ),
        (
            "/v2/bot/message/push",
            json!({"to": user(1), "messages": [{"type": "unknown"}]}),
            vec!["messages[0].type"],
        ),
        (
            "/v2/bot/message/push",
            json!({"to": user(1), "messages": text("x"), "notificationDisabled": 1}),
            vec!["notificationDisabled"],
        ),
        (
            "/v2/bot/message/push",
            json!({"to": user(1), "messages": [{"type": "text", "text": "a".repeat(5001)}]}),
            vec!["messages[0].text"],
        ),
        (
            "/v2/bot/message/multicast",
            json!({"to": [], "messages": text("x")}),
            vec!["to"],
        ),
        (
            "/v2/bot/message/multicast",
            json!({"to": users(0..501), "messages": text("x")}),
            vec!["to"],
        ),
        (
            "/v2/bot/message/multicast",
            json!({"to": [user(1), "Ubad"], "messages": text("x")}),
            vec!["to[1]"],
        ),
        (
            "/v2/bot/message/multicast",
            json!({"to": [user(1)], "messages": [], "customAggregationUnits": ["a", "b"]}),
            vec!["messages", "customAggregationUnits"],
        ),
        (
            "/v2/bot/message/multicast",
            json!({"to": [user(1)], "messages": text("x"), "customAggregationUnits": ["no spaces"]}),
            vec!["customAggregationUnits[0]"],
        ),
        (
            "/v2/bot/message/multicast",
            json!({"to": [user(1)], "messages": [{"type": "template", "altText": "a",
            "template": {"type": "confirm", "text": "?", "actions": [{"type": "uri", "label": "l", "uri": "not a uri"}]}}]}),
            vec!["messages[0].template.actions[0].uri"],
        ),
        (
            "/v2/bot/message/broadcast",
            json!({"messages": (0..6).map(|_| json!({"type": "text", "text": "x"})).collect::<Vec<_>>()}),
            vec!["messages"],
        ),
        (
            "/v2/bot/message/narrowcast",
            json!({"messages": text("x"), "filter": {"demographic": {"type": "age", "gte": "age_99"}}}),
            vec!["filter.demographic.gte"],
        ),
    ];
    for (path, body, expected) in cases {
        let (status, err) = error_of(env.post(path, &body, Some(&retry_key())).await).await;
        assert_eq!(status, 400, "{path} {body}");
        let mut got = detail_properties(&err);
        got.sort();
        let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "{path} {body}: {err}");
        assert_eq!(
            err["message"],
            format!("The request body has {} error(s)", want.len())
        );
        assert!(
            err["details"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["message"].is_string())
        );
    }
    let s = env.fake.stats();
    assert_eq!(s.accepted_requests, 0);
    assert_eq!(s.responses("push", 400), 8);
    assert_eq!(
        s.retry_keys, 0,
        "rejected requests do not record their retry keys"
    );
    env.fake.shutdown().await;
}

#[tokio::test]
async fn malformed_json_is_400_and_oversized_body_is_413() {
    let env = start(Config::default()).await;
    let resp = env
        .http
        .post(format!("{}/v2/bot/message/push", env.url))
        .bearer_auth(&env.token)
        .header("content-type", "application/json")
        .body("{\"to\": ")
        .send()
        .await
        .unwrap();
    let (status, err) = error_of(resp).await;
    assert_eq!(status, 400);
    assert!(err["message"].as_str().unwrap().contains("JSON"));
    assert!(err.get("details").is_none(), "details omitted when empty");

    let big = "a".repeat(2 * 1024 * 1024 + 10);
    let resp = env
        .post(
            "/v2/bot/message/push",
            &json!({"to": user(1), "messages": [{"type": "text", "text": big}]}),
            None,
        )
        .await;
    assert_eq!(resp.status(), 413);
    assert!(resp.json::<Value>().await.unwrap()["message"].is_string());
    assert_eq!(env.fake.stats().accepted_requests, 0);
    env.fake.shutdown().await;
}

#[tokio::test]
async fn validate_endpoints() {
    let env = start(Config::default()).await;
    for kind in ["push", "multicast", "narrowcast", "broadcast", "reply"] {
        let path = format!("/v2/bot/message/validate/{kind}");
        let resp = env
            .post(&path, &json!({"messages": [{"type": "flex", "altText": "x", "contents": {"type": "bubble"}}]}), None)
            .await;
        assert_eq!(resp.status(), 200, "{kind}");
        assert!(resp.headers().contains_key("x-line-request-id"));
        assert!(
            resp.bytes().await.unwrap().is_empty(),
            "empty body when valid"
        );

        let (status, err) = error_of(
            env.post(&path, &json!({"messages": [{"type": "image", "originalContentUrl": "https://e.com/a.jpg"}]}), None)
                .await,
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(detail_properties(&err), vec!["messages[0].previewImageUrl"]);
    }
    // Retry keys are refused outside the four sending endpoints.
    let resp = env
        .post(
            "/v2/bot/message/validate/push",
            &json!({"messages": text("x")}),
            Some(&retry_key()),
        )
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        env.post(
            "/v2/bot/message/validate/other",
            &json!({"messages": text("x")}),
            None
        )
        .await
        .status(),
        404
    );
    let s = env.fake.stats();
    assert_eq!(s.accepted_requests, 0, "validation sends nothing");
    assert_eq!(s.responses("validate", 200), 5);
    env.fake.shutdown().await;
}

#[tokio::test]
async fn configured_limits_apply() {
    let env = start(Config {
        limits: line_spec::Limits {
            max_text_utf16: 10,
            max_multicast_to: 3,
            ..Default::default()
        },
        ..Config::default()
    })
    .await;
    let (status, err) = error_of(env.multicast(&users(0..4), "u", None).await).await;
    assert_eq!(status, 400);
    assert_eq!(detail_properties(&err), vec!["to"]);
    // 5 emoji = 10 UTF-16 units: allowed; 6 are not.
    let ok = json!({"to": user(1), "messages": [{"type": "text", "text": "😀".repeat(5)}]});
    assert_eq!(
        env.post("/v2/bot/message/push", &ok, None).await.status(),
        200
    );
    let bad = json!({"to": user(1), "messages": [{"type": "text", "text": "😀".repeat(6)}]});
    let (status, err) = error_of(env.post("/v2/bot/message/push", &bad, None).await).await;
    assert_eq!(status, 400);
    assert_eq!(detail_properties(&err), vec!["messages[0].text"]);
    env.fake.shutdown().await;
}
