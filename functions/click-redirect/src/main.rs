//! segcast-click-redirect: `GET /c/{token}` -> 302 to the link's registered target, the click logged to the
//! click topic through a bounded buffer (see `segcast::http::click_redirect`). `GET /healthz`. Configuration from the
//! environment: `SEGCAST_CLICK_KEYS` (required), `SEGCAST_CLICK_TOPIC`, `GOOGLE_CLOUD_PROJECT`,
//! `SEGCAST_NAMESPACE`, `PORT`, the emulator variables; `SEGCAST_CLICK_BUFFER` (clicks buffered at most,
//! default 100000). SIGTERM stops accepting, then flushes the buffer.

use segcast::config::{Service, Settings};
use segcast::http::click_redirect::{self, BufferOptions};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() {
    segcast::telemetry::init("click-redirect");
    // A start-up failure is logged as JSON, like everything else.
    segcast::telemetry::run_service(run()).await
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env(Service::ClickRedirect)?;
    let opts = BufferOptions {
        capacity: settings.click.buffer,
        ..BufferOptions::default()
    };
    let stop = CancellationToken::new();
    let (app, flusher) = click_redirect::from_settings(&settings, opts, stop.clone()).await?;
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", settings.port)).await?;
    tracing::info!(addr = %listener.local_addr()?, topic = %settings.click.topic, "click redirect listening");
    segcast::http::serve(listener, click_redirect::router(app)).await?;
    stop.cancel();
    if tokio::time::timeout(Duration::from_secs(8), flusher)
        .await
        .is_err()
    {
        tracing::error!("click buffer not flushed within 8 s; exiting anyway");
    }
    Ok(())
}
