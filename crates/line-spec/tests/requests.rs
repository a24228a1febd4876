//! Whole request bodies (push, multicast, narrowcast, broadcast, validate) against the spec's request schemas
//! and LINE's ID rules, and the user ID format.

use line_spec::{
    Limits, RequestKind, Violation, is_valid_recipient_id, is_valid_user_id, validate_request,
    validate_schema,
};
use serde_json::{Value, json};

const USER: &str = "U8189cf6745fc0d808977bdb0b9f22995";

fn props(v: &[Violation]) -> Vec<&str> {
    v.iter().map(|x| x.property.as_str()).collect()
}

fn user(i: usize) -> String {
    format!("U{i:032x}")
}

#[test]
fn user_ids() {
    assert!(is_valid_user_id(USER));
    assert!(
        !is_valid_user_id("U8189CF6745FC0D808977BDB0B9F22995"),
        "uppercase hex"
    );
    assert!(
        !is_valid_user_id("U8189cf6745fc0d808977bdb0b9f2299"),
        "31 digits"
    );
    assert!(
        !is_valid_user_id("U8189cf6745fc0d808977bdb0b9f229955"),
        "33 digits"
    );
    assert!(
        !is_valid_user_id("C8189cf6745fc0d808977bdb0b9f22995"),
        "group"
    );
    assert!(!is_valid_user_id("U8189cf6745fc0d808977bdb0b9f2299g"));
    assert!(!is_valid_user_id(""));
    assert!(is_valid_recipient_id("C8189cf6745fc0d808977bdb0b9f22995"));
    assert!(is_valid_recipient_id("R8189cf6745fc0d808977bdb0b9f22995"));
    assert!(!is_valid_recipient_id("X8189cf6745fc0d808977bdb0b9f22995"));
}

#[test]
fn push_request() {
    let ok = json!({"to": USER, "messages": [{"type": "text", "text": "Hello, world1"}],
                    "notificationDisabled": false, "customAggregationUnits": ["promotion_a"]});
    assert!(validate_schema("PushMessageRequest", &ok).is_empty());
    assert!(validate_request(RequestKind::Push, &ok, &Limits::default()).is_empty());

    let v = validate_request(
        RequestKind::Push,
        &json!({"messages": [{"type": "text", "text": "x"}]}),
        &Limits::default(),
    );
    assert_eq!(props(&v), vec!["to"]);
    assert_eq!(v[0].message, "must be specified");

    let v = validate_request(
        RequestKind::Push,
        &json!({"to": "bob", "messages": [{"type": "text", "text": "x"}]}),
        &Limits::default(),
    );
    assert_eq!(props(&v), vec!["to"]);

    let v = validate_request(
        RequestKind::Push,
        &json!({"to": USER, "messages": [{"type": "text", "text": "x"}], "notificationDisabled": "yes"}),
        &Limits::default(),
    );
    assert_eq!(props(&v), vec!["notificationDisabled"]);
    assert!(v[0].message.contains("boolean"));

    // The spec leaves push's customAggregationUnits unconstrained; LINE applies multicast's rules.
    let v = validate_request(
        RequestKind::Push,
        &json!({"to": USER, "messages": [{"type": "text", "text": "x"}], "customAggregationUnits": ["bad-name!"]}),
        &Limits::default(),
    );
    assert_eq!(props(&v), vec!["customAggregationUnits[0]"]);

    let v = validate_request(RequestKind::Push, &json!([1, 2]), &Limits::default());
    assert_eq!(props(&v), vec![""]);
    assert!(v[0].message.contains("object"));
}

#[test]
fn multicast_request() {
    let to: Vec<String> = (0..500).map(user).collect();
    let ok = json!({"to": to, "messages": [{"type": "text", "text": "Hello"}], "customAggregationUnits": ["campaign_42"]});
    assert!(validate_request(RequestKind::Multicast, &ok, &Limits::default()).is_empty());

    let to: Vec<String> = (0..501).map(user).collect();
    let v = validate_request(
        RequestKind::Multicast,
        &json!({"to": to, "messages": [{"type": "text", "text": "x"}]}),
        &Limits::default(),
    );
    assert_eq!(props(&v), vec!["to"]);
    assert_eq!(v[0].message, "Size must be between 1 and 500");

    let v = validate_request(
        RequestKind::Multicast,
        &json!({"to": [], "messages": [{"type": "text", "text": "x"}]}),
        &Limits::default(),
    );
    assert_eq!(props(&v), vec!["to"]);

    let v = validate_request(
        RequestKind::Multicast,
        &json!({"to": [USER, "Cdeadbeef", 7], "messages": [{"type": "text", "text": "x"}]}),
        &Limits::default(),
    );
    assert_eq!(props(&v), vec!["to[2]", "to[1]"]);

    let v = validate_request(
        RequestKind::Multicast,
        &json!({"to": [USER], "messages": [{"type": "text", "text": "x"}], "customAggregationUnits": ["a", "b"]}),
        &Limits::default(),
    );
    assert_eq!(props(&v), vec!["customAggregationUnits"]);
    let v = validate_request(
        RequestKind::Multicast,
        &json!({"to": [USER], "messages": [{"type": "text", "text": "x"}], "customAggregationUnits": ["x".repeat(31)]}),
        &Limits::default(),
    );
    assert_eq!(
        props(&v),
        vec!["customAggregationUnits[0]", "customAggregationUnits[0]"],
        "{v:?}"
    );

    // A configured lower recipient limit is applied on top of the spec.
    let small = Limits {
        max_multicast_to: 2,
        ..Limits::default()
    };
    let v = validate_request(
        RequestKind::Multicast,
        &json!({"to": [user(1), user(2), user(3)], "messages": [{"type": "text", "text": "x"}]}),
        &small,
    );
    assert_eq!(props(&v), vec!["to"]);

    // Message problems inside a request, and missing messages.
    let v = validate_request(
        RequestKind::Multicast,
        &json!({"to": [USER], "messages": [{"type": "text"}]}),
        &Limits::default(),
    );
    assert_eq!(props(&v), vec!["messages[0].text"]);
    let v = validate_request(
        RequestKind::Multicast,
        &json!({"to": [USER]}),
        &Limits::default(),
    );
    assert_eq!(props(&v), vec!["messages"]);
}

