//! The click redirect (`segcast-click-redirect`): `GET /c/{token}` verifies the signed token, looks up the
//! registered target of (campaign, link) — cached in memory, so the hot path does no I/O after the first hit —
//! hands a click row to a bounded in-memory buffer, and answers 302 to that target. Nothing else is ever
//! redirected to: forged, expired, tampered or unknown tokens, unregistered links and every other path get the
//! same plain 404 page, and no part of the request (query, path, headers) can choose the destination.
//!
//! A background task publishes the buffer to the click topic in batches. When Pub/Sub is slow the buffer
//! absorbs it; when the buffer is full new clicks are shed (counted and logged), never waited for: the
//! redirect's latency does not depend on Pub/Sub. Shutdown flushes what is buffered.

use crate::click::ClickRow;
use crate::click::link_signature::{Keys, unix_now};
use crate::click::links::check_target;
use crate::domain::CampaignId;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Where registered targets come from.
pub trait LinkSource: Send + Sync + 'static {
    /// The target URL registered for `link` of `campaign`'s content (`None`: not registered).
    fn target<'a>(
        &'a self,
        campaign: &'a CampaignId,
        link: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Option<String>>>;
}

/// Production: Campaign -> its Content -> `links[link]`, in Datastore.
pub struct DatastoreLinks(pub crate::gcp::datastore::Datastore);

impl LinkSource for DatastoreLinks {
    fn target<'a>(
        &'a self,
        campaign: &'a CampaignId,
        link: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Option<String>>> {
        Box::pin(async move {
            let Some(c) = self
                .0
                .get::<crate::domain::Campaign>(campaign.as_str())
                .await?
            else {
                return Ok(None);
            };
            let content: Option<crate::catalog::Content> =
                self.0.get(c.content_id.as_str()).await?;
            Ok(content.and_then(|c| c.links.get(link).cloned()))
        })
    }
}

/// Fixed targets (tests, benchmarks): `(campaign, link) -> url`.
pub struct StaticLinks(pub HashMap<(String, String), String>);

impl LinkSource for StaticLinks {
    fn target<'a>(
        &'a self,
        campaign: &'a CampaignId,
        link: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Option<String>>> {
        let found = self
            .0
            .get(&(campaign.to_string(), link.to_owned()))
            .cloned();
        Box::pin(async move { Ok(found) })
    }
}

/// Where click rows go (JSON, one message each).
pub trait ClickPublisher: Send + Sync + 'static {
    fn publish(&self, messages: Vec<Vec<u8>>) -> BoxFuture<'_, anyhow::Result<()>>;
}

/// Production and local: the click topic.
pub struct PubSubPublisher {
    pub pubsub: crate::gcp::pubsub::PubSub,
    pub topic: String,
}

impl ClickPublisher for PubSubPublisher {
    fn publish(&self, messages: Vec<Vec<u8>>) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(self.pubsub.publish_all(&self.topic, messages))
    }
}

/// Counts and drops (benchmarks without an emulator).
#[derive(Default)]
pub struct CountingPublisher(pub AtomicU64);

impl ClickPublisher for CountingPublisher {
    fn publish(&self, messages: Vec<Vec<u8>>) -> BoxFuture<'_, anyhow::Result<()>> {
        self.0.fetch_add(messages.len() as u64, Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }
}

/// Counters of the buffer, for logs and tests.
#[derive(Debug, Default)]
pub struct BufferStats {
    /// Clicks taken into the buffer.
    pub accepted: AtomicU64,
    /// Clicks shed because the buffer was full.
    pub shed: AtomicU64,
    /// Clicks Pub/Sub has.
    pub published: AtomicU64,
    /// Clicks dropped after publishing failed repeatedly.
    pub failed: AtomicU64,
}

/// The bounded buffer between the redirect and Pub/Sub.
#[derive(Clone)]
pub struct ClickBuffer {
    tx: mpsc::Sender<ClickRow>,
    pub stats: Arc<BufferStats>,
}

/// Buffer settings.
#[derive(Debug, Clone, Copy)]
pub struct BufferOptions {
    /// Clicks held at most (when full, new ones are shed).
    pub capacity: usize,
    /// Clicks per publish.
    pub batch: usize,
    /// Publish attempts per batch before it is dropped (and counted).
    pub attempts: u32,
}

