//! Where LINE channel secrets registered in the console live, so the delivery handler and scheduler can find
//! channels added after they started.
//!
//! - `SEGCAST_CHANNEL_SECRETS=secret-manager`: Google Secret Manager (production), one secret per channel named
//!   `segcast-line-channel-<ID>-secret` (the same secret terraform declares for channels it knows), read with
//!   the official `google-cloud-secretmanager-v1` client.
//! - `SEGCAST_CHANNEL_SECRETS=dir:<path>`: one file per channel, `<path>/<ID>.secret`, readable only by its
//!   owner (local; there is no Secret Manager emulator).
//! - unset: channels come only from the environment (`LINE_CHANNEL_<ID>_SECRET`, see [`super::access_token`]).
//!
//! The console writes a secret when a channel is registered (after LINE accepted it) and reads it only to issue
//! access tokens for test sends and LINE's validate endpoint; the UI and API only ever say whether a channel
//! has one stored.

use crate::domain::ChannelId;
use crate::telemetry::Secret;
use anyhow::{Context, anyhow, bail};
use std::path::PathBuf;

#[derive(Clone)]
pub enum ChannelSecrets {
    Dir(PathBuf),
    SecretManager {
        client: google_cloud_secretmanager_v1::client::SecretManagerService,
        project: String,
    },
}

impl std::fmt::Debug for ChannelSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dir(p) => write!(f, "ChannelSecrets::Dir({})", p.display()),
            Self::SecretManager { project, .. } => {
                write!(f, "ChannelSecrets::SecretManager({project})")
            }
        }
    }
}

impl ChannelSecrets {
    /// From `SEGCAST_CHANNEL_SECRETS` (see the module docs); `None` when it is unset.
    pub async fn from_setting(value: Option<&str>, project: &str) -> anyhow::Result<Option<Self>> {
        match value.map(str::trim) {
            None | Some("") => Ok(None),
            Some("secret-manager") => {
                let client = google_cloud_secretmanager_v1::client::SecretManagerService::builder()
                    .build()
                    .await
                    .context("Secret Manager client")?;
                Ok(Some(Self::SecretManager {
                    client,
                    project: project.to_owned(),
                }))
            }
            Some(v) => match v.strip_prefix("dir:") {
                Some(dir) if !dir.is_empty() => Ok(Some(Self::Dir(PathBuf::from(dir)))),
                _ => bail!(
                    "SEGCAST_CHANNEL_SECRETS={v:?}: expected `secret-manager` or `dir:<path>`"
                ),
            },
        }
    }

    fn secret_id(channel: &ChannelId) -> String {
        format!("segcast-line-channel-{channel}-secret")
    }

    /// The channel's secret, if one was stored.
    pub async fn get(&self, channel: &ChannelId) -> anyhow::Result<Option<Secret>> {
        match self {
            Self::Dir(dir) => {
                let path = dir.join(format!("{channel}.secret"));
                match tokio::fs::read_to_string(&path).await {
                    Ok(s) => Ok(Some(Secret::new(s.trim().to_owned()))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(anyhow!("reading the secret of channel {channel}: {e}")),
                }
            }
            Self::SecretManager { client, project } => {
                let name = format!(
                    "projects/{project}/secrets/{}/versions/latest",
                    Self::secret_id(channel)
                );
                match client.access_secret_version().set_name(name).send().await {
                    Ok(v) => {
                        let data = v.payload.map(|p| p.data).unwrap_or_default();
                        let s = String::from_utf8(data.to_vec())
                            .map_err(|_| anyhow!("the secret of channel {channel} is not UTF-8"))?;
                        Ok(Some(Secret::new(s)))
                    }
                    Err(e) if is_not_found(&e) => Ok(None),
                    Err(e) => Err(anyhow!("reading the secret of channel {channel}: {e}")),
                }
            }
        }
    }

    /// Stores (or replaces) the channel's secret.
    pub async fn put(&self, channel: &ChannelId, secret: &Secret) -> anyhow::Result<()> {
        match self {
            Self::Dir(dir) => {
                tokio::fs::create_dir_all(dir)
                    .await
                    .with_context(|| format!("creating {}", dir.display()))?;
                let path = dir.join(format!("{channel}.secret"));
                let tmp = dir.join(format!(".{channel}.secret.tmp"));
                write_private(&tmp, secret.expose().as_bytes()).await?;
                tokio::fs::rename(&tmp, &path)
                    .await
                    .context("storing the channel secret")?;
                Ok(())
            }
            Self::SecretManager { client, project } => {
                use google_cloud_secretmanager_v1::model::{
                    Replication, Secret as SmSecret, SecretPayload, replication::Automatic,
                };
                let id = Self::secret_id(channel);
                let created = client
                    .create_secret()
                    .set_parent(format!("projects/{project}"))
                    .set_secret_id(&id)
                    .set_secret(
                        SmSecret::new()
                            .set_replication(Replication::new().set_automatic(Automatic::new())),
                    )
                    .send()
                    .await;
                if let Err(e) = created
                    && !is_already_exists(&e)
                {
                    return Err(anyhow!("creating the secret of channel {channel}: {e}"));
                }
                client
                    .add_secret_version()
                    .set_parent(format!("projects/{project}/secrets/{id}"))
                    .set_payload(
                        SecretPayload::new()
                            .set_data(bytes::Bytes::from(secret.expose().as_bytes().to_vec())),
                    )
                    .send()
                    .await
                    .map_err(|e| anyhow!("storing the secret of channel {channel}: {e}"))?;
                Ok(())
            }
        }
    }
}

fn is_not_found(e: &google_cloud_gax::error::Error) -> bool {
    e.status()
        .is_some_and(|s| s.code == google_cloud_gax::error::rpc::Code::NotFound)
}

fn is_already_exists(e: &google_cloud_gax::error::Error) -> bool {
    e.status()
        .is_some_and(|s| s.code == google_cloud_gax::error::rpc::Code::AlreadyExists)
}

async fn write_private(path: &std::path::Path, data: &[u8]) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut opts = tokio::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .await
        .context("writing the channel secret")?;
    f.write_all(data).await?;
    f.sync_all().await?;
    Ok(())
}
