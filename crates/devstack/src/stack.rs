//! [`Stack`]: start the whole local stack (or attach to a running one) and stop it, leaving nothing behind.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::bridge::Bridge;
use crate::emulators::{self, BigQueryPorts, StackDirs, Started};
use crate::env_file::StackEnv;
use crate::install;
use crate::line::LineServer;
use crate::paths;
use crate::pid_file::{self, OwnerKind, PidFile, RecordedProcess};
use crate::ports::{free_port, localhost};
use crate::process::{self, ManagedProcess, Supervisor, process_start_time, same_process_alive};

/// Keep every stack's state dir (logs, GCS files) when it stops, also auto-named ones.
pub const KEEP_STACKS_VAR: &str = "SEGCAST_KEEP_STACKS";

/// How to start a stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// The stack's name, naming its state dir `.local/stacks/<name>/`. `None`: a fresh `t<pid>-<n>` name,
    /// whose state dir is removed when the stack stops (unless a panic is unwinding, or
    /// `SEGCAST_KEEP_STACKS=1`).
    pub name: Option<String>,
    /// Default `segcast-local`.
    pub project_id: String,
    /// Created at start; default `segcast-local`.
    pub bucket: String,
    /// The `.local/` directory; default: the workspace's (see [`paths::local_dir`]).
    pub local_dir: Option<PathBuf>,
    /// bqemulator's `BQEMU_EXPORT_SHARD_THRESHOLD_BYTES` (default 5,000,000: ~1M rows -> 8 files).
    pub export_shard_threshold_bytes: u64,
    /// The fake LINE server's configuration (its defaults when `None`).
    pub line_config: Option<crate::line::LineConfig>,
    /// Also write the env file here.
    pub extra_env_file: Option<PathBuf>,
    /// How long each service may take to become ready.
    pub ready_timeout: Duration,
    /// Recorded in the pid file: `segcast-stack down` stops a CLI owner, never a library one.
    pub owner_kind: OwnerKind,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            name: None,
            project_id: "segcast-local".into(),
            bucket: "segcast-local".into(),
            local_dir: None,
            export_shard_threshold_bytes: 5_000_000,
            line_config: None,
            extra_env_file: None,
            ready_timeout: Duration::from_secs(90),
            owner_kind: OwnerKind::Library,
        }
    }
}

impl StackOptions {
    /// Default options with a fixed name.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            ..Self::default()
        }
    }
}

/// A running local stack: owned (started by this process, stopped on [`Stack::stop`] or drop) or
/// attached (started elsewhere; dropping it does nothing).
pub struct Stack {
    env: StackEnv,
    state_dir: Option<PathBuf>,
    env_file: Option<PathBuf>,
    owned: Option<Owned>,
}

/// Everything an owned stack runs. Dropping it stops it all.
struct Owned {
    runtime: Option<tokio::runtime::Runtime>,
    bridge: Option<Bridge>,
    line: Option<LineServer>,
    procs: Vec<ManagedProcess>,
    supervisor: Option<Supervisor>,
    dirs: StackDirs,
    files_to_remove: Vec<PathBuf>,
    remove_state: bool,
    gcs_backend_port: u16,
}

