//! Signed click tokens: what a tracked link carries, so the redirect can trust it without a lookup.
//!
//! A token is `base64url(payload || mac)` where `payload` is `kid|campaign|link|recipient|expires` (ASCII; every
//! field has a charset without `|`) and `mac` is the first 16 bytes of HMAC-SHA256(key[kid], payload). The
//! recipient is empty for multicast sends: one message goes to up to 500 people, so no token in it can say who
//! clicked, and none pretends to. Keys rotate: the first key of `SEGCAST_CLICK_KEYS` signs, every listed key
//! verifies, so an old key stays listed until its last tokens expire.

pub use crate::config::ClickKeys as Keys;
use crate::domain::links::is_link_id;
use crate::domain::{CampaignId, UserId};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the HMAC kept in a token (128 bits: forging one takes 2^128 tries on average).
const MAC_LEN: usize = 16;
/// Tokens longer than this are refused before any work.
pub const MAX_TOKEN_LEN: usize = 256;
impl Keys {
    fn mac(key: &[u8], payload: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(payload);
        mac
    }

    /// Signs `claims` with the first key.
    pub fn sign(&self, claims: &Claims) -> String {
        let kid = self.signing_kid();
        let key = self.key(kid).unwrap_or_default();
        let payload = format!(
            "{kid}|{}|{}|{}|{}",
            claims.campaign,
            claims.link,
            claims.recipient.as_ref().map(|r| r.as_str()).unwrap_or(""),
            claims.expires_at
        );
        let tag = Self::mac(key, payload.as_bytes()).finalize().into_bytes();
        let mut bytes = payload.into_bytes();
        bytes.extend_from_slice(&tag[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Verifies a token at `now` (unix seconds). Any problem — malformed, unknown key, bad MAC, bad field,
    /// expired — is [`Invalid`], and the redirect answers all of them the same way.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, Invalid> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(Invalid::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| Invalid::Malformed)?;
        if bytes.len() <= MAC_LEN {
            return Err(Invalid::Malformed);
        }
        let (payload, tag) = bytes.split_at(bytes.len() - MAC_LEN);
        let kid_end = payload
            .iter()
            .position(|&b| b == b'|')
            .ok_or(Invalid::Malformed)?;
        let kid = std::str::from_utf8(&payload[..kid_end]).map_err(|_| Invalid::Malformed)?;
        let key = self.key(kid).ok_or(Invalid::UnknownKey)?;
        Self::mac(key, payload)
            .verify_truncated_left(tag)
            .map_err(|_| Invalid::BadSignature)?;
        // Signed by us: the fields were valid when signed, but check them again (a leaked key must not
        // become a way to smuggle odd values into logs).
        let text = std::str::from_utf8(payload).map_err(|_| Invalid::Malformed)?;
        let fields: Vec<&str> = text.split('|').collect();
        let [_, campaign, link, recipient, expires] = fields[..] else {
            return Err(Invalid::Malformed);
        };
        let campaign = CampaignId::parse(campaign).map_err(|_| Invalid::Malformed)?;
        if !is_link_id(link) {
            return Err(Invalid::Malformed);
        }
        let recipient = match recipient {
            "" => None,
            r => Some(UserId::parse(r).map_err(|_| Invalid::Malformed)?),
        };
        let expires_at: u64 = expires.parse().map_err(|_| Invalid::Malformed)?;
        if expires_at <= now {
            return Err(Invalid::Expired);
        }
        Ok(Claims {
            campaign,
            link: link.to_owned(),
            recipient,
            expires_at,
        })
    }
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub campaign: CampaignId,
    pub link: String,
    /// Set for push sends only.
    pub recipient: Option<UserId>,
    /// Unix seconds.
    pub expires_at: u64,
}

/// Why a token was refused (logged as a counter, never shown: every refusal is the same 404).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    Malformed,
    UnknownKey,
    BadSignature,
    Expired,
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Secret;

    const K1: &[u8] = b"0123456789abcdef0123456789abcdef";
    const K2: &[u8] = b"fedcba9876543210fedcba9876543210";

    fn claims(recipient: Option<&str>) -> Claims {
        Claims {
            campaign: CampaignId::parse("c_spring").unwrap(),
            link: "sale".into(),
            recipient: recipient.map(|r| UserId::parse(r).unwrap()),
            expires_at: 2_000,
        }
    }
    const U: &str = "U0123456789abcdef0123456789abcdef";

    #[test]
    fn a_signed_token_verifies_and_round_trips() {
        let keys = Keys::single("k1", K1);
        for c in [claims(Some(U)), claims(None)] {
            let t = keys.sign(&c);
            assert!(t.len() < 140, "{t}");
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert_eq!(keys.verify(&t, 1_000), Ok(c));
        }
    }

    #[test]
    fn expired_tokens_are_refused() {
        let keys = Keys::single("k1", K1);
        let t = keys.sign(&claims(Some(U)));
        assert_eq!(keys.verify(&t, 2_000), Err(Invalid::Expired));
        assert_eq!(keys.verify(&t, 5_000), Err(Invalid::Expired));
    }

    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let t = Keys::single("k1", K2).sign(&claims(Some(U)));
        assert_eq!(
            Keys::single("k1", K1).verify(&t, 1_000),
            Err(Invalid::BadSignature)
        );
        let t = Keys::single("zz", K1).sign(&claims(Some(U)));
        assert_eq!(
            Keys::single("k1", K1).verify(&t, 1_000),
            Err(Invalid::UnknownKey)
        );
    }

