//! Channel access tokens: issued once, cached, refreshed shortly before expiry, and refreshed once on a 401.
//!
//! Credentials come from the settings ([`crate::config::ChannelCredential`]: the environment, which is how Cloud
//! Run exposes Secret Manager secrets) or from the console's secret store. A channel secret issues a stateless
//! token with client_credentials; a long-lived token is used as it is. Secrets are held as [`Secret`] and never
//! logged.

use crate::domain::ChannelId;
use crate::telemetry::Secret;
use anyhow::{Context, anyhow};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

#[derive(Clone)]
enum Credential {
    Secret(Secret),
    LongLived(Secret),
}

#[derive(Clone)]
struct Cached {
    token: Secret,
    refresh_at: Instant,
}

#[derive(Clone)]
pub struct TokenProvider {
    http: reqwest::Client,
    base_url: String,
    credentials: Arc<HashMap<String, Credential>>,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
    /// Channels registered in the console after start-up: `(setting, project)` and the store built from it
    /// on first use.
    store: Option<(String, String)>,
    store_cell: Arc<tokio::sync::OnceCell<Option<super::secrets::ChannelSecrets>>>,
    /// Secrets found in the store, cached (a channel's secret changes only when it is re-registered; a 401
    /// from LINE drops it with the token).
    stored: Arc<Mutex<HashMap<String, Secret>>>,
}

impl TokenProvider {
    /// The credentials of `settings` (parsed from the environment by [`crate::config`]).
    pub fn from_settings(http: reqwest::Client, settings: &crate::config::LineSettings) -> Self {
        Self::from_credentials(http, &settings.base_url, &settings.credentials)
    }

    /// The credentials set in `vars` (tests and checks build them by hand).
    pub fn from_vars(
        http: reqwest::Client,
        base_url: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let vars = crate::config::Vars::from_pairs(vars);
        Self::from_credentials(http, base_url, &crate::config::channel_credentials(&vars))
    }

    fn from_credentials(
        http: reqwest::Client,
        base_url: &str,
        given: &[crate::config::ChannelCredential],
    ) -> Self {
        let credentials: HashMap<String, Credential> = given
            .iter()
            .map(|c| {
                let value = c.value.clone();
                let credential = if c.is_secret {
                    Credential::Secret(value)
                } else {
                    Credential::LongLived(value)
                };
                (c.channel.clone(), credential)
            })
            .collect();
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            credentials: Arc::new(credentials),
            cache: Arc::default(),
            store: None,
            store_cell: Arc::default(),
            stored: Arc::default(),
        }
    }

    /// Also looks channels up in the console's secret store (`SEGCAST_CHANNEL_SECRETS`).
    pub fn with_store(mut self, setting: Option<String>, project: &str) -> Self {
        self.store = setting.map(|s| (s, project.to_owned()));
        self
    }

    async fn stored_secret(&self, channel: &ChannelId) -> anyhow::Result<Option<Secret>> {
        let Some((setting, project)) = &self.store else {
            return Ok(None);
        };
        if let Some(s) = self.stored.lock().await.get(channel.as_str()) {
            return Ok(Some(s.clone()));
        }
        let store = self
            .store_cell
            .get_or_try_init(|| {
                super::secrets::ChannelSecrets::from_setting(Some(setting), project)
            })
            .await?;
        let Some(store) = store else { return Ok(None) };
        let found = store.get(channel).await?;
        if let Some(s) = &found {
            self.stored
                .lock()
                .await
                .insert(channel.as_str().to_owned(), s.clone());
        }
        Ok(found)
    }

    pub fn knows(&self, channel: &ChannelId) -> bool {
        self.credentials.contains_key(channel.as_str())
    }

    /// A valid access token for `channel`.
    pub async fn token(&self, channel: &ChannelId) -> anyhow::Result<Secret> {
        let from_store;
        let secret = match self.credentials.get(channel.as_str()) {
            Some(Credential::LongLived(t)) => return Ok(t.clone()),
            Some(Credential::Secret(s)) => s,
            None => {
                from_store = self.stored_secret(channel).await?.ok_or_else(|| {
                    anyhow!(
                        "no credentials for LINE channel {channel}: register it in the console or set \
                         LINE_CHANNEL_{channel}_SECRET"
                    )
                })?;
                &from_store
            }
        };
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache
            .get(channel.as_str())
            .filter(|c| c.refresh_at > Instant::now())
        {
            return Ok(c.token.clone());
        }
        let resp = self
            .http
            .post(format!("{}/oauth2/v3/token", self.base_url))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", channel.as_str()),
                ("client_secret", secret.expose()),
            ])
            .send()
            .await
            .context("issuing a LINE channel access token")?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        if !status.is_success() {
            // LINE's error body carries no secret; it is safe to report.
            return Err(anyhow!(
                "LINE refused a token for channel {channel}: HTTP {status}: {body}"
            ));
        }
        let token = body["access_token"]
            .as_str()
            .ok_or_else(|| anyhow!("LINE token response without a token"))?;
        let expires_in = body["expires_in"].as_u64().unwrap_or(900);
        // Refresh a minute early (or halfway, for very short lifetimes).
        let lead = Duration::from_secs(60).min(Duration::from_secs(expires_in / 2));
        let cached = Cached {
            token: Secret::new(token),
            refresh_at: Instant::now() + Duration::from_secs(expires_in) - lead,
        };
        cache.insert(channel.as_str().to_owned(), cached.clone());
        Ok(cached.token)
    }

    /// LINE said 401 to `token`: forget it so the next call issues a new one.
    pub async fn invalidate(&self, channel: &ChannelId, token: &Secret) {
        let mut cache = self.cache.lock().await;
        if cache
            .get(channel.as_str())
            .is_some_and(|c| &c.token == token)
        {
            cache.remove(channel.as_str());
            // The secret may have been replaced in the console: read it again next time.
            self.stored.lock().await.remove(channel.as_str());
        }
    }
}

/// Asks LINE for a token with these credentials (and throws it away): `Ok(())` when LINE accepts them, or
/// LINE's reason. The console calls it before storing a channel secret, so a typo is caught at once.
pub async fn check_credentials(
    http: &reqwest::Client,
    base_url: &str,
    channel: &ChannelId,
    secret: &Secret,
) -> anyhow::Result<Result<(), String>> {
    let resp = http
        .post(format!(
            "{}/oauth2/v3/token",
            base_url.trim_end_matches('/')
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", channel.as_str()),
            ("client_secret", secret.expose()),
        ])
        .send()
        .await
        .context("asking LINE for a channel access token")?;
    if resp.status().is_success() {
        return Ok(Ok(()));
    }
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    let why = body["error_description"]
        .as_str()
        .or(body["message"].as_str())
        .unwrap_or("no reason given");
    Ok(Err(format!(
        "LINE refused these credentials (HTTP {status}): {why}"
    )))
}
