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
//! the exact `user.metadata` fake-gcs-server writes itself (content type, CRC32C, MD5, ETag, times,
//! generation). EXPORT DATA jobs are synchronous, so an export that returned is always listed by the next
//! request: there is no race. A second attribute (`user.segcast.bridge`: size, mtime, inode) records what
//! was synced, so a re-export is noticed and files fake-gcs-server wrote itself are left alone. Bodies
//! (uploads, downloads, range reads) stream through without buffering.

use std::fs::File;
use std::io::{self, Read as _};
use std::net::SocketAddr;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse as _, Response};
use base64::Engine as _;
use http::{HeaderValue, Method, StatusCode, Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::percent_decode_str;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// fake-gcs-server's metadata attribute.
const METADATA_XATTR: &str = "user.metadata";
/// The bridge's record of the file state it synced.
const MARKER_XATTR: &str = "user.segcast.bridge";

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

/// What a request reads, and so what must be synced before it is forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncTarget {
    /// One object.
    Object { bucket: String, object: String },
    /// A listing: objects whose names start with `prefix`.
    Prefix { bucket: String, prefix: String },
    /// The whole bucket (copy, compose, rewrite, bucket delete).
    Bucket { bucket: String },
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

/// A relative path made of normal components only (no `..`, no root), or None.
fn safe_relative(name: &str) -> Option<PathBuf> {
    let path = Path::new(name);
    let ok = !name.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
    ok.then(|| path.to_path_buf())
}

/// Syncs what `target` reads under `root`; returns how many files got (new) metadata.
pub fn sync_target(root: &Path, target: &SyncTarget) -> io::Result<usize> {
    match target {
        SyncTarget::Object { bucket, object } => {
            let (Some(b), Some(o)) = (safe_relative(bucket), safe_relative(object)) else {
                return Ok(0);
            };
            let path = root.join(b).join(o);
            if path.is_file() {
                Ok(usize::from(sync_file(&path)?))
            } else {
                Ok(0)
            }
        }
        SyncTarget::Prefix { bucket, prefix } => {
            let Some(b) = safe_relative(bucket) else {
                return Ok(0);
            };
            // Walk only the deepest directory the prefix names.
            let dir_part = prefix.rfind('/').map_or("", |i| &prefix[..i]);
            let dir = match dir_part {
                "" => Some(root.join(&b)),
                d => safe_relative(d).map(|d| root.join(&b).join(d)),
            };
            match dir {
                Some(dir) => sync_dir(&dir),
                None => sync_dir(&root.join(b)),
            }
        }
        SyncTarget::Bucket { bucket } => match safe_relative(bucket) {
            Some(b) => sync_dir(&root.join(b)),
            None => Ok(0),
        },
    }
}

/// Syncs every regular file under `dir`, recursively.
pub fn sync_dir(dir: &Path) -> io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut synced = 0;
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            synced += sync_dir(&entry.path())?;
        } else if kind.is_file() {
            match sync_file(&entry.path()) {
                Ok(done) => synced += usize::from(done),
                // Vanished between listing and opening (a temporary file renamed away): nothing to do.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(synced)
}

/// Gives `path` fake-gcs-server's metadata if it lacks it or changed since the bridge last synced it.
/// Returns whether it wrote metadata. Attributes are read and written through the opened file, so a file
/// replaced meanwhile is never labelled with another file's checksums.
pub fn sync_file(path: &Path) -> io::Result<bool> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(false);
    }
    let mtime_ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
    let stamp = format!("{}:{}:{}", meta.len(), mtime_ns, meta.ino());
    let has_metadata = fget_xattr(&file, METADATA_XATTR)?.is_some();
    let marker = fget_xattr(&file, MARKER_XATTR)?;
    let up_to_date = match &marker {
        None => has_metadata, // written by fake-gcs-server itself
        Some(m) => has_metadata && m == stamp.as_bytes(),
    };
    if up_to_date {
        return Ok(false);
    }
    let (crc, md5) = checksums(&file)?;
    let metadata = object_metadata(content_type(path), crc, md5, mtime_ns);
    fset_xattr(&file, METADATA_XATTR, metadata.as_bytes())?;
    fset_xattr(&file, MARKER_XATTR, stamp.as_bytes())?;
    Ok(true)
}

/// CRC32C (big-endian) and MD5 of a file's content, streamed.
fn checksums(mut file: &File) -> io::Result<(u32, [u8; 16])> {
    let mut crc = 0u32;
    let mut md5 = md5::Context::new();
    let mut buf = vec![0u8; 1 << 18];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        md5.consume(&buf[..n]);
    }
    Ok((crc, md5.finalize().0))
}

/// The JSON fake-gcs-server stores in `user.metadata` for an object it wrote itself.
pub fn object_metadata(content_type: &str, crc32c: u32, md5: [u8; 16], mtime_ns: i128) -> String {
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(mtime_ns)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let md5 = encode_b64(&md5);
    serde_json::json!({
        "StorageClass": "STANDARD",
        "ContentType": content_type,
        "ContentEncoding": "",
        "ContentDisposition": "",
        "ContentLanguage": "",
        "CacheControl": "",
        "Crc32c": encode_b64(&crc32c.to_be_bytes()),
        "Md5Hash": md5,
        "Etag": md5,
        "ACL": [{"Entity": "projectOwner-test-project", "EntityID": "", "Role": "OWNER", "Domain": "",
                 "Email": "", "ProjectTeam": null}],
        "Metadata": {},
        "Created": time,
        "Deleted": "0001-01-01T00:00:00Z",
        "Updated": time,
        "CustomTime": "0001-01-01T00:00:00Z",
        "Generation": (mtime_ns / 1000) as i64,
        "RetentionMode": "",
        "RetentionRetainUntil": "",
    })
    .to_string()
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "json" | "jsonl" | "ndjson" => "application/json",
        "csv" => "text/csv",
        "txt" => "text/plain",
        _ => "application/octet-stream",
    }
}

