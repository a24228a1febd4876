//! The click-link signing keys as configured (`SEGCAST_CLICK_KEYS`, `kid:base64url-key,...`): the first signs,
//! every listed key verifies. Signing and verifying are [`crate::click::link_signature`]'s.

use crate::telemetry::Secret;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Signing keys shorter than this are refused.
const MIN_KEY_LEN: usize = 16;

/// The signing keys, by key id. `Debug` shows the key ids only.
#[derive(Clone)]
pub struct ClickKeys {
    keys: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for ClickKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|(k, _)| k.as_str()).collect();
        write!(f, "Keys({kids:?}, ***)")
    }
}

fn is_kid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 16
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl ClickKeys {
    /// Parses `kid:base64url-key,kid2:key2`. Errors never contain key material.
    pub fn parse(spec: &Secret) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (i, part) in spec.expose().split(',').enumerate() {
            let part = part.trim();
            let Some((kid, key)) = part.split_once(':') else {
                return Err(format!("entry {} is not kid:base64url-key", i + 1));
            };
            let kid = kid.trim();
            if !is_kid(kid) {
                return Err(format!(
                    "entry {}: a key id is 1 to 16 letters, digits, _ or -",
                    i + 1
                ));
            }
            let key = URL_SAFE_NO_PAD
                .decode(key.trim().trim_end_matches('='))
                .map_err(|_| format!("key {kid:?} is not base64url"))?;
            if key.len() < MIN_KEY_LEN {
                return Err(format!(
                    "key {kid:?} is {} bytes: use at least {MIN_KEY_LEN} (32 random bytes is best)",
                    key.len()
                ));
            }
            if keys.iter().any(|(k, _)| k == kid) {
                return Err(format!("key id {kid:?} is listed twice"));
            }
            keys.push((kid.to_owned(), key));
        }
        if keys.is_empty() {
            return Err("no keys".into());
        }
        Ok(Self { keys })
    }

    /// For tests and benchmarks: one key.
    pub fn single(kid: &str, key: &[u8]) -> Self {
        assert!(is_kid(kid) && key.len() >= MIN_KEY_LEN);
        Self {
            keys: vec![(kid.to_owned(), key.to_vec())],
        }
    }

    /// The id of the key that signs.
    pub fn signing_kid(&self) -> &str {
        &self.keys[0].0
    }

    pub(crate) fn key(&self, kid: &str) -> Option<&[u8]> {
        self.keys
            .iter()
            .find(|(k, _)| k == kid)
            .map(|(_, v)| v.as_slice())
    }
}
