//! segcast-delivery: the Pub/Sub push handler that sends batches to LINE (see `segcast::pipeline::deliver`).

use segcast::config::{Service, Settings};
use segcast::ctx::Ctx;
use segcast::http::{self, delivery_push::DeliveryApp, push_auth::PushAuth};
use segcast::line::LineClient;

#[tokio::main]
async fn main() {
    segcast::telemetry::init("delivery");
    // A start-up failure is logged as JSON, like everything else.
    segcast::telemetry::run_service(run()).await
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env(Service::Delivery)?;
    let port = settings.port;
    let auth = PushAuth::from_settings(&settings.delivery)?;
    let line = LineClient::new(&settings.line)?;
    let ctx = Ctx::connect(settings).await?;
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
    tracing::info!(addr = %listener.local_addr()?, "delivery handler listening");
    // SIGTERM: new pushes get 503 and handlings in progress hand their batches back (Cloud Run's 10 s).
    let stopping = ctx.stopping.clone();
    http::serve_until_stopping(
        listener,
        http::delivery_push::router(DeliveryApp { ctx, line, auth }),
        stopping,
    )
    .await?;
    Ok(())
}
