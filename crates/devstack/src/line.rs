//! The fake LINE Messaging API server, run in-process on the stack's runtime. This is the only place that
//! names the `fake-line` crate's API, so a change there is a change here only.

use std::net::SocketAddr;

/// A running fake LINE server.
pub struct LineServer {
    inner: placeholder::FakeLine,
}

impl LineServer {
    /// Starts the server on `addr`; `config` (JSON) is deserialized into the fake's `Config`
    /// (its defaults when `None`).
    pub async fn start(addr: SocketAddr, config: Option<serde_json::Value>) -> anyhow::Result<Self> {
        let config: placeholder::Config = match config {
            Some(value) => serde_json::from_value(value)?,
            None => Default::default(),
        };
        Ok(Self { inner: placeholder::FakeLine::start(addr, config).await? })
    }

    /// Base URL, e.g. `http://127.0.0.1:P`.
    pub fn url(&self) -> String {
        self.inner.url().to_string()
    }

    pub async fn shutdown(self) {
        self.inner.shutdown().await;
    }
}

/// Stand-in with the fake-line crate's API until it lands: answers every request with `200 {}`.
mod placeholder {
    use std::net::SocketAddr;

    #[derive(Debug, Default, serde::Deserialize)]
    pub struct Config {}

    pub struct FakeLine {
        url: String,
        stop: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<()>,
    }

    impl FakeLine {
        pub async fn start(addr: SocketAddr, _config: Config) -> std::io::Result<Self> {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            let url = format!("http://{}", listener.local_addr()?);
            let app = axum::Router::new().fallback(|| async { axum::Json(serde_json::json!({})) });
            let (stop, rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
            Ok(Self { url, stop, task })
        }

        pub fn url(&self) -> &str {
            &self.url
        }

        pub async fn shutdown(self) {
            let _ = self.stop.send(());
            let _ = self.task.await;
        }
    }
}
