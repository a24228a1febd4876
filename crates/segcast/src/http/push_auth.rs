//! Who may call the push and internal endpoints.
//!
//! In production Pub/Sub (and Cloud Scheduler) sign an OIDC token as a service account, for the endpoint's
//! audience: it is verified against Google's keys, and its email must be the expected service account.
//! Locally the Pub/Sub emulator sends no token, so the subscription's endpoint URL carries a shared token
//! (`?token=`), also accepted as `Authorization: Bearer`. There is no third, open mode: a service without
//! either refuses to start.

use crate::telemetry::Secret;
use axum::http::{HeaderMap, Uri};
use gcloud_sdk::IdTokenAudience;
use gcloud_sdk::id_token_verify::{IdTokenVerifier, PrincipalEmail};
use std::sync::Arc;

/// Picks the RustCrypto backend for JWT verification. The official Google crates enable jsonwebtoken's
/// aws-lc backend and gcloud-sdk its RustCrypto one; with both compiled in, jsonwebtoken cannot choose by
/// itself and would panic at the first verification. Call before verifying any JWT (idempotent).
pub fn install_jwt_crypto() {
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER,
    );
}

#[derive(Clone)]
pub enum PushAuth {
    SharedToken(Secret),
    Oidc {
        verifier: Arc<IdTokenVerifier>,
        service_account: String,
    },
}

impl PushAuth {
    /// From `SEGCAST_PUSH_TOKEN`, or `SEGCAST_PUSH_AUDIENCE` + `SEGCAST_PUSH_SERVICE_ACCOUNT`.
    pub fn from_settings(d: &crate::config::DeliverySettings) -> anyhow::Result<Self> {
        match (&d.push_audience, &d.push_service_account, &d.push_token) {
            (Some(aud), Some(sa), _) => Ok(Self::Oidc {
                verifier: {
                    install_jwt_crypto();
                    Arc::new(IdTokenVerifier::new(IdTokenAudience::new(aud.clone()))?)
                },
                service_account: sa.clone(),
            }),
            (None, None, Some(t)) if t.expose().len() >= 16 => Ok(Self::SharedToken(t.clone())),
            (None, None, Some(_)) => {
                anyhow::bail!("SEGCAST_PUSH_TOKEN must be at least 16 characters")
            }
            _ => anyhow::bail!(
                "no push authentication configured: set SEGCAST_PUSH_AUDIENCE and SEGCAST_PUSH_SERVICE_ACCOUNT \
                 (production) or SEGCAST_PUSH_TOKEN (local)"
            ),
        }
    }

    /// `Ok(())` when the request is from the expected caller; otherwise why not (for the log, not the caller).
    pub async fn check(&self, headers: &HeaderMap, uri: &Uri) -> Result<(), String> {
        let bearer = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match self {
            Self::SharedToken(expected) => {
                let from_query = uri
                    .query()
                    .into_iter()
                    .flat_map(|q| q.split('&'))
                    .find_map(|kv| kv.strip_prefix("token="));
                let given = from_query.or(bearer).ok_or("no token")?;
                if constant_time_eq(given.as_bytes(), expected.expose().as_bytes()) {
                    Ok(())
                } else {
                    Err("wrong token".into())
                }
            }
            Self::Oidc {
                verifier,
                service_account,
            } => {
                let token = bearer.ok_or("no bearer token")?;
                let verified = verifier
                    .verify(token)
                    .await
                    .map_err(|e| format!("invalid OIDC token: {e}"))?;
                match verified.verified_email() {
                    Some(email) if *email == PrincipalEmail::new(service_account.clone()) => Ok(()),
                    other => Err(format!(
                        "OIDC token for {other:?}, not the push service account"
                    )),
                }
            }
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shared_token_is_required_and_compared() {
        let auth = PushAuth::SharedToken(Secret::new("0123456789abcdef"));
        let h = HeaderMap::new();
        assert!(
            auth.check(
                &h,
                &"/push/delivery?token=0123456789abcdef".parse().unwrap()
            )
            .await
            .is_ok()
        );
        assert!(
            auth.check(
                &h,
                &"/push/delivery?token=0123456789abcdeX".parse().unwrap()
            )
            .await
            .is_err()
        );
        assert!(
            auth.check(&h, &"/push/delivery".parse().unwrap())
                .await
                .is_err()
        );
        let mut bearer = HeaderMap::new();
        bearer.insert("authorization", "Bearer 0123456789abcdef".parse().unwrap());
        assert!(
            auth.check(&bearer, &"/push/delivery".parse().unwrap())
                .await
                .is_ok()
        );
    }
}
