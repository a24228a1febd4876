//! The library API: start, endpoints, env vars and env file, attach, stop and drop-on-panic.
#![allow(unsafe_code)] // child processes and signals of the stack under test (libc)

mod common;

use std::time::Duration;

use common::*;
use devstack::{Stack, StackEnv, StackOptions};

async fn get(url: &str) -> (u16, String) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let resp = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_serves_every_endpoint_and_stop_leaves_nothing() {
    let line_config = fake_line::Config {
        friends_count: 4242,
        ..Default::default()
    };
    let opts = StackOptions {
        line_config: Some(line_config),
        ..StackOptions::default()
    };
    let stack = Stack::start(opts).await.expect("stack starts");
    assert!(stack.is_owned());
    let state_dir = stack.state_dir().unwrap().to_path_buf();
    let pids: Vec<u32> = stack.processes().iter().map(|(_, pid)| *pid).collect();
    assert_eq!(pids.len(), 4);
    assert_eq!(stack.stack_pid(), std::process::id());

    // Endpoints answer.
    assert_eq!(
        get(&format!("http://{}/", stack.pubsub_host())).await,
        (200, "Ok\n".into())
    );
    assert_eq!(
        get(&format!("http://{}/", stack.datastore_host())).await,
        (200, "Ok\n".into())
    );
    assert_eq!(
        get(&format!("{}/readyz", stack.bigquery_url())).await.0,
        200
    );
    let (status, buckets) = get(&format!(
        "{}/storage/v1/b?project={}",
        stack.storage_url(),
        stack.project_id()
    ))
    .await;
    assert_eq!(status, 200);
    assert!(
        buckets.contains("\"name\":\"segcast-local\""),
        "default bucket created: {buckets}"
    );
    assert_eq!(
        get(&format!("{}/fake/health", stack.line_url())).await.0,
        200,
        "fake LINE answers"
    );
    let (_, line_config) = get(&format!("{}/fake/config", stack.line_url())).await;
    assert!(
        line_config.contains("4242"),
        "the LINE config is passed through: {line_config}"
    );
    assert_eq!(
        stack
            .fake_line()
            .expect("in-process fake")
            .stats()
            .duplicates,
        0
    );

    // Env vars and the env file agree.
    let vars = stack.env_vars();
    let names: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
    for expected in [
        "PUBSUB_EMULATOR_HOST",
        "DATASTORE_EMULATOR_HOST",
        "STORAGE_EMULATOR_HOST",
        "BIGQUERY_EMULATOR_HOST",
        "BIGQUERY_GRPC_EMULATOR_HOST",
        "LINE_API_BASE_URL",
        "GOOGLE_CLOUD_PROJECT",
        "SEGCAST_BUCKET",
        "SEGCAST_STACK_PID",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    let value = |k: &str| vars.iter().find(|(n, _)| n == k).unwrap().1.clone();
    assert!(value("STORAGE_EMULATOR_HOST").starts_with("http://127.0.0.1:"));
    assert!(value("BIGQUERY_EMULATOR_HOST").starts_with("http://127.0.0.1:"));
    assert!(value("BIGQUERY_GRPC_EMULATOR_HOST").starts_with("http://127.0.0.1:"));
    assert!(value("PUBSUB_EMULATOR_HOST").starts_with("127.0.0.1:"));
    assert_eq!(value("GOOGLE_CLOUD_PROJECT"), "segcast-local");
    let env_file = stack.env_file().unwrap().to_path_buf();
    assert_eq!(env_file, state_dir.join("env"));
    assert_eq!(&StackEnv::read_file(&env_file).unwrap(), stack.env());

    // An attached handle sees the same stack and does not stop it when dropped.
    let attached = Stack::attach_env_file(&env_file).unwrap();
    assert!(!attached.is_owned());
    assert_eq!(attached.env(), stack.env());
    drop(attached);
    assert_eq!(
        get(&format!("http://{}/", stack.pubsub_host())).await.0,
        200
    );
    assert!(stack.check_alive().is_ok());

    // A second stack under a running stack's name is refused.
    let err = Stack::start(StackOptions::named(stack.name()))
        .await
        .err()
        .expect("name in use");
    assert!(format!("{err:#}").contains("already running"), "{err:#}");

    let started = std::time::Instant::now();
    stack.stop();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "stop took {:?}",
        started.elapsed()
    );
    assert!(
        wait_gone(&pids, Duration::ZERO).is_empty(),
        "stop reaped every process"
    );
    assert!(
        !state_dir.exists(),
        "an auto-named stack removes its state dir"
    );
    assert!(
        Stack::attach_env_file(&env_file).is_err(),
        "nothing to attach to after stop"
    );
}

#[test]
fn a_panic_while_owning_a_stack_stops_it() {
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::thread::spawn(move || {
        let stack = Stack::start_blocking(StackOptions::default()).expect("stack starts");
        let pids: Vec<u32> = stack.processes().iter().map(|(_, pid)| *pid).collect();
        tx.send((pids, stack.state_dir().unwrap().to_path_buf()))
            .unwrap();
        panic!("test failure while the stack runs");
    })
    .join();
    assert!(result.is_err(), "the thread panicked");
    let (pids, state_dir) = rx.recv().unwrap();
    assert_eq!(pids.len(), 4);
    let left = wait_gone(&pids, Duration::from_secs(1));
    assert!(left.is_empty(), "left after the panic: {left:?}");
    assert!(
        state_dir.join("logs").is_dir(),
        "logs are kept after a panic"
    );
    assert!(!state_dir.join("pids.json").exists());
    std::fs::remove_dir_all(&state_dir).unwrap();
}
