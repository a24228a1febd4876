//! segcast-log-sink: delivery-log topic -> BigQuery, for where a BigQuery subscription is not available
//! (the emulator). See `segcast::pipeline::log_sink`.

use segcast::config::{Service, Settings};
use segcast::ctx::Ctx;
use segcast::pipeline::log_sink;
use tokio_util::sync::CancellationToken;

/// Concurrent pull loops: enough to keep up with ~2,000 push requests/s of log rows on the emulator.
const WORKERS: usize = 2;

#[tokio::main]
async fn main() {
    segcast::telemetry::init("log-sink");
    // A start-up failure is logged as JSON, like everything else.
    segcast::telemetry::run_service(run()).await
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env(Service::LogSink)?;
    let port = settings.port;
    let ctx = Ctx::connect(settings).await?;
    let stop = CancellationToken::new();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| tokio::spawn(log_sink::run(ctx.clone(), stop.clone())))
        .collect();
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
    tracing::info!(addr = %listener.local_addr()?, "log sink running");
    let health = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
    segcast::http::serve(listener, health).await?;
    stop.cancel();
    for w in workers {
        let _ = w.await;
    }
    Ok(())
}
