//! LINE ID formats: user (`U`), group (`C`) and room (`R`) IDs are the prefix letter plus 32 lowercase hex digits.

/// `U` followed by 32 lowercase hex digits, e.g. `U8189cf6745fc0d808977bdb0b9f22995`.
pub fn is_valid_user_id(s: &str) -> bool {
    has_id_shape(s, b'U')
}

/// A push target: a user, group (`C...`) or room (`R...`) ID.
pub fn is_valid_recipient_id(s: &str) -> bool {
    has_id_shape(s, b'U') || has_id_shape(s, b'C') || has_id_shape(s, b'R')
}

fn has_id_shape(s: &str, prefix: u8) -> bool {
    let b = s.as_bytes();
    b.len() == 33
        && b[0] == prefix
        && b[1..]
            .iter()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}
