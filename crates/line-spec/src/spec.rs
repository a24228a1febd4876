//! The embedded LINE OpenAPI documents, parsed once at first use, and `$ref` resolution into them.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

const MESSAGING_API_YAML: &str = include_str!("../../../spec/line-openapi/messaging-api.yml");
const CHANNEL_ACCESS_TOKEN_YAML: &str =
    include_str!("../../../spec/line-openapi/channel-access-token.yml");

/// One parsed OpenAPI document plus the compiled `pattern`s of its schemas.
pub struct SpecDoc {
    root: Value,
    patterns: HashMap<String, Regex>,
}

static MESSAGING_API: LazyLock<SpecDoc> =
    LazyLock::new(|| SpecDoc::parse(MESSAGING_API_YAML, "messaging-api.yml"));
static CHANNEL_ACCESS_TOKEN: LazyLock<SpecDoc> =
    LazyLock::new(|| SpecDoc::parse(CHANNEL_ACCESS_TOKEN_YAML, "channel-access-token.yml"));

/// LINE's `messaging-api.yml`.
pub fn messaging_api() -> &'static SpecDoc {
    &MESSAGING_API
}

/// LINE's `channel-access-token.yml`.
pub fn channel_access_token() -> &'static SpecDoc {
    &CHANNEL_ACCESS_TOKEN
}

const SCHEMA_PREFIX: &str = "#/components/schemas/";

impl SpecDoc {
    fn parse(yaml: &str, file: &str) -> SpecDoc {
        // The spec is compiled into the binary, so a parse failure is a build-time defect.
        SpecDoc::from_yaml(yaml)
            .unwrap_or_else(|e| panic!("embedded LINE OpenAPI spec {file} does not parse: {e}"))
    }

    /// Parses another OpenAPI 3.0 document (YAML or JSON) to validate against with
    /// [`crate::validate_schema_in`].
    pub fn from_yaml(yaml: &str) -> Result<SpecDoc, String> {
        let root: Value = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        let mut patterns = HashMap::new();
        collect_patterns(&root, &mut patterns);
        Ok(SpecDoc { root, patterns })
    }

    /// The whole document as JSON.
    pub fn root(&self) -> &Value {
        &self.root
    }

    /// `components.schemas.<name>`.
    pub fn schema(&self, name: &str) -> Option<&Value> {
        self.root.get("components")?.get("schemas")?.get(name)
    }

    /// `components.schemas.<name>` with the name borrowed from the document.
    pub fn schema_entry(&self, name: &str) -> Option<(&str, &Value)> {
        let (k, v) = self
            .root
            .get("components")?
            .get("schemas")?
            .as_object()?
            .get_key_value(name)?;
        Some((k.as_str(), v))
    }

    /// Names of every schema under `components.schemas`.
    pub fn schema_names(&self) -> Vec<&str> {
        self.root
            .get("components")
            .and_then(|c| c.get("schemas"))
            .and_then(Value::as_object)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Resolves a local `$ref` (`#/components/schemas/Name`) to its name and schema.
    pub fn resolve<'a>(&'a self, reference: &'a str) -> Option<(&'a str, &'a Value)> {
        let name = reference.strip_prefix(SCHEMA_PREFIX)?;
        Some((name, self.schema(name)?))
    }

    pub(crate) fn pattern(&self, pattern: &str) -> Option<&Regex> {
        self.patterns.get(pattern)
    }

    /// The discriminator values of a polymorphic schema (e.g. `Message` -> text, image, ...) (sorted unless serde_json preserves order).
    pub fn discriminator_values(&self, schema_name: &str) -> Vec<&str> {
        self.schema(schema_name)
            .and_then(|s| s.get("discriminator"))
            .and_then(|d| d.get("mapping"))
            .and_then(Value::as_object)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// Schema names are the last segment of a `$ref`.
pub(crate) fn ref_name(reference: &str) -> &str {
    reference.rsplit('/').next().unwrap_or(reference)
}

fn collect_patterns(v: &Value, out: &mut HashMap<String, Regex>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if k == "pattern"
                    && let Value::String(p) = child
                    && !out.contains_key(p)
                    && let Ok(re) = Regex::new(p)
                {
                    out.insert(p.clone(), re);
                }
                collect_patterns(child, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|c| collect_patterns(c, out)),
        _ => {}
    }
}