impl Default for BufferOptions {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            batch: 1000,
            attempts: 5,
        }
    }
}

impl ClickBuffer {
    /// Starts the background publisher. It stops when `stop` is cancelled, after publishing what is buffered.
    pub fn start(
        publisher: Arc<dyn ClickPublisher>,
        opts: BufferOptions,
        stop: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(opts.capacity.max(1));
        let stats = Arc::new(BufferStats::default());
        let task = tokio::spawn(publish_loop(rx, publisher, opts, stats.clone(), stop));
        (Self { tx, stats }, task)
    }

    /// Takes a click, or sheds it when the buffer is full (never waits).
    pub fn offer(&self, row: ClickRow) {
        match self.tx.try_send(row) {
            Ok(()) => {
                self.stats.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.stats.shed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn publish_loop(
    mut rx: mpsc::Receiver<ClickRow>,
    publisher: Arc<dyn ClickPublisher>,
    opts: BufferOptions,
    stats: Arc<BufferStats>,
    stop: CancellationToken,
) {
    let max = opts.batch.max(1);
    let mut batch = Vec::with_capacity(max);
    let mut reported_shed = 0u64;
    let mut last_report = Instant::now();
    let mut stopping = false;
    loop {
        let n = if stopping {
            rx.recv_many(&mut batch, max).await
        } else {
            tokio::select! {
                n = rx.recv_many(&mut batch, max) => n,
                _ = stop.cancelled() => {
                    stopping = true;
                    rx.close();
                    continue;
                }
                _ = tokio::time::sleep(Duration::from_secs(10)) => 0,
            }
        };
        if n == 0 && stopping {
            break;
        }
        if !batch.is_empty() {
            let messages: Vec<Vec<u8>> = batch
                .drain(..)
                .filter_map(|r| serde_json::to_vec(&r).ok())
                .collect();
            let count = messages.len() as u64;
            let mut attempt = 0;
            loop {
                attempt += 1;
                match publisher.publish(messages.clone()).await {
                    Ok(()) => {
                        stats.published.fetch_add(count, Ordering::Relaxed);
                        break;
                    }
                    Err(e) if attempt < opts.attempts => {
                        tracing::warn!(error = %format!("{e:#}"), clicks = count, attempt, "publishing clicks failed; retrying");
                        tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt.min(5))))
                            .await;
                    }
                    Err(e) => {
                        stats.failed.fetch_add(count, Ordering::Relaxed);
                        tracing::error!(error = %format!("{e:#}"), clicks = count, "publishing clicks failed; dropped");
                        break;
                    }
                }
            }
        }
        let shed = stats.shed.load(Ordering::Relaxed);
        if shed > reported_shed && (last_report.elapsed() >= Duration::from_secs(10) || stopping) {
            tracing::warn!(
                shed_since_last = shed - reported_shed,
                shed_total = shed,
                "click buffer full: clicks shed (Pub/Sub slower than the clicks)"
            );
            reported_shed = shed;
            last_report = Instant::now();
        }
    }
    let shed = stats.shed.load(Ordering::Relaxed);
    if shed > reported_shed {
        tracing::warn!(
            shed_since_last = shed - reported_shed,
            shed_total = shed,
            "click buffer full: clicks shed"
        );
    }
    tracing::info!(
        published = stats.published.load(Ordering::Relaxed),
        shed,
        failed = stats.failed.load(Ordering::Relaxed),
        "click buffer flushed"
    );
}

enum Cached {
    Target(HeaderValue),
    Missing(Instant),
}

/// How long an unregistered (campaign, link) is remembered as such.
const MISSING_TTL: Duration = Duration::from_secs(60);

/// Registered targets, cached after their first lookup.
pub struct Targets {
    source: Arc<dyn LinkSource>,
    cache: RwLock<HashMap<String, Cached>>,
}

impl Targets {
    pub fn new(source: Arc<dyn LinkSource>) -> Self {
        Self {
            source,
            cache: RwLock::default(),
        }
    }

