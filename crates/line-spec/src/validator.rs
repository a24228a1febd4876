//! A walker that checks a JSON value against a schema of the embedded OpenAPI 3.0 document.
//!
//! Supported keywords (the subset LINE's spec uses): `$ref` to `#/components/schemas/...`, `type`, `nullable`,
//! `enum`, `required`, `properties`, `additionalProperties`, `items`, `minItems`/`maxItems`,
//! `minLength`/`maxLength` (counted in UTF-16 code units, as LINE's Java backend does), `pattern`,
//! `format` (`uri`, `int32`), `minimum`/`maximum` (+ `exclusiveMinimum`/`exclusiveMaximum`), `allOf`,
//! `oneOf`/`anyOf`, and `discriminator` with `mapping`.
//!
//! Discriminators: validating against a polymorphic base (e.g. `Message`) dispatches on the tag property to the
//! mapped subtype (e.g. `TextMessage`); an unknown or missing tag is a violation. A subtype lists its base in
//! `allOf`; when the walker reaches the base from there, it does not dispatch again, it only checks that the tag
//! maps to that subtype (so a `carousel` inside `FlexCarousel.contents`, typed `FlexBubble`, is rejected).

use serde_json::Value;

use crate::Violation;
use crate::spec::{SpecDoc, ref_name};

pub(crate) struct Walker<'s> {
    doc: &'s SpecDoc,
    path: String,
    pub(crate) out: Vec<Violation>,
}

impl<'s> Walker<'s> {
    pub(crate) fn new(doc: &'s SpecDoc, base_path: &str) -> Self {
        Walker {
            doc,
            path: base_path.to_string(),
            out: Vec::new(),
        }
    }

    fn push(&mut self, message: impl Into<String>) {
        self.out.push(Violation {
            property: self.path.clone(),
            message: message.into(),
        });
    }

    fn push_child(&mut self, key: &str, message: impl Into<String>) {
        let len = self.path.len();
        self.enter_key(key);
        self.push(message);
        self.path.truncate(len);
    }

    fn enter_key(&mut self, key: &str) {
        if !self.path.is_empty() {
            self.path.push('.');
        }
        self.path.push_str(key);
    }

    fn enter_index(&mut self, i: usize) {
        use std::fmt::Write;
        let _ = write!(self.path, "[{i}]");
    }

    /// Checks `value` against `schema`. `current` is the component name of `schema` when it was reached by
    /// `$ref`; `via_subtype` is set when `schema` is the base of that subtype, reached through its `allOf`.
    pub(crate) fn check(
        &mut self,
        schema: &'s Value,
        value: &Value,
        current: Option<&'s str>,
        via_subtype: Option<&'s str>,
    ) {
        let Some(s) = schema.as_object() else {
            return;
        };
        if let Some(reference) = s.get("$ref").and_then(Value::as_str) {
            match self.doc.resolve(reference) {
                Some((name, target)) => self.check(target, value, Some(name), via_subtype),
                None => self.push(format!("unresolvable schema reference {reference}")),
            }
            return;
        }

        if value.is_null() {
            if s.get("nullable").and_then(Value::as_bool) == Some(true) {
                return;
            }
            if s.contains_key("type") {
                self.push("must not be null");
                return;
            }
        }

        if let Some(t) = s.get("type").and_then(Value::as_str)
            && !type_matches(t, value)
        {
            self.push(format!("must be of type {t}"));
            return;
        }

        if let Some(options) = s.get("enum").and_then(Value::as_array)
            && !options.contains(value)
        {
            let list: Vec<String> = options
                .iter()
                .map(|o| {
                    o.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| o.to_string())
                })
                .collect();
            self.push(format!("must be one of [{}]", list.join(", ")));
        }

        // Polymorphism first: a dispatch validates the whole value against the subtype (which includes the base).
        if let Some(d) = s.get("discriminator")
            && value.is_object()
            && self.discriminate(d, value, via_subtype)
        {
            return;
        }

