//! line-spec: validation of LINE Messaging API request bodies, derived from LINE's official OpenAPI spec.
//!
//! The spec (`spec/line-openapi/messaging-api.yml`, plus `channel-access-token.yml`) is compiled in and parsed
//! once, at first use. Nothing is hand-copied from it: [`validate_schema`] walks the spec's own schemas
//! (`$ref`, `allOf`, `discriminator` mappings, `required`, `enum`, sizes, patterns, ...). On top of that,
//! [`validate_messages`] and [`validate_request`] add the limits LINE documents outside the spec ([`Limits`]:
//! 5 messages, 5,000 UTF-16 units of text, 500 multicast recipients, ...) and the user ID format.
//!
//! Violations name the offending property the way LINE's error `details[].property` does: `to`,
//! `messages[0].text`, `messages[1].template.actions[0].uri`.

mod ids;
mod limits;
mod requests;
mod spec;
mod validator;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use ids::{is_valid_recipient_id, is_valid_user_id};
pub use limits::{Limits, validate_messages};
pub use requests::{RequestKind, validate_request};
pub use spec::{SpecDoc, channel_access_token, messaging_api};
pub use validator::utf16_len;

/// One problem found in a request body, shaped like an entry of LINE's error `details`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Violation {
    /// Where, LINE style: `messages[0].text`; empty for the body itself.
    pub property: String,
    /// What, e.g. `must be specified`, `Size must be between 1 and 5`.
    pub message: String,
}

impl Violation {
    pub fn new(property: impl Into<String>, message: impl Into<String>) -> Self {
        Violation {
            property: property.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.property.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.property, self.message)
        }
    }
}

/// Validates `value` against `components.schemas.<schema_name>` of LINE's messaging API spec, e.g.
/// `PushMessageRequest`, `MulticastRequest`, `Message`, `FlexContainer`. An unknown schema name is reported as a
/// single violation with an empty property.
pub fn validate_schema(schema_name: &str, value: &Value) -> Vec<Violation> {
    validate_schema_in(messaging_api(), schema_name, value)
}

/// [`validate_schema`] against another embedded document (e.g. [`channel_access_token`]).
pub fn validate_schema_in(doc: &SpecDoc, schema_name: &str, value: &Value) -> Vec<Violation> {
    let Some(schema) = doc.schema(schema_name) else {
        return vec![Violation::new(
            "",
            format!("unknown schema '{schema_name}'"),
        )];
    };
    let mut w = validator::Walker::new(doc, "");
    w.check(schema, value, Some(schema_name), None);
    dedupe(w.out)
}

/// Drops repeated violations (the same property and message), keeping the first.
fn dedupe(v: Vec<Violation>) -> Vec<Violation> {
    let mut seen = std::collections::HashSet::new();
    v.into_iter().filter(|x| seen.insert(x.clone())).collect()
}
