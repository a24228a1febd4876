//! The `fake-line` binary: reads a YAML config, applies flag overrides, prints its URL on stdout and serves.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;

#[tokio::test]
async fn binary_prints_its_url_and_applies_config_and_flags() {
    let dir = std::env::temp_dir().join(format!("fake-line-bin-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("fake.yaml");
    std::fs::write(&config, "friends_count: 77\nfaults:\n  burst_429_ms: 5\n").unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_fake-line"))
        .args(["--addr", "127.0.0.1:0", "--config"])
        .arg(&config)
        .args([
            "--push-rps",
            "9",
            "--channel",
            "100:secret",
            "--latency-ms",
            "1..3",
            "--seed",
            "5",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let http = reqwest::Client::new();
    let cfg: Value = http
        .get(format!("{url}/fake/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    std::fs::remove_dir_all(&dir).unwrap();

    assert_eq!(cfg["friends_count"], 77);
    assert_eq!(cfg["faults"]["burst_429_ms"], 5);
    assert_eq!(cfg["faults"]["seed"], 5);
    assert_eq!(
        cfg["faults"]["latency_ms"],
        serde_json::json!({"min": 1, "max": 3})
    );
    assert_eq!(
        cfg["rate_limits"]["push"],
        serde_json::json!({"requests": 9, "per_secs": 1})
    );
    assert_eq!(cfg["allowed_channels"]["100"], "secret");
}
