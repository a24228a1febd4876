//! Configuration of the fake: tokens, channels, rate limits, quotas, retry-key lifetime, message limits, faults,
//! record keeping. Every field has a default, so `{}` is a valid config; JSON and YAML files deserialize into it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

/// The fake's endpoints, as named in stats, rate limits and fault targeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Push,
    Multicast,
    Narrowcast,
    Broadcast,
    Reply,
    /// `POST /v2/bot/message/validate/*`.
    Validate,
    /// `GET /v2/bot/message/quota`.
    Quota,
    /// `GET /v2/bot/message/quota/consumption`.
    QuotaConsumption,
    /// `GET /v2/bot/message/progress/narrowcast`.
    NarrowcastProgress,
    /// `GET /v2/bot/insight/message/event/aggregation`.
    Insight,
    /// `POST /oauth2/v3/token`, `POST /v2/oauth/accessToken`.
    Token,
    /// `/fake/*`.
    Admin,
    /// Anything else (404s).
    Other,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Push => "push",
            Endpoint::Multicast => "multicast",
            Endpoint::Narrowcast => "narrowcast",
            Endpoint::Broadcast => "broadcast",
            Endpoint::Reply => "reply",
            Endpoint::Validate => "validate",
            Endpoint::Quota => "quota",
            Endpoint::QuotaConsumption => "quota_consumption",
            Endpoint::NarrowcastProgress => "narrowcast_progress",
            Endpoint::Insight => "insight",
            Endpoint::Token => "token",
            Endpoint::Admin => "admin",
            Endpoint::Other => "other",
        }
    }

    /// The endpoint a request path belongs to.
    pub fn from_path(path: &str) -> Endpoint {
        match path {
            "/v2/bot/message/push" => Endpoint::Push,
            "/v2/bot/message/multicast" => Endpoint::Multicast,
            "/v2/bot/message/narrowcast" => Endpoint::Narrowcast,
            "/v2/bot/message/broadcast" => Endpoint::Broadcast,
            "/v2/bot/message/reply" => Endpoint::Reply,
            "/v2/bot/message/quota" => Endpoint::Quota,
            "/v2/bot/message/quota/consumption" => Endpoint::QuotaConsumption,
            "/v2/bot/message/progress/narrowcast" => Endpoint::NarrowcastProgress,
            "/v2/bot/insight/message/event/aggregation" => Endpoint::Insight,
            "/oauth2/v3/token" | "/v2/oauth/accessToken" => Endpoint::Token,
            p if p.starts_with("/v2/bot/message/validate/") => Endpoint::Validate,
            p if p.starts_with("/fake/") => Endpoint::Admin,
            _ => Endpoint::Other,
        }
    }

    /// The four endpoints that deliver messages (and accept `X-Line-Retry-Key`).
    pub fn is_send(self) -> bool {
        matches!(
            self,
            Endpoint::Push | Endpoint::Multicast | Endpoint::Narrowcast | Endpoint::Broadcast
        )
    }
}