        match value {
            Value::String(text) => self.check_string(s, text),
            Value::Number(_) => self.check_number(s, value),
            Value::Array(items) => self.check_array(s, items),
            Value::Object(obj) => self.check_object(s, obj),
            _ => {}
        }

        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            for sub in all {
                // A `$ref` member of a subtype's allOf is its base; inline members are part of this schema.
                let via = if sub.get("$ref").is_some() {
                    current
                } else {
                    via_subtype
                };
                self.check(sub, value, None, via);
            }
        }
        for (keyword, exactly_one) in [("oneOf", true), ("anyOf", false)] {
            if let Some(alternatives) = s.get(keyword).and_then(Value::as_array) {
                self.check_alternatives(alternatives, value, exactly_one);
            }
        }
    }

    /// Handles a `discriminator`. Returns true when the value was dispatched (or rejected) and the caller must
    /// not validate the base's own keywords again.
    fn discriminate(&mut self, d: &'s Value, value: &Value, via_subtype: Option<&'s str>) -> bool {
        let Some(obj) = value.as_object() else {
            return false;
        };
        let Some(prop) = d.get("propertyName").and_then(Value::as_str) else {
            return false;
        };
        let mapping = d.get("mapping").and_then(Value::as_object);
        let doc = self.doc;
        let target_of = |tag: &str| -> Option<(&'s str, &'s Value)> {
            match mapping {
                Some(m) => {
                    let r = m.get(tag)?.as_str()?;
                    if r.starts_with('#') {
                        doc.resolve(r)
                    } else {
                        doc.schema_entry(r)
                    }
                }
                // Without a mapping, OpenAPI 3.0 uses the tag as a schema name.
                None => doc.schema_entry(tag),
            }
        };
        let tags_for = |subtype: Option<&str>| -> Vec<&'s str> {
            mapping
                .map(|m| {
                    m.iter()
                        .filter(|(_, r)| {
                            subtype.is_none_or(|st| r.as_str().map(ref_name) == Some(st))
                        })
                        .map(|(k, _)| k.as_str())
                        .collect()
                })
                .unwrap_or_default()
        };
        match obj.get(prop) {
            None => {
                self.push_child(prop, "must be specified");
                true
            }
            Some(Value::String(tag)) => {
                let target = target_of(tag);
                match via_subtype {
                    Some(sub) => {
                        if target.map(|(name, _)| name) != Some(sub) {
                            let allowed = tags_for(Some(sub));
                            self.push_child(
                                prop,
                                format!(
                                    "must be one of the following values: [{}]",
                                    allowed.join(", ")
                                ),
                            );
                        }
                        false
                    }
                    None => {
                        match target {
                            Some((name, schema)) => self.check(schema, value, Some(name), None),
                            None => {
                                let allowed = tags_for(None);
                                self.push_child(
                                    prop,
                                    format!(
                                        "must be one of the following values: [{}]",
                                        allowed.join(", ")
                                    ),
                                );
                            }
                        }
                        true
                    }
                }
            }
            Some(_) => {
                self.push_child(prop, "must be of type string");
                true
            }
        }
    }

    fn check_alternatives(&mut self, alternatives: &'s [Value], value: &Value, exactly_one: bool) {
        let mut matched = 0;
        let mut best: Option<Vec<Violation>> = None;
        for alt in alternatives {
            let mut w = Walker::new(self.doc, &self.path);
            w.check(alt, value, None, None);
            if w.out.is_empty() {
                matched += 1;
            } else if best.as_ref().is_none_or(|b| w.out.len() < b.len()) {
                best = Some(w.out);
            }
        }
        if matched == 0 {
            self.out.extend(best.unwrap_or_default());
        } else if exactly_one && matched > 1 {
            self.push("must match exactly one schema");
        }
    }

    fn check_string(&mut self, s: &serde_json::Map<String, Value>, text: &str) {
        let min = s.get("minLength").and_then(Value::as_u64);
        let max = s.get("maxLength").and_then(Value::as_u64);
        if min.is_some() || max.is_some() {
            let len = utf16_len(text) as u64;
            if min.is_some_and(|m| len < m) || max.is_some_and(|m| len > m) {
                self.push(format!(
                    "Length must be between {} and {}",
                    min.unwrap_or(0),
                    max.map(|m| m.to_string())
                        .unwrap_or_else(|| "unlimited".into())
                ));
            }
        }
        if let Some(p) = s.get("pattern").and_then(Value::as_str)
            && let Some(re) = self.doc.pattern(p)
            && !re.is_match(text)
        {
            self.push(format!("must match pattern {p}"));
        }
        if s.get("format").and_then(Value::as_str) == Some("uri") && !looks_like_uri(text) {
            self.push("must be a valid URI");
        }
    }

    fn check_number(&mut self, s: &serde_json::Map<String, Value>, value: &Value) {
        let Some(n) = value.as_f64() else {
            return;
        };
        if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
            let exclusive = s.get("exclusiveMinimum").and_then(Value::as_bool) == Some(true);
            if n < min || (exclusive && n == min) {
                let op = if exclusive {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                self.push(format!("must be {op} {min}"));
            }
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
            let exclusive = s.get("exclusiveMaximum").and_then(Value::as_bool) == Some(true);
            if n > max || (exclusive && n == max) {
                let op = if exclusive {
                    "less than"
                } else {
                    "less than or equal to"
                };
                self.push(format!("must be {op} {max}"));
            }
        }
        if s.get("format").and_then(Value::as_str) == Some("int32")
            && (n < i32::MIN as f64 || n > i32::MAX as f64)
        {
            self.push("must be a 32-bit integer");
        }
    }

    fn check_array(&mut self, s: &'s serde_json::Map<String, Value>, items: &[Value]) {
        let min = s.get("minItems").and_then(Value::as_u64);
        let max = s.get("maxItems").and_then(Value::as_u64);
        let len = items.len() as u64;
        if min.is_some_and(|m| len < m) || max.is_some_and(|m| len > m) {
            self.push(size_message(min.unwrap_or(0), max));
        }
        if let Some(item_schema) = s.get("items") {
            let base = self.path.len();
            for (i, item) in items.iter().enumerate() {
                self.enter_index(i);
                self.check(item_schema, item, None, None);
                self.path.truncate(base);
            }
        }
    }

    fn check_object(
        &mut self,
        s: &'s serde_json::Map<String, Value>,
        obj: &serde_json::Map<String, Value>,
    ) {
        if let Some(required) = s.get("required").and_then(Value::as_array) {
            for r in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    self.push_child(r, "must be specified");
                }
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        if let Some(props) = props {
            for (name, sub) in props {
                if let Some(v) = obj.get(name) {
                    let base = self.path.len();
                    self.enter_key(name);
                    self.check(sub, v, None, None);
                    self.path.truncate(base);
                }
            }
        }
        match s.get("additionalProperties") {
            Some(Value::Bool(false)) => {
                for name in obj.keys() {
                    if !props.is_some_and(|p| p.contains_key(name)) {
                        self.push_child(name, "unknown property");
                    }
                }
            }
            Some(extra @ Value::Object(_)) => {
                for (name, v) in obj {
                    if !props.is_some_and(|p| p.contains_key(name)) {
                        let base = self.path.len();
                        self.enter_key(name);
                        self.check(extra, v, None, None);
                        self.path.truncate(base);
                    }
                }
            }
            _ => {}
        }
    }
}

pub(crate) fn size_message(min: u64, max: Option<u64>) -> String {
    match max {
        Some(max) => format!("Size must be between {min} and {max}"),
        None => format!("Size must be at least {min}"),
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => true,
    }
}

/// Length in UTF-16 code units, the unit LINE counts text limits in.
pub fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// An absolute URI: `scheme:` followed by at least one non-space character, no whitespace anywhere.
fn looks_like_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !s.chars().any(char::is_whitespace)
}
