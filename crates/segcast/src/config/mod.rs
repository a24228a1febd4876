//! Settings from the environment (12-factor, as Cloud Run expects), parsed here and nowhere else: every
//! variable is listed in [`vars::VARS`] (name, default, meaning, which services read it); each service builds its
//! typed settings with [`Settings::from_env`].
//!
//! This is the one place that maps the emulator variables (`PUBSUB_EMULATOR_HOST`, `DATASTORE_EMULATOR_HOST`,
//! `STORAGE_EMULATOR_HOST`, `BIGQUERY_EMULATOR_HOST`) onto endpoints: Google's Rust crates read none of them, and
//! talking to an emulator needs both its `http://` endpoint and anonymous credentials.

mod click_keys;
pub mod vars;

pub use click_keys::ClickKeys;

pub use vars::{Service, VARS, Vars};

use anyhow::{Context, bail};
use std::time::Duration;

/// Where each Google service is. `None` means the real service with Application Default Credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub pubsub: Option<String>,
    pub datastore: Option<String>,
    pub storage: Option<String>,
    pub bigquery: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub project_id: String,
    pub endpoints: Endpoints,
    /// Datastore namespace ("" = default). Lets several deployments (or tests) share one Datastore.
    pub namespace: String,
    /// BigQuery dataset holding targets, logs and views.
    pub dataset: String,
    /// Bucket for segment exports (required by the scheduler only: empty elsewhere when unset).
    pub bucket: String,
    /// The HTTP port (`PORT`, which Cloud Run sets).
    pub port: u16,
    /// Number of delivery topics the fan-out spreads batches over (the seed used 10).
    pub delivery_topics: usize,
    /// Delivery topics are `<prefix>-0 .. <prefix>-<N-1>`; their push subscriptions add `-push`.
    pub topic_prefix: String,
    /// Topic carrying delivery-log rows to BigQuery.
    pub log_topic: String,
    pub line: LineSettings,
    pub delivery: DeliverySettings,
    pub click: ClickSettings,
    pub scheduler: SchedulerSettings,
}

/// The scheduler's own settings.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// How long one tick may work (`SEGCAST_TICK_BUDGET_SECONDS`).
    pub tick_budget: Duration,
    /// A campaign's lease (`SEGCAST_LEASE_SECONDS`).
    pub lease: Duration,
    /// Also tick on its own this often (`SEGCAST_SCHEDULER_LOOP_MS`; local use).
    pub loop_every: Option<Duration>,
}

/// Click tracking: where click rows go, and how tracked links are signed.
#[derive(Debug, Clone)]
pub struct ClickSettings {
    /// Topic carrying click-log rows to BigQuery (`SEGCAST_CLICK_TOPIC`).
    pub topic: String,
    /// Signing keys (`SEGCAST_CLICK_KEYS`, `kid:base64url-key,...`): the first signs, all verify.
    pub keys: Option<ClickKeys>,
    /// Public base URL of the click domain (`SEGCAST_CLICK_BASE_URL`), e.g. `https://c.example.com`.
    pub base_url: Option<String>,
    /// How long a tracked link keeps working (`SEGCAST_CLICK_TOKEN_TTL_DAYS`).
    pub token_ttl: Duration,
    /// The click redirect's buffer of clicks not yet published (`SEGCAST_CLICK_BUFFER`).
    pub buffer: usize,
}

#[derive(Debug, Clone)]
pub struct LineSettings {
    pub base_url: String,
    /// Per-channel request rates (requests per second) segcast keeps to. The defaults are LINE's limits (push
    /// 2,000, multicast 200): the limiter counts each request until its answer is in, so no one-second window
    /// at LINE can hold more than this however the requests are delayed on the way ([`crate::line::rate_limit`]).
    pub push_rate: u32,
    pub multicast_rate: u32,
    pub request_timeout: Duration,
    /// Where channel secrets registered in the console are kept (`SEGCAST_CHANNEL_SECRETS`, see
    /// [`crate::line::secrets`]), besides the environment.
    pub channel_secrets: Option<String>,
    /// The project holding those secrets in Secret Manager.
    pub secrets_project: String,
    /// Channel credentials from the environment (how Cloud Run mounts Secret Manager secrets).
    pub credentials: Vec<ChannelCredential>,
}