impl Stack {
    /// Starts a stack (installing first if needed) and waits until every service is ready. Runs the work
    /// on its own threads, so it can be awaited from any runtime.
    pub async fn start(opts: StackOptions) -> anyhow::Result<Stack> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("devstack-start".into())
            .spawn(move || {
                let _ = tx.send(Stack::start_inner(opts));
            })?;
        rx.await.context("stack start thread died")?
    }

    /// [`Stack::start`] for synchronous callers.
    pub fn start_blocking(opts: StackOptions) -> anyhow::Result<Stack> {
        std::thread::Builder::new()
            .name("devstack-start".into())
            .spawn(move || Stack::start_inner(opts))?
            .join()
            .map_err(|_| anyhow::anyhow!("stack start thread panicked"))?
    }

    /// Attaches to the stack named by this process's environment (`SEGCAST_STACK_PID` etc.), as set by
    /// sourcing an env file.
    pub fn from_env() -> anyhow::Result<Stack> {
        let env = StackEnv::from_process_env()?;
        anyhow::ensure!(
            process::pid_alive(env.stack_pid),
            "the stack in the environment is not running (SEGCAST_STACK_PID={} is gone)",
            env.stack_pid
        );
        let state_dir = (!env.stack_name.is_empty())
            .then(|| paths::stack_dir(&paths::local_dir(), &env.stack_name));
        Ok(Stack {
            env,
            state_dir,
            env_file: None,
            owned: None,
        })
    }

    /// Attaches to the stack whose env file is `path`.
    pub fn attach_env_file(path: impl AsRef<Path>) -> anyhow::Result<Stack> {
        let path = path.as_ref();
        let env = StackEnv::read_file(path)?;
        anyhow::ensure!(
            process::pid_alive(env.stack_pid),
            "the stack of {} is not running (its supervisor, pid {}, is gone)",
            path.display(),
            env.stack_pid
        );
        Ok(Stack {
            env,
            state_dir: path.parent().map(Path::to_path_buf),
            env_file: Some(path.to_path_buf()),
            owned: None,
        })
    }

    /// Attaches to the stack in the environment if there is one (`SEGCAST_STACK_PID` set), else starts one.
    pub async fn from_env_or_start(opts: StackOptions) -> anyhow::Result<Stack> {
        if std::env::var_os(crate::env_file::SEGCAST_STACK_PID).is_some() {
            Stack::from_env()
        } else {
            Stack::start(opts).await
        }
    }

    fn start_inner(opts: StackOptions) -> anyhow::Result<Stack> {
        let t0 = Instant::now();
        let auto_named = opts.name.is_none();
        let name = opts.name.clone().unwrap_or_else(auto_name);
        paths::validate_stack_name(&name)?;
        let local = opts.local_dir.clone().unwrap_or_else(paths::local_dir);
        let inst = install::install(&local)?;
        let t_install = t0.elapsed();

        prune_stale_auto_stacks(&local, Duration::from_secs(30 * 60));
        let dirs = StackDirs::new(&paths::stack_dir(&local, &name));
        prepare_state_dir(&dirs, &name)?;
        let pid_path = dirs.state.join(pid_file::FILE_NAME);
        let env_path = dirs.state.join("env");

        let keep = std::env::var(KEEP_STACKS_VAR).is_ok_and(|v| v == "1" || v == "true");
        let mut owned = Owned {
            runtime: None,
            bridge: None,
            line: None,
            procs: Vec::new(),
            supervisor: Some(Supervisor::new()?),
            dirs: dirs.clone(),
            files_to_remove: vec![pid_path.clone(), env_path.clone()],
            remove_state: auto_named && !keep,
            gcs_backend_port: 0,
        };
        if let Some(extra) = &opts.extra_env_file {
            owned.files_to_remove.push(extra.clone());
        }

        let pubsub_port = free_port()?;
        let datastore_port = free_port()?;
        let bq = BigQueryPorts {
            rest: free_port()?,
            grpc: free_port()?,
            export_shard_threshold_bytes: opts.export_shard_threshold_bytes,
        };
        let gcs_port = free_port()?;
        let line_port = free_port()?;
        let bridge_listener = std::net::TcpListener::bind(localhost(free_port()?))?;
        let storage_url = format!("http://{}", bridge_listener.local_addr()?);
        owned.gcs_backend_port = gcs_port;

        // Spawn all four processes first; they start up concurrently.
        let sup = owned.supervisor.as_ref().expect("supervisor");
        let started: Vec<Started> = vec![
            emulators::start_pubsub(sup, &inst, &dirs, pubsub_port)?,
            emulators::start_datastore(sup, &inst, &dirs, datastore_port)?,
            emulators::start_bigquery(sup, &inst, &dirs, &bq, &opts.project_id)?,
            emulators::start_gcs(sup, &inst, &dirs, gcs_port, &storage_url)?,
        ];
        let probes: Vec<emulators::Probe> = started.iter().map(Started::probe).collect();
        owned.procs = started.into_iter().map(|s| s.process).collect();
        PidFile {
            owner_pid: std::process::id(),
            owner_start_time: process_start_time(std::process::id()),
            owner_kind: opts.owner_kind,
            processes: owned
                .procs
                .iter()
                .map(|p| RecordedProcess {
                    name: p.name.clone(),
                    pid: p.pid,
                    start_time: p.start_time,
                })
                .collect(),
        }
        .write(&pid_path)?;

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("devstack-rt")
            .enable_all()
            .build()?;
        let gcs_root = dirs.gcs.clone();
        let (bridge, line, waited) = runtime.block_on(async {
            let bridge = Bridge::start(
                bridge_listener,
                emulators::gcs_backend_addr(gcs_port),
                gcs_root,
            )?;
            let line = LineServer::start(localhost(line_port), opts.line_config.clone()).await?;
            let client = reqwest::Client::builder().no_proxy().build()?;
            let waits = probes.iter().map(|probe| {
                let client = &client;
                async move {
                    let took = emulators::wait_ready(client, probe, opts.ready_timeout).await?;
                    anyhow::Ok((probe.name.clone(), took))
                }
            });
            let waited = futures::future::try_join_all(waits).await;
            let waited = match waited {
                Ok(w) => w,
                Err(e) => return anyhow::Ok((bridge, line, Err(e))),
            };
            let created =
                create_bucket(&client, &bridge.url(), &opts.project_id, &opts.bucket).await;
            anyhow::Ok((bridge, line, created.map(|()| waited)))
        })?;
        owned.runtime = Some(runtime);
        owned.bridge = Some(bridge);
        let line_url = line.url();
        owned.line = Some(line);
        let waited = waited?;

        let env = StackEnv {
            pubsub_host: format!("127.0.0.1:{pubsub_port}"),
            datastore_host: format!("127.0.0.1:{datastore_port}"),
            storage_url,
            bigquery_url: format!("http://127.0.0.1:{}", bq.rest),
            bigquery_grpc_url: format!("http://127.0.0.1:{}", bq.grpc),
            line_url,
            project_id: opts.project_id.clone(),
            bucket: opts.bucket.clone(),
            stack_pid: std::process::id(),
            stack_name: name.clone(),
        };
        env.write_file(&env_path)?;
        if let Some(extra) = &opts.extra_env_file {
            env.write_file(extra)?;
        }
        tracing::info!(
            stack = %name,
            install_ms = t_install.as_millis() as u64,
            ready = ?waited.iter().map(|(n, d)| format!("{n}={}ms", d.as_millis())).collect::<Vec<_>>(),
            total_ms = t0.elapsed().as_millis() as u64,
            env_file = %env_path.display(),
            "local stack ready"
        );
        Ok(Stack {
            env,
            state_dir: Some(dirs.state.clone()),
            env_file: Some(env_path),
            owned: Some(owned),
        })
    }

    /// Stops everything this stack started (no-op for an attached stack). Same as dropping it.
    pub fn stop(mut self) {
        if let Some(owned) = self.owned.take() {
            let t0 = Instant::now();
            drop(owned);
            tracing::info!(stack = %self.env.stack_name, ms = t0.elapsed().as_millis() as u64, "local stack stopped");
        }
    }

    /// Err if any of the stack's processes has exited (owned stacks), or its supervisor is gone (attached).
    pub fn check_alive(&self) -> anyhow::Result<()> {
        match &self.owned {
            Some(owned) => {
                if let Some(p) = owned.procs.iter().find(|p| !p.is_running()) {
                    bail!(
                        "{} (pid {}) exited; last lines of {}:\n{}",
                        p.name,
                        p.pid,
                        p.log.display(),
                        install::tail(&p.log, 20)
                    );
                }
                Ok(())
            }
            None if process::pid_alive(self.env.stack_pid) => Ok(()),
            None => bail!(
                "the stack's supervisor (pid {}) is gone",
                self.env.stack_pid
            ),
        }
    }

    pub fn env(&self) -> &StackEnv {
        &self.env
    }

    /// The variables a client process needs (`PUBSUB_EMULATOR_HOST`, ... see [`crate::env_file`]).
    pub fn env_vars(&self) -> Vec<(String, String)> {
        self.env.vars()
    }

    pub fn name(&self) -> &str {
        &self.env.stack_name
    }
    /// `127.0.0.1:P`
    pub fn pubsub_host(&self) -> &str {
        &self.env.pubsub_host
    }
    /// `127.0.0.1:P`
    pub fn datastore_host(&self) -> &str {
        &self.env.datastore_host
    }
    /// `http://127.0.0.1:P`: the GCS JSON API through the export bridge.
    pub fn storage_url(&self) -> &str {
        &self.env.storage_url
    }
    /// `http://127.0.0.1:R`: BigQuery REST.
    pub fn bigquery_url(&self) -> &str {
        &self.env.bigquery_url
    }
    /// `http://127.0.0.1:G`: BigQuery Storage Read/Write API (gRPC, plaintext).
    pub fn bigquery_grpc_url(&self) -> &str {
        &self.env.bigquery_grpc_url
    }
    /// The fake LINE API's base URL.
    pub fn line_url(&self) -> &str {
        &self.env.line_url
    }
    pub fn project_id(&self) -> &str {
        &self.env.project_id
    }
    pub fn bucket(&self) -> &str {
        &self.env.bucket
    }
    /// The PID of the process that supervises the stack.
    pub fn stack_pid(&self) -> u32 {
        self.env.stack_pid
    }
    /// `.local/stacks/<name>/` (known for owned stacks and those attached through an env file or a name).
    pub fn state_dir(&self) -> Option<&Path> {
        self.state_dir.as_deref()
    }
    pub fn env_file(&self) -> Option<&Path> {
        self.env_file.as_deref()
    }
    /// True if this handle started the stack (and stops it on drop).
    pub fn is_owned(&self) -> bool {
        self.owned.is_some()
    }
    /// `(name, pid)` of each emulator process (owned stacks).
    pub fn processes(&self) -> Vec<(String, u32)> {
        self.owned
            .iter()
            .flat_map(|o| o.procs.iter().map(|p| (p.name.clone(), p.pid)))
            .collect()
    }
    /// The directory holding every bucket (bqemulator's `gs://` root and fake-gcs-server's root).
    pub fn gcs_root(&self) -> Option<PathBuf> {
        self.state_dir.as_ref().map(|d| d.join("gcs"))
    }
    /// fake-gcs-server itself, bypassing the bridge (owned stacks; for debugging the bridge).
    pub fn gcs_backend_url(&self) -> Option<String> {
        self.owned
            .as_ref()
            .map(|o| format!("http://127.0.0.1:{}", o.gcs_backend_port))
    }
    /// The in-process fake LINE server (owned stacks): stats, recorded deliveries, faults, quotas.
    pub fn fake_line(&self) -> Option<&fake_line::FakeLine> {
        self.owned
            .as_ref()
            .and_then(|o| o.line.as_ref())
            .map(LineServer::fake)
    }
    /// The stack's own runtime (owned stacks), which serves the bridge and the fake LINE API.
    pub fn runtime(&self) -> Option<tokio::runtime::Handle> {
        self.owned
            .as_ref()
            .and_then(|o| o.runtime.as_ref())
            .map(|r| r.handle().clone())
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(owned) = self.owned.take() {
            drop(owned);
        }
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        // In-process servers first (on the stack's runtime, from whatever context we are dropped in).
        if let Some(rt) = &self.runtime {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let line = self.line.take();
            let bridge = self.bridge.take();
            rt.spawn(async move {
                if let Some(line) = line {
                    line.shutdown().await;
                }
                if let Some(bridge) = bridge {
                    bridge.shutdown().await;
                }
                let _ = tx.send(());
            });
            let _ = rx.recv_timeout(Duration::from_secs(3));
        }
        process::stop_all(&mut self.procs, Duration::from_secs(5));
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        self.supervisor.take();
        for file in &self.files_to_remove {
            let _ = std::fs::remove_file(file);
        }
        if self.remove_state && !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dirs.state);
        }
    }
}

