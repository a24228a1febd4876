//! Who is calling the console, and what they may do.
//!
//! - **Production (`SEGCAST_CONSOLE_AUTH=iap`)**: the console sits behind Identity-Aware Proxy and trusts only
//!   IAP's signed header `x-goog-iap-jwt-assertion`: an ES256 JWT verified against IAP's public keys
//!   (`SEGCAST_IAP_JWKS_URL`, Google's by default), for this backend's audience (`SEGCAST_IAP_AUDIENCE`) and
//!   issuer `https://cloud.google.com/iap`. Plain identity headers (`x-goog-authenticated-user-email`) are
//!   ignored: anyone who reaches the service around the proxy could set them.
//! - **Local (`SEGCAST_CONSOLE_AUTH=local`)**: a simple sign-in (listed user + the shared
//!   `SEGCAST_CONSOLE_PASSWORD`) issues an HMAC-signed session token, sent back as an `HttpOnly`,
//!   `SameSite=Strict` cookie (the UI) or as `Authorization: Bearer` (the CLI).
//!
//! Roles come from the console's user list in Datastore; `SEGCAST_CONSOLE_ADMINS` names the first admins.

use super::error::{ApiError, ApiResult};
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use segcast::gcp::datastore::{Datastore, Doc};
use segcast::telemetry::Secret;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::Mutex;

pub const SESSION_COOKIE: &str = "segcast_session";
pub const IAP_HEADER: &str = "x-goog-iap-jwt-assertion";
const IAP_ISSUER: &str = "https://cloud.google.com/iap";
const GOOGLE_IAP_JWKS: &str = "https://www.gstatic.com/iap/verify/public_key-jwk";

/// What a console user may do; each role includes the ones before it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Creates and edits contents, segments and campaigns; test-sends; schedules, pauses, cancels.
    Editor,
    /// Also approves other users' large campaigns.
    Approver,
    /// Also registers channels and manages users.
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "viewer" => Ok(Self::Viewer),
            "editor" => Ok(Self::Editor),
            "approver" => Ok(Self::Approver),
            "admin" => Ok(Self::Admin),
            other => Err(format!(
                "{other:?} is not a role: use viewer, editor, approver or admin"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Editor => "editor",
            Self::Approver => "approver",
            Self::Admin => "admin",
        }
    }
}

/// A console user and their role (Datastore kind `ConsoleUser`, keyed by lower-case email).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsoleUser {
    pub email: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    pub updated_by: String,
}

impl Doc for ConsoleUser {
    const KIND: &'static str = "ConsoleUser";
    fn key(&self) -> String {
        self.email.clone()
    }
}

/// The caller of a request.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Identity {
    pub email: String,
    pub role: Role,
}

impl Identity {
    /// Refuses callers below `role`, naming what they lack.
    pub fn require(&self, role: Role, doing: &str) -> ApiResult<()> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "{} is a {} and cannot {doing}: that needs the {} role",
                self.email,
                self.role.as_str(),
                role.as_str()
            )))
        }
    }
}

/// A syntactically plausible email (the identity key); lower-cased.
pub fn normalize_email(s: &str) -> Result<String, String> {
    let e = s.trim().to_ascii_lowercase();
    let ok = e.len() <= 254
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        })
        && !e.contains(char::is_whitespace);
    if ok {
        Ok(e)
    } else {
        Err(format!("{s:?} is not an email address"))
    }
}

#[derive(Clone)]
pub enum Mode {
    Iap(Arc<IapVerifier>),
    Local {
        password: Secret,
        key: Arc<Vec<u8>>,
        session_ttl: Duration,
    },
}

impl Mode {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Iap(_) => "iap",
            Self::Local { .. } => "local",
        }
    }
}

#[derive(Serialize, Deserialize)]
struct SessionClaims {
    email: String,
    exp: i64,
}

type HmacSha256 = Hmac<Sha256>;

fn sign(key: &[u8], payload: &str) -> String {
    use base64::Engine;
    let mut mac = HmacSha256::new_from_slice(key).expect("any key length");
    mac.update(payload.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// A session token for `email` (local mode): `base64url(claims).signature`.
pub fn issue_session(key: &[u8], email: &str, ttl: Duration) -> String {
    use base64::Engine;
    let claims = SessionClaims {
        email: email.to_owned(),
        exp: OffsetDateTime::now_utc().unix_timestamp() + ttl.as_secs() as i64,
    };
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&claims).expect("claims serialize"));
    let sig = sign(key, &payload);
    format!("{payload}.{sig}")
}

fn verify_session(key: &[u8], token: &str) -> Result<String, String> {
    use base64::Engine;
    let (payload, sig) = token.split_once('.').ok_or("malformed session token")?;
    let mut mac = HmacSha256::new_from_slice(key).expect("any key length");
    mac.update(payload.as_bytes());
    let given = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| "malformed session signature")?;
    mac.verify_slice(&given)
        .map_err(|_| "session signature does not match")?;
    let claims: SessionClaims = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| "malformed session payload")?,
    )
    .map_err(|_| "malformed session claims")?;
    if claims.exp <= OffsetDateTime::now_utc().unix_timestamp() {
        return Err("session expired: sign in again".into());
    }
    Ok(claims.email)
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Verifies IAP's signed header. Keys are fetched from the JWKS URL and cached; an unknown key id refetches
/// them (at most once a minute, so forged key ids cannot make the console hammer Google).
pub struct IapVerifier {
    audience: String,
    jwks_url: String,
    http: reqwest::Client,
    keys: Mutex<(HashMap<String, jsonwebtoken::DecodingKey>, Option<Instant>)>,
}

