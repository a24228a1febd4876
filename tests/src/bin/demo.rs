//! `make demo`: a whole campaign on one machine. Starts the local stack (or uses the one in the environment),
//! creates a BigQuery table of synthetic users, registers content, a segment over it and a campaign due now,
//! runs scheduler + delivery handler + log sink until the campaign completes, prints progress to stderr, and
//! ends with one JSON line on stdout. `delivered` and `duplicates` come from the fake LINE server's records.
//!
//! The console runs alongside: its URL and sign-in are printed, and it stays usable while the campaign runs
//! (`DEMO_HOLD_SECONDS=N` keeps it up N seconds after the campaign ends).
//!
//! `DEMO_USERS=N` (default 100,000). With `LINE_API_BASE_URL` set (and `LINE_CHANNEL_ID` plus
//! `LINE_CHANNEL_SECRET` or `LINE_CHANNEL_TOKEN`), it sends there instead of to its own fake.

use segcast::domain::CampaignStatus;
use segcast::pipeline::scheduler::{TickOptions, tick};
use segcast_e2e::{CONSOLE_ADMIN, CONSOLE_PASSWORD, EnvOptions, TestEnv, text};
use std::io::Write;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let users: u64 = match std::env::var("DEMO_USERS") {
        Ok(v) => v
            .parse()
            .map_err(|_| anyhow::anyhow!("DEMO_USERS={v:?} is not a number"))?,
        Err(_) => 100_000,
    };
    let external = std::env::var("LINE_API_BASE_URL")
        .ok()
        .filter(|v| !v.is_empty());
    let mut opts = EnvOptions::default();
    if let Some(url) = &external {
        opts.line_url = Some(url.clone());
        opts.channel = Some(
            std::env::var("LINE_CHANNEL_ID").map_err(|_| anyhow::anyhow!("set LINE_CHANNEL_ID"))?,
        );
        opts.settings
            .extend(std::env::vars().filter(|(k, _)| k.starts_with("LINE_CHANNEL")));
    }
    eprintln!(
        "segcast demo: starting the local stack (first run installs the emulators: about a minute)..."
    );
    let started = Instant::now();
    let env = TestEnv::start_with(opts).await?;
    eprintln!(
        "stack ready in {:.1}s; LINE API at {}",
        started.elapsed().as_secs_f64(),
        env.line_url
    );

    let console = env.console(&[]).await?;
    eprintln!(
        "console: {} (sign in as {CONSOLE_ADMIN}, password {CONSOLE_PASSWORD}); CLI: SEGCAST_CONSOLE_URL={} segcast ...",
        console.url, console.url
    );
    let campaign = env
        .campaign_for_users(
            users,
            text("Thanks for being a member! This week's sale starts now."),
            false,
        )
        .await?;
    eprintln!("campaign {campaign}: {users} synthetic users, multicast, due now");

    let t0 = Instant::now();
    let mut opts = TickOptions::new("demo-scheduler");
    opts.budget = Duration::from_secs(1);
    opts.poll = Duration::from_millis(200);
    let mut last = String::new();
    let final_campaign = loop {
        let report = tick(&env.ctx, &opts).await?;
        if !report.errors.is_empty() {
            anyhow::bail!("scheduler errors: {:?}", report.errors);
        }
        let c = env.get(&campaign).await?;
        let (delivered, failed, _) =
            segcast::pipeline::records::progress(&env.ctx.gcp.datastore, &campaign).await?;
        let secs = t0.elapsed().as_secs_f64();
        let line = format!(
            "[{secs:6.1}s] {:<11} round {} | targeted {} | delivered {} | failed {} | {:.0} recipients/s",
            c.status.as_str(),
            c.round,
            c.counts.targeted,
            delivered,
            failed,
            delivered as f64 / secs.max(0.001)
        );
        if line[9..] != last.get(9..).unwrap_or_default()[..] {
            eprintln!("{line}");
            last = line;
        }
        if c.status.is_final() && c.completed_at.is_some() {
            break c;
        }
        if c.status == CampaignStatus::Paused {
            anyhow::bail!("campaign paused: {:?}", c.status_reason);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let elapsed = t0.elapsed().as_secs_f64();
    let (delivered, duplicates, requests) = match &env.line {
        Some(fake) => {
            let stats = fake.stats();
            let unit = stats
                .units
                .get(campaign.as_str())
                .cloned()
                .unwrap_or_default();
            let requests: u64 = ["push", "multicast"]
                .iter()
                .filter_map(|e| stats.requests.get(*e))
                .flat_map(|by_status| by_status.values())
                .sum();
            (unit.unique, unit.duplicates + unit.other_messages, requests)
        }
        None => (
            final_campaign.counts.delivered,
            0,
            final_campaign.counts.round_batches,
        ),
    };
    let summary = serde_json::json!({
        "campaign": campaign.as_str(),
        "status": final_campaign.status.as_str(),
        "targeted": final_campaign.counts.targeted,
        "delivered": delivered,
        "failed": final_campaign.counts.failed,
        "failed_by_reason": final_campaign.counts.failed_by_reason,
        "duplicates": duplicates,
        "rounds": final_campaign.round,
        "elapsed_s": (elapsed * 10.0).round() / 10.0,
        "line_requests": requests,
        "segcast_delivered": final_campaign.counts.delivered,
    });
    let hold: u64 = std::env::var("DEMO_HOLD_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if hold > 0 {
        eprintln!("console stays up for {hold}s at {}", console.url);
        tokio::time::sleep(Duration::from_secs(hold)).await;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{summary}")?;
    drop(out);
    console.stop().await;
    env.stop().await;
    Ok(())
}
