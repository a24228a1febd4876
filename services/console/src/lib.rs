//! The marketers' console: one JSON API (`/api`, spec at `/api/openapi.json`) that the web UI (`/`) and the
//! CLI (`segcast`) both use.
//!
//! One module per thing a marketer works with: [`channels`], [`contents`], [`segments`], [`campaigns`] (and
//! their [`results`]); [`auth`] says who is calling and what their role allows, [`audit`] records every change,
//! [`users`] manages roles, [`openapi`] describes it all, [`ui`] serves the pages.

pub mod audit;
pub mod auth;
pub mod campaigns;
pub mod channels;
pub mod contents;
pub mod error;
pub mod openapi;
pub mod results;
pub mod segments;
pub mod ui;
pub mod users;

use anyhow::{Context, bail};
use auth::{Identity, Mode};
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::{Method, StatusCode, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use error::ApiError;
use segcast::ctx::Ctx;
use segcast::line::LineClient;
use segcast::line::secrets::ChannelSecrets;
use segcast::telemetry::Secret;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The console's own settings (from the environment; the pipeline's come from [`segcast::config::Settings`]).
#[derive(Clone)]
pub struct ConsoleSettings {
    pub mode: Mode,
    /// Emails that are admins whatever the user list says (`SEGCAST_CONSOLE_ADMINS`): the first admins.
    pub admins: Vec<String>,
    /// Campaigns to more recipients than this need a second user's approval (`SEGCAST_APPROVAL_THRESHOLD`).
    pub approval_threshold: u64,
    /// A segment's query may scan at most this many bytes (`SEGCAST_SEGMENT_MAX_BYTES`).
    pub segment_max_bytes: u64,
    /// Datasets segments may read (`SEGCAST_SEGMENT_DATASETS`, `dataset` or `project.dataset`, comma
    /// separated); segcast's own dataset when unset.
    pub segment_datasets: Vec<String>,
    /// Requests per second one caller may make (`SEGCAST_CONSOLE_RATE`), bursts of twice that.
    pub rate_per_s: u32,
    /// Largest request body in bytes (`SEGCAST_CONSOLE_MAX_BODY`).
    pub max_body: usize,
}

impl ConsoleSettings {
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
        dataset: &str,
    ) -> anyhow::Result<Self> {
        Self::from_config(&segcast::config::Vars::from_pairs(vars), dataset)
    }

    /// The console's settings from the environment's variables (see [`segcast::config::vars`]).
    pub fn from_config(vars: &segcast::config::Vars, dataset: &str) -> anyhow::Result<Self> {
        let num = |k: &str, default: u64| whole_number(vars, k, default);
        let mode = auth_mode(vars)?;
        let admins = vars
            .get("SEGCAST_CONSOLE_ADMINS")
            .map(|v| {
                v.split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| auth::normalize_email(s).map_err(anyhow::Error::msg))
                    .collect::<anyhow::Result<Vec<_>>>()
            })
            .transpose()
            .context("SEGCAST_CONSOLE_ADMINS")?
            .unwrap_or_default();
        let segment_datasets = match vars.get("SEGCAST_SEGMENT_DATASETS") {
            Some(v) => v
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            None => vec![dataset.to_owned()],
        };
        Ok(Self {
            mode,
            admins,
            approval_threshold: num("SEGCAST_APPROVAL_THRESHOLD", 100_000)?,
            segment_max_bytes: num("SEGCAST_SEGMENT_MAX_BYTES", 100_000_000_000)?,
            segment_datasets,
            rate_per_s: num("SEGCAST_CONSOLE_RATE", 20)?.max(1) as u32,
            max_body: num("SEGCAST_CONSOLE_MAX_BODY", 256 * 1024)? as usize,
        })
    }
}

fn whole_number(vars: &segcast::config::Vars, k: &str, default: u64) -> anyhow::Result<u64> {
    match vars.get(k) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .with_context(|| format!("{k}={v:?} is not a whole number")),
    }
}

/// How console users sign in (`SEGCAST_CONSOLE_AUTH`): IAP's signed header, or the local password.
fn auth_mode(vars: &segcast::config::Vars) -> anyhow::Result<Mode> {
    Ok(match vars.get("SEGCAST_CONSOLE_AUTH") {
        Some("iap") => {
            let audience = vars
                .get("SEGCAST_IAP_AUDIENCE")
                .map(str::to_owned)
                .context(
                    "SEGCAST_IAP_AUDIENCE is not set: IAP's audience for this backend \
                 (/projects/NUMBER/global/backendServices/ID)",
                )?;
            Mode::Iap(Arc::new(auth::IapVerifier::new(
                audience,
                vars.get("SEGCAST_IAP_JWKS_URL").map(str::to_owned),
            )))
        }
        Some("local") => {
            let password = vars
                .get("SEGCAST_CONSOLE_PASSWORD")
                .map(str::to_owned)
                .context("SEGCAST_CONSOLE_PASSWORD is not set: the local sign-in password")?;
            if password.len() < 12 {
                bail!("SEGCAST_CONSOLE_PASSWORD must be at least 12 characters");
            }
            let key = match vars.get("SEGCAST_CONSOLE_SESSION_KEY") {
                Some(k) if k.len() >= 32 => k.as_bytes().to_vec(),
                Some(_) => bail!("SEGCAST_CONSOLE_SESSION_KEY must be at least 32 characters"),
                // Sessions end when the process does.
                None => {
                    use rand::RngCore;
                    let mut k = vec![0u8; 32];
                    rand::rng().fill_bytes(&mut k);
                    k
                }
            };
            Mode::Local {
                password: Secret::new(password),
                key: Arc::new(key),
                session_ttl: Duration::from_secs(
                    whole_number(vars, "SEGCAST_CONSOLE_SESSION_HOURS", 12)? * 3600,
                ),
            }
        }
        Some(other) => {
            bail!("SEGCAST_CONSOLE_AUTH={other:?}: use `iap` (production) or `local`")
        }
        None => bail!(
            "SEGCAST_CONSOLE_AUTH is not set: `iap` behind Identity-Aware Proxy, or `local` for a simple sign-in"
        ),
    })
}

