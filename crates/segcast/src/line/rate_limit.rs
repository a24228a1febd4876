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
    /// When the requests of the last second actually went (oldest first).
    sent: std::collections::VecDeque<Instant>,
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
                sent: std::collections::VecDeque::new(),
            });
            slot.interval = interval;
            let at = slot.next.max(now);
            slot.next = at + interval;
            at
        };
        tokio::time::sleep_until(at).await;
        // The even schedule alone can bunch: tasks that wake late (a busy machine, a paused process) all go at
        // once. So a request also goes only while fewer than `per_second` went in the last second, by the clock
        // at which they really went.
        let cap = per_second.max(1) as usize;
        loop {
            let wait = {
                let mut map = self.inner.lock().expect("rate limiter");
                let Some(slot) = map.get_mut(&(channel.to_owned(), endpoint)) else {
                    return;
                };
                let now = Instant::now();
                while slot
                    .sent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
                {
                    slot.sent.pop_front();
                }
                if slot.sent.len() < cap {
                    slot.sent.push_back(now);
                    return;
                }
                slot.sent[slot.sent.len() - cap] + Duration::from_secs(1)
            };
            tokio::time::sleep_until(wait).await;
        }
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
    async fn late_wakers_do_not_bunch_over_the_rate() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        // 100 requests at 100/s are scheduled over a second; then the process "stalls" 2 s (the timers fire
        // late, all at once) and 150 more are asked for: no one-second window may hold more than 100.
        let mut tasks = Vec::new();
        for _ in 0..250 {
            let l = limiter.clone();
            tasks.push(tokio::spawn(async move {
                l.acquire("1", "multicast", 100).await;
                Instant::now()
            }));
        }
        // Let every task take its slot and start sleeping, then jump the paused clock past 200 of the slots.
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        let mut times = Vec::new();
        for t in tasks {
            times.push(t.await.unwrap().duration_since(start));
        }
        times.sort();
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
