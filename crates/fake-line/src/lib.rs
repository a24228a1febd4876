//! fake-line: a faithful, fast fake of the LINE Messaging API for tests, the demo, benchmarks and chaos runs.
//!
//! It issues stateless channel access tokens, checks bearer auth, validates every request body against LINE's
//! own OpenAPI spec (via `line-spec`), honours `X-Line-Retry-Key` (409 + `x-line-accepted-request-id` on a
//! repeat), enforces per-channel rate limits and monthly quotas, injects faults (500s, timeouts, lost
//! responses, 429 bursts, latency), and records every accepted delivery so tests can count duplicates.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let fake = fake_line::FakeLine::start("127.0.0.1:0".parse().unwrap(), fake_line::Config::default()).await?;
//! println!("LINE API at {}", fake.url());
//! // ... point the client at fake.url() instead of https://api.line.me ...
//! assert_eq!(fake.stats().duplicates, 0);
//! fake.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Admin endpoints (no auth): `GET /fake/health`, `GET /fake/stats` ([`Stats`]), `GET /fake/deliveries`
//! (NDJSON of [`Record`]s, `?unit=` to filter), `GET|POST /fake/faults` ([`Faults`]), `POST /fake/quota`
//! (`{"channel_id": "...", "quota": N | null}`), `POST /fake/reset`, `GET /fake/config`.

// Handlers short-circuit with `Err(Response)`: an axum response is 128 bytes, and boxing every early return
// would buy nothing on this path.
#![allow(clippy::result_large_err)]

mod admin;
mod auth;
mod config;
mod errors;
mod faults;
mod insight;
mod quota;
mod rate_limit;
mod records;
mod retry_keys;
mod routes;
mod server;
mod state;
mod stats;
mod util;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{Config, Endpoint, Faults, InsightConfig, Latency, RateLimit, RateLimits};
pub use faults::FaultCounts;
pub use quota::QuotaStats;
pub use rate_limit::Timeline;
pub use records::{Interaction, Record, UnitStats};
pub use stats::Stats;

use state::{App, AppState};

/// A running fake LINE server.
pub struct FakeLine {
    addr: SocketAddr,
    app: App,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    sweeper: JoinHandle<()>,
}

impl FakeLine {
    /// Binds `addr` (port 0 picks a free port) and starts serving in the background.
    pub async fn start(addr: SocketAddr, config: Config) -> std::io::Result<FakeLine> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app: App = Arc::new(AppState::new(config)?);
        let router = routes::router(app.clone());
        let (shutdown, rx) = watch::channel(false);
        let server = tokio::spawn(server::serve(listener, router, rx));

        // Expired retry keys are ignored on lookup; this only bounds memory.
        let sweep_every = Duration::from_secs(app.config.retry_key_ttl_secs.clamp(1, 60));
        let sweeper = {
            let app = app.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(sweep_every);
                loop {
                    tick.tick().await;
                    app.retry_keys.sweep(app.config.clock.unix_ms());
                }
            })
        };
        tracing::info!(%addr, "fake-line listening");
        Ok(FakeLine {
            addr,
            app,
            shutdown,
            server,
            sweeper,
        })
    }

    /// `http://127.0.0.1:PORT` (the bound address; loopback when bound to an unspecified address).
    pub fn url(&self) -> String {
        let ip = self.addr.ip();
        if ip.is_unspecified() {
            format!("http://127.0.0.1:{}", self.addr.port())
        } else {
            format!("http://{}", self.addr)
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The same data as `GET /fake/stats`.
    pub fn stats(&self) -> Stats {
        self.app.stats()
    }

    /// Every accepted request so far (empty when `keep_records` is off and there is no records file).
    pub fn deliveries(&self) -> Vec<Record> {
        self.app
            .deliveries
            .ndjson(None)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The messages of the recent accepted requests to `to`, oldest first (the last 2,000 requests are kept;
    /// empty when records are not kept).
    pub fn messages_to(&self, to: &str) -> Vec<serde_json::Value> {
        self.app.deliveries.messages_to(to).unwrap_or_default()
    }

    /// Records what a user did with a delivered message of `unit` (LINE's insight counts it). False when the
    /// user was never sent the unit.
    pub fn interact(&self, unit: &str, user: &str, what: Interaction) -> bool {
        self.app.deliveries.interact(unit, user, what)
    }

    pub fn faults(&self) -> Faults {
        self.app.faults.get()
    }

    /// Replaces the faults (and reseeds their RNG).
    pub fn set_faults(&self, f: Faults) {
        self.app.faults.set(f);
    }

    /// Sets a channel's monthly quota; `None` is unlimited. Usage so far is kept.
    pub fn set_quota(&self, channel_id: &str, quota: Option<u64>) {
        self.app.quotas.set_limit(channel_id, quota);
    }

    /// Same as `POST /fake/reset`.
    pub fn reset(&self) {
        self.app.reset();
    }

    /// A valid token for `channel_id` (as `/oauth2/v3/token` would issue), for tests that skip the token call.
    pub fn issue_token(&self, channel_id: &str) -> String {
        let lifetime = self.app.config.token_lifetime_secs.saturating_mul(1000);
        self.app
            .tokens
            .issue(channel_id, util::now_ms().saturating_add(lifetime))
    }

    /// Stops accepting, drops open connections and waits for the server to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        self.sweeper.abort();
        let _ = self.server.await;
    }
}
