//! The export bridge between bqemulator and fake-gcs-server (dev tooling only, never in the services).
//!
//! bqemulator's `EXPORT DATA OPTIONS(uri='gs://B/p/part-*.json', ...)` writes plain files under its
//! `BQEMU_GCS_LOCAL_ROOT`, which the stack makes the same directory as fake-gcs-server's filesystem root.
//! fake-gcs-server only serves (and lists) files carrying its `user.metadata` extended attribute, so a
//! foreign file is invisible, and even breaks its bucket's listing.
//!
//! The bridge is a small streaming HTTP reverse proxy in front of fake-gcs-server; `STORAGE_EMULATOR_HOST`
//! points at it. Before it forwards a request that reads a bucket (list, object get/metadata/download,
//! copy, compose, delete), it synchronously gives every new or changed foreign file under the affected path
//! the metadata fake-gcs-server writes itself ([`crate::gcs_sync`]). EXPORT DATA jobs are synchronous, so
//! an export that returned is always listed by the next request: there is no race. Bodies (uploads,
//! downloads, range reads) stream through without buffering.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse as _, Response};
use http::{HeaderValue, Method, StatusCode, Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::percent_decode_str;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::gcs_sync::{SyncTarget, check_xattr_support, sync_target};

/// A running bridge (reverse proxy) in front of fake-gcs-server.
pub struct Bridge {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

struct BridgeState {
    backend: SocketAddr,
    root: PathBuf,
    client: Client<HttpConnector, Body>,
    sync_lock: Arc<Mutex<()>>,
}

impl Bridge {
    /// Starts serving on `listener`, forwarding to fake-gcs-server at `backend`, whose filesystem root
    /// (shared with bqemulator's `BQEMU_GCS_LOCAL_ROOT`) is `root`. Must run inside a tokio runtime.
    pub fn start(
        listener: std::net::TcpListener,
        backend: SocketAddr,
        root: PathBuf,
    ) -> io::Result<Self> {
        check_xattr_support(&root)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let state = Arc::new(BridgeState {
            backend,
            root,
            client,
            sync_lock: Arc::default(),
        });
        let app = axum::Router::new().fallback(proxy).with_state(state);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = served.await {
                tracing::error!(error = %e, "GCS bridge stopped");
            }
        });
        Ok(Self {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:P`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn proxy(State(state): State<Arc<BridgeState>>, req: Request) -> Response {
    if let Some(target) = classify(req.method(), req.uri().path(), req.uri().query()) {
        let root = state.root.clone();
        let lock = state.sync_lock.clone();
        let synced = tokio::task::spawn_blocking(move || {
            let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            sync_target(&root, &target)
        })
        .await;
        match synced {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::debug!(files = n, "bridge synced exported files"),
            Ok(Err(e)) => tracing::warn!(error = %e, "bridge sync failed"),
            Err(e) => tracing::warn!(error = %e, "bridge sync panicked"),
        }
    }
    match forward(&state, req).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::warn!(error = %e, "bridge could not reach fake-gcs-server");
            (
                StatusCode::BAD_GATEWAY,
                format!("segcast GCS bridge: {e}\n"),
            )
                .into_response()
        }
    }
}

async fn forward(state: &BridgeState, req: Request) -> anyhow::Result<Response> {
    let (mut parts, body) = req.into_parts();
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    parts.uri = Uri::try_from(format!("http://{}{}", state.backend, path_and_query))?;
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::TE,
        header::TRAILER,
    ] {
        parts.headers.remove(name);
    }
    parts.headers.remove("keep-alive");
    parts.headers.remove("proxy-connection");
    let host = parts.headers.get(header::HOST).cloned();
    let resp = state
        .client
        .request(http::Request::from_parts(parts, body))
        .await?;
    let (mut parts, body) = resp.into_parts();
    // fake-gcs-server builds resumable-upload URLs from the Host without its port; point them back here.
    if let (Some(location), Some(host)) = (parts.headers.get(header::LOCATION), host)
        && let Some(fixed) = fix_location(location, &host)
    {
        parts.headers.insert(header::LOCATION, fixed);
    }
    parts.headers.remove(header::CONNECTION);
    parts.headers.remove("keep-alive");
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// Rewrites `http://127.0.0.1/...` (port lost) to `http://<host>/...`.
fn fix_location(location: &HeaderValue, host: &HeaderValue) -> Option<HeaderValue> {
    let loc: Uri = location.to_str().ok()?.parse().ok()?;
    let host = host.to_str().ok()?;
    let loc_host = loc.host()?;
    if loc.port().is_some() || !host.starts_with(loc_host) || host == loc_host {
        return None;
    }
    let pq = loc.path_and_query().map_or("/", |pq| pq.as_str());
    HeaderValue::from_str(&format!(
        "{}://{host}{pq}",
        loc.scheme_str().unwrap_or("http")
    ))
    .ok()
}
/// Maps a GCS JSON-API (or XML-style `GET /bucket/object`) request to what it reads.
pub fn classify(method: &Method, path: &str, query: Option<&str>) -> Option<SyncTarget> {
    let path = path.strip_prefix('/')?;
    if path.starts_with("upload/") || path.starts_with("_internal") {
        return None;
    }
    let api = path.strip_prefix("download/").unwrap_or(path);
    if let Some(rest) = api.strip_prefix("storage/v1/b/") {
        let (bucket, rest) = match rest.split_once('/') {
            Some((b, r)) => (decode(b)?, Some(r)),
            None => (decode(rest)?, None),
        };
        return match rest {
            None | Some("") => (method == Method::DELETE).then_some(SyncTarget::Bucket { bucket }),
            Some("o") | Some("o/") => {
                let prefix = query_param(query.unwrap_or(""), "prefix").unwrap_or_default();
                Some(SyncTarget::Prefix { bucket, prefix })
            }
            Some(r) => {
                let object = r.strip_prefix("o/")?;
                if object.contains("/copyTo/")
                    || object.contains("/rewriteTo/")
                    || object.ends_with("/compose")
                {
                    Some(SyncTarget::Bucket { bucket })
                } else {
                    Some(SyncTarget::Object {
                        bucket,
                        object: decode(object)?,
                    })
                }
            }
        };
    }
    if api.starts_with("storage/") || !(method == Method::GET || method == Method::HEAD) {
        return None;
    }
    let (bucket, object) = path.split_once('/')?;
    (!bucket.is_empty() && !object.is_empty())
        .then(|| {
            Some(SyncTarget::Object {
                bucket: decode(bucket)?,
                object: decode(object)?,
            })
        })
        .flatten()
}

fn decode(s: &str) -> Option<String> {
    percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| decode(&v.replace('+', " "))).flatten()
    })
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_requests() {
        let get = Method::GET;
        let obj = |b: &str, o: &str| {
            Some(SyncTarget::Object {
                bucket: b.into(),
                object: o.into(),
            })
        };
        assert_eq!(
            classify(
                &get,
                "/storage/v1/b/bk/o",
                Some("prefix=exp%2Fpart-&pageToken=x")
            ),
            Some(SyncTarget::Prefix {
                bucket: "bk".into(),
                prefix: "exp/part-".into()
            })
        );
        assert_eq!(
            classify(&get, "/storage/v1/b/bk/o", None),
            Some(SyncTarget::Prefix {
                bucket: "bk".into(),
                prefix: String::new()
            })
        );
        assert_eq!(
            classify(&get, "/storage/v1/b/bk/o/exp%2Fa.json", Some("alt=media")),
            obj("bk", "exp/a.json")
        );
        assert_eq!(
            classify(&get, "/download/storage/v1/b/bk/o/exp%2Fa.json", None),
            obj("bk", "exp/a.json")
        );
        assert_eq!(
            classify(&Method::HEAD, "/bk/exp/a.json", None),
            obj("bk", "exp/a.json")
        );
        assert_eq!(
            classify(&Method::DELETE, "/storage/v1/b/bk/o/a", None),
            obj("bk", "a")
        );
        assert_eq!(
            classify(&Method::POST, "/storage/v1/b/bk/o/a/copyTo/b/bk/o/b", None),
            Some(SyncTarget::Bucket {
                bucket: "bk".into()
            })
        );
        assert_eq!(
            classify(&Method::POST, "/upload/storage/v1/b/bk/o", Some("name=a")),
            None
        );
        assert_eq!(classify(&get, "/storage/v1/b", Some("project=p")), None);
        assert_eq!(classify(&get, "/storage/v1/b/bk", None), None);
        assert_eq!(classify(&Method::POST, "/bk/a", None), None);
    }

    #[test]
    fn fixes_locations_without_port() {
        let fixed = fix_location(
            &HeaderValue::from_static(
                "http://127.0.0.1/upload/storage/v1/b/b/o?uploadType=resumable&upload_id=1",
            ),
            &HeaderValue::from_static("127.0.0.1:4567"),
        );
        assert_eq!(
            fixed.unwrap().to_str().unwrap(),
            "http://127.0.0.1:4567/upload/storage/v1/b/b/o?uploadType=resumable&upload_id=1"
        );
        let with_port = HeaderValue::from_static("http://127.0.0.1:4567/x");
        assert!(fix_location(&with_port, &HeaderValue::from_static("127.0.0.1:4567")).is_none());
    }
}
