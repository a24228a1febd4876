//! Small helpers: wall-clock milliseconds, LINE's date formats, canonical JSON and its SHA-256.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sha2::{Digest, Sha256};
use time::{
    OffsetDateTime, UtcOffset, format_description::BorrowedFormatItem, macros::format_description,
};

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

const ISO_MS: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// `2020-12-03T10:15:30.121Z` (UTC), the format of LINE's `acceptedTime`.
pub(crate) fn iso_ms(ms: u64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(ISO_MS).ok())
        .unwrap_or_default()
}

/// The `yyyyMMdd` date in UTC+9 (LINE's insight time zone) of a unix time in ms, as a number (20240131).
pub(crate) fn jst_day(ms: u64) -> u32 {
    let jst = UtcOffset::from_hms(9, 0, 0).expect("valid offset");
    OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .map(|t| {
            let d = t.to_offset(jst).date();
            d.year() as u32 * 10_000 + u8::from(d.month()) as u32 * 100 + d.day() as u32
        })
        .unwrap_or(0)
}

/// JSON with object keys sorted and no whitespace, whatever serde_json's map ordering is.
pub(crate) fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Hex SHA-256 of the canonical JSON of `v`.
pub(crate) fn sha256_canonical(v: &Value) -> String {
    hex::encode(Sha256::digest(canonical_json(v).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys() {
        assert_eq!(
            canonical_json(&json!({"b": 1, "a": [{"y": "é", "x": null}]})),
            r#"{"a":[{"x":null,"y":"é"}],"b":1}"#
        );
    }

    #[test]
    fn dates() {
        assert_eq!(iso_ms(1_607_000_000_121), "2020-12-03T12:53:20.121Z");
        // 2020-12-03T15:00:00Z is 2020-12-04 00:00 in UTC+9.
        assert_eq!(jst_day(1_607_007_600_000), 20201204);
        assert_eq!(jst_day(1_607_007_599_000), 20201203);
    }
}
