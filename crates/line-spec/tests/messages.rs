//! Message objects against the spec's `Message` schema and LINE's limits: the examples from LINE's Messaging API
//! reference pass; missing fields, wrong types, unknown types, bad enum values and over-long texts fail at the
//! right property.

use line_spec::{Limits, Violation, messaging_api, validate_messages, validate_schema};
use serde_json::{Value, json};

fn check(messages: Value) -> Vec<Violation> {
    validate_messages(&messages, &Limits::default())
}

fn props(v: &[Violation]) -> Vec<&str> {
    v.iter().map(|x| x.property.as_str()).collect()
}

#[track_caller]
fn assert_valid(message: Value) {
    let v = check(json!([message.clone()]));
    assert!(v.is_empty(), "expected {message} to be valid, got {v:?}");
    assert!(validate_schema("Message", &message).is_empty());
}

#[track_caller]
fn assert_single(messages: Value, property: &str, message_contains: &str) {
    let v = check(messages);
    assert_eq!(props(&v), vec![property], "violations: {v:?}");
    assert!(
        v[0].message.contains(message_contains),
        "message {:?} should contain {message_contains:?}",
        v[0].message
    );
}

// Examples below are the request bodies of LINE's Messaging API reference (developers.line.biz).

fn flex_bubble() -> Value {
    json!({
      "type": "bubble",
      "hero": {"type": "image", "url": "https://example.com/cafe.png", "size": "full",
               "aspectRatio": "20:13", "aspectMode": "cover",
               "action": {"type": "uri", "uri": "https://example.com"}},
      "body": {"type": "box", "layout": "vertical", "contents": [
          {"type": "text", "text": "Brown Cafe", "weight": "bold", "size": "xl"},
          {"type": "box", "layout": "baseline", "margin": "md", "contents": [
              {"type": "icon", "size": "sm", "url": "https://example.com/star.png"},
              {"type": "text", "text": "4.0", "size": "sm", "color": "#999999", "margin": "md", "flex": 0}
          ]},
          {"type": "separator"},
          {"type": "text", "contents": [{"type": "span", "text": "Hello", "weight": "bold"}]}
      ]},
      "footer": {"type": "box", "layout": "vertical", "spacing": "sm", "contents": [
          {"type": "button", "style": "link", "height": "sm",
           "action": {"type": "uri", "label": "CALL", "uri": "https://example.com"}},
          {"type": "filler"}
      ], "flex": 0}
    })
}

