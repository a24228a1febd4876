//! Identifiers: `CampaignId`, `ChannelId`, `ContentId`, `SegmentId`.
//!
//! A campaign ID doubles as LINE's `customAggregationUnits` name (`^[a-zA-Z0-9_]{1,30}$`) and as part of
//! BigQuery table names, so it is restricted to lowercase letters, digits and `_`, at most 30 characters.

use super::ParseError;
use serde::Serialize;

fn is_slug(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && s.as_bytes()[0].is_ascii_lowercase()
}

macro_rules! slug_id {
    ($name:ident, $field:literal, $max:expr, $prefix:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, ParseError> {
                if is_slug(s, $max) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(ParseError::new(
                        $field,
                        format!(
                            "{s:?} must be 1 to {} characters of lowercase letters, digits and _, starting with a letter",
                            $max
                        ),
                    ))
                }
            }

            /// A new random identifier with this kind's prefix.
            pub fn generate() -> Self {
                let hex = uuid::Uuid::new_v4().simple().to_string();
                Self(format!("{}{}", $prefix, &hex[..12]))
            }
        }

        validated_string!($name);
    };
}

slug_id!(CampaignId, "campaign_id", 30, "c_");
slug_id!(ContentId, "content_id", 64, "ct_");
slug_id!(SegmentId, "segment_id", 64, "sg_");

/// A LINE channel ID: the decimal number LINE assigns (10 digits today).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ChannelId(String);

impl ChannelId {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError::new(
                "channel_id",
                format!("{s:?} is not a LINE channel ID (digits only)"),
            ))
        }
    }
}

validated_string!(ChannelId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn campaign_ids_fit_line_aggregation_units_and_bigquery_names() {
        let id = CampaignId::generate();
        assert!(id.as_str().len() <= 30);
        assert!(CampaignId::parse(id.as_str()).is_ok());
        for bad in [
            "",
            "1abc",
            "Abc",
            "a-b",
            "a b",
            "a".repeat(31).as_str(),
            "a;drop",
        ] {
            assert!(CampaignId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn channel_ids_are_digits() {
        assert!(ChannelId::parse("1656789012").is_ok());
        for bad in ["", "12a", "-1", "123456789012345678901"] {
            assert!(ChannelId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
