//! Load measurement of the click redirect on loopback: the real router (token verification, cached target,
//! click buffer) with one registered link, driven by concurrent keep-alive clients for a few seconds.
//! Prints ONE JSON line. Clicks go to Pub/Sub when `PUBSUB_EMULATOR_HOST` and `GOOGLE_CLOUD_PROJECT` are set
//! (topic `SEGCAST_CLICK_TOPIC`, created if missing), otherwise into a counting sink (`"publisher":"counting"`).
//!
//! `cargo run --release -p segcast-click-redirect --example click_redirect_bench`
//! Environment: `BENCH_SECONDS` (default 5), `BENCH_CONNECTIONS` (default 32), `BENCH_RATE` (requests/s offered
//! in the latency phase, default 6000).

use segcast::click::link_signature::{Keys, unix_now};
use segcast::click::links::Rewriter;
use segcast::domain::{CampaignId, UserId};
use segcast::http::click_redirect::{
    BufferOptions, ClickApp, ClickBuffer, ClickPublisher, CountingPublisher, PubSubPublisher,
    StaticLinks, Targets, router,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn env_num(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn publisher() -> anyhow::Result<(Arc<dyn ClickPublisher>, &'static str)> {
    if std::env::var_os("PUBSUB_EMULATOR_HOST").is_some()
        && std::env::var_os("GOOGLE_CLOUD_PROJECT").is_some()
    {
        let mut vars: Vec<(String, String)> = std::env::vars().collect();
        vars.push(("SEGCAST_BUCKET".into(), "unused".into()));
        let settings = segcast::config::Settings::from_vars(vars)?;
        let pubsub = segcast::gcp::pubsub::PubSub::connect(&settings).await?;
        let topic = format!("{}-bench", settings.click.topic);
        pubsub.ensure_topic(&topic).await?;
        return Ok((
            Arc::new(PubSubPublisher { pubsub, topic }),
            "pubsub_emulator",
        ));
    }
    Ok((Arc::new(CountingPublisher::default()), "counting"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds = env_num("BENCH_SECONDS", 5);
    let connections = env_num("BENCH_CONNECTIONS", 32) as usize;
    let rate = env_num("BENCH_RATE", 6000);
    let keys = Keys::single("bench", b"bench-key-bench-key-bench-key-32");
    let campaign = CampaignId::parse("c_bench")?;
    let links = StaticLinks(HashMap::from([(
        ("c_bench".to_owned(), "sale".to_owned()),
        "https://shop.example.com/sale?utm_source=line".to_owned(),
    )]));
    let stop = CancellationToken::new();
    let (publisher, publisher_kind) = publisher().await?;
    let (buffer, flusher) = ClickBuffer::start(publisher, BufferOptions::default(), stop.clone());
    let app = ClickApp {
        keys: keys.clone(),
        targets: Arc::new(Targets::new(Arc::new(links))),
        buffer: buffer.clone(),
        refused: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server_stop = stop.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router(app))
            .with_graceful_shutdown(async move { server_stop.cancelled().await })
            .await
    });

    // Push-style URLs: one per (simulated) recipient, so verification does real work on each.
    let rewriter = Rewriter::new(keys, &format!("http://{addr}"), 90);
    let urls: Arc<Vec<String>> = Arc::new(
        (0..1000u32)
            .map(|i| {
                let user = UserId::parse(&format!("U{:032x}", i + 1)).expect("user id");
                rewriter.url(&campaign, "sale", Some(&user), unix_now())
            })
            .collect(),
    );
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(connections)
        .build()?;
    // Warm-up: the first hit fills the target cache.
    for u in urls.iter().take(50) {
        let r = client.get(u).send().await?;
        anyhow::ensure!(r.status() == 302, "warm-up got {}", r.status());
    }
    // Phase 1: closed loop (every connection sends as fast as it is answered): the most it can take.
    let (max_lat, _, max_elapsed) =
        drive(&client, &urls, connections, Duration::from_secs(2), None).await?;
    let max_rps = max_lat.len() as f64 / max_elapsed;
    // Phase 2: open loop at a fixed offered rate above the target: latency under that load (a closed loop
    // on 2 shared cores measures mostly its own queueing).
    let (mut lat, errors, elapsed) = drive(
        &client,
        &urls,
        connections,
        Duration::from_secs(seconds),
        Some(rate),
    )
    .await?;
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let idx = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[idx] as f64 / 1000.0
    };
    let rps = lat.len() as f64 / elapsed;
    let (p50, p99) = (pct(0.50), pct(0.99));
    stop.cancel();
    let _ = server.await;
    let _ = tokio::time::timeout(Duration::from_secs(10), flusher).await;
    let stats = &buffer.stats;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let line = serde_json::json!({
        "scenario": "click_redirect",
        "requests": lat.len(),
        "errors": errors,
        "seconds": (elapsed * 100.0).round() / 100.0,
        "connections": connections,
        "redirects_per_s": rps.round(),
        "offered_per_s": rate,
        "max_redirects_per_s": max_rps.round(),
        "p50_ms": (p50 * 1000.0).round() / 1000.0,
        "p99_ms": (p99 * 1000.0).round() / 1000.0,
        "cores": cores,
        "publisher": publisher_kind,
        "clicks_published": stats.published.load(Ordering::Relaxed),
        "clicks_shed": stats.shed.load(Ordering::Relaxed),
        "note": "p50/p99 and redirects_per_s at the offered rate (open loop); max_redirects_per_s closed loop; client and server share the cores",
        "pass": p99 < 5.0 && rps >= 5000.0 && errors == 0,
    });
    println!("{line}");
    Ok(())
}

/// Drives the redirect for `duration` from `connections` tasks: as fast as answered (`rate` None) or paced at
/// `rate` requests/s in all. Returns the latencies (µs) of the 302s, the errors, and the seconds it took.
async fn drive(
    client: &reqwest::Client,
    urls: &Arc<Vec<String>>,
    connections: usize,
    duration: Duration,
    rate: Option<u64>,
) -> anyhow::Result<(Vec<u32>, u64, f64)> {
    let t0 = Instant::now();
    let deadline = t0 + duration;
    let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r.max(1) as f64));
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (client, urls) = (client.clone(), urls.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat_us: Vec<u32> = Vec::with_capacity(100_000);
            let mut errors = 0u64;
            let mut i = c;
            let mut next = tokio::time::Instant::now()
                + interval.map_or(Duration::ZERO, |d| d.mul_f64(c as f64 / connections as f64));
            while Instant::now() < deadline {
                if let Some(d) = interval {
                    tokio::time::sleep_until(next).await;
                    next += d;
                }
                let start = Instant::now();
                match client.get(&urls[i % urls.len()]).send().await {
                    Ok(r) if r.status() == 302 => {
                        lat_us.push(start.elapsed().as_micros().min(u32::MAX as u128) as u32)
                    }
                    _ => errors += 1,
                }
                i += connections;
            }
            (lat_us, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors += e;
    }
    Ok((lat, errors, t0.elapsed().as_secs_f64()))
}