#[test]
fn reference_examples_are_valid() {
    assert_valid(json!({"type": "text", "text": "Hello, world"}));
    assert_valid(json!({"type": "text", "text": "$ LINE emoji $", "emojis": [
        {"index": 0, "productId": "5ac1bfd5040ab15980c9b435", "emojiId": "001"},
        {"index": 13, "productId": "5ac1bfd5040ab15980c9b435", "emojiId": "002"}]}));
    assert_valid(
        json!({"type": "textV2", "text": "Welcome, {user1}! {laugh}", "substitution": {
        "user1": {"type": "mention", "mentionee": {"type": "user", "userId": "U49585cd0d5cb3b1fdbd1c3c9a3b9e1a9"}},
        "laugh": {"type": "emoji", "productId": "5a8555cfe6256cc92ea23c1a", "emojiId": "002"}}}),
    );
    assert_valid(json!({"type": "sticker", "packageId": "446", "stickerId": "1988"}));
    assert_valid(
        json!({"type": "image", "originalContentUrl": "https://example.com/original.jpg",
                        "previewImageUrl": "https://example.com/preview.jpg"}),
    );
    assert_valid(
        json!({"type": "video", "originalContentUrl": "https://example.com/original.mp4",
                        "previewImageUrl": "https://example.com/preview.jpg", "trackingId": "track-id"}),
    );
    assert_valid(
        json!({"type": "audio", "originalContentUrl": "https://example.com/original.m4a", "duration": 60000}),
    );
    assert_valid(
        json!({"type": "location", "title": "my location", "address": "1-3 Kioicho, Chiyoda-ku, Tokyo",
                        "latitude": 35.67966, "longitude": 139.73669}),
    );
    assert_valid(
        json!({"type": "imagemap", "baseUrl": "https://example.com/bot/images/rm001",
        "altText": "This is an imagemap", "baseSize": {"width": 1040, "height": 1040},
        "video": {"originalContentUrl": "https://example.com/video.mp4", "previewImageUrl": "https://example.com/video_preview.jpg",
                  "area": {"x": 0, "y": 0, "width": 1040, "height": 585},
                  "externalLink": {"linkUri": "https://example.com/see_more.html", "label": "See More"}},
        "actions": [
            {"type": "uri", "linkUri": "https://example.com/", "area": {"x": 0, "y": 586, "width": 520, "height": 454}},
            {"type": "message", "text": "Hello", "area": {"x": 520, "y": 586, "width": 520, "height": 454}}]}),
    );
    assert_valid(
        json!({"type": "template", "altText": "This is a buttons template", "template": {
        "type": "buttons", "thumbnailImageUrl": "https://example.com/bot/images/image.jpg",
        "imageAspectRatio": "rectangle", "imageSize": "cover", "imageBackgroundColor": "#FFFFFF",
        "title": "Menu", "text": "Please select",
        "defaultAction": {"type": "uri", "label": "View detail", "uri": "http://example.com/page/123"},
        "actions": [
            {"type": "postback", "label": "Buy", "data": "action=buy&itemid=123"},
            {"type": "postback", "label": "Add to cart", "data": "action=add&itemid=123"},
            {"type": "uri", "label": "View detail", "uri": "http://example.com/page/123"}]}}),
    );
    assert_valid(
        json!({"type": "template", "altText": "this is a confirm template", "template": {
        "type": "confirm", "text": "Are you sure?", "actions": [
            {"type": "message", "label": "Yes", "text": "yes"},
            {"type": "message", "label": "No", "text": "no"}]}}),
    );
    assert_valid(
        json!({"type": "template", "altText": "this is a carousel template", "template": {
        "type": "carousel", "columns": [{
            "thumbnailImageUrl": "https://example.com/bot/images/item1.jpg", "title": "this is menu",
            "text": "description", "actions": [
                {"type": "datetimepicker", "label": "Select date", "data": "storeId=12345", "mode": "datetime",
                 "initial": "2017-12-25t00:00", "max": "2018-01-24t23:59", "min": "2017-12-25t00:00"}]}],
        "imageAspectRatio": "rectangle", "imageSize": "cover"}}),
    );
    assert_valid(
        json!({"type": "template", "altText": "this is an image carousel template", "template": {
        "type": "image_carousel", "columns": [
            {"imageUrl": "https://example.com/bot/images/item1.jpg",
             "action": {"type": "postback", "label": "Buy", "data": "action=buy&itemid=111"}}]}}),
    );
    assert_valid(
        json!({"type": "flex", "altText": "this is a flex message", "contents": flex_bubble()}),
    );
    assert_valid(json!({"type": "flex", "altText": "carousel", "contents": {
        "type": "carousel", "contents": [flex_bubble(), {"type": "bubble", "size": "micro"}]}}));
    assert_valid(
        json!({"type": "text", "text": "Select your favorite food category or send me your location!",
        "quickReply": {"items": [
            {"type": "action", "imageUrl": "https://example.com/sushi.png",
             "action": {"type": "message", "label": "Sushi", "text": "Sushi"}},
            {"type": "action", "action": {"type": "location", "label": "Send location"}},
            {"type": "action", "action": {"type": "camera", "label": "Camera"}},
            {"type": "action", "action": {"type": "clipboard", "label": "Copy", "clipboardText": "3B48740B"}}]},
        "sender": {"name": "Cony", "iconUrl": "https://line.me/conyprof"}}),
    );
    assert_valid(json!({"type": "coupon", "couponId": "01JYNW8JMQVFBNZB3GZBEBT2VH"}));
}

#[test]
fn five_messages_pass_six_and_zero_fail() {
    let text = json!({"type": "text", "text": "hi"});
    assert!(check(json!([text, text, text, text, text])).is_empty());
    assert_single(
        json!([text, text, text, text, text, text]),
        "messages",
        "between 1 and 5",
    );
    assert_single(json!([]), "messages", "between 1 and 5");
    assert_single(json!({"type": "text"}), "messages", "array");
}

