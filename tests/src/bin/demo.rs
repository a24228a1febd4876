//! `make demo`: a whole campaign on one machine. Starts the local stack (or uses the one in the environment),
//! creates a BigQuery table of synthetic users, registers content, a segment over it and a campaign due now,
//! runs scheduler + delivery handler + log sink until the campaign completes, prints progress to stderr, and
//! ends with one JSON line on stdout. Each figure is named for what it counts:
//!
//! - from the fake LINE server's records of the accepted requests, counted as `make chaos` counts them
//!   (`tests/src/bin/chaos/judge.rs`): `delivered` (distinct recipients LINE accepted for the campaign),
//!   `duplicates` (recipients it accepted more than once), `line_requests` (requests it accepted for
//!   the campaign). Pointed at another LINE API, segcast cannot know these: they are `null`;
//! - from segcast's own counts: `segcast_delivered`, `failed`, `failed_by_reason`, `targeted`, `rounds`,
//!   `last_round_batches` (batches published in the last round).
//!
//! The console runs alongside: its URL and sign-in are printed, and it stays usable while the campaign runs
//! (`DEMO_HOLD_SECONDS=N` keeps it up N seconds after the campaign ends).
//!
//! `DEMO_USERS=N` (default 100,000). With `LINE_API_BASE_URL` set (and `LINE_CHANNEL_ID` plus
//! `LINE_CHANNEL_SECRET` or `LINE_CHANNEL_TOKEN`), it sends there instead of to its own fake.

use segcast::domain::CampaignStatus;
use segcast::pipeline::scheduler::{TickOptions, tick};
use segcast_e2e::{CONSOLE_ADMIN, CONSOLE_PASSWORD, EnvOptions, TestEnv, text};
use std::collections::HashMap;
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
    // LINE's figures, from the fake's records (None: an external LINE, whose records segcast cannot see).
    let line = env.line.as_ref().and_then(|fake| {
        let mut per_recipient: HashMap<String, u32> = HashMap::new();
        let (mut requests, mut acceptances) = (0u64, 0u64);
        for r in fake.deliveries() {
            if r.unit.as_deref() != Some(campaign.as_str()) {
                continue;
            }
            requests += 1;
            for to in r.recipients {
                acceptances += 1;
                *per_recipient.entry(to).or_default() += 1;
            }
        }
        // The records are complete only if they hold every acceptance the fake counted for the campaign.
        let counted = fake
            .stats()
            .units
            .get(campaign.as_str())
            .map_or(0, |u| u.accepted);
        if acceptances != counted {
            eprintln!(
                "the fake LINE server kept {acceptances} of the {counted} acceptances it counted: LINE's figures are unknown"
            );
            return None;
        }
        let duplicates = per_recipient.values().filter(|n| **n > 1).count() as u64;
        Some((per_recipient.len() as u64, duplicates, requests))
    });
    let summary = serde_json::json!({
        "campaign": campaign.as_str(),
        "status": final_campaign.status.as_str(),
        "targeted": final_campaign.counts.targeted,
        "delivered": line.map(|(delivered, _, _)| delivered),
        "failed": final_campaign.counts.failed,
        "failed_by_reason": final_campaign.counts.failed_by_reason,
        "duplicates": line.map(|(_, duplicates, _)| duplicates),
        "rounds": final_campaign.round,
        "elapsed_s": (elapsed * 10.0).round() / 10.0,
        "line_requests": line.map(|(_, _, requests)| requests),
        "last_round_batches": final_campaign.counts.round_batches,
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