/// Everything a console request needs.
#[derive(Clone)]
pub struct ConsoleApp {
    pub ctx: Ctx,
    pub line: LineClient,
    pub settings: Arc<ConsoleSettings>,
    /// Where channel secrets go (`SEGCAST_CHANNEL_SECRETS`); without it channels cannot be given a secret.
    pub secrets: Option<ChannelSecrets>,
    limiter: Arc<RateLimiter>,
}

impl ConsoleApp {
    pub fn new(
        ctx: Ctx,
        line: LineClient,
        settings: ConsoleSettings,
        secrets: Option<ChannelSecrets>,
    ) -> Self {
        let limiter = Arc::new(RateLimiter::new(settings.rate_per_s));
        Self {
            ctx,
            line,
            settings: Arc::new(settings),
            secrets,
            limiter,
        }
    }

    /// From the environment, as the `segcast-console` binary starts.
    pub async fn from_env(ctx: Ctx, line: LineClient) -> anyhow::Result<Self> {
        let vars = segcast::config::Vars::from_env();
        vars.require(segcast::config::Service::Console)?;
        let settings = ConsoleSettings::from_config(&vars, &ctx.settings.dataset)?;
        let secrets = ChannelSecrets::from_setting(
            ctx.settings.line.channel_secrets.as_deref(),
            &ctx.settings.project_id,
        )
        .await?;
        Ok(Self::new(ctx, line, settings, secrets))
    }

    pub fn ds(&self) -> &segcast::gcp::datastore::Datastore {
        &self.ctx.gcp.datastore
    }
}

impl FromRequestParts<ConsoleApp> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &ConsoleApp,
    ) -> Result<Self, Self::Rejection> {
        let email = match auth::authenticate(&app.settings.mode, &parts.headers).await {
            Ok(e) => e,
            Err(why) => {
                tracing::info!(reason = %why, path = %parts.uri.path(), "console request refused: unauthenticated");
                return Err(ApiError::unauthenticated(why));
            }
        };
        match auth::role_of(app.ds(), &app.settings.admins, &email).await? {
            Some(role) => Ok(Identity { email, role }),
            None => Err(ApiError::forbidden(format!(
                "{email} is not a console user: ask an admin to add you"
            ))),
        }
    }
}

/// A token bucket per caller (credential fingerprint, else client address).
struct RateLimiter {
    rate: f64,
    buckets: std::sync::Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    fn new(rate: u32) -> Self {
        Self {
            rate: f64::from(rate),
            buckets: Default::default(),
        }
    }

    fn allow(&self, key: &str) -> bool {
        let now = Instant::now();
        let burst = self.rate * 2.0;
        let mut b = self.buckets.lock().expect("rate limiter lock");
        if b.len() > 10_000 {
            b.retain(|_, (_, t)| now.duration_since(*t) < Duration::from_secs(60));
        }
        let (tokens, last) = b.entry(key.to_owned()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Per-caller rate limit, and JSON-only writes (a cross-site form cannot send JSON, so with the
/// `SameSite=Strict` cookie this closes off cross-site request forgery).
async fn guard(State(app): State<ConsoleApp>, req: Request, next: Next) -> Response {
    let key = auth::credential_fingerprint(req.headers())
        .or_else(|| {
            req.headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(|ip| format!("ip:{}", ip.trim()))
        })
        .unwrap_or_else(|| "anonymous".into());
    if req.uri().path().starts_with("/api/") && !app.limiter.allow(&key) {
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests: slow down and retry in a second",
        )
        .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return r;
    }
    let writes = matches!(*req.method(), Method::POST | Method::PUT | Method::DELETE);
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if writes && !json && req.uri().path() != "/api/session" {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send JSON: Content-Type must be application/json",
        )
        .into_response();
    }
    next.run(req).await
}

/// The console's router: API, spec and UI.
pub fn router(app: ConsoleApp) -> Router {
    let max_body = app.settings.max_body;
    Router::new()
        .merge(users::routes())
        .merge(channels::routes())
        .merge(contents::routes())
        .merge(segments::routes())
        .merge(campaigns::routes())
        .merge(results::routes())
        .merge(openapi::routes())
        .merge(ui::routes())
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .layer(axum::middleware::from_fn_with_state(app.clone(), guard))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(app)
}

/// JSON body extractor whose rejections are [`ApiError`]s naming what is wrong (not axum's plain text).
pub struct Body<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(rejection) => {
                use axum::extract::rejection::JsonRejection::*;
                let status = rejection.status();
                let message = match &rejection {
                    JsonDataError(e) => format!("the request body does not fit: {}", e.body_text()),
                    JsonSyntaxError(_) => "the request body is not valid JSON".to_owned(),
                    MissingJsonContentType(_) => {
                        "send JSON: Content-Type must be application/json".to_owned()
                    }
                    _ if status == StatusCode::PAYLOAD_TOO_LARGE => {
                        "the request body is too large".to_owned()
                    }
                    other => other.body_text(),
                };
                Err(ApiError::new(status, message))
            }
        }
    }
}
