//! One start function per emulator process (what it runs, with which flags and environment) and the
//! readiness check that waits for it.
//!
//! The gcloud launchers are bypassed: `cloud-pubsub-emulator` ends in `exec java ... -jar <jar>`, and
//! `cloud_firestore_emulator` runs `java -Duser.language=en -cp <jar> ...CloudFirestore` *without* `exec`
//! (so stopping the script would leave java running): both are started here as the java command itself.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::install::{Installation, tail};
use crate::ports::localhost;
use crate::process::{ManagedProcess, ProcessSpec, Supervisor, pid_alive};

/// Where a stack keeps its files.
#[derive(Debug, Clone)]
pub struct StackDirs {
    pub state: PathBuf,
    /// fake-gcs-server's filesystem root, which is also bqemulator's `BQEMU_GCS_LOCAL_ROOT`.
    pub gcs: PathBuf,
    pub logs: PathBuf,
}

impl StackDirs {
    pub fn new(state: &Path) -> Self {
        Self {
            state: state.to_path_buf(),
            gcs: state.join("gcs"),
            logs: state.join("logs"),
        }
    }

    pub fn log(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }
}

/// A started emulator process, the URL that answers 2xx once it is ready, and any other port it must
/// accept connections on before it counts as ready.
pub struct Started {
    pub process: ManagedProcess,
    pub health_url: String,
    pub also_listening: Option<u16>,
}

fn spec(name: &str, program: &Path, inst: &Installation, dirs: &StackDirs) -> ProcessSpec {
    // Every emulator runs with the project-local HOME, so none writes into the user's home.
    ProcessSpec::new(name, program, &dirs.state, dirs.log(name)).env("HOME", &inst.home)
}

/// The Pub/Sub emulator: `java -jar cloud-pubsub-emulator-*-all.jar --host=127.0.0.1 --port=P`.
pub fn start_pubsub(
    sup: &Supervisor,
    inst: &Installation,
    dirs: &StackDirs,
    port: u16,
) -> io::Result<Started> {
    let spec = spec("pubsub", &inst.java, inst, dirs)
        .arg("-jar")
        .arg(&inst.sdk.pubsub_jar)
        .arg("--host=127.0.0.1")
        .arg(format!("--port={port}"));
    Ok(Started {
        process: sup.spawn(spec)?,
        health_url: format!("http://127.0.0.1:{port}/"),
        also_listening: None,
    })
}

/// The Firestore emulator in Datastore mode (the emulator of production's Firestore in Datastore mode).
pub fn start_datastore(
    sup: &Supervisor,
    inst: &Installation,
    dirs: &StackDirs,
    port: u16,
) -> io::Result<Started> {
    let spec = spec("datastore", &inst.java, inst, dirs)
        .arg("-Duser.language=en")
        .arg("-cp")
        .arg(&inst.sdk.firestore_jar)
        .arg("com.google.cloud.datastore.emulator.firestore.CloudFirestore")
        .arg("start")
        .arg("--host=127.0.0.1")
        .arg(format!("--port={port}"))
        .arg("--database-mode=datastore-mode");
    Ok(Started {
        process: sup.spawn(spec)?,
        health_url: format!("http://127.0.0.1:{port}/"),
        also_listening: None,
    })
}

/// Settings for bqemulator.
pub struct BigQueryPorts {
    pub rest: u16,
    pub grpc: u16,
    /// `BQEMU_EXPORT_SHARD_THRESHOLD_BYTES`: exports larger than this are split into several files.
    pub export_shard_threshold_bytes: u64,
}

/// bqemulator (REST + Storage Read/Write gRPC), in memory, with `gs://` mapped onto the GCS root.
pub fn start_bigquery(
    sup: &Supervisor,
    inst: &Installation,
    dirs: &StackDirs,
    ports: &BigQueryPorts,
    project: &str,
) -> io::Result<Started> {
    let spec = spec("bigquery", &inst.python, inst, dirs)
        .arg("-m")
        .arg("bqemulator")
        .arg("start")
        .arg("--rest-host=127.0.0.1")
        .arg(format!("--rest-port={}", ports.rest))
        .arg("--grpc-host=127.0.0.1")
        .arg(format!("--grpc-port={}", ports.grpc))
        .arg(format!("--project={project}"))
        .arg("--log-level=info")
        .env("BQEMU_GCS_LOCAL_ROOT", &dirs.gcs)
        .env("BQEMU_ENABLE_FORMAT_EXTENSIONS", "false")
        .env(
            "BQEMU_EXPORT_SHARD_THRESHOLD_BYTES",
            ports.export_shard_threshold_bytes.to_string(),
        )
        .env("PYTHONUNBUFFERED", "1");
    // bqemulator answers /readyz once REST is up, and starts its gRPC server just after.
    Ok(Started {
        process: sup.spawn(spec)?,
        health_url: format!("http://127.0.0.1:{}/readyz", ports.rest),
        also_listening: Some(ports.grpc),
    })
}

/// fake-gcs-server (filesystem backend on the GCS root). `external_url` is the bridge's URL, so the
/// links it returns point at the bridge.
pub fn start_gcs(
    sup: &Supervisor,
    inst: &Installation,
    dirs: &StackDirs,
    port: u16,
    external_url: &str,
) -> io::Result<Started> {
    let spec = spec("gcs", &inst.fake_gcs_bin, inst, dirs)
        .arg("-scheme")
        .arg("http")
        .arg("-host")
        .arg("127.0.0.1")
        .arg("-port")
        .arg(port.to_string())
        .arg("-backend")
        .arg("filesystem")
        .arg("-filesystem-root")
        .arg(&dirs.gcs)
        .arg("-external-url")
        .arg(external_url)
        .arg("-log-level")
        .arg("warn");
    Ok(Started {
        process: sup.spawn(spec)?,
        health_url: format!("http://127.0.0.1:{port}/storage/v1/b"),
        also_listening: None,
    })
}

/// The address fake-gcs-server listens on.
pub fn gcs_backend_addr(port: u16) -> SocketAddr {
    localhost(port)
}

/// Polls the health URL until it answers 2xx (and `also_listening` accepts connections); fails early
/// (with the log's tail) if the process exits.
pub async fn wait_ready(
    client: &reqwest::Client,
    started: &Probe,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let Probe {
        name,
        health_url: url,
        also_listening,
        pid,
        log,
    } = started;
    let t0 = Instant::now();
    loop {
        let ok = client
            .get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        let listening = match also_listening {
            Some(port) => tokio::net::TcpStream::connect(localhost(*port))
                .await
                .is_ok(),
            None => true,
        };
        if ok && listening {
            return Ok(t0.elapsed());
        }
        if !pid_alive(*pid) {
            bail!(
                "{name} (pid {pid}) exited while starting; last lines of {}:\n{}",
                log.display(),
                tail(log, 30)
            );
        }
        if t0.elapsed() > timeout {
            bail!(
                "{name} not ready at {url} after {timeout:?}; last lines of {}:\n{}",
                log.display(),
                tail(log, 30)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What [`wait_ready`] checks for one process (detached from the process handle).
#[derive(Debug, Clone)]
pub struct Probe {
    pub name: String,
    pub health_url: String,
    pub also_listening: Option<u16>,
    pub pid: u32,
    pub log: PathBuf,
}

impl Started {
    pub fn probe(&self) -> Probe {
        Probe {
            name: self.process.name.clone(),
            health_url: self.health_url.clone(),
            also_listening: self.also_listening,
            pid: self.process.pid,
            log: self.process.log.clone(),
        }
    }
}
