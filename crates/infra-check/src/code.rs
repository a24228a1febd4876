//! What the code expects of the infrastructure, taken from the segcast crate itself (its settings, its
//! compiled-in SQL, its log row type) and the repository's `datastore/index.yaml`, not restated here.

use anyhow::Context as _;
use segcast::domain::{DeliveryLogRow, FailureReason, Outcome};
use serde_json::Value as Json;
use std::path::Path;

/// A BigQuery column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// As written in the DDL, upper case: `STRING`, `INT64`, `ARRAY<STRING>`, `TIMESTAMP`, ...
    pub ty: String,
    pub nullable: bool,
}

/// A field of a JSON log row, as the code writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// The BigQuery types a BigQuery subscription can write this JSON value into.
    pub accepts: Vec<String>,
    /// Whether the code ever writes `null` here.
    pub nullable: bool,
}

#[derive(Debug, Clone)]
pub struct Code {
    /// `segcast::sql::DDL`: (file under sql/, text), in the order they must run.
    pub ddl: Vec<(String, String)>,
    /// The fields of a delivery-log row (`segcast::domain::DeliveryLogRow`) as serialized.
    pub log_row: Vec<Field>,
    /// The fields of a click row (`segcast::click::ClickRow`) as serialized.
    pub click_row: Vec<Field>,
    /// The table delivery-log rows go to.
    pub log_table: String,
    /// The table click rows go to.
    pub click_table: String,
    /// `segcast::pipeline::provision::MAX_DELIVERY_ATTEMPTS`.
    pub max_delivery_attempts: i64,
    /// `datastore/index.yaml`'s `indexes`.
    pub datastore_indexes: Vec<Json>,
    /// `cloudbuild.yaml`, parsed.
    pub cloudbuild: Json,
    /// Every environment variable the services read (the code's table of settings): a variable terraform
    /// sets that is not among them is a typo the code would silently ignore.
    pub env_names: Vec<String>,
    /// Package names under `services/` and `functions/`: the binaries there are.
    pub packages: Vec<String>,
    /// How the code names a LINE channel's secret in Secret Manager (`ChannelSecrets::secret_id` in
    /// `crates/segcast/src/line/secrets.rs`): the text before and after the channel ID. `None` when it cannot
    /// be found.
    pub channel_secret_name: Option<(String, String)>,
}

impl Code {
    /// From the segcast crate and the repository at `repo`.
    pub fn from_crate(repo: &Path) -> anyhow::Result<Self> {
        let index: Json = serde_yaml::from_str(
            &std::fs::read_to_string(repo.join("datastore/index.yaml"))
                .context("reading datastore/index.yaml")?,
        )
        .context("parsing datastore/index.yaml")?;
        Ok(Self {
            ddl: segcast::sql::DDL
                .iter()
                .map(|s| (s.file.to_owned(), s.text.to_owned()))
                .collect(),
            log_row: log_row_fields(),
            click_row: click_row_fields(),
            log_table: table_of(segcast::sql::DELIVERY_LOGS.text).unwrap_or_default(),
            click_table: table_of(segcast::sql::CLICK_LOGS.text).unwrap_or_default(),
            max_delivery_attempts: segcast::pipeline::provision::MAX_DELIVERY_ATTEMPTS.into(),
            datastore_indexes: index
                .get("indexes")
                .and_then(Json::as_array)
                .cloned()
                .unwrap_or_default(),
            cloudbuild: serde_yaml::from_str(
                &std::fs::read_to_string(repo.join("cloudbuild.yaml"))
                    .context("reading cloudbuild.yaml")?,
            )
            .context("parsing cloudbuild.yaml")?,
            env_names: env_names(),
            packages: packages(repo),
            channel_secret_name: channel_secret_name(repo),
        })
    }

    /// The name of `channel`'s secret, as the code writes and reads it.
    pub fn channel_secret(&self, channel: &str) -> Option<String> {
        self.channel_secret_name
            .as_ref()
            .map(|(before, after)| format!("{before}{channel}{after}"))
    }

    /// The DDL text of a table created by one of the `ddl` files.
    pub fn table_ddl(&self, table: &str) -> Option<&str> {
        self.ddl
            .iter()
            .map(|(_, t)| t.as_str())
            .find(|t| table_of(t).as_deref() == Some(table))
    }
}

/// The `[package] name` of each crate under `services/` and `functions/`.
pub fn packages(repo: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["services", "functions"] {
        let Ok(entries) = std::fs::read_dir(repo.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(toml) = std::fs::read_to_string(e.path().join("Cargo.toml")) else {
                continue;
            };
            if let Some(name) = toml
                .lines()
                .find_map(|l| l.trim().strip_prefix("name = \""))
                .and_then(|l| l.strip_suffix('"'))
            {
                out.push(name.to_owned());
            }
        }
    }
    out.sort();
    out
}