/// A channel's credential from the environment: `LINE_CHANNEL_<ID>_SECRET` (a stateless token is issued with
/// it) or `LINE_CHANNEL_<ID>_TOKEN` (a long-lived token); for one channel also `LINE_CHANNEL_ID` with
/// `LINE_CHANNEL_SECRET` or `LINE_CHANNEL_TOKEN`.
#[derive(Debug, Clone)]
pub struct ChannelCredential {
    pub channel: String,
    /// A channel secret (else a long-lived access token).
    pub is_secret: bool,
    pub value: crate::telemetry::Secret,
}

/// The channel credentials set in `vars`.
pub fn channel_credentials(vars: &Vars) -> Vec<ChannelCredential> {
    let secret = crate::telemetry::Secret::new;
    let mut out: Vec<ChannelCredential> = vars
        .channel_credentials()
        .map(|(id, is_secret, v)| ChannelCredential {
            channel: id.to_owned(),
            is_secret,
            value: secret(v.to_owned()),
        })
        .collect();
    if let Some(id) = vars.get("LINE_CHANNEL_ID") {
        let one = match (
            vars.get("LINE_CHANNEL_TOKEN"),
            vars.get("LINE_CHANNEL_SECRET"),
        ) {
            (Some(t), _) => Some((false, t)),
            (None, Some(s)) => Some((true, s)),
            (None, None) => None,
        };
        if let Some((is_secret, v)) = one {
            out.retain(|c| c.channel != id);
            out.push(ChannelCredential {
                channel: id.to_owned(),
                is_secret,
                value: secret(v.to_owned()),
            });
        }
    }
    out.sort_by(|a, b| a.channel.cmp(&b.channel));
    out
}

#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Recipients per batch for multicast content (a multiple of 500 is best: LINE takes 500 per request).
    /// 2,000 (4 requests) keeps enough requests queued per push in flight to hold the multicast rate, while a
    /// handler's memory stays small (it holds the batches in flight).
    pub multicast_batch: usize,
    /// Recipients per batch for personalised (push) content.
    pub push_batch: usize,
    /// Requests one batch may have in flight at once.
    pub batch_concurrency: usize,
    /// How long one push may work before it gives up and lets Pub/Sub redeliver (must stay under the
    /// subscription's ack deadline, or Pub/Sub pushes the same batch again while it is still running).
    pub push_budget: Duration,
    /// Batches per second the fan-out publishes at most (0 = as fast as Pub/Sub takes them). Limits how far
    /// publishing runs ahead of sending, e.g. for push campaigns that take hours at LINE's rate.
    pub fanout_rate: u32,
    /// Ack deadline given to the delivery subscriptions.
    pub ack_deadline: Duration,
    /// A round whose logged recipients have not grown for this long is re-driven: the scheduler re-publishes
    /// its batches that are not done (a batch Pub/Sub stopped delivering must not stall a campaign forever).
    pub redrive_after: Duration,
    /// Shared secret that local Pub/Sub pushes carry (the emulator sends no OIDC token).
    pub push_token: Option<crate::telemetry::Secret>,
    /// OIDC audience expected on production pushes.
    pub push_audience: Option<String>,
    /// Service account expected to sign production pushes.
    pub push_service_account: Option<String>,
}

fn get(vars: &Vars, key: &str) -> Option<String> {
    vars.get(key).map(str::to_owned)
}

fn parse_num<T: std::str::FromStr>(vars: &Vars, key: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    match vars.get(key) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|e| anyhow::anyhow!("{key}={v:?} is not a valid number: {e}")),
    }
}

fn with_scheme(v: String) -> String {
    if v.starts_with("http://") || v.starts_with("https://") {
        v
    } else {
        format!("http://{v}")
    }
}

impl Settings {
    /// `service`'s settings from the process's environment; refuses to start without what it requires.
    pub fn from_env(service: Service) -> anyhow::Result<Self> {
        let vars = Vars::from_env();
        vars.require(service)?;
        Self::parse(&vars)
    }

