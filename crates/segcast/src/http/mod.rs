//! The HTTP faces of the binaries (routers and start-up), kept here so the binaries stay thin and tests can
//! run the same apps in-process on port 0.

pub mod click_redirect;
pub mod delivery_push;
pub mod push_auth;
pub mod scheduler_tick;

use tokio::net::TcpListener;

/// Serves `app` on `listener` until SIGTERM/SIGINT (Cloud Run sends SIGTERM before stopping an instance),
/// letting requests in flight finish.
pub async fn serve(listener: TcpListener, app: axum::Router) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