fn auto_name() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed) + 1
    )
}

/// Refuses to reuse the state dir of a stack that still runs; clears what an earlier run left.
fn prepare_state_dir(dirs: &StackDirs, name: &str) -> anyhow::Result<()> {
    let pid_path = dirs.state.join(pid_file::FILE_NAME);
    if let Ok(old) = PidFile::read(&pid_path) {
        if old.owner_alive() {
            bail!(
                "a stack named {name:?} is already running (owner pid {}); stop it with `segcast-stack down --name {name}` or pick another name",
                old.owner_pid
            );
        }
        // Its owner died without cleaning up: stop whatever it left (children normally died with it).
        old.stop(Duration::from_secs(3));
    }
    for leftover in ["env", pid_file::FILE_NAME] {
        let _ = std::fs::remove_file(dirs.state.join(leftover));
    }
    for dir in [&dirs.gcs, &dirs.logs] {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

async fn create_bucket(
    client: &reqwest::Client,
    storage_url: &str,
    project: &str,
    bucket: &str,
) -> anyhow::Result<()> {
    let resp = client
        .post(format!("{storage_url}/storage/v1/b?project={project}"))
        .json(&serde_json::json!({ "name": bucket }))
        .send()
        .await?;
    let status = resp.status();
    if !(status.is_success() || status == reqwest::StatusCode::CONFLICT) {
        bail!(
            "creating bucket {bucket}: {status} {}",
            resp.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

/// True if a recorded stack (its pid file) still has its owner or any process running.
pub fn stack_running(state_dir: &Path) -> bool {
    PidFile::read(&state_dir.join(pid_file::FILE_NAME)).is_ok_and(|f| {
        same_process_alive(f.owner_pid, f.owner_start_time) || !f.alive_processes().is_empty()
    })
}

/// True for the names [`StackOptions::default`] generates: `t<pid>-<n>`.
fn is_auto_name(name: &str) -> bool {
    name.strip_prefix('t')
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        })
}

/// Removes the state dirs of auto-named stacks that no longer run and were created more than `age` ago:
/// those of test processes that were killed, panicked, or kept their stack in a `static` until exit.
pub fn prune_stale_auto_stacks(local: &Path, age: Duration) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(paths::stacks_dir(local)) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let (path, name) = (
            entry.path(),
            entry.file_name().to_string_lossy().into_owned(),
        );
        let old_enough = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|e| e >= age));
        if is_auto_name(&name)
            && old_enough
            && !stack_running(&path)
            && std::fs::remove_dir_all(&path).is_ok()
        {
            removed.push(path);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_names() {
        assert!(is_auto_name(&auto_name()));
        assert!(is_auto_name("t123-4"));
        for other in ["dev", "t-1", "t12-", "tx-1", "t1-2-3", "hyg-kill-1"] {
            assert!(!is_auto_name(other), "{other}");
        }
    }

    #[test]
    fn prunes_only_stale_auto_named_stacks() {
        let local = std::env::temp_dir().join(format!("devstack-prune-{}", std::process::id()));
        let stacks = paths::stacks_dir(&local);
        for name in ["t1-1", "t2-1", "dev"] {
            std::fs::create_dir_all(stacks.join(name).join("logs")).unwrap();
        }
        // t2-1 is "running": its owner (this process) is alive.
        let me = std::process::id();
        PidFile {
            owner_pid: me,
            owner_start_time: process_start_time(me),
            owner_kind: OwnerKind::Library,
            processes: vec![],
        }
        .write(&stacks.join("t2-1").join(pid_file::FILE_NAME))
        .unwrap();
        assert!(
            prune_stale_auto_stacks(&local, Duration::from_secs(3600)).is_empty(),
            "too recent"
        );
        assert_eq!(
            prune_stale_auto_stacks(&local, Duration::ZERO),
            vec![stacks.join("t1-1")]
        );
        assert!(stacks.join("t2-1").is_dir() && stacks.join("dev").is_dir());
        std::fs::remove_dir_all(&local).unwrap();
    }
}
