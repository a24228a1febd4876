//! The server's shared state: configuration, tokens, retry keys, rate limiter, quotas, faults, deliveries and
//! counters, and how they combine into [`Stats`] and a reset.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use parking_lot::Mutex;
use uuid::Uuid;

use crate::auth::Tokens;
use crate::config::Config;
use crate::faults::FaultState;
use crate::quota::Quotas;
use crate::rate_limit::RateLimiter;
use crate::records::Deliveries;
use crate::retry_keys::RetryKeys;
use crate::stats::{Counters, Stats};

pub(crate) type App = Arc<AppState>;

/// An accepted narrowcast, for the progress endpoint.
pub(crate) struct Narrowcast {
    pub channel_id: String,
    pub accepted_ms: u64,
    pub target: u64,
}

pub(crate) struct AppState {
    pub config: Config,
    pub tokens: Tokens,
    pub retry_keys: RetryKeys,
    pub rate: RateLimiter,
    pub quotas: Quotas,
    pub faults: FaultState,
    pub deliveries: Deliveries,
    pub counters: Counters,
    pub narrowcasts: Mutex<HashMap<Uuid, Narrowcast>>,
    /// Source of `sentMessages[].id` (numeric strings, like LINE's).
    pub next_message_id: AtomicU64,
}

impl AppState {
    pub(crate) fn new(config: Config) -> std::io::Result<Self> {
        Ok(AppState {
            tokens: Tokens::new(
                &config.token_secret,
                config
                    .long_lived_tokens
                    .iter()
                    .map(|(t, c)| (t.clone(), c.clone())),
            ),
            retry_keys: RetryKeys::new(config.retry_key_ttl_secs),
            rate: RateLimiter::new(config.rate_limits, config.rate_limits_enabled),
            quotas: Quotas::new(config.default_quota, config.quotas.clone()),
            faults: FaultState::new(config.faults.clone()),
            deliveries: Deliveries::new(config.keep_records, config.records_file.clone())?,
            counters: Counters::default(),
            narrowcasts: Mutex::new(HashMap::new()),
            next_message_id: AtomicU64::new(461_230_966_842_064_897),
            config,
        })
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut s = Stats::default();
        self.counters.fill(&mut s);
        let t = self.deliveries.totals();
        s.accepted_requests = t.accepted_requests;
        s.recipients_accepted = t.recipients_accepted;
        s.unique_recipients = t.unique;
        s.duplicates = t.duplicates;
        s.other_messages = t.other_messages;
        s.faults = self.faults.counts();
        s.units = self.deliveries.unit_stats();
        s.max_rate_1s = self.rate.max_rates();
        s.timeline = self.rate.timelines();
        s.quota = self.quotas.snapshot();
        s.retry_keys = self.retry_keys.len() as u64;
        s
    }

    /// Forgets everything observed (deliveries, counters, retry keys, rate windows, quota usage and runtime
    /// quota changes, narrowcasts; the records file is truncated) and restores the configured faults.
    pub(crate) fn reset(&self) {
        self.counters.clear();
        self.deliveries.clear();
        self.retry_keys.clear();
        self.rate.clear();
        self.quotas.clear();
        self.narrowcasts.lock().clear();
        self.faults.set(self.config.faults.clone());
        self.faults.reset_counts();
    }
}
