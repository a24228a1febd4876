//! Duplicate accounting: a recipient accepted twice for the same unit and messages is a duplicate (whatever
//! the retry keys), other units are independent, and different messages in one unit are counted apart.

mod common;

use common::*;
use fake_line::Config;
use serde_json::json;

#[tokio::test]
async fn same_recipient_same_unit_under_different_keys_is_a_duplicate() {
    let env = start(Config::default()).await;
    assert_eq!(
        env.multicast(&users(0..5), "camp_a", Some(&retry_key()))
            .await
            .status(),
        200
    );
    // Overlapping batch under a fresh key: users 3 and 4 get the campaign twice.
    assert_eq!(
        env.multicast(&users(3..8), "camp_a", Some(&retry_key()))
            .await
            .status(),
        200
    );
    assert_eq!(
        env.push(&user(0), "camp_a", Some(&retry_key()))
            .await
            .status(),
        200
    );
    // The same users in another campaign are not duplicates.
    assert_eq!(
        env.multicast(&users(0..5), "camp_b", Some(&retry_key()))
            .await
            .status(),
        200
    );

    let s = env.fake.stats();
    assert_eq!(s.recipients_accepted, 16);
    assert_eq!(s.unique_recipients, 13, "8 in camp_a + 5 in camp_b");
    assert_eq!(s.duplicates, 3);
    assert_eq!(s.units["camp_a"].accepted, 11);
    assert_eq!(s.units["camp_a"].unique, 8);
    assert_eq!(s.units["camp_a"].duplicates, 3);
    assert_eq!(s.units["camp_b"].duplicates, 0);
    assert_eq!(s.units["camp_b"].unique, 5);
    env.fake.shutdown().await;
}

#[tokio::test]
async fn different_messages_in_one_unit_are_counted_apart() {
    let env = start(Config::default()).await;
    let a =
        json!({"to": user(1), "messages": text("personal for 1"), "customAggregationUnits": ["p"]});
    let b =
        json!({"to": user(1), "messages": text("something else"), "customAggregationUnits": ["p"]});
    assert_eq!(
        env.post("/v2/bot/message/push", &a, None).await.status(),
        200
    );
    assert_eq!(
        env.post("/v2/bot/message/push", &b, None).await.status(),
        200
    );
    let s = env.fake.stats();
    assert_eq!(s.duplicates, 0);
    assert_eq!(s.other_messages, 1);
    assert_eq!(s.units["p"].other_messages, 1);
    assert_eq!(s.unique_recipients, 1);
    env.fake.shutdown().await;
}

#[tokio::test]
async fn requests_without_a_unit_are_tracked_under_the_empty_unit() {
    let env = start(Config::default()).await;
    for _ in 0..2 {
        let body = json!({"to": [user(1), user(2)], "messages": text("x")});
        assert_eq!(
            env.post("/v2/bot/message/multicast", &body, None)
                .await
                .status(),
            200
        );
    }
    let s = env.fake.stats();
    assert_eq!(s.units[""].duplicates, 2);
    assert_eq!(s.duplicates, 2);
    env.fake.shutdown().await;
}
