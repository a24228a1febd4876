//! Fault injection at runtime: the current [`Faults`], a seedable RNG, the state of a 429 burst, and counters
//! of the faults injected. One draw per request decides its fate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::config::{Endpoint, Faults};

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultAction {
    None,
    /// 500 without accepting.
    Error500,
    /// Hang without accepting, then drop the connection.
    Timeout,
    /// Accept, then drop the connection.
    LostResponse,
    /// 429 (a burst is in progress, or this request started one).
    Burst429,
}

/// Counts of injected faults: `{"error_500":0,"timeout":0,"lost_response":0,"bursts":0,"burst_429":0}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultCounts {
    pub error_500: u64,
    pub timeout: u64,
    pub lost_response: u64,
    /// Bursts started.
    pub bursts: u64,
    /// Requests refused with 429 because of a burst.
    pub burst_429: u64,
}

struct Inner {
    faults: Faults,
    rng: StdRng,
    burst_until_ms: u64,
}

pub(crate) struct FaultState {
    inner: Mutex<Inner>,
    error_500: AtomicU64,
    timeout: AtomicU64,
    lost_response: AtomicU64,
    bursts: AtomicU64,
    burst_429: AtomicU64,
}

fn rng_for(f: &Faults) -> StdRng {
    match f.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_os_rng(),
    }
}

impl FaultState {
    pub(crate) fn new(faults: Faults) -> Self {
        FaultState {
            inner: Mutex::new(Inner {
                rng: rng_for(&faults),
                faults,
                burst_until_ms: 0,
            }),
            error_500: AtomicU64::new(0),
            timeout: AtomicU64::new(0),
            lost_response: AtomicU64::new(0),
            bursts: AtomicU64::new(0),
            burst_429: AtomicU64::new(0),
        }
    }

    /// Replaces the faults, reseeds the RNG and ends any burst.
    pub(crate) fn set(&self, faults: Faults) {
        let mut i = self.inner.lock();
        i.rng = rng_for(&faults);
        i.faults = faults;
        i.burst_until_ms = 0;
    }

    pub(crate) fn get(&self) -> Faults {
        self.inner.lock().faults.clone()
    }

    /// Decides the added latency and the fault for one request to `endpoint`.
    pub(crate) fn roll(&self, endpoint: Endpoint, now_ms: u64) -> (Duration, FaultAction, u64) {
        let mut i = self.inner.lock();
        if !i.faults.endpoints.contains(&endpoint) {
            return (Duration::ZERO, FaultAction::None, 0);
        }
        let Inner {
            faults: f,
            rng,
            burst_until_ms,
        } = &mut *i;
        let latency = if f.latency_ms.max == 0 {
            0
        } else if f.latency_ms.min == f.latency_ms.max {
            f.latency_ms.min
        } else {
            rng.random_range(f.latency_ms.min..=f.latency_ms.max)
        };
        let latency = Duration::from_millis(latency);
        if now_ms < *burst_until_ms {
            self.burst_429.fetch_add(1, Ordering::Relaxed);
            return (latency, FaultAction::Burst429, f.timeout_hang_ms);
        }
        let total = f.p_500 + f.p_timeout + f.p_lost_response + f.p_429_burst;
        if total <= 0.0 {
            return (latency, FaultAction::None, f.timeout_hang_ms);
        }
        let x: f64 = rng.random();
        let t_500 = f.p_500;
        let t_timeout = t_500 + f.p_timeout;
        let t_lost = t_timeout + f.p_lost_response;
        let action = if x < t_500 {
            self.error_500.fetch_add(1, Ordering::Relaxed);
            FaultAction::Error500
        } else if x < t_timeout {
            self.timeout.fetch_add(1, Ordering::Relaxed);
            FaultAction::Timeout
        } else if x < t_lost {
            // Counted when the delivery is actually accepted.
            FaultAction::LostResponse
        } else if x < t_lost + f.p_429_burst {
            *burst_until_ms = now_ms + f.burst_429_ms;
            self.bursts.fetch_add(1, Ordering::Relaxed);
            self.burst_429.fetch_add(1, Ordering::Relaxed);
            FaultAction::Burst429
        } else {
            FaultAction::None
        };
        (latency, action, f.timeout_hang_ms)
    }

    pub(crate) fn count_lost_response(&self) {
        self.lost_response.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn counts(&self) -> FaultCounts {
        FaultCounts {
            error_500: self.error_500.load(Ordering::Relaxed),
            timeout: self.timeout.load(Ordering::Relaxed),
            lost_response: self.lost_response.load(Ordering::Relaxed),
            bursts: self.bursts.load(Ordering::Relaxed),
            burst_429: self.burst_429.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn reset_counts(&self) {
        for c in [
            &self.error_500,
            &self.timeout,
            &self.lost_response,
            &self.bursts,
            &self.burst_429,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_rolls_replay() {
        let f = Faults {
            seed: Some(42),
            p_500: 0.3,
            p_lost_response: 0.3,
            ..Faults::default()
        };
        let a = FaultState::new(f.clone());
        let b = FaultState::new(f);
        let ra: Vec<_> = (0..50).map(|_| a.roll(Endpoint::Push, 0).1).collect();
        let rb: Vec<_> = (0..50).map(|_| b.roll(Endpoint::Push, 0).1).collect();
        assert_eq!(ra, rb);
        assert!(ra.contains(&FaultAction::Error500) && ra.contains(&FaultAction::None));
        assert_eq!(
            a.roll(Endpoint::Validate, 0).1,
            FaultAction::None,
            "not a fault endpoint"
        );
    }
}
