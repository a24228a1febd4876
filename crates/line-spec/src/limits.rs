//! LINE's documented limits that the OpenAPI spec does not encode (message count, text length, quick reply
//! items, ...) and the check of a `messages` array against both the spec's `Message` schema and these limits.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::validator::{Walker, size_message, utf16_len};
use crate::{Violation, dedupe, spec};

/// Limits enforced on top of the spec. Text lengths are counted in UTF-16 code units, as LINE counts them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Messages per request (spec: 1..=5).
    pub max_messages: usize,
    /// `text` of a text / textV2 message (LINE docs: 5,000 characters).
    pub max_text_utf16: usize,
    /// Recipients of one multicast (spec: 1..=500).
    pub max_multicast_to: usize,
    /// Request body size (LINE docs: 2 MB, unconfirmed).
    pub max_body_bytes: usize,
    /// `quickReply.items` (spec: 13).
    pub max_quick_reply_items: usize,
    /// `altText` of template / flex / imagemap messages (LINE docs: 1,500 characters).
    pub max_alt_text_utf16: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_messages: 5,
            max_text_utf16: 5000,
            max_multicast_to: 500,
            max_body_bytes: 2 * 1024 * 1024,
            max_quick_reply_items: 13,
            max_alt_text_utf16: 1500,
        }
    }
}

/// Checks a request's `messages` array: 1..=`max_messages` objects, each valid against the spec's `Message`
/// schema (polymorphic on `type`), with text, altText and quick reply sizes within `limits`.
/// Properties are reported LINE style: `messages`, `messages[0].text`, `messages[1].template.actions[0].uri`.
pub fn validate_messages(messages: &Value, limits: &Limits) -> Vec<Violation> {
    let mut out = Vec::new();
    let Some(items) = messages.as_array() else {
        out.push(Violation::new("messages", "must be of type array"));
        return out;
    };
    if items.is_empty() || items.len() > limits.max_messages {
        out.push(Violation::new(
            "messages",
            size_message(1, Some(limits.max_messages as u64)),
        ));
    }
    let doc = spec::messaging_api();
    let schema = doc
        .schema("Message")
        .expect("LINE spec defines the Message schema");
    for (i, message) in items.iter().enumerate() {
        let base = format!("messages[{i}]");
        let mut w = Walker::new(doc, &base);
        w.check(schema, message, Some("Message"), None);
        out.extend(w.out);
        check_message_limits(&base, message, limits, &mut out);
    }
    dedupe(out)
}

fn check_message_limits(base: &str, message: &Value, limits: &Limits, out: &mut Vec<Violation>) {
    let kind = message.get("type").and_then(Value::as_str);
    if matches!(kind, Some("text" | "textV2"))
        && let Some(text) = message.get("text").and_then(Value::as_str)
        && (text.is_empty() || utf16_len(text) > limits.max_text_utf16)
    {
        // LINE refuses an empty text as well as an overlong one.
        out.push(Violation::new(
            format!("{base}.text"),
            format!("Length must be between 1 and {}", limits.max_text_utf16),
        ));
    }
    if let Some(alt) = message.get("altText").and_then(Value::as_str)
        && utf16_len(alt) > limits.max_alt_text_utf16
    {
        out.push(Violation::new(
            format!("{base}.altText"),
            format!("Length must be between 0 and {}", limits.max_alt_text_utf16),
        ));
    }
    if let Some(items) = message
        .get("quickReply")
        .and_then(|q| q.get("items"))
        .and_then(Value::as_array)
        && items.len() > limits.max_quick_reply_items
    {
        out.push(Violation::new(
            format!("{base}.quickReply.items"),
            size_message(0, Some(limits.max_quick_reply_items as u64)),
        ));
    }
}
