//! Adapters for the Google services segcast uses. Each takes its endpoint from [`crate::config::Endpoints`]:
//! an emulator (plain `http://`, anonymous credentials) or the real service (Application Default Credentials).

pub mod bigquery;
pub mod datastore;
pub mod pubsub;
pub mod storage;

use crate::config::Settings;
use google_cloud_auth::credentials::{Credentials, anonymous};

/// Anonymous credentials for an emulator, Application Default Credentials otherwise.
pub fn credentials(emulator: Option<&str>) -> anyhow::Result<Credentials> {
    Ok(match emulator {
        Some(_) => anonymous::Builder::new().build(),
        None => google_cloud_auth::credentials::Builder::default().build()?,
    })
}

/// Authorization headers for hand-made REST calls (none for an emulator).
pub async fn auth_headers(creds: &Credentials) -> anyhow::Result<http::HeaderMap> {
    use google_cloud_auth::credentials::CacheableResource;
    match creds.headers(http::Extensions::new()).await? {
        CacheableResource::New { data, .. } => Ok(data),
        CacheableResource::NotModified => Ok(http::HeaderMap::new()),
    }
}

/// Every Google client a segcast binary needs, built once at start-up.
#[derive(Clone)]
pub struct Gcp {
    pub datastore: datastore::Datastore,
    pub pubsub: pubsub::PubSub,
    pub bigquery: bigquery::BigQuery,
    pub storage: storage::Storage,
}

impl Gcp {
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        Ok(Self {
            datastore: datastore::Datastore::connect(settings).await?,
            pubsub: pubsub::PubSub::connect(settings).await?,
            bigquery: bigquery::BigQuery::connect(settings).await?,
            storage: storage::Storage::connect(settings).await?,
        })
    }
}
