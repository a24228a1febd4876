//! Capacity check of the fake: starts it in-process on loopback (rate limits off, records kept in memory as in
//! tests), drives push (1 recipient, retry key each) and then multicast (500 recipients) at high concurrency
//! with reqwest, and prints requests/s as one JSON object. Client and server share the machine.
//!
//! `cargo run --release -p fake-line --example fake_line_capacity`
//! Environment: `CAPACITY_SECS` (per phase, default 5), `CAPACITY_CONCURRENCY` (default 64).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fake_line::{Config, FakeLine};
use serde_json::{Value, json};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Phase {
    requests: u64,
    errors: u64,
    secs: f64,
}

async fn run_phase(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    concurrency: u64,
    duration: Duration,
    multicast: bool,
) -> Phase {
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let next_user = Arc::new(AtomicU64::new(if multicast { 1 << 40 } else { 0 }));
    let deadline = Instant::now() + duration;
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, ok, errors, next_user) =
                (http.clone(), ok.clone(), errors.clone(), next_user.clone());
            let endpoint = if multicast { "multicast" } else { "push" };
            let url = format!("{url}/v2/bot/message/{endpoint}");
            let token = token.to_string();
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let body: Value = if multicast {
                        let first = next_user.fetch_add(500, Ordering::Relaxed);
                        let to: Vec<String> = (first..first + 500).map(|i| format!("U{i:032x}")).collect();
                        json!({"to": to, "messages": [{"type": "text", "text": "capacity"}],
                               "customAggregationUnits": ["capacity_multicast"]})
                    } else {
                        let i = next_user.fetch_add(1, Ordering::Relaxed);
                        json!({"to": format!("U{i:032x}"), "messages": [{"type": "text", "text": "capacity"}],
                               "customAggregationUnits": ["capacity_push"]})
                    };
                    let resp = http
                        .post(&url)
                        .bearer_auth(&token)
                        .header("X-Line-Retry-Key", uuid::Uuid::new_v4().to_string())
                        .json(&body)
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    Phase {
        requests: ok.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        secs: start.elapsed().as_secs_f64(),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let secs = env_or("CAPACITY_SECS", 5);
    let concurrency = env_or("CAPACITY_CONCURRENCY", 64);
    let fake = FakeLine::start(
        "127.0.0.1:0".parse().unwrap(),
        Config {
            rate_limits_enabled: false,
            ..Config::default()
        },
    )
    .await?;
    let url = fake.url();
    let token = fake.issue_token("capacity");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency as usize)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");

    let push = run_phase(
        &http,
        &url,
        &token,
        concurrency,
        Duration::from_secs(secs),
        false,
    )
    .await;
    let multicast = run_phase(
        &http,
        &url,
        &token,
        concurrency,
        Duration::from_secs(secs),
        true,
    )
    .await;
    let stats = fake.stats();
    let out = json!({
        "concurrency": concurrency,
        "seconds_per_phase": secs,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "push_requests_per_s": (push.requests as f64 / push.secs).round(),
        "push_errors": push.errors,
        "multicast_requests_per_s": (multicast.requests as f64 / multicast.secs).round(),
        "multicast_recipients_per_s": (multicast.requests as f64 * 500.0 / multicast.secs).round(),
        "multicast_errors": multicast.errors,
        "accepted_requests": stats.accepted_requests,
        "duplicates": stats.duplicates,
        "max_push_rate_1s": stats.max_rate("push"),
        "max_multicast_rate_1s": stats.max_rate("multicast"),
    });
    println!("{out}");
    fake.shutdown().await;
    Ok(())
}