#[derive(Deserialize)]
struct IapClaims {
    email: String,
}

impl IapVerifier {
    pub fn new(audience: String, jwks_url: Option<String>) -> Self {
        segcast::http::push_auth::install_jwt_crypto();
        Self {
            audience,
            jwks_url: jwks_url.unwrap_or_else(|| GOOGLE_IAP_JWKS.into()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
            keys: Mutex::new((HashMap::new(), None)),
        }
    }

    async fn key(&self, kid: &str) -> Result<jsonwebtoken::DecodingKey, String> {
        let mut keys = self.keys.lock().await;
        if let Some(k) = keys.0.get(kid) {
            return Ok(k.clone());
        }
        let recently = keys
            .1
            .is_some_and(|t| t.elapsed() < Duration::from_secs(60));
        if recently {
            return Err(format!("unknown IAP key id {kid:?}"));
        }
        keys.1 = Some(Instant::now());
        let set: jsonwebtoken::jwk::JwkSet = self
            .http
            .get(&self.jwks_url)
            .send()
            .await
            .map_err(|e| format!("fetching IAP keys: {e}"))?
            .json()
            .await
            .map_err(|e| format!("reading IAP keys: {e}"))?;
        keys.0.clear();
        for jwk in &set.keys {
            if let (Some(id), Ok(k)) = (
                jwk.common.key_id.clone(),
                jsonwebtoken::DecodingKey::from_jwk(jwk),
            ) {
                keys.0.insert(id, k);
            }
        }
        keys.0
            .get(kid)
            .cloned()
            .ok_or_else(|| format!("unknown IAP key id {kid:?}"))
    }

    /// The verified email of the header's JWT, or why it is refused.
    pub async fn verify(&self, jwt: &str) -> Result<String, String> {
        use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
        let header = decode_header(jwt).map_err(|e| format!("malformed IAP JWT: {e}"))?;
        if header.alg != Algorithm::ES256 {
            return Err(format!("IAP JWTs are ES256, not {:?}", header.alg));
        }
        let kid = header.kid.ok_or("IAP JWT without a key id")?;
        let key = self.key(&kid).await?;
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[&self.audience]);
        v.set_issuer(&[IAP_ISSUER]);
        v.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
        v.leeway = 30;
        let data =
            decode::<IapClaims>(jwt, &key, &v).map_err(|e| format!("IAP JWT refused: {e}"))?;
        normalize_email(&data.claims.email)
    }
}

/// Finds the caller's verified email from the request (not yet their role).
pub async fn authenticate(mode: &Mode, headers: &HeaderMap) -> Result<String, String> {
    match mode {
        Mode::Iap(v) => {
            let jwt = headers
                .get(IAP_HEADER)
                .and_then(|h| h.to_str().ok())
                .ok_or(
                    "no IAP assertion: the console is only reachable through Identity-Aware Proxy",
                )?;
            v.verify(jwt).await
        }
        Mode::Local { key, .. } => {
            let token = bearer(headers)
                .map(str::to_owned)
                .or_else(|| cookie(headers, SESSION_COOKIE))
                .ok_or("not signed in")?;
            verify_session(key, &token)
        }
    }
}

/// The caller's role: from the user list, or admin when listed in `SEGCAST_CONSOLE_ADMINS`.
pub async fn role_of(ds: &Datastore, admins: &[String], email: &str) -> ApiResult<Option<Role>> {
    if admins.iter().any(|a| a == email) {
        return Ok(Some(Role::Admin));
    }
    Ok(ds.get::<ConsoleUser>(email).await?.map(|u| u.role))
}

/// A short, stable, non-reversible label for rate limiting by credential (never logged).
pub fn credential_fingerprint(headers: &HeaderMap) -> Option<String> {
    let raw = headers
        .get(IAP_HEADER)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| bearer(headers).map(str::to_owned))
        .or_else(|| cookie(headers, SESSION_COOKIE))?;
    use sha2::Digest;
    Some(hex::encode(&Sha256::digest(raw.as_bytes())[..8]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_verify_and_refuse_tampering_and_expiry() {
        let key = b"0123456789abcdef0123456789abcdef";
        let t = issue_session(key, "a@example.com", Duration::from_secs(60));
        assert_eq!(verify_session(key, &t).unwrap(), "a@example.com");
        assert!(verify_session(b"another key........", &t).is_err());
        let (payload, sig) = t.split_once('.').unwrap();
        let forged = format!("{payload}x.{sig}");
        assert!(verify_session(key, &forged).is_err());
        let expired = issue_session(key, "a@example.com", Duration::ZERO);
        assert!(
            verify_session(key, &expired)
                .unwrap_err()
                .contains("expired")
        );
    }

    #[test]
    fn roles_are_ordered_and_emails_checked() {
        assert!(Role::Admin > Role::Approver && Role::Approver > Role::Editor);
        assert!(Role::Editor > Role::Viewer);
        assert_eq!(normalize_email(" A@Example.com ").unwrap(), "a@example.com");
        for bad in ["", "a", "a@b", "@b.c", "a b@c.d"] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
    }
}
