//! `UserId`: a LINE user ID, `U` followed by 32 lowercase hex digits.

use super::ParseError;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if line_spec::is_valid_user_id(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError::new(
                "user_id",
                format!("{s:?} is not a LINE user ID (U followed by 32 lowercase hex digits)"),
            ))
        }
    }
}

validated_string!(UserId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_line_user_ids() {
        assert!(UserId::parse("U8189cf6745fc0d808977bdb0b9f22995").is_ok());
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "U8189cf6745fc0d808977bdb0b9f2299",   // 31 hex
            "U8189cf6745fc0d808977bdb0b9f229955", // 33 hex
            "U8189CF6745FC0D808977BDB0B9F22995",  // uppercase
            "C8189cf6745fc0d808977bdb0b9f22995",  // group
            "u8189cf6745fc0d808977bdb0b9f22995",
            "U8189cf6745fc0d808977bdb0b9f2299g",
            " U8189cf6745fc0d808977bdb0b9f22995",
        ] {
            assert!(UserId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn deserializing_validates() {
        assert!(serde_json::from_str::<UserId>("\"nope\"").is_err());
        let id: UserId = serde_json::from_str("\"U8189cf6745fc0d808977bdb0b9f22995\"").unwrap();
        assert_eq!(id.as_str(), "U8189cf6745fc0d808977bdb0b9f22995");
    }
}
