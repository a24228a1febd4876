//! Keeping to LINE's per-channel, per-endpoint rate limits (push 2,000 req/s, multicast 200 req/s).
//!
//! Requests are spaced evenly (a GCRA-style schedule: each request takes the next free slot, `1/rate` apart),
//! so any one-second window holds at most `rate` requests while the limit is used fully. The limit applies to
//! the whole channel, so all of a handler's concurrent batches share one limiter per (channel, endpoint); the
//! delivery service is deployed so that one instance owns a channel's sending (see terraform), which makes this
//! in-process schedule exact. A 429 from LINE pauses the schedule instead of retrying at once, so rate-limit
//! errors are handled, never amplified.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone, Default)]
pub struct RateLimiter {
    inner: Arc<Mutex<HashMap<(String, &'static str), Slot>>>,
}

struct Slot {
    interval: Duration,
    next: Instant,
}

impl RateLimiter {
    /// Waits for the next slot of `key`'s schedule at `per_second` requests per second.
    pub async fn acquire(&self, channel: &str, endpoint: &'static str, per_second: u32) {
        let at = {
            let mut map = self.inner.lock().expect("rate limiter");
            let interval = Duration::from_secs_f64(1.0 / f64::from(per_second.max(1)));
            let now = Instant::now();
            let slot = map.entry((channel.to_owned(), endpoint)).or_insert(Slot {
                interval,
                next: now,
            });
            slot.interval = interval;
            let at = slot.next.max(now);
            slot.next = at + interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }

    /// LINE answered 429 (rate): nobody on this channel and endpoint sends for `pause`.
    pub fn back_off(&self, channel: &str, endpoint: &'static str, pause: Duration) {
        let mut map = self.inner.lock().expect("rate limiter");
        if let Some(slot) = map.get_mut(&(channel.to_owned(), endpoint)) {
            slot.next = slot.next.max(Instant::now() + pause);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_rate_in_any_second() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..250 {
            limiter.acquire("1", "multicast", 100).await;
            times.push(start.elapsed());
        }
        // 250 requests at 100/s take 2.49 s: the limit is used fully...
        assert!(times.last().unwrap() >= &Duration::from_millis(2480));
        assert!(times.last().unwrap() <= &Duration::from_millis(2500));
        // ...and no one-second window holds more than 100.
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .take_while(|u| **u < *t + Duration::from_secs(1))
                .count();
            assert!(
                in_window <= 100,
                "{in_window} requests in the second after {t:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_the_channel() {
        let limiter = RateLimiter::default();
        limiter.acquire("1", "push", 1000).await;
        limiter.back_off("1", "push", Duration::from_millis(500));
        let t = Instant::now();
        limiter.acquire("1", "push", 1000).await;
        assert!(t.elapsed() >= Duration::from_millis(499));
        // Another channel is not affected.
        let t = Instant::now();
        limiter.acquire("2", "push", 1000).await;
        assert!(t.elapsed() < Duration::from_millis(5));
    }
}