#[test]
fn missing_required_fields_are_reported_per_message() {
    assert_single(
        json!([{"type": "text"}]),
        "messages[0].text",
        "must be specified",
    );
    assert_single(
        json!([{"type": "text", "text": "ok"}, {"type": "sticker", "packageId": "446"}]),
        "messages[1].stickerId",
        "must be specified",
    );
    let v = check(json!([{"type": "image"}]));
    assert_eq!(
        props(&v),
        vec![
            "messages[0].originalContentUrl",
            "messages[0].previewImageUrl"
        ]
    );
    assert_single(
        json!([{"type": "template", "altText": "x", "template": {"type": "buttons", "text": "t"}}]),
        "messages[0].template.actions",
        "must be specified",
    );
    assert_single(
        json!([{"type": "flex", "altText": "x", "contents": {"type": "bubble",
            "body": {"type": "box", "layout": "vertical"}}}]),
        "messages[0].contents.body.contents",
        "must be specified",
    );
}

#[test]
fn wrong_types_fail() {
    assert_single(
        json!([{"type": "text", "text": 42}]),
        "messages[0].text",
        "string",
    );
    assert_single(
        json!([{"type": "audio", "originalContentUrl": "https://e.com/a.m4a", "duration": "60s"}]),
        "messages[0].duration",
        "integer",
    );
    assert_single(
        json!([{"type": "location", "title": "t", "address": "a", "latitude": "35.6", "longitude": 139.7}]),
        "messages[0].latitude",
        "number",
    );
    assert_single(json!(["hello"]), "messages[0]", "object");
    assert_single(
        json!([{"type": "text", "text": "x", "quickReply": {"items": "no"}}]),
        "messages[0].quickReply.items",
        "array",
    );
    assert_single(
        json!([{"type": "image", "originalContentUrl": "not a url", "previewImageUrl": "https://e.com/p.jpg"}]),
        "messages[0].originalContentUrl",
        "URI",
    );
}

#[test]
fn unknown_or_missing_type_fails() {
    assert_single(
        json!([{"type": "fax", "text": "x"}]),
        "messages[0].type",
        "must be one of the following values",
    );
    assert!(
        check(json!([{"type": "fax"}]))[0]
            .message
            .contains("textV2")
    );
    assert_single(
        json!([{"text": "x"}]),
        "messages[0].type",
        "must be specified",
    );
    assert_single(json!([{"type": 3}]), "messages[0].type", "string");
    // Nested polymorphic objects: template types, action types, flex component types.
    assert_single(
        json!([{"type": "template", "altText": "x", "template": {"type": "list", "columns": []}}]),
        "messages[0].template.type",
        "buttons",
    );
    assert_single(
        json!([{"type": "template", "altText": "x", "template": {"type": "confirm", "text": "?",
            "actions": [{"type": "message", "label": "y", "text": "y"}, {"type": "teleport", "label": "n"}]}}]),
        "messages[0].template.actions[1].type",
        "postback",
    );
    assert_single(
        json!([{"type": "flex", "altText": "x", "contents": {"type": "bubble",
            "body": {"type": "box", "layout": "vertical", "contents": [{"type": "marquee"}]}}}]),
        "messages[0].contents.body.contents[0].type",
        "separator",
    );
    // A carousel's contents are bubbles: another carousel in there is rejected.
    assert_single(
        json!([{"type": "flex", "altText": "x", "contents": {"type": "carousel",
            "contents": [{"type": "carousel", "contents": []}]}}]),
        "messages[0].contents.contents[0].type",
        "bubble",
    );
}

#[test]
fn bad_enum_values_fail() {
    assert_single(
        json!([{"type": "flex", "altText": "x", "contents": {"type": "bubble", "size": "huge"}}]),
        "messages[0].contents.size",
        "must be one of [nano, micro",
    );
    let mut bubble = flex_bubble();
    bubble["footer"]["contents"][0]["style"] = json!("fancy");
    assert_single(
        json!([{"type": "flex", "altText": "x", "contents": bubble}]),
        "messages[0].contents.footer.contents[0].style",
        "primary, secondary, link",
    );
    assert_single(
        json!([{"type": "flex", "altText": "x", "contents": {"type": "bubble",
            "body": {"type": "box", "layout": "diagonal", "contents": []}}}]),
        "messages[0].contents.body.layout",
        "horizontal, vertical, baseline",
    );
    assert_single(
        json!([{"type": "template", "altText": "x", "template": {"type": "confirm", "text": "?",
            "actions": [{"type": "datetimepicker", "label": "d", "data": "x", "mode": "week"}]}}]),
        "messages[0].template.actions[0].mode",
        "date, time, datetime",
    );
}

