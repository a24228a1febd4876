//! `segcast-memory`: the scheduler's peak memory (VmHWM of the real `segcast-scheduler` process) while it
//! extracts and fans out segments of different sizes. Bounded memory means the numbers stay flat as the
//! segment grows: the scheduler streams the exported files and never holds a segment.
//!
//! Usage: `segcast-memory [SIZES...]` (default `10000 1000000`). Prints one JSON object per size.

use segcast::domain::CampaignStatus;
use segcast_e2e::{Service, TestEnv, free_port, text};
use std::time::{Duration, Instant};

fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sizes: Vec<u64> = {
        let args: Vec<u64> = std::env::args()
            .skip(1)
            .map(|a| a.parse())
            .collect::<Result<_, _>>()?;
        if args.is_empty() {
            vec![10_000, 1_000_000]
        } else {
            args
        }
    };
    for n in sizes {
        let env = TestEnv::start().await?;
        let id = env.campaign_for_users(n, text("hello"), false).await?;
        let t0 = Instant::now();
        let mut scheduler = Service::spawn(
            &env,
            "segcast-scheduler",
            &[
                ("PORT", free_port().to_string()),
                ("SEGCAST_SCHEDULER_LOOP_MS", "200".into()),
            ],
        )?;
        let pid = scheduler.child.id();
        let mut peak = 0;
        loop {
            peak = peak.max(peak_rss_kb(pid).unwrap_or(0));
            let c = env.get(&id).await?;
            if c.status.is_final() {
                anyhow::ensure!(
                    c.status == CampaignStatus::Completed,
                    "campaign ended {}",
                    c.status
                );
                anyhow::ensure!(
                    c.counts.delivered == n,
                    "delivered {} of {n}",
                    c.counts.delivered
                );
                break;
            }
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(600),
                "campaign of {n} did not complete"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        peak = peak.max(peak_rss_kb(pid).unwrap_or(0));
        scheduler.kill();
        println!(
            "{}",
            serde_json::json!({
                "scenario": "scheduler_memory",
                "recipients": n,
                "scheduler_peak_rss_mb": (peak as f64 / 1024.0 * 10.0).round() / 10.0,
                "elapsed_s": (t0.elapsed().as_secs_f64() * 10.0).round() / 10.0,
                "cores": std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1),
            })
        );
        env.stop().await;
    }
    Ok(())
}
