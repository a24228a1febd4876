//! The HTTP/1.1 accept loop. It serves the axum router over hyper directly (rather than `axum::serve`) so that
//! a handler can drop its own connection without answering: each request carries a [`ConnKill`] for the
//! connection it arrived on. That is how the timeout and lost-response faults look to a client.

use std::sync::Arc;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower::Service;

/// Drops the connection a request arrived on, without a response.
#[derive(Clone)]
pub(crate) struct ConnKill(Arc<Notify>);

impl ConnKill {
    pub(crate) fn kill(&self) {
        self.0.notify_one();
    }
}

/// Serves `router` on `listener` until `shutdown` turns true; then drops every connection.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    let per_conn_shutdown = shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let kill = Arc::new(Notify::new());
                let conn_kill = ConnKill(kill.clone());
                let router = router.clone();
                let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                    req.extensions_mut().insert(conn_kill.clone());
                    let mut r = router.clone();
                    r.call(req)
                });
                let mut stop = per_conn_shutdown.clone();
                conns.spawn(async move {
                    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = kill.notified() => {}
                        _ = stop.wait_for(|s| *s) => {}
                    }
                });
                while conns.try_join_next().is_some() {}
            }
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
    conns.shutdown().await;
}