/// Everything the fake does, configurable. `Config::default()` behaves like LINE with no restrictions: any
/// channel id + secret gets a token, no quota, LINE's documented rate limits, no faults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Key that signs stateless tokens. Tokens survive a restart of the fake when it is unchanged.
    pub token_secret: String,
    /// Lifetime of tokens from `/oauth2/v3/token` (LINE: 900 s). 0 issues already-expired tokens.
    pub token_lifetime_secs: u64,
    /// channel id -> channel secret. Empty: any id + secret gets a token; otherwise only these.
    pub allowed_channels: BTreeMap<String, String>,
    /// Long-lived tokens: token string -> channel id. They never expire.
    pub long_lived_tokens: BTreeMap<String, String>,
    /// Whether per-channel rate limits are enforced (the maximum rates are tracked either way).
    pub rate_limits_enabled: bool,
    pub rate_limits: RateLimits,
    /// Monthly message quota of channels not listed in `quotas`. `None`: unlimited.
    pub default_quota: Option<u64>,
    /// Monthly message quota per channel id.
    pub quotas: BTreeMap<String, u64>,
    /// How long an accepted `X-Line-Retry-Key` is remembered (LINE: 24 h).
    pub retry_key_ttl_secs: u64,
    /// The clock of LINE's calendar rules: retry-key lifetime and the quota month (rate-limit windows and
    /// latencies stay in real time). Tests move a manual one to cross 24 hours or a month at once.
    #[serde(skip)]
    pub clock: segcast_clock::Clock,
    /// Message and body limits applied on top of the spec.
    pub limits: line_spec::Limits,
    /// Faults injected from the start (changeable at runtime).
    pub faults: Faults,
    /// Recipients of a broadcast, and of a narrowcast without `limit.max`.
    pub friends_count: u64,
    /// How long a narrowcast stays `waiting` before `succeeded` in the progress endpoint.
    pub narrowcast_processing_ms: u64,
    /// Keep every accepted request in memory (served by `GET /fake/deliveries`). Turn off for millions.
    pub keep_records: bool,
    /// Also append every accepted request to this NDJSON file (buffered, off the request path).
    pub records_file: Option<PathBuf>,
    /// Push to one of these user IDs answers 400 "Failed to send messages" (a user that does not exist).
    pub nonexistent_users: Vec<String>,
    pub insight: InsightConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            token_secret: "fake-line-token-secret".into(),
            token_lifetime_secs: 900,
            allowed_channels: BTreeMap::new(),
            long_lived_tokens: BTreeMap::new(),
            rate_limits_enabled: true,
            rate_limits: RateLimits::default(),
            default_quota: None,
            quotas: BTreeMap::new(),
            retry_key_ttl_secs: 24 * 3600,
            clock: segcast_clock::Clock::system(),
            limits: line_spec::Limits::default(),
            faults: Faults::default(),
            friends_count: 1000,
            narrowcast_processing_ms: 0,
            keep_records: true,
            records_file: None,
            nonexistent_users: Vec::new(),
            insight: InsightConfig::default(),
        }
    }
}

/// `requests` per `per_secs` seconds, per channel, in fixed windows aligned to the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub requests: u64,
    pub per_secs: u64,
}

impl RateLimit {
    pub const fn per_second(requests: u64) -> Self {
        RateLimit {
            requests,
            per_secs: 1,
        }
    }
    pub const fn per_hour(requests: u64) -> Self {
        RateLimit {
            requests,
            per_secs: 3600,
        }
    }
}

/// LINE's per-channel limits: push 2,000 req/s, multicast 200 req/s, narrowcast and broadcast 60 req/hour,
/// every other endpoint 2,000 req/s. Token issuing is not limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    pub push: RateLimit,
    pub multicast: RateLimit,
    pub narrowcast: RateLimit,
    pub broadcast: RateLimit,
    pub other: RateLimit,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            push: RateLimit::per_second(2000),
            multicast: RateLimit::per_second(200),
            narrowcast: RateLimit::per_hour(60),
            broadcast: RateLimit::per_hour(60),
            other: RateLimit::per_second(2000),
        }
    }
}

impl RateLimits {
    /// The limit for an endpoint; `None` for endpoints that are not limited (token, admin).
    pub fn for_endpoint(&self, e: Endpoint) -> Option<RateLimit> {
        match e {
            Endpoint::Push => Some(self.push),
            Endpoint::Multicast => Some(self.multicast),
            Endpoint::Narrowcast => Some(self.narrowcast),
            Endpoint::Broadcast => Some(self.broadcast),
            Endpoint::Token | Endpoint::Admin | Endpoint::Other => None,
            _ => Some(self.other),
        }
    }
}

