//! Channel access tokens: issuing stateless tokens (`POST /oauth2/v3/token`, and short-lived ones at
//! `POST /v2/oauth/accessToken`) and checking `Authorization: Bearer` on the API endpoints.
//!
//! Tokens are stateless: `fl1.<base64url(channel_id "." expiry_ms)>.<base64url(HMAC-SHA256)>`, signed with
//! `Config::token_secret`, so the server keeps nothing per token and tokens survive a restart. Long-lived tokens
//! come from `Config::long_lived_tokens`.

use std::collections::HashMap;

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::errors::line_error;
use crate::state::App;
use crate::util::now_ms;

const PREFIX: &str = "fl1.";
/// LINE's short-lived tokens last 30 days.
const SHORT_LIVED_SECS: u64 = 30 * 24 * 3600;

pub(crate) const AUTH_FAILED: &str =
    "Authentication failed. Confirm that the access token in the authorization header is valid.";

/// Signs and checks tokens.
pub(crate) struct Tokens {
    secret: Vec<u8>,
    long_lived: HashMap<String, String>,
}

impl Tokens {
    pub(crate) fn new(
        secret: &str,
        long_lived: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        Tokens {
            secret: secret.as_bytes().to_vec(),
            long_lived: long_lived.into_iter().collect(),
        }
    }

    /// A token for `channel_id` valid until `expires_at_ms`.
    pub(crate) fn issue(&self, channel_id: &str, expires_at_ms: u64) -> String {
        let payload = format!("{channel_id}.{expires_at_ms}");
        let mac = hmac_sha256(&self.secret, payload.as_bytes());
        format!(
            "{PREFIX}{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(mac)
        )
    }

    /// The channel id of a valid, unexpired token.
    pub(crate) fn verify(&self, token: &str, now_ms: u64) -> Option<String> {
        if let Some(channel) = self.long_lived.get(token) {
            return Some(channel.clone());
        }
        let rest = token.strip_prefix(PREFIX)?;
        let (payload_b64, mac_b64) = rest.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload_b64).ok()?;
        let mac = URL_SAFE_NO_PAD.decode(mac_b64).ok()?;
        let expected = hmac_sha256(&self.secret, &payload);
        if !constant_time_eq(&mac, &expected) {
            return None;
        }
        let payload = String::from_utf8(payload).ok()?;
        let (channel, expiry) = payload.rsplit_once('.')?;
        let expiry: u64 = expiry.parse().ok()?;
        (now_ms < expiry).then(|| channel.to_string())
    }
}

/// The channel id behind the request's bearer token, or LINE's 401.
pub(crate) fn authenticate(app: &App, headers: &HeaderMap) -> Result<String, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match token.and_then(|t| app.tokens.verify(t, now_ms())) {
        Some(channel) => Ok(channel),
        None => Err(line_error(StatusCode::UNAUTHORIZED, AUTH_FAILED)),
    }
}

/// `POST /oauth2/v3/token`: stateless token, `Config::token_lifetime_secs`.
pub(crate) async fn issue_stateless(
    State(app): State<App>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let lifetime = app.config.token_lifetime_secs;
    issue(&app, form, lifetime)
}

/// `POST /v2/oauth/accessToken`: short-lived token (30 days), same credentials check.
pub(crate) async fn issue_short_lived(
    State(app): State<App>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    issue(&app, form, SHORT_LIVED_SECS)
}

fn issue(
    app: &App,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
    lifetime_secs: u64,
) -> Response {
    let Ok(Form(form)) = form else {
        return oauth_error(
            "invalid_request",
            "the request body must be application/x-www-form-urlencoded",
        );
    };
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        None => return oauth_error("invalid_request", "grant_type is required"),
        Some(_) => {
            return oauth_error(
                "unsupported_grant_type",
                "grant_type must be client_credentials",
            );
        }
    }
    if form.contains_key("client_assertion") {
        return oauth_error(
            "invalid_request",
            "client_assertion (JWT) is not supported by fake-line: use client_id and client_secret",
        );
    }
    let (Some(id), Some(secret)) = (form.get("client_id"), form.get("client_secret")) else {
        return oauth_error(
            "invalid_request",
            "client_id and client_secret are required",
        );
    };
    if id.is_empty() || secret.is_empty() {
        return oauth_error(
            "invalid_request",
            "client_id and client_secret are required",
        );
    }
    let allowed = &app.config.allowed_channels;
    if !allowed.is_empty() && allowed.get(id) != Some(secret) {
        return oauth_error("invalid_client", "invalid client_id or client_secret");
    }
    let token = app
        .tokens
        .issue(id, now_ms() + lifetime_secs.saturating_mul(1000));
    let body = json!({"access_token": token, "expires_in": lifetime_secs, "token_type": "Bearer"});
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// The token API's error shape (`channel-access-token.yml` ErrorResponse): `{"error","error_description"}`.
fn oauth_error(error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn tokens_round_trip_and_expire() {
        let t = Tokens::new("s", [("LONG".to_string(), "42".to_string())]);
        let tok = t.issue("1234567890", 10_000);
        assert_eq!(t.verify(&tok, 9_999).as_deref(), Some("1234567890"));
        assert_eq!(t.verify(&tok, 10_000), None, "expired");
        assert_eq!(Tokens::new("other", []).verify(&tok, 0), None, "wrong key");
        let mut forged = tok.clone();
        forged.replace_range(4..6, "AA");
        assert_eq!(t.verify(&forged, 0), None);
        assert_eq!(t.verify("LONG", u64::MAX).as_deref(), Some("42"));
        assert_eq!(t.verify("garbage", 0), None);
    }
}
