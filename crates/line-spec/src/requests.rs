//! Whole request bodies of the sending and validate endpoints: the spec's request schema, plus the message
//! limits, plus the ID and aggregation-unit rules LINE documents beside the spec.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{is_valid_recipient_id, is_valid_user_id};
use crate::validator::{Walker, size_message};
use crate::{Limits, Violation, dedupe, spec, validate_messages};

/// Which endpoint a request body is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    Push,
    Multicast,
    Narrowcast,
    Broadcast,
    Reply,
    /// `POST /v2/bot/message/validate/{push,multicast,narrowcast,broadcast,reply}`: `{messages}` only.
    Validate,
}

impl RequestKind {
    /// The spec's request schema for this endpoint.
    pub fn schema_name(self) -> &'static str {
        match self {
            RequestKind::Push => "PushMessageRequest",
            RequestKind::Multicast => "MulticastRequest",
            RequestKind::Narrowcast => "NarrowcastRequest",
            RequestKind::Broadcast => "BroadcastRequest",
            RequestKind::Reply => "ReplyMessageRequest",
            RequestKind::Validate => "ValidateMessageRequest",
        }
    }
}

/// Validates a whole request body for `kind`: the spec's request schema, [`validate_messages`] with `limits`,
/// push `to` a user/group/room ID, multicast `to` 1..=`max_multicast_to` user IDs, and push
/// `customAggregationUnits` under the same rules the spec gives multicast (at most 1, `^[a-zA-Z0-9_]{1,30}$`).
pub fn validate_request(kind: RequestKind, body: &Value, limits: &Limits) -> Vec<Violation> {
    let doc = spec::messaging_api();
    let name = kind.schema_name();
    let schema = doc
        .schema(name)
        .expect("LINE spec defines every request schema");
    let mut w = Walker::new(doc, "");
    w.check(schema, body, Some(name), None);
    let mut out = w.out;
    if !body.is_object() {
        return out;
    }
    if let Some(messages) = body.get("messages") {
        out.extend(validate_messages(messages, limits));
    }
    match kind {
        RequestKind::Push => {
            if let Some(to) = body.get("to").and_then(Value::as_str)
                && !is_valid_recipient_id(to)
            {
                out.push(Violation::new(
                    "to",
                    "must be a valid user, group or room ID",
                ));
            }
            if let Some(units) = body.get("customAggregationUnits") {
                let unit_schema = doc
                    .schema("MulticastRequest")
                    .and_then(|s| s.get("properties"))
                    .and_then(|p| p.get("customAggregationUnits"));
                if let Some(unit_schema) = unit_schema {
                    let mut w = Walker::new(doc, "customAggregationUnits");
                    w.check(unit_schema, units, None, None);
                    out.extend(w.out);
                }
            }
        }
        RequestKind::Multicast => {
            if let Some(to) = body.get("to").and_then(Value::as_array) {
                if to.len() > limits.max_multicast_to {
                    out.push(Violation::new(
                        "to",
                        size_message(1, Some(limits.max_multicast_to as u64)),
                    ));
                }
                for (i, id) in to.iter().enumerate() {
                    if let Some(id) = id.as_str()
                        && !is_valid_user_id(id)
                    {
                        out.push(Violation::new(
                            format!("to[{i}]"),
                            "must be a valid user ID",
                        ));
                    }
                }
            }
        }
        _ => {}
    }
    dedupe(out)
}
