//! segcast-scheduler: claims due campaigns and drives them (extract -> fan-out -> diff-retry rounds).
//! `POST /tick` for Cloud Scheduler; with `SEGCAST_SCHEDULER_LOOP_MS` set it also ticks on its own (local use).

use segcast::config::{Settings, listen_port};
use segcast::http::{self, push_auth::PushAuth, scheduler_tick::SchedulerApp};
use segcast::pipeline::{Ctx, scheduler::TickOptions};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn env_secs(key: &str) -> anyhow::Result<Option<Duration>> {
    match std::env::var(key) {
        Ok(v) => Ok(Some(Duration::from_secs(
            v.parse().map_err(|e| anyhow::anyhow!("{key}={v:?}: {e}"))?,
        ))),
        Err(_) => Ok(None),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    segcast::telemetry::init("scheduler");
    let settings = Settings::from_env()?;
    let auth = PushAuth::from_settings(&settings.delivery)?;
    let ctx = Ctx::connect(settings).await?;
    let owner = format!(
        "scheduler-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut opts = TickOptions::new(owner);
    if let Some(d) = env_secs("SEGCAST_TICK_BUDGET_SECONDS")? {
        opts.budget = d;
    }
    if let Some(d) = env_secs("SEGCAST_LEASE_SECONDS")? {
        opts.lease = d;
    }
    let stop = CancellationToken::new();
    if let Ok(ms) = std::env::var("SEGCAST_SCHEDULER_LOOP_MS") {
        let every = Duration::from_millis(ms.parse()?);
        tokio::spawn(http::scheduler_tick::run_loop(
            ctx.clone(),
            opts.clone(),
            every,
            stop.clone(),
        ));
    }
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", listen_port())).await?;
    tracing::info!(addr = %listener.local_addr()?, owner = %opts.owner, "scheduler listening");
    http::serve(
        listener,
        http::scheduler_tick::router(SchedulerApp { ctx, opts, auth }),
    )
    .await?;
    stop.cancel();
    Ok(())
}
