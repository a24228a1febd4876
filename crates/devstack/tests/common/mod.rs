//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use devstack::pid_file::PidFile;
use devstack::process::{pid_alive, same_process_alive};

/// Waits until none of `pids` is alive (a zombie counts as gone: it has exited, only its reaping is
/// missing, which on a container whose PID 1 does not reap may never come). Returns those still alive.
pub fn wait_gone(pids: &[u32], timeout: Duration) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|&p| pid_alive(p)).collect();
        if alive.is_empty() || Instant::now() > deadline {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn local_dir() -> PathBuf {
    devstack::paths::local_dir()
}

pub fn stack_dir(name: &str) -> PathBuf {
    devstack::paths::stack_dir(&local_dir(), name)
}

/// A unique stack name for this test process.
pub fn unique_name(tag: &str) -> String {
    format!("{tag}-{}", std::process::id())
}

/// Polls until the stack's pid file and env file exist with a live owner; returns the pid file.
pub fn wait_for_stack(name: &str, cli: &mut CliProcess, timeout: Duration) -> PidFile {
    let dir = stack_dir(name);
    let deadline = Instant::now() + timeout;
    loop {
        if let (Ok(file), true) = (
            PidFile::read(&dir.join("pids.json")),
            dir.join("env").is_file(),
        ) && same_process_alive(file.owner_pid, file.owner_start_time)
        {
            return file;
        }
        if let Ok(Some(status)) = cli.child.try_wait() {
            panic!(
                "segcast-stack exited with {status} before the stack was up:\n{}",
                cli.output()
            );
        }
        assert!(
            Instant::now() < deadline,
            "stack {name} not up within {timeout:?}:\n{}",
            cli.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `segcast-stack` child process; dropping it stops it (SIGTERM, then SIGKILL) and reaps it.
pub struct CliProcess {
    pub child: Child,
    pub log: PathBuf,
}

impl CliProcess {
    pub fn spawn(args: &[&str], log_tag: &str) -> Self {
        let log =
            std::env::temp_dir().join(format!("devstack-{log_tag}-{}.log", std::process::id()));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_segcast-stack"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("spawn segcast-stack");
        Self { child, log }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for CliProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            if self.wait_exit(Duration::from_secs(15)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Runs `segcast-stack ARGS` to completion.
pub fn run_cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_segcast-stack"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run segcast-stack")
}

pub fn remove_stack_dir(name: &str) {
    let _ = std::fs::remove_dir_all(stack_dir(name));
}

pub fn recorded_pids(file: &PidFile) -> Vec<u32> {
    file.processes.iter().map(|p| p.pid).collect()
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}