    /// Settings from `vars` (tests, infra-check): every service's requirements but the bucket's.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<Self> {
        Self::parse(&Vars::from_pairs(vars))
    }

    fn parse(vars: &Vars) -> anyhow::Result<Self> {
        let project_id = get(vars, "GOOGLE_CLOUD_PROJECT")
            .context("GOOGLE_CLOUD_PROJECT is not set: the Google Cloud project to use")?;
        let endpoints = Endpoints {
            pubsub: get(vars, "PUBSUB_EMULATOR_HOST").map(with_scheme),
            datastore: get(vars, "DATASTORE_EMULATOR_HOST").map(with_scheme),
            storage: get(vars, "STORAGE_EMULATOR_HOST").map(with_scheme),
            bigquery: get(vars, "BIGQUERY_EMULATOR_HOST").map(with_scheme),
        };
        let delivery_topics = parse_num(vars, "SEGCAST_DELIVERY_TOPICS", 10usize)?;
        if !(1..=100).contains(&delivery_topics) {
            bail!("SEGCAST_DELIVERY_TOPICS={delivery_topics} must be between 1 and 100");
        }
        let multicast_batch = parse_num(vars, "SEGCAST_MULTICAST_BATCH", 4000usize)?;
        let push_batch = parse_num(vars, "SEGCAST_PUSH_BATCH", 200usize)?;
        let max = crate::domain::MAX_BATCH_RECIPIENTS;
        if !(1..=max).contains(&multicast_batch) || !(1..=max).contains(&push_batch) {
            bail!("SEGCAST_MULTICAST_BATCH and SEGCAST_PUSH_BATCH must be between 1 and {max}");
        }
        let ack_deadline =
            Duration::from_secs(parse_num(vars, "SEGCAST_ACK_DEADLINE_SECONDS", 60u64)?);
        let push_budget =
            Duration::from_secs(parse_num(vars, "SEGCAST_PUSH_BUDGET_SECONDS", 30u64)?);
        if push_budget >= ack_deadline {
            bail!("SEGCAST_PUSH_BUDGET_SECONDS must be below SEGCAST_ACK_DEADLINE_SECONDS");
        }
        Ok(Self {
            project_id: project_id.clone(),
            endpoints,
            namespace: get(vars, "SEGCAST_NAMESPACE").unwrap_or_default(),
            dataset: get(vars, "SEGCAST_DATASET").unwrap_or_else(|| "segcast".into()),
            bucket: get(vars, "SEGCAST_BUCKET").unwrap_or_default(),
            port: parse_num(vars, "PORT", 8080u16)?,
            delivery_topics,
            topic_prefix: get(vars, "SEGCAST_TOPIC_PREFIX")
                .unwrap_or_else(|| "segcast-delivery".into()),
            log_topic: get(vars, "SEGCAST_LOG_TOPIC")
                .unwrap_or_else(|| "segcast-delivery-log".into()),
            line: LineSettings {
                base_url: get(vars, "LINE_API_BASE_URL")
                    .unwrap_or_else(|| "https://api.line.me".into()),
                push_rate: parse_num(vars, "SEGCAST_LINE_PUSH_RATE", 2000u32)?,
                multicast_rate: parse_num(vars, "SEGCAST_LINE_MULTICAST_RATE", 200u32)?,
                request_timeout: Duration::from_millis(parse_num(
                    vars,
                    "SEGCAST_LINE_TIMEOUT_MS",
                    10_000u64,
                )?),
                channel_secrets: get(vars, "SEGCAST_CHANNEL_SECRETS"),
                secrets_project: project_id.clone(),
                credentials: channel_credentials(vars),
            },
            delivery: DeliverySettings {
                multicast_batch,
                push_batch,
                batch_concurrency: parse_num(vars, "SEGCAST_BATCH_CONCURRENCY", 64usize)?.max(1),
                push_budget,
                fanout_rate: parse_num(vars, "SEGCAST_FANOUT_RATE", 0u32)?,
                ack_deadline,
                redrive_after: Duration::from_secs(parse_num(
                    vars,
                    "SEGCAST_REDRIVE_SECONDS",
                    600u64,
                )?),
                push_token: get(vars, "SEGCAST_PUSH_TOKEN").map(crate::telemetry::Secret::new),
                push_audience: get(vars, "SEGCAST_PUSH_AUDIENCE"),
                push_service_account: get(vars, "SEGCAST_PUSH_SERVICE_ACCOUNT"),
            },
            click: click_settings(vars)?,
            scheduler: SchedulerSettings {
                tick_budget: Duration::from_secs(parse_num(
                    vars,
                    "SEGCAST_TICK_BUDGET_SECONDS",
                    50u64,
                )?),
                lease: Duration::from_secs(parse_num(vars, "SEGCAST_LEASE_SECONDS", 30u64)?),
                loop_every: match vars.get("SEGCAST_SCHEDULER_LOOP_MS") {
                    None => None,
                    Some(_) => Some(Duration::from_millis(parse_num(
                        vars,
                        "SEGCAST_SCHEDULER_LOOP_MS",
                        0u64,
                    )?)),
                },
            },
        })
    }

    pub fn delivery_topic(&self, i: usize) -> String {
        format!("{}-{i}", self.topic_prefix)
    }

    pub fn delivery_subscription(&self, i: usize) -> String {
        format!("{}-{i}-push", self.topic_prefix)
    }

    pub fn dead_letter_topic(&self) -> String {
        format!("{}-dead-letter", self.topic_prefix)
    }

    pub fn log_subscription(&self) -> String {
        format!("{}-sink", self.log_topic)
    }

    /// The local click-log sink's pull subscription.
    pub fn click_subscription(&self) -> String {
        format!("{}-sink", self.click.topic)
    }
}

