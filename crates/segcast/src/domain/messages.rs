//! `Messages`: 1..5 LINE message objects, validated against LINE's OpenAPI schema and documented limits, and
//! the personalisation placeholders (`{{column}}`) they contain.
//!
//! Content without placeholders is the same for every recipient and goes by multicast (500 recipients per
//! request); content with placeholders is rendered per recipient from segment columns and goes by push.

use super::ParseError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Messages(Vec<Value>);

/// The segment columns a content's placeholders refer to; empty when the content is the same for everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Personalization {
    pub fields: BTreeSet<String>,
}

impl Messages {
    /// Validates `value` (a JSON array of message objects). Every problem is reported with its property path.
    pub fn parse(value: &Value) -> Result<Self, Vec<ParseError>> {
        let limits = line_spec::Limits::default();
        // Tracked links are checked as the URLs they become at send time (a `uri` must be a URI).
        let sample = super::links::with_sample_urls(value);
        let violations = line_spec::validate_messages(&sample, &limits);
        if !violations.is_empty() {
            return Err(violations
                .into_iter()
                .map(|v| ParseError::new(v.property, v.message))
                .collect());
        }
        let messages = value.as_array().cloned().unwrap_or_default();
        let parsed = Self(messages);
        if let Err(e) = parsed.placeholders() {
            return Err(vec![e]);
        }
        Ok(parsed)
    }

    pub fn as_slice(&self) -> &[Value] {
        &self.0
    }

    pub fn to_value(&self) -> Value {
        Value::Array(self.0.clone())
    }

    /// The placeholders used in any string of the messages.
    pub fn placeholders(&self) -> Result<Personalization, ParseError> {
        let mut fields = BTreeSet::new();
        for (i, m) in self.0.iter().enumerate() {
            collect_placeholders(m, &format!("messages[{i}]"), &mut fields)?;
        }
        Ok(Personalization { fields })
    }

    pub fn is_personalized(&self) -> bool {
        self.placeholders()
            .map(|p| !p.fields.is_empty())
            .unwrap_or(false)
    }

    /// The ids of the tracked links (`{{link:ID}}`) the messages use.
    pub fn tracked_links(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for m in &self.0 {
            super::links::collect_link_ids(m, &mut out);
        }
        out
    }

    /// The messages with every `{{field}}` replaced by `attrs[field]` (missing or null values become empty).
    pub fn render(&self, attrs: &serde_json::Map<String, Value>) -> Vec<Value> {
        self.0.iter().map(|m| render_value(m, attrs)).collect()
    }

    /// A stable hash of the messages (hex SHA-256 of their JSON), used to tell contents apart in logs.
    pub fn digest(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(
            serde_json::to_vec(&self.0).unwrap_or_default(),
        ))
    }
}

impl<'de> Deserialize<'de> for Messages {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Messages::parse(&v).map_err(|errs| {
            let first = errs.first().map(|e| e.to_string()).unwrap_or_default();
            serde::de::Error::custom(format!(
                "not valid LINE messages ({} problem(s), first: {first})",
                errs.len()
            ))
        })
    }
}

/// `{{link:ID}}` marks a tracked link: the id of one of the content's registered links.
pub const LINK_PREFIX: &str = "link:";

fn is_field_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