    #[test]
    fn keys_rotate_first_signs_all_verify() {
        let old = Keys::parse(&Secret::new(format!("k1:{}", URL_SAFE_NO_PAD.encode(K1)))).unwrap();
        let rotated = Keys::parse(&Secret::new(format!(
            "k2:{},k1:{}",
            URL_SAFE_NO_PAD.encode(K2),
            URL_SAFE_NO_PAD.encode(K1)
        )))
        .unwrap();
        let old_token = old.sign(&claims(Some(U)));
        assert!(rotated.verify(&old_token, 1_000).is_ok());
        let new_token = rotated.sign(&claims(Some(U)));
        assert_eq!(rotated.signing_kid(), "k2");
        assert_eq!(old.verify(&new_token, 1_000), Err(Invalid::UnknownKey));
        assert!(!format!("{rotated:?}").contains(&URL_SAFE_NO_PAD.encode(K2)));
    }

    /// Re-signs nothing: rewrites one field of the payload and keeps the MAC, as an attacker would.
    fn tamper(token: &str, field: usize, value: &str) -> String {
        let bytes = URL_SAFE_NO_PAD.decode(token).unwrap();
        let (payload, tag) = bytes.split_at(bytes.len() - MAC_LEN);
        let text = std::str::from_utf8(payload).unwrap();
        let mut fields: Vec<String> = text.split('|').map(str::to_owned).collect();
        fields[field] = value.to_owned();
        let mut out = fields.join("|").into_bytes();
        out.extend_from_slice(tag);
        URL_SAFE_NO_PAD.encode(out)
    }

    #[test]
    fn tampering_with_any_field_is_refused() {
        let keys = Keys::single("k1", K1);
        let t = keys.sign(&claims(Some(U)));
        let other_user = "Uffffffffffffffffffffffffffffffff";
        for (field, value) in [
            (1, "c_other"),
            (2, "evil"),
            (3, other_user),
            (3, ""),
            (4, "9999999999"),
        ] {
            let forged = tamper(&t, field, value);
            assert_eq!(
                keys.verify(&forged, 1_000),
                Err(Invalid::BadSignature),
                "field {field} -> {value}"
            );
        }
        // A multicast token cannot be turned into a per-recipient one.
        let m = keys.sign(&claims(None));
        assert_eq!(
            keys.verify(&tamper(&m, 3, U), 1_000),
            Err(Invalid::BadSignature)
        );
        // Flipping any single bit of the token is caught.
        let raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        for i in 0..raw.len() {
            let mut b = raw.clone();
            b[i] ^= 0x01;
            assert!(
                keys.verify(&URL_SAFE_NO_PAD.encode(b), 1_000).is_err(),
                "byte {i}"
            );
        }
    }

    #[test]
    fn garbage_is_malformed() {
        let keys = Keys::single("k1", K1);
        for bad in [
            "",
            "abc",
            "..%2f",
            "!!!!",
            &"A".repeat(300),
            &URL_SAFE_NO_PAD.encode(b"no separators here at all, just bytes"),
        ] {
            assert!(keys.verify(bad, 1_000).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_key_specs_are_refused_without_echoing_keys() {
        for bad in [
            "",
            "k1",
            "k1:",
            "k1:short",
            "bad kid:AAAAAAAAAAAAAAAAAAAAAAAAAA",
            "k1:%%%%sekrit%%%%",
        ] {
            let e = Keys::parse(&Secret::new(bad)).unwrap_err();
            assert!(!e.contains("sekrit"), "{e}");
        }
        let k = URL_SAFE_NO_PAD.encode(K1);
        assert!(Keys::parse(&Secret::new(format!("k1:{k},k1:{k}"))).is_err());
    }
}
