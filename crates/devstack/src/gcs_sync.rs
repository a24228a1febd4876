//! Gives files that another program (bqemulator's EXPORT DATA) wrote into fake-gcs-server's filesystem
//! root the `user.metadata` extended attribute fake-gcs-server writes for its own objects, so that it
//! lists and serves them. Used by the [`crate::bridge`] before it forwards a request that reads a bucket.
//!
//! The metadata is exactly what fake-gcs-server stores on a JSON-API upload (`getfattr -d` of one):
//! content type, CRC32C, MD5 (also the ETag), created/updated times, generation (mtime in microseconds),
//! ACL. A second attribute (`user.segcast.bridge`: size, mtime, inode) records what was synced, so a file
//! rewritten in place is synced again, and files fake-gcs-server wrote itself (no marker) are left alone.

use std::fs::File;
use std::io::{self, Read as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;

/// fake-gcs-server's metadata attribute.
const METADATA_XATTR: &str = "user.metadata";
/// The bridge's record of the file state it synced.
const MARKER_XATTR: &str = "user.segcast.bridge";
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
pub fn check_xattr_support(root: &Path) -> io::Result<()> {
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
}