fn fget_xattr(file: &File, name: &str) -> io::Result<Option<Vec<u8>>> {
    let cname = std::ffi::CString::new(name).map_err(io::Error::other)?;
    let fd = file.as_raw_fd();
    loop {
        // SAFETY: size query with a null buffer, then a read into a buffer of the returned size.
        let len = unsafe { libc::fgetxattr(fd, cname.as_ptr(), std::ptr::null_mut(), 0) };
        if len < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::ENODATA) => Ok(None),
                _ => Err(err),
            };
        }
        let mut buf = vec![0u8; len as usize];
        let got =
            unsafe { libc::fgetxattr(fd, cname.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if got >= 0 {
            buf.truncate(got as usize);
            return Ok(Some(buf));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ERANGE) => continue, // grew in between
            Some(libc::ENODATA) => return Ok(None),
            _ => return Err(err),
        }
    }
}

fn fset_xattr(file: &File, name: &str, value: &[u8]) -> io::Result<()> {
    let cname = std::ffi::CString::new(name).map_err(io::Error::other)?;
    // SAFETY: value points to value.len() readable bytes.
    let rc = unsafe {
        libc::fsetxattr(
            file.as_raw_fd(),
            cname.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The bridge (and fake-gcs-server's filesystem backend) need user extended attributes under `root`.
fn check_xattr_support(root: &Path) -> io::Result<()> {
    std::fs::create_dir_all(root)?;
    let probe = root.join(".segcast-xattr-probe");
    let file = File::create(&probe)?;
    let result = fset_xattr(&file, MARKER_XATTR, b"probe");
    drop(file);
    let _ = std::fs::remove_file(&probe);
    result.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "{} does not support user extended attributes ({e}); the GCS emulator needs them",
                root.display()
            ),
        )
    })
}

fn encode_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_root(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("devstack-bridge-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn metadata_of(path: &Path) -> serde_json::Value {
        let raw = fget_xattr(&File::open(path).unwrap(), METADATA_XATTR)
            .unwrap()
            .expect("user.metadata");
        serde_json::from_slice(&raw).unwrap()
    }

    #[test]
    fn checksums_match_what_fake_gcs_writes() {
        // fake-gcs-server stored these for a JSON-API upload of "hello\nworld\n".
        let root = temp_root("sums");
        let path = root.join("f.json");
        std::fs::write(&path, "hello\nworld\n").unwrap();
        assert!(sync_file(&path).unwrap());
        let meta = metadata_of(&path);
        assert_eq!(meta["Crc32c"], "U49V7A==");
        assert_eq!(meta["Md5Hash"], "D3I65/m/B3RERek6xVlRVg==");
        assert_eq!(meta["Etag"], "D3I65/m/B3RERek6xVlRVg==");
        assert_eq!(meta["ContentType"], "application/json");
        assert!(meta["Generation"].as_i64().unwrap() > 1_600_000_000_000_000);
        assert!(meta["Created"].as_str().unwrap().ends_with('Z'));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn syncs_new_and_changed_files_only() {
        let root = temp_root("changes");
        let dir = root.join("bucket/exp");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("part-000000000000.json"), "{\"a\":1}\n").unwrap();
        std::fs::write(dir.join("part-000000000001.json"), "{\"a\":2}\n").unwrap();
        let target = SyncTarget::Prefix {
            bucket: "bucket".into(),
            prefix: "exp/part-".into(),
        };
        assert_eq!(sync_target(&root, &target).unwrap(), 2);
        assert_eq!(sync_target(&root, &target).unwrap(), 0, "nothing changed");

        // A re-export replaces the file: new inode, no attributes.
        let p0 = dir.join("part-000000000000.json");
        let tmp = dir.join("tmp");
        std::fs::write(&tmp, "{\"a\":10}\n").unwrap();
        std::fs::rename(&tmp, &p0).unwrap();
        assert_eq!(sync_target(&root, &target).unwrap(), 1);
        // Rewritten in place (keeps the old attributes): noticed through the marker.
        std::fs::write(&p0, "{\"a\":100}\n{\"a\":101}\n").unwrap();
        let obj = SyncTarget::Object {
            bucket: "bucket".into(),
            object: "exp/part-000000000000.json".into(),
        };
        assert_eq!(sync_target(&root, &obj).unwrap(), 1);
        let expected = crc32c::crc32c(b"{\"a\":100}\n{\"a\":101}\n");
        assert_eq!(
            metadata_of(&p0)["Crc32c"],
            encode_b64(&expected.to_be_bytes())
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn leaves_fake_gcs_objects_alone() {
        let root = temp_root("own");
        let path = root.join("b/o.txt");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "x").unwrap();
        fset_xattr(
            &File::open(&path).unwrap(),
            METADATA_XATTR,
            b"{\"ContentType\":\"text/x\"}",
        )
        .unwrap();
        assert_eq!(
            sync_target(&root, &SyncTarget::Bucket { bucket: "b".into() }).unwrap(),
            0
        );
        assert_eq!(metadata_of(&path)["ContentType"], "text/x");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn refuses_paths_outside_the_root() {
        let root = temp_root("escape");
        let t = SyncTarget::Object {
            bucket: "..".into(),
            object: "etc/passwd".into(),
        };
        assert_eq!(sync_target(&root, &t).unwrap(), 0);
        let t = SyncTarget::Prefix {
            bucket: "b".into(),
            prefix: "../../x".into(),
        };
        assert_eq!(sync_target(&root, &t).unwrap(), 0);
        std::fs::remove_dir_all(&root).unwrap();
    }

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