fn collect_placeholders(
    v: &Value,
    path: &str,
    out: &mut BTreeSet<String>,
) -> Result<(), ParseError> {
    match v {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(start) = rest.find("{{") {
                let after = &rest[start + 2..];
                let Some(end) = after.find("}}") else {
                    return Err(ParseError::new(
                        path,
                        "unclosed placeholder: '{{' without '}}'",
                    ));
                };
                let name = after[..end].trim();
                if let Some(link) = name.strip_prefix(LINK_PREFIX) {
                    // A tracked link, rewritten at send time: not a segment column.
                    if !super::links::is_link_id(link.trim()) {
                        return Err(ParseError::new(
                            path,
                            format!(
                                "tracked link {{{{link:{link}}}}} must name a link id (lowercase letters, digits, _)"
                            ),
                        ));
                    }
                    rest = &after[end + 2..];
                    continue;
                }
                if !is_field_name(name) {
                    return Err(ParseError::new(
                        path,
                        format!(
                            "placeholder {{{{{name}}}}} must name a segment column (letters, digits, _)"
                        ),
                    ));
                }
                out.insert(name.to_owned());
                rest = &after[end + 2..];
            }
            Ok(())
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_placeholders(item, &format!("{path}[{i}]"), out)?;
            }
            Ok(())
        }
        Value::Object(map) => {
            for (k, item) in map {
                collect_placeholders(item, &format!("{path}.{k}"), out)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn render_value(v: &Value, attrs: &serde_json::Map<String, Value>) -> Value {
    match v {
        Value::String(s) if s.contains("{{") => {
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(start) = rest.find("{{") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let end = after.find("}}").unwrap_or(after.len());
                let name = after[..end].trim();
                if name.starts_with(LINK_PREFIX) {
                    // Tracked links are rewritten later (crate::click::links), per recipient.
                    out.push_str(&rest[start..(start + 2 + end + 2).min(rest.len())]);
                    rest = after.get(end + 2..).unwrap_or("");
                    continue;
                }
                match attrs.get(name) {
                    Some(Value::String(x)) => out.push_str(x),
                    Some(Value::Null) | None => {}
                    Some(other) => out.push_str(&other.to_string()),
                }
                rest = after.get(end + 2..).unwrap_or("");
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| render_value(i, attrs)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, i)| (k.clone(), render_value(i, attrs)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uniform_content_is_not_personalized() {
        let m = Messages::parse(&json!([{"type":"text","text":"Sale starts today"}])).unwrap();
        assert!(!m.is_personalized());
    }

    #[test]
    fn placeholders_are_found_and_rendered() {
        let m =
            Messages::parse(&json!([{"type":"text","text":"Hi {{ name }}, {{points}} points"}]))
                .unwrap();
        let p = m.placeholders().unwrap();
        assert_eq!(
            p.fields.iter().cloned().collect::<Vec<_>>(),
            vec!["name", "points"]
        );
        let attrs = json!({"name":"Aki","points":120})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(m.render(&attrs)[0]["text"], "Hi Aki, 120 points");
    }

    #[test]
    fn bad_placeholders_are_refused_with_their_path() {
        let errs = Messages::parse(&json!([{"type":"text","text":"Hi {{name"}])).unwrap_err();
        assert_eq!(errs[0].field, "messages[0].text");
        let errs = Messages::parse(&json!([{"type":"text","text":"Hi {{na-me}}"}])).unwrap_err();
        assert!(errs[0].message.contains("segment column"));
    }

    #[test]
    fn tracked_links_are_not_personalisation_and_survive_rendering() {
        let m = Messages::parse(
            &json!([{"type":"text","text":"Sale: {{link:sale}} and {{ link:faq }}"}]),
        )
        .unwrap();
        assert!(!m.is_personalized());
        assert_eq!(
            m.tracked_links().into_iter().collect::<Vec<_>>(),
            vec!["faq", "sale"]
        );
        let p =
            Messages::parse(&json!([{"type":"text","text":"Hi {{name}}: {{link:sale}}"}])).unwrap();
        assert!(p.is_personalized());
        let attrs = json!({"name":"Aki"}).as_object().unwrap().clone();
        assert_eq!(p.render(&attrs)[0]["text"], "Hi Aki: {{link:sale}}");
        let errs = Messages::parse(&json!([{"type":"text","text":"{{link:Bad-Id}}"}])).unwrap_err();
        assert!(errs[0].message.contains("link id"));
    }

    #[test]
    fn schema_violations_are_reported() {
        assert!(Messages::parse(&json!([])).is_err());
        assert!(Messages::parse(&json!([{"type":"text"}])).is_err());
        let six: Vec<_> = (0..6).map(|_| json!({"type":"text","text":"x"})).collect();
        assert!(Messages::parse(&Value::Array(six)).is_err());
    }
}
