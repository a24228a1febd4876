//! segcast-console: the marketers' console — JSON API, OpenAPI spec and web UI (the `segcast_console` library of this package).

use segcast::config::{Service, Settings};
use segcast::ctx::Ctx;
use segcast::http;
use segcast::line::LineClient;
use segcast_console::{ConsoleApp, router};

#[tokio::main]
async fn main() {
    segcast::telemetry::init("console");
    // A start-up failure is logged as JSON, like everything else.
    segcast::telemetry::run_service(run()).await
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env(Service::Console)?;
    let port = settings.port;
    let line = LineClient::new(&settings.line)?;
    let ctx = Ctx::connect(settings).await?;
    let app = ConsoleApp::from_env(ctx, line).await?;
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
    tracing::info!(addr = %listener.local_addr()?, auth = app.settings.mode.name(), "console listening");
    http::serve(listener, router(app)).await?;
    Ok(())
}
