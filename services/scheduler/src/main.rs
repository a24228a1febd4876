//! segcast-scheduler: claims due campaigns and drives them (extract -> fan-out -> diff-retry rounds).
//! `POST /tick` for Cloud Scheduler; with `SEGCAST_SCHEDULER_LOOP_MS` set it also ticks on its own (local use).

use segcast::config::{Service, Settings};
use segcast::ctx::Ctx;
use segcast::http::{self, push_auth::PushAuth, scheduler_tick::SchedulerApp};
use segcast::pipeline::scheduler::TickOptions;

#[tokio::main]
async fn main() {
    segcast::telemetry::init("scheduler");
    // A start-up failure is logged as JSON, like everything else.
    segcast::telemetry::run_service(run()).await
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env(Service::Scheduler)?;
    let auth = PushAuth::from_settings(&settings.delivery)?;
    let (port, own) = (settings.port, settings.scheduler.clone());
    let ctx = Ctx::connect(settings).await?;
    let owner = format!(
        "scheduler-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut opts = TickOptions::new(owner);
    opts.budget = own.tick_budget;
    opts.lease = own.lease;
    // SIGTERM: new ticks get 503, campaigns being driven yield (their state is durable), the local loop ends.
    let stopping = ctx.stopping.clone();
    if let Some(every) = own.loop_every {
        tokio::spawn(http::scheduler_tick::run_loop(
            ctx.clone(),
            opts.clone(),
            every,
            stopping.clone(),
        ));
    }
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
    tracing::info!(addr = %listener.local_addr()?, owner = %opts.owner, "scheduler listening");
    http::serve_until_stopping(
        listener,
        http::scheduler_tick::router(SchedulerApp { ctx, opts, auth }),
        stopping,
    )
    .await?;
    Ok(())
}
