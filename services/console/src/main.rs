//! segcast-console: the marketers' console — JSON API, OpenAPI spec and web UI (see `segcast::console`).

use segcast::config::{Settings, listen_port};
use segcast::console::{ConsoleApp, router};
use segcast::http;
use segcast::line::LineClient;
use segcast::pipeline::Ctx;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    segcast::telemetry::init("console");
    let settings = Settings::from_env()?;
    let line = LineClient::new(&settings.line)?;
    let ctx = Ctx::connect(settings).await?;
    let app = ConsoleApp::from_env(ctx, line).await?;
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", listen_port())).await?;
    tracing::info!(addr = %listener.local_addr()?, auth = app.settings.mode.name(), "console listening");
    http::serve(listener, router(app)).await?;
    Ok(())
}
