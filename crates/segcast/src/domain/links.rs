//! The syntax of tracked links in content: `{{link:ID}}` where a URL goes. What they become at send time (signed
//! click URLs) is [`crate::click::links`]'s.

use serde_json::Value;
use std::collections::BTreeSet;

const LINK_PREFIX: &str = "link:";

/// A tracked link's id within its content: `[a-z][a-z0-9_]{0,31}`.
pub fn is_link_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.as_bytes()[0].is_ascii_lowercase()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Calls `f` with each `{{link:ID}}` id in `s`, and returns `s` with each replaced by `f`'s answer.
pub fn replace_links(s: &str, mut f: impl FnMut(&str) -> String) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim();
        out.push_str(&rest[..start]);
        match name.strip_prefix(LINK_PREFIX) {
            Some(id) => out.push_str(&f(id.trim())),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

pub fn map_strings(v: &Value, f: &mut dyn FnMut(&str) -> Value) -> Value {
    match v {
        Value::String(s) if s.contains("{{") => f(s),
        Value::Array(items) => Value::Array(items.iter().map(|i| map_strings(i, f)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, i)| (k.clone(), map_strings(i, f)))
                .collect(),
        ),
        other => other.clone(),
    }
}

pub fn collect_link_ids(v: &Value, out: &mut BTreeSet<String>) {
    map_strings(v, &mut |s| {
        replace_links(s, |id| {
            out.insert(id.to_owned());
            String::new()
        });
        Value::Null
    });
}

/// `v` with each tracked link replaced by a URL as long as a real one, for validation against LINE's schema.
pub fn with_sample_urls(v: &Value) -> Value {
    let sample = format!("https://click.example/c/{}", "A".repeat(140));
    map_strings(v, &mut |s| {
        Value::String(replace_links(s, |_| sample.clone()))
    })
}