#[test]
fn text_length_counts_utf16_units() {
    let limits = Limits::default();
    let max = limits.max_text_utf16;
    assert!(check(json!([{"type": "text", "text": "a".repeat(max)}])).is_empty());
    assert_single(
        json!([{"type": "text", "text": "a".repeat(max + 1)}]),
        "messages[0].text",
        "between 1 and 5000",
    );
    // LINE refuses an empty text too.
    assert_single(
        json!([{"type": "text", "text": ""}]),
        "messages[0].text",
        "between 1 and 5000",
    );
    // An emoji outside the BMP is one char but two UTF-16 units.
    let emoji = "😀";
    assert_eq!(line_spec::utf16_len(emoji), 2);
    assert!(check(json!([{"type": "text", "text": emoji.repeat(max / 2)}])).is_empty());
    let too_long = emoji.repeat(max / 2 + 1);
    assert!(
        too_long.chars().count() < max,
        "fewer chars than the limit, more UTF-16 units"
    );
    assert_single(
        json!([{"type": "text", "text": too_long}]),
        "messages[0].text",
        "5000",
    );
    // textV2 too; and a configured limit applies.
    let small = Limits {
        max_text_utf16: 10,
        ..Limits::default()
    };
    let v = validate_messages(&json!([{"type": "textV2", "text": "12345678901"}]), &small);
    assert_eq!(props(&v), vec!["messages[0].text"]);
}

#[test]
fn alt_text_and_quick_reply_limits() {
    assert_single(
        json!([{"type": "flex", "altText": "x".repeat(1501), "contents": {"type": "bubble"}}]),
        "messages[0].altText",
        "between 0 and 1500",
    );
    let item = json!({"type": "action", "action": {"type": "message", "label": "a", "text": "a"}});
    let items: Vec<Value> = (0..13).map(|_| item.clone()).collect();
    assert!(
        check(json!([{"type": "text", "text": "q", "quickReply": {"items": items}}])).is_empty()
    );
    let items: Vec<Value> = (0..14).map(|_| item.clone()).collect();
    assert_single(
        json!([{"type": "text", "text": "q", "quickReply": {"items": items}}]),
        "messages[0].quickReply.items",
        "13",
    );
}

#[test]
fn spec_constraints_inside_messages_are_enforced() {
    // PostbackAction.data maxLength 300, ClipboardAction.clipboardText 1..1000, Sender.name maxLength 20.
    assert_single(
        json!([{"type": "template", "altText": "x", "template": {"type": "buttons", "text": "t",
            "actions": [{"type": "postback", "label": "p", "data": "d".repeat(301)}]}}]),
        "messages[0].template.actions[0].data",
        "between 0 and 300",
    );
    assert_single(
        json!([{"type": "text", "text": "x", "quickReply": {"items": [
            {"type": "action", "action": {"type": "clipboard", "label": "c", "clipboardText": ""}}]}}]),
        "messages[0].quickReply.items[0].action.clipboardText",
        "between 1 and 1000",
    );
    assert_single(
        json!([{"type": "text", "text": "x", "sender": {"name": "n".repeat(21)}}]),
        "messages[0].sender.name",
        "between 0 and 20",
    );
    assert_single(
        json!([{"type": "text", "text": "x", "quickReply": {"items": [
            {"type": "action", "action": {"type": "clipboard", "label": "c"}}]}}]),
        "messages[0].quickReply.items[0].action.clipboardText",
        "must be specified",
    );
}

#[test]
fn several_violations_are_all_reported() {
    let v = check(json!([
        {"type": "text"},
        {"type": "sticker", "packageId": 1, "stickerId": "2"},
        {"type": "nope"}
    ]));
    assert_eq!(
        props(&v),
        vec![
            "messages[0].text",
            "messages[1].packageId",
            "messages[2].type"
        ]
    );
}

#[test]
fn message_types_come_from_the_spec() {
    let types = messaging_api().discriminator_values("Message");
    for t in [
        "text", "textV2", "sticker", "image", "video", "audio", "location", "imagemap", "template",
        "flex", "coupon",
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    assert!(
        messaging_api()
            .discriminator_values("Action")
            .contains(&"postback")
    );
}
