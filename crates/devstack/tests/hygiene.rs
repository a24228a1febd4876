//! Process hygiene: a stack leaves no process behind, whether its owner is SIGKILLed or it is stopped
//! with `segcast-stack down` (foreground and detached `up`).
#![allow(unsafe_code)] // child processes and signals of the stack under test (libc)

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::*;

/// One stack at a time in this binary: each is four JVM/Python processes on a 2-core machine.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn sigkill_of_the_supervisor_leaves_no_process() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let name = unique_name("hyg-kill");
    let mut cli = CliProcess::spawn(&["up", "--name", &name], &name);
    let file = wait_for_stack(&name, &mut cli, Duration::from_secs(180));
    let pids = recorded_pids(&file);
    assert_eq!(pids.len(), 4, "pubsub, datastore, bigquery, gcs: {file:?}");
    assert_eq!(file.owner_pid, cli.child.id());
    assert!(
        wait_gone(&pids, Duration::ZERO).len() == 4,
        "all four run before the kill"
    );

    unsafe { libc::kill(cli.child.id() as i32, libc::SIGKILL) };
    let _ = cli.child.wait();
    let left = wait_gone(&pids, Duration::from_secs(5));
    assert!(
        left.is_empty(),
        "processes left after SIGKILL of their supervisor: {left:?}"
    );

    // The next `up` of that name (here: `down`) cleans the files the killed supervisor left.
    let out = run_cli(&["down", "--name", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stack_dir(&name).join("pids.json").exists());
    remove_stack_dir(&name);
}

#[test]
fn down_after_up_leaves_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let name = unique_name("hyg-down");
    let mut cli = CliProcess::spawn(&["up", "--name", &name], &name);
    let file = wait_for_stack(&name, &mut cli, Duration::from_secs(180));
    let pids = recorded_pids(&file);
    let env = std::fs::read_to_string(stack_dir(&name).join("env")).unwrap();
    assert!(
        env.contains(&format!("export SEGCAST_STACK_PID={}\n", cli.child.id())),
        "{env}"
    );

    let out = run_cli(&["down", "--name", &name]);
    assert!(
        out.status.success(),
        "down failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = cli
        .wait_exit(Duration::from_secs(5))
        .expect("up exits after down");
    assert!(
        status.success(),
        "up exits 0 when stopped by down: {status}\n{}",
        cli.output()
    );
    let left = wait_gone(&pids, Duration::from_secs(1));
    assert!(left.is_empty(), "processes left after down: {left:?}");
    assert!(!stack_dir(&name).join("pids.json").exists());
    assert!(!stack_dir(&name).join("env").exists());
    assert!(
        cli.output().contains("env file:"),
        "up prints the env file:\n{}",
        cli.output()
    );

    let status = run_cli(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with(&name) && l.contains("stopped")),
        "{text}"
    );
    remove_stack_dir(&name);
}

#[test]
fn detached_up_wait_and_down() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let name = unique_name("hyg-detach");
    let out = run_cli(&["up", "--detach", "--name", &name]);
    assert!(
        out.status.success(),
        "up --detach: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = devstack::pid_file::PidFile::read(&stack_dir(&name).join("pids.json")).unwrap();
    let mut pids = recorded_pids(&file);
    pids.push(file.owner_pid);
    assert!(
        wait_gone(&pids, Duration::ZERO).len() == 5,
        "supervisor and four processes run"
    );

    let env_path = stack_dir(&name).join("env");
    let wait = run_cli(&[
        "wait",
        "--env-file",
        env_path.to_str().unwrap(),
        "--timeout",
        "5",
    ]);
    assert!(wait.status.success());
    let printed = run_cli(&["env", "--name", &name]);
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout),
        std::fs::read_to_string(&env_path).unwrap()
    );

    let out = run_cli(&["down", "--name", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = wait_gone(&pids, Duration::from_secs(2));
    assert!(left.is_empty(), "processes left after down: {left:?}");
    let again = run_cli(&["down", "--name", &name]);
    assert!(again.status.success() && String::from_utf8_lossy(&again.stdout).contains("no stack"));
    remove_stack_dir(&name);
}
