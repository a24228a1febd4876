//! Per-channel, per-endpoint rate limiting in fixed windows aligned to the clock (a window of `per_secs`
//! seconds admits `requests`), and tracking of the most requests accepted in any 1-second window, which
//! benchmarks compare with LINE's limits.

use std::collections::{BTreeMap, HashMap};

use parking_lot::Mutex;

use crate::config::{Endpoint, RateLimits};

#[derive(Default, Clone, Copy)]
struct Window {
    index: u64,
    count: u64,
}

impl Window {
    /// Counts one event in the window containing `now_ms`; returns the count in that window.
    fn bump(&mut self, index: u64) -> u64 {
        if self.index != index {
            self.index = index;
            self.count = 0;
        }
        self.count += 1;
        self.count
    }

    fn current(&self, index: u64) -> u64 {
        if self.index == index { self.count } else { 0 }
    }
}

/// Seconds of per-second history kept per channel and endpoint (two hours).
const TIMELINE_SECONDS: usize = 7200;

#[derive(Default)]
struct EndpointState {
    limit: Window,
    max_accepted_1s: u64,
    /// (unix second, accepted requests in it), oldest first; seconds with none are absent.
    timeline: std::collections::VecDeque<(u64, u64)>,
    first_ms: u64,
    last_ms: u64,
    accepted: u64,
}

/// The accepted requests of one channel and endpoint over time: what a benchmark reads to compute the rate
/// achieved while sending and to chart it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Timeline {
    /// Unix time (ms) of the first and the last accepted request.
    pub first_ms: u64,
    pub last_ms: u64,
    /// Accepted requests in all.
    pub accepted: u64,
    /// `[unix second, accepted requests]` for each second with any (the last two hours).
    pub per_second: Vec<[u64; 2]>,
}

pub(crate) struct RateLimiter {
    limits: RateLimits,
    enabled: bool,
    state: Mutex<HashMap<String, HashMap<Endpoint, EndpointState>>>,
}

impl RateLimiter {
    pub(crate) fn new(limits: RateLimits, enabled: bool) -> Self {
        RateLimiter {
            limits,
            enabled,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Admits one request of `channel` to `endpoint` at `now_ms`, or refuses it (429).
    pub(crate) fn try_acquire(&self, channel: &str, endpoint: Endpoint, now_ms: u64) -> bool {
        let Some(limit) = self.limits.for_endpoint(endpoint) else {
            return true;
        };
        if !self.enabled {
            return true;
        }
        let index = now_ms / limit.per_secs.max(1).saturating_mul(1000);
        let mut state = self.state.lock();
        let e = endpoint_state(&mut state, channel, endpoint);
        if e.limit.current(index) >= limit.requests {
            return false;
        }
        e.limit.bump(index);
        true
    }

    /// Notes an accepted (2xx) request for the max-rate statistics.
    pub(crate) fn note_accepted(&self, channel: &str, endpoint: Endpoint, now_ms: u64) {
        let mut state = self.state.lock();
        let e = endpoint_state(&mut state, channel, endpoint);
        if e.accepted == 0 {
            e.first_ms = now_ms;
        }
        e.accepted += 1;
        e.last_ms = e.last_ms.max(now_ms);
        let sec = now_ms / 1000;
        // Requests may be noted slightly out of order across threads: count a late one in its own second.
        let in_second = match e.timeline.iter_mut().rev().find(|(s, _)| *s == sec) {
            Some((_, count)) => {
                *count += 1;
                *count
            }
            None => {
                e.timeline.push_back((sec, 1));
                e.timeline.make_contiguous().sort_unstable();
                while e.timeline.len() > TIMELINE_SECONDS {
                    e.timeline.pop_front();
                }
                1
            }
        };
        e.max_accepted_1s = e.max_accepted_1s.max(in_second);
    }

    /// channel -> endpoint -> accepted requests over time.
    pub(crate) fn timelines(&self) -> BTreeMap<String, BTreeMap<String, Timeline>> {
        let state = self.state.lock();
        let mut out = BTreeMap::new();
        for (channel, endpoints) in state.iter() {
            let m: BTreeMap<String, Timeline> = endpoints
                .iter()
                .filter(|(_, s)| s.accepted > 0)
                .map(|(e, s)| {
                    let t = Timeline {
                        first_ms: s.first_ms,
                        last_ms: s.last_ms,
                        accepted: s.accepted,
                        per_second: s.timeline.iter().map(|&(s, n)| [s, n]).collect(),
                    };
                    (e.as_str().to_string(), t)
                })
                .collect();
            if !m.is_empty() {
                out.insert(channel.clone(), m);
            }
        }
        out
    }

    /// channel -> endpoint -> most accepted requests in one 1-second window.
    pub(crate) fn max_rates(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let state = self.state.lock();
        let mut out = BTreeMap::new();
        for (channel, endpoints) in state.iter() {
            let m: BTreeMap<String, u64> = endpoints
                .iter()
                .filter(|(_, s)| s.max_accepted_1s > 0)
                .map(|(e, s)| (e.as_str().to_string(), s.max_accepted_1s))
                .collect();
            if !m.is_empty() {
                out.insert(channel.clone(), m);
            }
        }
        out
    }

    pub(crate) fn clear(&self) {
        self.state.lock().clear();
    }
}

fn endpoint_state<'a>(
    state: &'a mut HashMap<String, HashMap<Endpoint, EndpointState>>,
    channel: &str,
    endpoint: Endpoint,
) -> &'a mut EndpointState {
    if !state.contains_key(channel) {
        state.insert(channel.to_string(), HashMap::new());
    }
    state
        .get_mut(channel)
        .expect("inserted above")
        .entry(endpoint)
        .or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RateLimit;

    #[test]
    fn fixed_window_admits_the_limit_then_refuses_until_the_next_window() {
        let limits = RateLimits {
            push: RateLimit::per_second(3),
            ..RateLimits::default()
        };
        let r = RateLimiter::new(limits, true);
        let t = 10_000;
        assert!((0..3).all(|i| r.try_acquire("c", Endpoint::Push, t + i)));
        assert!(!r.try_acquire("c", Endpoint::Push, t + 999));
        assert!(
            r.try_acquire("other", Endpoint::Push, t + 999),
            "per channel"
        );
        assert!(
            r.try_acquire("c", Endpoint::Multicast, t + 999),
            "per endpoint"
        );
        assert!(r.try_acquire("c", Endpoint::Push, t + 1000), "next window");
        assert!(RateLimiter::new(limits, false).try_acquire("c", Endpoint::Push, t));
    }

    #[test]
    fn max_accepted_per_second() {
        let r = RateLimiter::new(RateLimits::default(), true);
        for i in 0..5 {
            r.note_accepted("c", Endpoint::Push, 1000 + i);
        }
        for i in 0..2 {
            r.note_accepted("c", Endpoint::Push, 2000 + i);
        }
        assert_eq!(r.max_rates()["c"]["push"], 5);
    }

    #[test]
    fn timeline_counts_each_second_and_the_first_and_last_request() {
        let r = RateLimiter::new(RateLimits::default(), true);
        for ms in [1_500, 1_900, 3_100, 2_050, 3_999] {
            r.note_accepted("c", Endpoint::Multicast, ms);
        }
        let t = &r.timelines()["c"]["multicast"];
        assert_eq!(t.per_second, vec![[1, 2], [2, 1], [3, 2]]);
        assert_eq!((t.first_ms, t.last_ms, t.accepted), (1_500, 3_999, 5));
        assert!(!r.timelines()["c"].contains_key("push"));
    }
}
