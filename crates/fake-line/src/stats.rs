//! What the fake observed, as returned by `FakeLine::stats()` and `GET /fake/stats`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::config::Endpoint;
use crate::faults::FaultCounts;
use crate::quota::QuotaStats;
use crate::records::UnitStats;

/// Counters of the fake. JSON:
/// ```json
/// {"requests": {"push": {"200": 10, "429": 1}},
///  "accepted_requests": 10, "recipients_accepted": 10, "unique_recipients": 9, "duplicates": 1,
///  "other_messages": 0, "rate_limited": 1, "quota_exceeded": 0, "retry_key_conflicts": 0,
///  "faults": {"error_500": 0, "timeout": 0, "lost_response": 0, "bursts": 0, "burst_429": 0},
///  "units": {"campaign_1": {"accepted": 10, "unique": 9, "duplicates": 1, "other_messages": 0}},
///  "max_rate_1s": {"1234567890": {"push": 10}},
///  "quota": {"1234567890": {"limit": null, "used": 10}},
///  "retry_keys": 10}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// endpoint -> HTTP status -> responses. Requests dropped by a timeout or lost-response fault have no
    /// status and are counted under `faults` only.
    pub requests: BTreeMap<String, BTreeMap<String, u64>>,
    /// Requests accepted (delivered), including those whose response was then lost.
    pub accepted_requests: u64,
    /// Messages billed: recipients of accepted requests (broadcast / narrowcast: the audience size).
    pub recipients_accepted: u64,
    /// Distinct (unit, recipient) pairs accepted by push and multicast.
    pub unique_recipients: u64,
    /// Acceptances of a recipient already accepted for the same unit with the same messages.
    pub duplicates: u64,
    /// Acceptances of a recipient already accepted for the same unit with different messages.
    pub other_messages: u64,
    /// 429 "rate limit exceeded" answers (limits and injected bursts).
    pub rate_limited: u64,
    /// 429 "monthly limit" answers.
    pub quota_exceeded: u64,
    /// 409 answers to an already accepted retry key.
    pub retry_key_conflicts: u64,
    pub faults: FaultCounts,
    /// Unit ("" for none) -> counts.
    pub units: BTreeMap<String, UnitStats>,
    /// channel -> endpoint -> the most requests accepted in one clock-aligned second.
    pub max_rate_1s: BTreeMap<String, BTreeMap<String, u64>>,
    /// channel -> endpoint -> accepted requests per second, with the first and last accepted request.
    pub timeline: BTreeMap<String, BTreeMap<String, crate::rate_limit::Timeline>>,
    /// channel -> monthly quota.
    pub quota: BTreeMap<String, QuotaStats>,
    /// Retry keys currently remembered.
    pub retry_keys: u64,
}

impl Stats {
    /// Responses with `status` from `endpoint` (e.g. `("push", 200)`).
    pub fn responses(&self, endpoint: &str, status: u16) -> u64 {
        self.requests
            .get(endpoint)
            .and_then(|m| m.get(&status.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// The most requests accepted in one second for `endpoint`, over all channels.
    pub fn max_rate(&self, endpoint: &str) -> u64 {
        self.max_rate_1s
            .values()
            .filter_map(|m| m.get(endpoint))
            .copied()
            .max()
            .unwrap_or(0)
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    responses: Mutex<HashMap<(Endpoint, u16), u64>>,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) quota_exceeded: AtomicU64,
    pub(crate) retry_key_conflicts: AtomicU64,
}

impl Counters {
    pub(crate) fn count_response(&self, endpoint: Endpoint, status: u16) {
        *self.responses.lock().entry((endpoint, status)).or_default() += 1;
    }

    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn fill(&self, s: &mut Stats) {
        for (&(e, status), &n) in self.responses.lock().iter() {
            s.requests
                .entry(e.as_str().to_string())
                .or_default()
                .insert(status.to_string(), n);
        }
        s.rate_limited = self.rate_limited.load(Ordering::Relaxed);
        s.quota_exceeded = self.quota_exceeded.load(Ordering::Relaxed);
        s.retry_key_conflicts = self.retry_key_conflicts.load(Ordering::Relaxed);
    }

    pub(crate) fn clear(&self) {
        self.responses.lock().clear();
        for c in [
            &self.rate_limited,
            &self.quota_exceeded,
            &self.retry_key_conflicts,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}