#[test]
fn narrowcast_and_broadcast_requests() {
    let ok = json!({
        "messages": [{"type": "text", "text": "test message"}],
        "recipient": {"type": "operator", "and": [
            {"type": "audience", "audienceGroupId": 5614991017776_i64},
            {"type": "operator", "not": {"type": "audience", "audienceGroupId": 4389303728991_i64}}]},
        "filter": {"demographic": {"type": "operator", "or": [
            {"type": "operator", "and": [
                {"type": "gender", "oneOf": ["male", "female"]},
                {"type": "age", "gte": "age_20", "lt": "age_25"},
                {"type": "appType", "oneOf": ["android", "ios"]},
                {"type": "area", "oneOf": ["jp_23", "jp_05"]},
                {"type": "subscriptionPeriod", "gte": "day_7", "lt": "day_30"}]},
            {"type": "operator", "and": [{"type": "age", "gte": "age_35", "lt": "age_40"},
                                         {"type": "operator", "not": {"type": "gender", "oneOf": ["male"]}}]}]}},
        "limit": {"max": 100, "upToRemainingQuota": true}
    });
    let v = validate_request(RequestKind::Narrowcast, &ok, &Limits::default());
    assert!(v.is_empty(), "{v:?}");

    let mut bad = ok.clone();
    bad["filter"]["demographic"]["or"][0]["and"][1]["gte"] = json!("age_99");
    bad["recipient"]["and"][0]["type"] = json!("everyone");
    bad["limit"]["max"] = json!(0);
    let v = validate_request(RequestKind::Narrowcast, &bad, &Limits::default());
    let mut got = props(&v);
    got.sort();
    assert_eq!(
        got,
        vec![
            "filter.demographic.or[0].and[1].gte",
            "limit.max",
            "recipient.and[0].type"
        ],
        "{v:?}"
    );

    assert!(
        validate_request(
            RequestKind::Broadcast,
            &json!({"messages": [{"type": "sticker", "packageId": "446", "stickerId": "1988"}]}),
            &Limits::default()
        )
        .is_empty()
    );
    let v = validate_request(
        RequestKind::Broadcast,
        &json!({"messages": []}),
        &Limits::default(),
    );
    assert_eq!(props(&v), vec!["messages"]);
}

#[test]
fn validate_endpoint_request() {
    let ok = json!({"messages": [{"type": "text", "text": "Hello"}]});
    assert!(validate_request(RequestKind::Validate, &ok, &Limits::default()).is_empty());
    let six: Vec<Value> = (0..6)
        .map(|_| json!({"type": "text", "text": "x"}))
        .collect();
    let v = validate_request(
        RequestKind::Validate,
        &json!({"messages": six}),
        &Limits::default(),
    );
    assert_eq!(props(&v), vec!["messages"]);
}

#[test]
fn unknown_schema_name_is_a_violation() {
    let v = validate_schema("NoSuchSchema", &json!({}));
    assert_eq!(v.len(), 1);
    assert!(v[0].message.contains("unknown schema"));
}

#[test]
fn response_schemas_validate_too() {
    assert!(
        validate_schema(
            "PushMessageResponse",
            &json!({"sentMessages": [{"id": "461230966842064897", "quoteToken": "IStG5h1Tz7b..."}]})
        )
        .is_empty()
    );
    assert!(
        validate_schema(
            "MessageQuotaResponse",
            &json!({"type": "limited", "value": 1000})
        )
        .is_empty()
    );
    let v = validate_schema("MessageQuotaResponse", &json!({"type": "unlimited"}));
    assert_eq!(props(&v), vec!["type"]);
    let v = validate_schema("ErrorResponse", &json!({"details": []}));
    assert_eq!(props(&v), vec!["message"]);
}

#[test]
fn channel_access_token_spec_is_embedded() {
    let doc = line_spec::channel_access_token();
    let ok = json!({"grant_type": "client_credentials", "client_id": "1234", "client_secret": "s"});
    assert!(
        line_spec::validate_schema_in(doc, "IssueStatelessChannelTokenByClientSecretRequest", &ok)
            .is_empty()
    );
    let v = line_spec::validate_schema_in(
        doc,
        "IssueStatelessChannelTokenByClientSecretRequest",
        &json!({"grant_type": "password", "client_id": "1234"}),
    );
    let mut got = props(&v);
    got.sort();
    assert_eq!(got, vec!["client_secret", "grant_type"]);
}
