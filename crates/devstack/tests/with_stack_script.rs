//! `scripts/with-stack.sh`: runs a command with the stack's env, propagates its exit code, and stops the
//! stack on exit and on SIGTERM.
#![allow(unsafe_code)] // child processes and signals of the stack under test (libc)

mod common;

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use devstack::pid_file::PidFile;

static SERIAL: Mutex<()> = Mutex::new(());

fn script() -> Command {
    let root = devstack::paths::workspace_root();
    let mut cmd = Command::new("bash");
    cmd.arg(root.join("scripts/with-stack.sh"))
        .current_dir(&root)
        .env("SEGCAST_STACK_BIN", env!("CARGO_BIN_EXE_segcast-stack"))
        .stdin(Stdio::null());
    cmd
}

/// The command copies the stack's pid file here, so the test can check those PIDs afterwards.
fn pid_copy(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("devstack-{tag}-{}.json", std::process::id()))
}

#[test]
fn runs_the_command_with_the_env_and_propagates_its_exit_code() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let name = unique_name("script-rc");
    let copy = pid_copy("script-rc");
    let out = script()
        .args(["--name", &name, "--", "sh", "-c"])
        .arg(format!(
            "cp \"{}/pids.json\" '{}' && echo \"pubsub=$PUBSUB_EMULATOR_HOST storage=$STORAGE_EMULATOR_HOST\"; exit 7",
            stack_dir(&name).display(),
            copy.display()
        ))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(7),
        "exit code propagated; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("pubsub=127.0.0.1:") && stdout.contains(" storage=http://127.0.0.1:"),
        "{stdout}"
    );
    let file = PidFile::read(&copy).unwrap();
    let mut pids = recorded_pids(&file);
    pids.push(file.owner_pid);
    assert!(
        wait_gone(&pids, Duration::from_secs(2)).is_empty(),
        "stack stopped after the command"
    );
    assert!(
        stack_dir(&name).join("logs").is_dir(),
        "logs kept when the command failed"
    );
    std::fs::remove_file(&copy).unwrap();
    remove_stack_dir(&name);
}

#[test]
fn sigterm_stops_the_command_and_the_stack() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let name = unique_name("script-term");
    let copy = pid_copy("script-term");
    let mut child = script()
        .args(["--name", &name, "sh", "-c"])
        .arg(format!(
            "cp \"{}/pids.json\" '{}' && exec sleep 300",
            stack_dir(&name).display(),
            copy.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    while !copy.exists() {
        assert!(Instant::now() < deadline, "stack did not come up");
        assert!(child.try_wait().unwrap().is_none(), "script exited early");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200)); // let `sleep` start
    let file = PidFile::read(&copy).unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let started = Instant::now();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143), "interrupted exit code");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "handled promptly: {:?}",
        started.elapsed()
    );
    let mut pids = recorded_pids(&file);
    pids.push(file.owner_pid);
    assert!(
        wait_gone(&pids, Duration::from_secs(2)).is_empty(),
        "stack stopped on SIGTERM"
    );
    std::fs::remove_file(&copy).unwrap();
    remove_stack_dir(&name);
}

#[test]
fn success_removes_the_stack_dir() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let name = unique_name("script-ok");
    let out = script().args(["--name", &name, "true"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stack_dir(&name).exists());
}
