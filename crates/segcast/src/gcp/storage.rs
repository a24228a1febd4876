//! Cloud Storage: streamed reads (the official client, with byte ranges so fan-out can resume mid-file), small
//! writes, and object listing over the JSON API (the official crate lists only through the gRPC StorageControl
//! service, which neither fake-gcs-server nor a plain HTTP proxy speaks).

use crate::config::Settings;
use anyhow::{Context, anyhow};
use google_cloud_auth::credentials::Credentials;
use google_cloud_storage::client::Storage as GcsClient;
use google_cloud_storage::model_ext::ReadRange;

#[derive(Clone)]
pub struct Storage {
    client: GcsClient,
    json_base: String,
    creds: Credentials,
    http: reqwest::Client,
    pub bucket: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub name: String,
    pub size: u64,
}

/// A streamed object body.
pub struct ObjectReader {
    /// `None`: reading started at the end of the object.
    inner: Option<google_cloud_storage::read_object::ReadObjectResponse>,
}

impl ObjectReader {
    /// The next chunk, `None` at the end.
    pub async fn next_chunk(&mut self) -> Option<anyhow::Result<bytes::Bytes>> {
        self.inner
            .as_mut()?
            .next()
            .await
            .map(|r| r.map_err(|e| anyhow!("reading object: {e}")))
    }
}

impl Storage {
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let creds = super::credentials(settings.endpoints.storage.as_deref())?;
        let mut b = GcsClient::builder().with_credentials(creds.clone());
        if let Some(ep) = &settings.endpoints.storage {
            // Uploads above the threshold go resumable, and fake-gcs-server builds resumable URLs without the port:
            // segcast's own uploads are small, so keep them single-shot.
            b = b
                .with_endpoint(ep.clone())
                .with_resumable_upload_threshold(1usize << 30);
        }
        Ok(Self {
            client: b.build().await.context("Cloud Storage client")?,
            json_base: settings
                .endpoints
                .storage
                .clone()
                .unwrap_or_else(|| "https://storage.googleapis.com".into()),
            creds,
            http: reqwest::Client::new(),
            bucket: settings.bucket.clone(),
        })
    }

    fn bucket_path(&self) -> String {
        format!("projects/_/buckets/{}", self.bucket)
    }

    /// Objects under `prefix`, sorted by name.
    pub async fn list(&self, prefix: &str) -> anyhow::Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let headers = super::auth_headers(&self.creds).await?;
            let mut req = self
                .http
                .get(format!("{}/storage/v1/b/{}/o", self.json_base, self.bucket))
                .headers(headers)
                .query(&[("prefix", prefix)]);
            if let Some(p) = &page {
                req = req.query(&[("pageToken", p)]);
            }
            let resp = req.send().await.context("listing objects")?;
            let status = resp.status();
            let v: serde_json::Value = resp.json().await.context("listing objects")?;
            if !status.is_success() {
                return Err(anyhow!(
                    "listing gs://{}/{prefix}: HTTP {status}: {v}",
                    self.bucket
                ));
            }
            for item in v["items"].as_array().into_iter().flatten() {
                out.push(ObjectInfo {
                    name: item["name"].as_str().unwrap_or_default().to_owned(),
                    size: item["size"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0),
                });
            }
            match v["nextPageToken"].as_str() {
                Some(t) if !t.is_empty() => page = Some(t.to_owned()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Streams `object` from byte `offset` on.
    pub async fn read_from(&self, object: &str, offset: u64) -> anyhow::Result<ObjectReader> {
        let result = self
            .client
            .read_object(self.bucket_path(), object)
            .set_read_range(ReadRange::offset(offset))
            .send()
            .await;
        match result {
            Ok(inner) => Ok(ObjectReader { inner: Some(inner) }),
            // 416 Range Not Satisfiable: `offset` is the object's size (a checkpoint at its very end).
            Err(e) if offset > 0 && e.http_status_code() == Some(416) => {
                Ok(ObjectReader { inner: None })
            }
            Err(e) => Err(anyhow!(
                "reading gs://{}/{object} from {offset}: {e}",
                self.bucket
            )),
        }
    }

    pub async fn write(
        &self,
        object: &str,
        data: Vec<u8>,
        content_type: &str,
    ) -> anyhow::Result<()> {
        self.client
            .write_object(self.bucket_path(), object, bytes::Bytes::from(data))
            .set_content_type(content_type)
            .send_buffered()
            .await
            .map_err(|e| anyhow!("writing gs://{}/{object}: {e}", self.bucket))?;
        Ok(())
    }
}
