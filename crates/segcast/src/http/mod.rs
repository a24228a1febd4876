//! The HTTP faces of the binaries (routers and start-up), kept here so the binaries stay thin and tests can
//! run the same apps in-process on port 0.

pub mod click_redirect;
pub mod delivery_push;
pub mod push_auth;
pub mod scheduler_tick;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves `app` on `listener` until SIGTERM/SIGINT (Cloud Run sends SIGTERM before stopping an instance),
/// letting requests in flight finish.
pub async fn serve(listener: TcpListener, app: axum::Router) -> std::io::Result<()> {
    serve_until_stopping(listener, app, CancellationToken::new()).await
}

/// [`serve`], and cancels `stopping` at SIGTERM/SIGINT (for a service whose work in progress must wind down:
/// [`crate::ctx::Ctx::stopping`]).
pub async fn serve_until_stopping(
    listener: TcpListener,
    app: axum::Router,
    stopping: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            stopping.cancel();
        })
        .await
}

/// Answers 503 to anything but `/healthz` once `stopping` is cancelled: Pub/Sub redelivers a refused push and
/// Cloud Scheduler calls the next tick, on an instance that is not shutting down.
pub async fn refuse_when_stopping(
    axum::extract::State(stopping): axum::extract::State<CancellationToken>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if stopping.is_cancelled() && req.uri().path() != "/healthz" {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "shutting down: try another instance",
        )
            .into_response();
    }
    next.run(req).await
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
