//! `segcast-stack`: install, run (`up`), wait for, inspect and stop (`down`) local segcast stacks.

// Process groups, signals and pids of the emulators it runs (libc): the one place in the workspace that needs
// unsafe code.
#![allow(unsafe_code)]

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use devstack::pid_file::{self, OwnerKind, PidFile};
use devstack::{Stack, StackEnv, StackOptions, paths, process};

#[derive(Parser)]
#[command(
    name = "segcast-stack",
    about = "The local GCP stack for segcast (emulators + fake LINE API)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check prerequisites and install the Python-packaged emulators into .local/ (idempotent).
    Install,
    /// Start a stack and supervise it until SIGINT/SIGTERM (or, with --detach, in the background).
    Up {
        #[arg(long, default_value = "dev")]
        name: String,
        /// Also write the env file here.
        #[arg(long)]
        env_file: Option<PathBuf>,
        #[arg(long, default_value = "segcast-local")]
        project: String,
        #[arg(long, default_value = "segcast-local")]
        bucket: String,
        /// YAML or JSON file with the fake LINE server's configuration (fake_line::Config).
        #[arg(long)]
        line_config: Option<PathBuf>,
        /// Run the supervisor in the background; return once the stack is ready.
        #[arg(long)]
        detach: bool,
    },
    /// Wait until a stack's env file exists and its supervisor runs.
    Wait {
        /// The env file to wait for (default: the named stack's).
        #[arg(long)]
        env_file: Option<PathBuf>,
        #[arg(long, default_value = "dev")]
        name: String,
        #[arg(long, default_value_t = 180)]
        timeout: u64,
        /// Fail as soon as this process (e.g. a backgrounded `up`) exits.
        #[arg(long)]
        pid: Option<u32>,
    },
    /// Stop a stack: its supervisor and every process it started, by PID.
    Down {
        #[arg(long, default_value = "dev")]
        name: String,
        /// Stop every stack under .local/stacks/.
        #[arg(long)]
        all: bool,
    },
    /// List the stacks under .local/stacks/ and whether they run.
    Status,
    /// Print a stack's env file (`eval "$(segcast-stack env)"`).
    Env {
        #[arg(long, default_value = "dev")]
        name: String,
    },
    /// Remove the state dirs of stacks that no longer run.
    Prune,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("segcast-stack: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let local = paths::local_dir();
    match cli.command {
        Cmd::Install => {
            let t0 = Instant::now();
            let inst = devstack::install::install(&local)?;
            println!(
                "installed in {:.1}s: venv {}",
                t0.elapsed().as_secs_f64(),
                inst.venv.display()
            );
            println!(
                "cloud sdk {}, java {}",
                inst.sdk.root.display(),
                inst.java.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Up {
            name,
            env_file,
            project,
            bucket,
            line_config,
            detach,
        } => {
            if detach {
                return up_detached(&local, &name);
            }
            let line_config = line_config
                .as_deref()
                .map(devstack::line::read_config)
                .transpose()?;
            let opts = StackOptions {
                name: Some(name),
                project_id: project,
                bucket,
                local_dir: Some(local),
                line_config,
                extra_env_file: env_file,
                owner_kind: OwnerKind::Cli,
                ..StackOptions::default()
            };
            up_foreground(opts)
        }
        Cmd::Wait {
            env_file,
            name,
            timeout,
            pid,
        } => {
            let path = env_file.unwrap_or_else(|| paths::stack_dir(&local, &name).join("env"));
            wait_for_env(&path, Duration::from_secs(timeout), pid)?;
            println!("{}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Down { name, all } => {
            let names = if all { stack_names(&local) } else { vec![name] };
            for name in names {
                down(&local, &name)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Status => {
            status(&local);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Env { name } => {
            let path = paths::stack_dir(&local, &name).join("env");
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "no env file for stack {name:?} ({}): is it up?",
                    path.display()
                )
            })?;
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Prune => {
            for name in stack_names(&local) {
                let dir = paths::stack_dir(&local, &name);
                if !devstack::stack::stack_running(&dir) {
                    std::fs::remove_dir_all(&dir)?;
                    println!("removed {}", dir.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs the stack in this process until SIGINT/SIGTERM/SIGHUP or until one of its processes dies.
fn up_foreground(opts: StackOptions) -> anyhow::Result<ExitCode> {
    use tokio::signal::unix::{SignalKind, signal};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Handlers first, so a signal that arrives while starting stops the stack cleanly afterwards.
    let (mut term, mut int, mut hup) = rt.block_on(async {
        anyhow::Ok((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
            signal(SignalKind::hangup())?,
        ))
    })?;
    let stack = Stack::start_blocking(opts)?;
    print_table(&stack);
    let outcome = rt.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = term.recv() => break Ok("SIGTERM"),
                _ = int.recv() => break Ok("SIGINT"),
                _ = hup.recv() => break Ok("SIGHUP"),
                _ = tick.tick() => if let Err(e) = stack.check_alive() { break Err(e) },
            }
        }
    });
    match outcome {
        Ok(signal) => {
            tracing::info!(signal, "stopping the local stack");
            stack.stop();
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "a stack process died; stopping the rest");
            stack.stop();
            Err(e)
        }
    }
}

/// Re-runs `up` as a session leader in the background, its output in the stack dir's `supervisor.log`,
/// and returns when the stack is ready.
fn up_detached(local: &Path, name: &str) -> anyhow::Result<ExitCode> {
    paths::validate_stack_name(name)?;
    let dir = paths::stack_dir(local, name);
    std::fs::create_dir_all(&dir)?;
    let env_path = dir.join("env");
    if devstack::stack::stack_running(&dir) {
        bail!(
            "a stack named {name:?} is already running; `segcast-stack down --name {name}` stops it"
        );
    }
    let _ = std::fs::remove_file(&env_path);
    let log_path = dir.join("supervisor.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--detach")
        .collect();
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    if let Err(e) = wait_for_env(&env_path, Duration::from_secs(180), Some(child.id())) {
        bail!(
            "{e:#}\nlast lines of {}:\n{}",
            log_path.display(),
            devstack::install::tail(&log_path, 30)
        );
    }
    println!(
        "stack {name:?} is up (supervisor pid {}); env file: {}",
        child.id(),
        env_path.display()
    );
    println!("stop it with: segcast-stack down --name {name}");
    Ok(ExitCode::SUCCESS)
}

/// Waits until `path` holds a complete env file whose supervisor is alive.
fn wait_for_env(path: &Path, timeout: Duration, watch_pid: Option<u32>) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(env) = StackEnv::read_file(path)
            && process::pid_alive(env.stack_pid)
        {
            return Ok(());
        }
        if let Some(pid) = watch_pid
            && !process::pid_alive(pid)
        {
            bail!(
                "the stack's supervisor (pid {pid}) exited before {} appeared",
                path.display()
            );
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {}", path.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn down(local: &Path, name: &str) -> anyhow::Result<()> {
    let dir = paths::stack_dir(local, name);
    let pid_path = dir.join(pid_file::FILE_NAME);
    let Ok(file) = PidFile::read(&pid_path) else {
        println!("no stack named {name:?} is running");
        return Ok(());
    };
    let signalled = file.stop(Duration::from_secs(15));
    anyhow::ensure!(
        file.all_gone(),
        "stack {name:?}: some processes are still running: {:?}",
        file.alive_processes()
    );
    for leftover in ["env", pid_file::FILE_NAME] {
        let _ = std::fs::remove_file(dir.join(leftover));
    }
    println!("stopped stack {name:?} ({signalled} processes signalled)");
    Ok(())
}

fn stack_names(local: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(paths::stacks_dir(local))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn status(local: &Path) {
    let names = stack_names(local);
    if names.is_empty() {
        println!("no stacks under {}", paths::stacks_dir(local).display());
    }
    for name in names {
        let dir = paths::stack_dir(local, &name);
        match PidFile::read(&dir.join(pid_file::FILE_NAME)) {
            Err(_) => println!("{name:<16} stopped   {}", dir.display()),
            Ok(file) => {
                let alive = file.alive_processes().len();
                let state = if file.owner_alive() {
                    "running"
                } else {
                    "orphaned"
                };
                println!(
                    "{name:<16} {state:<9} owner pid {} ({:?}), {alive}/{} processes alive",
                    file.owner_pid,
                    file.owner_kind,
                    file.processes.len()
                );
                if let Ok(env) = StackEnv::read_file(&dir.join("env")) {
                    for (k, v) in env.vars() {
                        println!("    {k}={v}");
                    }
                }
            }
        }
    }
}

fn print_table(stack: &Stack) {
    let pid_of = |name: &str| {
        stack
            .processes()
            .into_iter()
            .find(|(n, _)| n == name)
            .map_or("-".to_string(), |(_, pid)| pid.to_string())
    };
    let rows = [
        ("pubsub", stack.pubsub_host().to_string(), pid_of("pubsub")),
        (
            "datastore",
            stack.datastore_host().to_string(),
            pid_of("datastore"),
        ),
        (
            "bigquery",
            format!("{} (REST)", stack.bigquery_url()),
            pid_of("bigquery"),
        ),
        (
            "bigquery",
            format!("{} (gRPC)", stack.bigquery_grpc_url()),
            pid_of("bigquery"),
        ),
        (
            "storage",
            format!(
                "{} (bridge to {})",
                stack.storage_url(),
                stack.gcs_backend_url().unwrap_or_default()
            ),
            pid_of("gcs"),
        ),
        (
            "line",
            stack.line_url().to_string(),
            "in-process".to_string(),
        ),
    ];
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "segcast local stack {:?}: project {}, bucket {}, supervisor pid {}",
        stack.name(),
        stack.project_id(),
        stack.bucket(),
        stack.stack_pid()
    );
    let _ = writeln!(out, "  {:<10} {:<58} pid", "service", "endpoint");
    for (service, endpoint, pid) in rows {
        let _ = writeln!(out, "  {service:<10} {endpoint:<58} {pid}");
    }
    if let Some(env) = stack.env_file() {
        let _ = writeln!(
            out,
            "env file: {}  (source it: . {})",
            env.display(),
            env.display()
        );
    }
    if let Some(dir) = stack.state_dir() {
        let _ = writeln!(out, "logs: {}", dir.join("logs").display());
    }
    let _ = writeln!(
        out,
        "stop: Ctrl-C, or segcast-stack down --name {}",
        stack.name()
    );
    let _ = out.flush();
}
