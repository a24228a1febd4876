//! One clock for the pipeline, the scheduler and the fake LINE server.
//!
//! Everything that compares wall-clock time (a lease, a campaign's send time, a retry key's 24 hours at LINE, a
//! monthly quota) reads it from a [`Clock`] instead of the operating system, so a test can cross a day or a month
//! in milliseconds: [`Clock::manual`] stands still until moved, [`Clock::compressed`] runs N times faster than
//! real time. Production uses [`Clock::system`]. Timers that pace work (sleeps, budgets measured with
//! `tokio::time::Instant`) stay on tokio's clock: they measure how long work takes, not what day it is.

use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// A clock: cheap to clone (clones share the same time).
#[derive(Clone, Debug)]
pub struct Clock(Arc<Kind>);

#[derive(Debug)]
enum Kind {
    System,
    /// Stands still at this instant until [`Clock::advance`] or [`Clock::set`].
    Manual(Mutex<OffsetDateTime>),
    /// `start + factor × (real time since started) + offset`.
    Compressed {
        start: OffsetDateTime,
        started: Instant,
        factor: u32,
        offset: Mutex<Duration>,
    },
}

/// Two clocks are equal when they are the same clock (clones of one another).
impl PartialEq for Clock {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || (self.is_system() && other.is_system())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    /// The operating system's clock (production).
    pub fn system() -> Self {
        Self(Arc::new(Kind::System))
    }

    /// A clock that shows `at` until moved.
    pub fn manual(at: OffsetDateTime) -> Self {
        Self(Arc::new(Kind::Manual(Mutex::new(at))))
    }

    /// A clock that starts at `at` and runs `factor` times faster than real time (a day in 86.4 s at 1,000).
    pub fn compressed(at: OffsetDateTime, factor: u32) -> Self {
        Self(Arc::new(Kind::Compressed {
            start: at,
            started: Instant::now(),
            factor: factor.max(1),
            offset: Mutex::new(Duration::ZERO),
        }))
    }

    /// The time now, in UTC.
    pub fn now(&self) -> OffsetDateTime {
        match &*self.0 {
            Kind::System => OffsetDateTime::now_utc(),
            Kind::Manual(at) => *at.lock(),
            Kind::Compressed {
                start,
                started,
                factor,
                offset,
            } => *start + started.elapsed() * *factor + *offset.lock(),
        }
    }

    /// Moves a manual or compressed clock forward by `by` (a system clock cannot be moved: this does nothing
    /// there and says so by returning false).
    pub fn advance(&self, by: Duration) -> bool {
        match &*self.0 {
            Kind::System => false,
            Kind::Manual(at) => {
                *at.lock() += by;
                true
            }
            Kind::Compressed { offset, .. } => {
                *offset.lock() += by;
                true
            }
        }
    }

    /// Unix seconds now.
    pub fn unix_now(&self) -> i64 {
        self.now().unix_timestamp()
    }

    /// Unix milliseconds now.
    pub fn unix_ms(&self) -> u64 {
        (self.now().unix_timestamp_nanos() / 1_000_000).max(0) as u64
    }

    /// The calendar month now (UTC), e.g. `(2026, 12)`: LINE's quota and unit-name months.
    pub fn month(&self) -> (i32, u8) {
        let now = self.now();
        (now.year(), u8::from(now.month()))
    }

    /// Whether this is the operating system's clock.
    pub fn is_system(&self) -> bool {
        matches!(&*self.0, Kind::System)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_manual_clock_stands_still_until_moved_and_clones_share_it() {
        let c = Clock::manual(datetime!(2026-01-31 23:59 UTC));
        let shared = c.clone();
        assert_eq!(c.now(), datetime!(2026-01-31 23:59 UTC));
        assert!(c.advance(Duration::from_secs(25 * 3600)));
        assert_eq!(shared.now(), datetime!(2026-02-02 00:59 UTC));
    }

    #[test]
    fn a_compressed_clock_runs_faster_and_can_jump() {
        let c = Clock::compressed(datetime!(2026-01-01 0:00 UTC), 1000);
        std::thread::sleep(Duration::from_millis(20));
        let ran = c.now() - datetime!(2026-01-01 0:00 UTC);
        assert!(ran >= time::Duration::seconds(20), "{ran}");
        c.advance(Duration::from_secs(86_400));
        assert!(c.now() - datetime!(2026-01-01 0:00 UTC) >= time::Duration::days(1));
    }

    #[test]
    fn the_system_clock_cannot_be_moved() {
        let c = Clock::system();
        assert!(!c.advance(Duration::from_secs(1)));
        assert!((c.now() - OffsetDateTime::now_utc()).abs() < time::Duration::seconds(5));
    }
}
