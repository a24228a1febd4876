//! segcast-click-redirect: `GET /c/{token}` -> 302 to the link's registered target, the click logged to the
//! click topic through a bounded buffer (see `segcast::http::click_redirect`). `GET /healthz`. Configuration from the
//! environment: `SEGCAST_CLICK_KEYS` (required), `SEGCAST_CLICK_TOPIC`, `GOOGLE_CLOUD_PROJECT`,
//! `SEGCAST_NAMESPACE`, `PORT`, the emulator variables; `SEGCAST_CLICK_BUFFER` (clicks buffered at most,
//! default 100000). SIGTERM stops accepting, then flushes the buffer.

use segcast::config::{Settings, listen_port};
use segcast::http::click_redirect::{self, BufferOptions};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    segcast::telemetry::init("click-redirect");
    // The redirect exports nothing: the export bucket is not needed here.
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    if !vars.iter().any(|(k, _)| k == "SEGCAST_BUCKET") {
        vars.push(("SEGCAST_BUCKET".into(), "unused-by-click-redirect".into()));
    }
    let settings = Settings::from_vars(vars)?;
    let mut opts = BufferOptions::default();
    if let Ok(v) = std::env::var("SEGCAST_CLICK_BUFFER") {
        opts.capacity = v
            .parse()
            .map_err(|e| anyhow::anyhow!("SEGCAST_CLICK_BUFFER={v:?}: {e}"))?;
    }
    let stop = CancellationToken::new();
    let (app, flusher) = click_redirect::from_settings(&settings, opts, stop.clone()).await?;
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", listen_port())).await?;
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
