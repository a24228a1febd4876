//! The fake LINE Messaging API server (the `fake-line` crate), run in-process on the stack's runtime.
//! This is the only place that names the fake's API, so a change there is a change here only.

use std::net::SocketAddr;

pub use fake_line::Config as LineConfig;

/// A running fake LINE server.
pub struct LineServer {
    inner: fake_line::FakeLine,
}

impl LineServer {
    /// Starts the server on `addr` with `config` (the fake's defaults when `None`).
    pub async fn start(addr: SocketAddr, config: Option<LineConfig>) -> anyhow::Result<Self> {
        let inner = fake_line::FakeLine::start(addr, config.unwrap_or_default()).await?;
        Ok(Self { inner })
    }

    /// Base URL, e.g. `http://127.0.0.1:P`.
    pub fn url(&self) -> String {
        self.inner.url()
    }

    /// The fake itself: stats, recorded deliveries, faults, quotas.
    pub fn fake(&self) -> &fake_line::FakeLine {
        &self.inner
    }

    pub async fn shutdown(self) {
        self.inner.shutdown().await;
    }
}

/// Reads a fake LINE configuration file (YAML or JSON).
pub fn read_config(path: &std::path::Path) -> anyhow::Result<LineConfig> {
    use anyhow::Context as _;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml::from_str(&text)
        .with_context(|| format!("parsing the fake LINE config {}", path.display()))
}