    pub async fn get(&self, campaign: &CampaignId, link: &str) -> Option<HeaderValue> {
        let key = format!("{campaign}/{link}");
        match self.cache.read().expect("target cache").get(&key) {
            Some(Cached::Target(v)) => return Some(v.clone()),
            Some(Cached::Missing(at)) if at.elapsed() < MISSING_TTL => return None,
            _ => {}
        }
        let found = match self.source.target(campaign, link).await {
            Ok(f) => f,
            Err(e) => {
                // Not cached: the next click tries again.
                tracing::warn!(campaign = %campaign, link, error = %format!("{e:#}"), "target lookup failed");
                return None;
            }
        };
        let entry = match found {
            Some(url) => match check_target(&url).map(|_| HeaderValue::from_str(&url)) {
                Ok(Ok(v)) => Cached::Target(v),
                _ => {
                    tracing::error!(campaign = %campaign, link, "registered target is not a valid URL: not redirecting");
                    Cached::Missing(Instant::now())
                }
            },
            None => Cached::Missing(Instant::now()),
        };
        let out = match &entry {
            Cached::Target(v) => Some(v.clone()),
            Cached::Missing(_) => None,
        };
        self.cache.write().expect("target cache").insert(key, entry);
        out
    }
}

#[derive(Clone)]
pub struct ClickApp {
    pub keys: Keys,
    pub targets: Arc<Targets>,
    pub buffer: ClickBuffer,
    /// Tokens refused (all kinds), for logs and tests.
    pub refused: Arc<AtomicU64>,
}

pub fn router(app: ClickApp) -> Router {
    Router::new()
        .route("/c/{token}", get(click))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { not_found() })
        .with_state(app)
}

/// The one answer to everything that is not a valid click: a plain page, no hint why.
pub fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        "Not found\n",
    )
        .into_response()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn click(
    State(app): State<ClickApp>,
    method: Method,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let claims = match app.keys.verify(&token, unix_now()) {
        Ok(c) => c,
        Err(why) => {
            app.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(reason = ?why, "click token refused");
            return not_found();
        }
    };
    let Some(target) = app.targets.get(&claims.campaign, &claims.link).await else {
        app.refused.fetch_add(1, Ordering::Relaxed);
        return not_found();
    };
    // HEAD is what link checkers and previews send: redirect, but it is not a click.
    if method == Method::GET {
        let now = time::OffsetDateTime::now_utc();
        app.buffer.offer(ClickRow {
            click_id: uuid::Uuid::new_v4().simple().to_string(),
            campaign_id: claims.campaign.to_string(),
            link_id: claims.link,
            recipient: claims.recipient.map(|r| r.to_string()),
            user_agent_class: Some(
                crate::click::user_agent_class(header_str(&headers, "user-agent")).to_owned(),
            ),
            country: crate::click::country(
                header_str(&headers, "x-client-geo-location")
                    .or_else(|| header_str(&headers, "x-appengine-country")),
            ),
            clicked_at: now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        });
    }
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, target),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
    )
        .into_response()
}

/// Builds the redirect from settings: keys from `SEGCAST_CLICK_KEYS`, targets from Datastore, clicks to the
/// click topic. Returns the app and the buffer's publisher task (it ends after `stop`, once flushed).
pub async fn from_settings(
    settings: &crate::config::Settings,
    opts: BufferOptions,
    stop: CancellationToken,
) -> anyhow::Result<(ClickApp, JoinHandle<()>)> {
    let keys = settings.click.keys.clone().ok_or_else(|| {
        anyhow::anyhow!("SEGCAST_CLICK_KEYS is not set: the redirect cannot verify click tokens")
    })?;
    let datastore = crate::gcp::datastore::Datastore::connect(settings).await?;
    let pubsub = crate::gcp::pubsub::PubSub::connect(settings).await?;
    let publisher = Arc::new(PubSubPublisher {
        pubsub,
        topic: settings.click.topic.clone(),
    });
    let (buffer, task) = ClickBuffer::start(publisher, opts, stop);
    Ok((
        ClickApp {
            keys,
            targets: Arc::new(Targets::new(Arc::new(DatastoreLinks(datastore)))),
            buffer,
            refused: Arc::default(),
        },
        task,
    ))
}
