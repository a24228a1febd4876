//! Spawning and stopping the emulator processes, by PID, leaving nothing behind.
//!
//! Each process is spawned directly (no shell or launcher script in between) in its own process group,
//! with `PR_SET_PDEATHSIG = SIGKILL`: the kernel kills it when the *thread* that forked it exits. So all
//! spawns happen on the [`Supervisor`]'s dedicated thread, which lives exactly as long as the stack: when
//! the owning process dies, even by SIGKILL, its emulators die with it. A normal stop sends SIGTERM to each
//! process group, waits briefly, then sends SIGKILL, and reaps every child.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What to run, where its output goes.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// Short name (`pubsub`, `datastore`, ...), used in logs and the pid file.
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Added to (or overriding) the inherited environment.
    pub env: Vec<(OsString, OsString)>,
    pub cwd: PathBuf,
    /// stdout and stderr are appended here.
    pub log: PathBuf,
}

impl ProcessSpec {
    pub fn new(
        name: &str,
        program: impl Into<PathBuf>,
        cwd: impl Into<PathBuf>,
        log: impl Into<PathBuf>,
    ) -> Self {
        Self {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: cwd.into(),
            log: log.into(),
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

type SpawnRequest = (ProcessSpec, mpsc::Sender<io::Result<Child>>);

/// A long-lived thread that forks every child, so `PR_SET_PDEATHSIG` ties the children to it.
pub struct Supervisor {
    requests: Option<mpsc::Sender<SpawnRequest>>,
    thread: Option<JoinHandle<()>>,
}

impl Supervisor {
    pub fn new() -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        let thread = std::thread::Builder::new()
            .name("devstack-supervisor".into())
            .spawn(move || {
                for (spec, reply) in rx {
                    let _ = reply.send(spawn_child(&spec));
                }
            })?;
        Ok(Self {
            requests: Some(tx),
            thread: Some(thread),
        })
    }

    /// Spawns `spec` from the supervisor thread.
    pub fn spawn(&self, spec: ProcessSpec) -> io::Result<ManagedProcess> {
        let (tx, rx) = mpsc::channel();
        let name = spec.name.clone();
        let log = spec.log.clone();
        self.requests
            .as_ref()
            .expect("supervisor running")
            .send((spec, tx))
            .map_err(|_| io::Error::other("supervisor thread is gone"))?;
        let child = rx
            .recv()
            .map_err(|_| io::Error::other("supervisor thread is gone"))??;
        let pid = child.id();
        tracing::debug!(process = %name, pid, "spawned");
        Ok(ManagedProcess {
            start_time: process_start_time(pid),
            name,
            pid,
            log,
            child: Some(child),
        })
    }
}

impl Drop for Supervisor {
    /// Ends the thread; any child still running then gets its SIGKILL from the kernel.
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn spawn_child(spec: &ProcessSpec) -> io::Result<Child> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)?;
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    for (key, value) in &spec.env {
        cmd.env(key, value);
    }
    // SAFETY: getpid is async-signal-safe; the closure below only makes async-signal-safe calls.
    let parent = unsafe { libc::getpid() };
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent died between fork and prctl: the death signal will never come.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            // Whatever the supervisor's own signal setup, the child starts with default handling.
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
                libc::signal(sig, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// A running child, leader of its own process group. Dropping it kills and reaps it.
#[derive(Debug)]
pub struct ManagedProcess {
    pub name: String,
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/PID/stat` field 22), to tell a reused PID apart.
    pub start_time: Option<u64>,
    pub log: PathBuf,
    child: Option<Child>,
}

impl ManagedProcess {
    /// True while the process has not exited.
    pub fn is_running(&self) -> bool {
        self.child.is_some() && !exited_unreaped(self.pid)
    }

    /// Signals the whole process group (only while unreaped, so the PID cannot have been reused).
    fn signal_group(&self, sig: libc::c_int) {
        if self.child.is_some() {
            // SAFETY: plain kill(2) on a process group we created and have not reaped.
            unsafe { libc::kill(-(self.pid as libc::pid_t), sig) };
        }
    }

    /// Sweeps the group with SIGKILL, then reaps the leader.
    fn kill_and_reap(&mut self) {
        self.signal_group(libc::SIGKILL);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}

/// Stops every process: SIGTERM to each group, up to `grace` for them to exit, then SIGKILL; all reaped.
pub fn stop_all(procs: &mut [ManagedProcess], grace: Duration) {
    for p in procs.iter() {
        if p.is_running() {
            p.signal_group(libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + grace;
    while procs.iter().any(ManagedProcess::is_running) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in procs.iter_mut() {
        if p.is_running() {
            tracing::warn!(process = %p.name, pid = p.pid, "did not stop on SIGTERM; sending SIGKILL");
        }
        p.kill_and_reap();
    }
}

/// True when our child `pid` has exited (or is not our child any more), without reaping it.
fn exited_unreaped(pid: u32) -> bool {
    // SAFETY: waitid with WNOWAIT only inspects the child's state.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    rc != 0 || unsafe { info.si_pid() } != 0
}

/// `/proc/PID/stat` split after the command name: `[state, ppid, pgrp, ...]`.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// True if `pid` exists and is not a zombie (a zombie has exited; only its parent's wait is missing).
pub fn pid_alive(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| !matches!(f.first().map(String::as_str), Some("Z" | "X")))
}

/// The process's start time in clock ticks since boot, if it exists.
pub fn process_start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// True if `pid` is alive and (when known) is the same process that had `start_time`.
pub fn same_process_alive(pid: u32, start_time: Option<u64>) -> bool {
    pid_alive(pid) && (start_time.is_none() || process_start_time(pid) == start_time)
}

/// Stops a process that is not our child (recorded in a pid file): SIGTERM to its group (or to it alone
/// when `group` is false), up to `grace`, then SIGKILL. Does nothing if the PID now names another process.
pub fn stop_recorded(pid: u32, start_time: Option<u64>, group: bool, grace: Duration) -> bool {
    if !same_process_alive(pid, start_time) {
        return false;
    }
    let target = if group {
        -(pid as libc::pid_t)
    } else {
        pid as libc::pid_t
    };
    // SAFETY: kill(2) on a PID we just checked to be the recorded process.
    unsafe { libc::kill(target, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while same_process_alive(pid, start_time) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if same_process_alive(pid, start_time) {
        unsafe { libc::kill(target, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(2);
        while same_process_alive(pid, start_time) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(dir: &std::path::Path, name: &str) -> ProcessSpec {
        ProcessSpec::new(name, "sh", dir, dir.join(format!("{name}.log")))
            .arg("-c")
            .arg("echo started; exec sleep 600")
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("devstack-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn stop_all_terminates_and_reaps() {
        let dir = temp_dir("proc-stop");
        let sup = Supervisor::new().unwrap();
        let mut procs = vec![
            sup.spawn(sleeper(&dir, "a")).unwrap(),
            sup.spawn(sleeper(&dir, "b")).unwrap(),
        ];
        let pids: Vec<u32> = procs.iter().map(|p| p.pid).collect();
        assert!(pids.iter().all(|&p| pid_alive(p)));
        assert!(procs.iter().all(|p| p.start_time.is_some()));
        // Each child leads its own process group.
        for &pid in &pids {
            assert_eq!(stat_fields(pid).unwrap()[2], pid.to_string(), "pgid == pid");
        }
        stop_all(&mut procs, Duration::from_secs(5));
        assert!(pids.iter().all(|&p| !pid_alive(p)), "all stopped");
        assert!(procs.iter().all(|p| !p.is_running()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ending_the_supervisor_thread_kills_children() {
        let dir = temp_dir("proc-pdeathsig");
        let sup = Supervisor::new().unwrap();
        let p = sup.spawn(sleeper(&dir, "c")).unwrap();
        let pid = p.pid;
        // Wait for exec, so the death signal is armed in the final program.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !std::fs::read_to_string(&p.log)
            .unwrap_or_default()
            .contains("started")
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(sup); // thread exits -> PDEATHSIG
        let deadline = Instant::now() + Duration::from_secs(5);
        while pid_alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!pid_alive(pid), "child died with its spawning thread");
        drop(p);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn recorded_process_checks() {
        let me = std::process::id();
        assert!(pid_alive(me));
        let start = process_start_time(me);
        assert!(start.is_some());
        assert!(same_process_alive(me, start));
        assert!(!same_process_alive(me, start.map(|s| s + 1)));
        assert!(
            !stop_recorded(me, start.map(|s| s + 1), false, Duration::ZERO),
            "never signals a reused PID"
        );
    }
}