/// The `format!("<before>{channel}<after>")` in `fn secret_id` of `crates/segcast/src/line/secrets.rs` (the
/// function is private to the crate, so it is read from the source, as the environment variable names are).
pub fn channel_secret_name(repo: &Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(repo.join("crates/segcast/src/line/secrets.rs")).ok()?;
    let body = &text[text.find("fn secret_id(")?..];
    let body = &body[..body.find("\n    }")?];
    let fmt = &body[body.find("format!(\"")? + "format!(\"".len()..];
    let fmt = &fmt[..fmt.find('"')?];
    let (before, after) = fmt.split_once("{channel}")?;
    (!before.is_empty()).then(|| (before.to_owned(), after.to_owned()))
}

/// Every environment variable the services read: the code's own table (`segcast::config::vars::VARS`).
pub fn env_names() -> Vec<String> {
    segcast::config::VARS
        .iter()
        .map(|v| v.name.to_owned())
        .collect()
}

/// The fields of `DeliveryLogRow` as serde writes them: a row with every optional field set, and one with
/// none, tell which fields exist, their JSON types, and which can be null.
pub fn log_row_fields() -> Vec<Field> {
    // Listing every field here means a new field in DeliveryLogRow fails to compile until this is looked
    // at; the names and types below are still read from the serialized JSON, not from this literal.
    let full = DeliveryLogRow {
        log_id: "k:delivered".into(),
        campaign_id: "c".into(),
        round: 1,
        batch_id: "b".into(),
        channel_id: "1".into(),
        endpoint: "push".into(),
        retry_key: Some("k".into()),
        recipients: vec!["U0".into()],
        recipient_count: 1,
        outcome: Outcome::Failed,
        reason: Some(FailureReason::LineRejected),
        http_status: Some(400),
        line_request_id: Some("r".into()),
        detail: Some("d".into()),
        logged_at: "2026-01-01T00:00:00Z".into(),
    };
    let bare = DeliveryLogRow {
        retry_key: None,
        reason: None,
        http_status: None,
        line_request_id: None,
        detail: None,
        ..full.clone()
    };
    let full = serde_json::to_value(&full).unwrap_or_default();
    let bare = serde_json::to_value(&bare).unwrap_or_default();
    fields_of(&full, &bare)
}

/// The fields of `ClickRow`, the same way.
pub fn click_row_fields() -> Vec<Field> {
    let full = segcast::click::ClickRow {
        click_id: "k".into(),
        campaign_id: "c".into(),
        link_id: "l".into(),
        recipient: Some("U0".into()),
        user_agent_class: Some("line".into()),
        country: Some("JP".into()),
        clicked_at: "2026-01-01T00:00:00Z".into(),
    };
    let bare = segcast::click::ClickRow {
        recipient: None,
        user_agent_class: None,
        country: None,
        ..full.clone()
    };
    fields_of(
        &serde_json::to_value(&full).unwrap_or_default(),
        &serde_json::to_value(&bare).unwrap_or_default(),
    )
}

/// Fields from two serialized samples of the same row type: `full` with every optional field set, `bare`
/// with none.
pub fn fields_of(full: &Json, bare: &Json) -> Vec<Field> {
    let Some(obj) = full.as_object() else {
        return vec![];
    };
    obj.iter()
        .map(|(name, v)| Field {
            name: name.clone(),
            accepts: accepts(v),
            nullable: bare.get(name).is_none_or(Json::is_null),
        })
        .collect()
}

fn accepts(v: &Json) -> Vec<String> {
    let s = |x: &[&str]| x.iter().map(|t| (*t).to_owned()).collect();
    match v {
        Json::String(x) if looks_like_timestamp(x) => s(&["TIMESTAMP", "STRING"]),
        Json::String(_) => s(&["STRING"]),
        Json::Number(n) if n.is_i64() || n.is_u64() => s(&["INT64", "NUMERIC", "FLOAT64"]),
        Json::Number(_) => s(&["FLOAT64", "NUMERIC"]),
        Json::Bool(_) => s(&["BOOL"]),
        Json::Array(a) => match a.first() {
            Some(first) => accepts(first)
                .into_iter()
                .map(|t| format!("ARRAY<{t}>"))
                .collect(),
            None => s(&["ARRAY<STRING>"]),
        },
        Json::Object(_) => s(&["JSON", "STRUCT"]),
        Json::Null => vec![],
    }
}

fn looks_like_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b' ')
        && b[13] == b':'
        && b[..4].iter().all(u8::is_ascii_digit)
}