fn click_settings(vars: &Vars) -> anyhow::Result<ClickSettings> {
    let keys = match get(vars, "SEGCAST_CLICK_KEYS") {
        None => None,
        Some(v) => Some(
            ClickKeys::parse(&crate::telemetry::Secret::new(v))
                .map_err(|e| anyhow::anyhow!("SEGCAST_CLICK_KEYS: {e}"))?,
        ),
    };
    let base_url = match get(vars, "SEGCAST_CLICK_BASE_URL") {
        None => None,
        Some(v) => {
            let v = v.trim_end_matches('/').to_owned();
            if !(v.starts_with("https://") || v.starts_with("http://")) || v.contains(['?', '#']) {
                bail!(
                    "SEGCAST_CLICK_BASE_URL={v:?} must be an http(s) URL without query or fragment"
                );
            }
            Some(v)
        }
    };
    let days = parse_num(vars, "SEGCAST_CLICK_TOKEN_TTL_DAYS", 90u64)?;
    if !(1..=3650).contains(&days) {
        bail!("SEGCAST_CLICK_TOKEN_TTL_DAYS={days} must be between 1 and 3650");
    }
    Ok(ClickSettings {
        topic: get(vars, "SEGCAST_CLICK_TOPIC").unwrap_or_else(|| "click-logs".into()),
        keys,
        base_url,
        token_ttl: Duration::from_secs(days * 86_400),
        buffer: parse_num(vars, "SEGCAST_CLICK_BUFFER", 100_000usize)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v = vec![("GOOGLE_CLOUD_PROJECT", "p"), ("SEGCAST_BUCKET", "b")];
        v.extend_from_slice(extra);
        v.into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn emulator_hosts_become_http_endpoints() {
        let s = Settings::from_vars(vars(&[
            ("PUBSUB_EMULATOR_HOST", "127.0.0.1:8085"),
            ("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9000"),
        ]))
        .unwrap();
        assert_eq!(s.endpoints.pubsub.as_deref(), Some("http://127.0.0.1:8085"));
        assert_eq!(
            s.endpoints.storage.as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(s.endpoints.datastore, None);
        assert_eq!(s.delivery_topics, 10);
        assert_eq!(s.delivery_subscription(3), "segcast-delivery-3-push");
    }

    #[test]
    fn bad_values_are_refused_with_the_variable_name() {
        let err = Settings::from_vars(vars(&[("SEGCAST_DELIVERY_TOPICS", "ten")])).unwrap_err();
        assert!(err.to_string().contains("SEGCAST_DELIVERY_TOPICS"));
        let err = Settings::from_vars(vec![]).unwrap_err();
        assert!(err.to_string().contains("GOOGLE_CLOUD_PROJECT"));
        let err = Settings::from_vars(vars(&[("SEGCAST_PUSH_BUDGET_SECONDS", "90")])).unwrap_err();
        assert!(err.to_string().contains("ACK_DEADLINE"));
    }

    #[test]
    fn click_settings_default_and_refuse_bad_keys_without_printing_them() {
        let s = Settings::from_vars(vars(&[])).unwrap();
        assert_eq!(s.click.topic, "click-logs");
        assert!(s.click.keys.is_none() && s.click.base_url.is_none());
        assert_eq!(s.click.token_ttl, Duration::from_secs(90 * 86_400));
        let s = Settings::from_vars(vars(&[
            ("SEGCAST_CLICK_KEYS", "k2:c2VjcmV0LWtleS1udW1iZXItdHdvLTMyLWJ5dGVzISE,k1:b2xkLWtleS1vbmUtb2xkLWtleS1vbmUtb2xkLWtleQ"),
            ("SEGCAST_CLICK_BASE_URL", "https://c.example.com/"),
        ]))
        .unwrap();
        assert_eq!(s.click.base_url.as_deref(), Some("https://c.example.com"));
        assert!(!format!("{s:?}").contains("c2VjcmV0"));
        let err = Settings::from_vars(vars(&[("SEGCAST_CLICK_KEYS", "k1:not*base64-sekrit")]))
            .unwrap_err();
        assert!(err.to_string().contains("SEGCAST_CLICK_KEYS"));
        assert!(!err.to_string().contains("sekrit"));
    }
}
