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

#[derive(Default)]
struct EndpointState {
    limit: Window,
    accepted_1s: Window,
    max_accepted_1s: u64,
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
        let n = e.accepted_1s.bump(now_ms / 1000);
        e.max_accepted_1s = e.max_accepted_1s.max(n);
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
}