/// The table a `CREATE TABLE` statement creates (`None` for views and anything else).
pub fn table_of(ddl: &str) -> Option<String> {
    let upper = ddl.to_uppercase();
    let at = upper.find("CREATE TABLE")?;
    let rest = &ddl[at..];
    let start = rest.find('`')? + 1;
    let end = start + rest[start..].find('`')?;
    Some(rest[start..end].rsplit('.').next()?.to_owned())
}

/// The columns of a `CREATE TABLE ... ( col TYPE [NOT NULL], ... )` statement.
pub fn columns_of(ddl: &str) -> Vec<Column> {
    let body: String = ddl
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let Some(open) = body.find('(') else {
        return vec![];
    };
    let Some(close) = body.rfind(')') else {
        return vec![];
    };
    // Split on commas outside angle brackets (ARRAY<STRUCT<a INT64, b STRING>>).
    let mut parts = Vec::new();
    let (mut depth, mut cur) = (0i32, String::new());
    for c in body[open + 1..close].chars() {
        match c {
            '<' | '(' => depth += 1,
            '>' | ')' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
        .iter()
        .filter_map(|p| {
            let p = p.split_whitespace().collect::<Vec<_>>().join(" ");
            let (name, rest) = p.split_once(' ')?;
            let upper = rest.to_uppercase();
            let not_null = upper.contains("NOT NULL");
            let ty = upper.replace("NOT NULL", "").trim().replace(' ', "");
            Some(Column {
                name: name.trim_matches('`').to_owned(),
                ty,
                nullable: !not_null,
            })
        })
        .collect()
}

/// Differences between what the code writes (`fields`) and a table's columns, as messages.
pub fn schema_drift(fields: &[Field], columns: &[Column]) -> Vec<String> {
    let mut out = Vec::new();
    for f in fields {
        match columns.iter().find(|c| c.name == f.name) {
            None => out.push(format!(
                "field `{}` is written by the code but the table has no such column",
                f.name
            )),
            Some(c) => {
                if !f.accepts.contains(&c.ty) {
                    out.push(format!(
                        "field `{}`: the code writes a value BigQuery can store as {}, but the column is {}",
                        f.name,
                        f.accepts.join(" or "),
                        c.ty
                    ));
                }
                if f.nullable && !c.nullable && !c.ty.starts_with("ARRAY") {
                    out.push(format!(
                        "field `{}` can be null in the code but the column is NOT NULL",
                        f.name
                    ));
                }
            }
        }
    }
    for c in columns {
        if !fields.iter().any(|f| f.name == c.name) {
            out.push(format!(
                "column `{}` {} is not a field the code writes{}",
                c.name,
                c.ty,
                if c.nullable {
                    " (it would always be NULL)"
                } else {
                    " and it is NOT NULL: every insert would fail"
                }
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_columns_are_parsed_with_types_and_nullability() {
        let cols = columns_of(segcast::sql::DELIVERY_LOGS.text);
        let get = |n: &str| cols.iter().find(|c| c.name == n).cloned().unwrap();
        assert_eq!(get("log_id").ty, "STRING");
        assert!(!get("log_id").nullable);
        assert_eq!(get("recipients").ty, "ARRAY<STRING>");
        assert_eq!(get("round").ty, "INT64");
        assert!(get("retry_key").nullable);
        assert_eq!(get("logged_at").ty, "TIMESTAMP");
        assert_eq!(
            table_of(segcast::sql::DELIVERY_LOGS.text).as_deref(),
            Some("delivery_logs")
        );
        assert_eq!(
            table_of(segcast::sql::RECIPIENT_OUTCOMES.text),
            None,
            "a view"
        );
    }

    #[test]
    fn the_log_rows_match_their_tables_today() {
        let d = columns_of(segcast::sql::DELIVERY_LOGS.text);
        assert_eq!(schema_drift(&log_row_fields(), &d), Vec::<String>::new());
        let c = columns_of(segcast::sql::CLICK_LOGS.text);
        assert_eq!(schema_drift(&click_row_fields(), &c), Vec::<String>::new());
    }

    #[test]
    fn the_channel_secret_name_is_read_from_the_code() {
        let (before, after) = channel_secret_name(&crate::repo_root()).expect("fn secret_id");
        assert_eq!(
            (before.as_str(), after.as_str()),
            ("segcast-line-channel-", "-secret")
        );
    }

    #[test]
    fn drift_is_described_per_field() {
        let fields = vec![Field {
            name: "a".into(),
            accepts: vec!["STRING".into()],
            nullable: true,
        }];
        let cols = vec![
            Column {
                name: "a".into(),
                ty: "INT64".into(),
                nullable: false,
            },
            Column {
                name: "b".into(),
                ty: "STRING".into(),
                nullable: false,
            },
        ];
        let d = schema_drift(&fields, &cols);
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(d[0].contains("column is INT64"));
        assert!(d[1].contains("can be null"));
        assert!(d[2].contains("every insert would fail"));
    }
}