/// Injected faults. Probabilities are per request to one of `endpoints`, drawn from one seedable RNG
/// (with `seed`, a sequential client sees the same faults on every run).
///
/// JSON: `{"seed":7,"p_500":0.01,"p_timeout":0.0,"p_lost_response":0.01,"p_429_burst":0.0,
/// "burst_429_ms":1000,"latency_ms":[5,20],"timeout_hang_ms":30000,"endpoints":["push","multicast"]}`;
/// `latency_ms` is a number, `[min, max]` or `{"min":..,"max":..}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    pub seed: Option<u64>,
    /// Answer 500 without accepting.
    pub p_500: f64,
    /// Hang without accepting for `timeout_hang_ms`, then drop the connection.
    pub p_timeout: f64,
    /// Accept and record the delivery, then drop the connection without answering.
    pub p_lost_response: f64,
    /// Start a burst: this and every request to `endpoints` for `burst_429_ms` get the rate-limit 429.
    pub p_429_burst: f64,
    pub burst_429_ms: u64,
    /// Added latency before a request is handled.
    pub latency_ms: Latency,
    pub timeout_hang_ms: u64,
    /// Which endpoints faults and latency apply to (default: push, multicast, narrowcast, broadcast).
    pub endpoints: Vec<Endpoint>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            seed: None,
            p_500: 0.0,
            p_timeout: 0.0,
            p_lost_response: 0.0,
            p_429_burst: 0.0,
            burst_429_ms: 1000,
            latency_ms: Latency::default(),
            timeout_hang_ms: 30_000,
            endpoints: vec![
                Endpoint::Push,
                Endpoint::Multicast,
                Endpoint::Narrowcast,
                Endpoint::Broadcast,
            ],
        }
    }
}

/// Added latency in milliseconds, uniform in `min..=max` (fixed when equal).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Latency {
    pub min: u64,
    pub max: u64,
}

impl Latency {
    pub const fn fixed(ms: u64) -> Self {
        Latency { min: ms, max: ms }
    }
}

impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Fixed(u64),
            Pair([u64; 2]),
            Range { min: u64, max: u64 },
        }
        let (min, max) = match Repr::deserialize(d)? {
            Repr::Fixed(ms) => (ms, ms),
            Repr::Pair([a, b]) | Repr::Range { min: a, max: b } => (a, b),
        };
        if min > max {
            return Err(serde::de::Error::custom("latency_ms: min > max"));
        }
        Ok(Latency { min, max })
    }
}

/// The insight endpoint answers from the records (accepted deliveries and the interactions recorded with
/// `POST /fake/interactions`); this only sets LINE's privacy threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InsightConfig {
    /// Below this many unique recipients, the values are null (LINE: 20).
    pub min_users: u64,
}

impl Default for InsightConfig {
    fn default() -> Self {
        InsightConfig { min_users: 20 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_the_default() {
        let c: Config = serde_json::from_str("{}").unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn yaml_config_with_latency_forms() {
        let c: Config = serde_yaml::from_str(
            "rate_limits:\n  push: {requests: 10, per_secs: 1}\nfaults:\n  p_500: 0.1\n  latency_ms: [5, 20]\n  endpoints: [push]\n",
        )
        .unwrap();
        assert_eq!(c.rate_limits.push, RateLimit::per_second(10));
        assert_eq!(
            c.rate_limits.multicast,
            RateLimit::per_second(200),
            "unset fields keep defaults"
        );
        assert_eq!(c.faults.latency_ms, Latency { min: 5, max: 20 });
        assert_eq!(c.faults.endpoints, vec![Endpoint::Push]);
        let f: Faults = serde_json::from_str(r#"{"latency_ms": 7}"#).unwrap();
        assert_eq!(f.latency_ms, Latency::fixed(7));
        let f: Faults = serde_json::from_str(r#"{"latency_ms": {"min": 1, "max": 3}}"#).unwrap();
        assert_eq!(f.latency_ms, Latency { min: 1, max: 3 });
        assert!(serde_json::from_str::<Faults>(r#"{"latency_ms": [9, 3]}"#).is_err());
    }

    #[test]
    fn typos_are_rejected() {
        assert!(serde_json::from_str::<Config>(r#"{"frends_count": 3}"#).is_err());
        assert!(serde_json::from_str::<Faults>(r#"{"p500": 0.5}"#).is_err());
    }

    #[test]
    fn endpoints_from_paths() {
        assert_eq!(
            Endpoint::from_path("/v2/bot/message/validate/push"),
            Endpoint::Validate
        );
        assert_eq!(
            Endpoint::from_path("/v2/bot/message/multicast"),
            Endpoint::Multicast
        );
        assert_eq!(Endpoint::from_path("/fake/stats"), Endpoint::Admin);
        assert_eq!(Endpoint::from_path("/nope"), Endpoint::Other);
    }
}
