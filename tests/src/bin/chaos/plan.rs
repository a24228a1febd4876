//! The chaos of one run, drawn from its seed before anything starts: which faults, when (as a stage of a
//! campaign or a share of the recipients LINE has accepted so far) and for how long. The same seed gives the
//! same plan; what the processes then do with it (which request meets which fault) varies with timing.

use fake_line::Faults;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// A share of all targets accepted by LINE (both campaigns) at which something happens.
pub type Progress = f64;

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub seed: u64,
    /// 500s, timeouts, lost responses and random 429 bursts, for the whole run.
    pub faults: Faults,
    /// The multicast channel's monthly quota: a share of its campaign, so it runs out part-way.
    pub quota: u64,
    /// Seconds between the quota pause being seen and the quota being raised and the campaign resumed.
    pub quota_wait_s: f64,
    /// Scheduler kills: `delay_ms` after the stage is first seen, then restarted `restart_ms` later.
    pub scheduler_kills: Vec<SchedulerKill>,
    /// Delivery handler kill -9s: at a progress, restarted `restart_ms` later.
    pub handler_kills: Vec<(Progress, u64)>,
    /// The handler down (Pub/Sub's push target gone) at a progress, for `secs`.
    pub handler_down: (Progress, u64),
    /// Log sink kill -9s: at a progress, restarted `restart_ms` later.
    pub sink_kills: Vec<(Progress, u64)>,
    /// The push campaign paused by its marketer at a share of its own recipients, resumed `secs` later.
    pub pause: (f64, u64),
    /// Windows in which LINE answers every send 429 (rate limit): at a progress, for `ms`.
    pub bursts: Vec<(Progress, u64)>,
    /// One 429 storm longer than a push's time budget, so recipients end `retryable` and a diff-retry
    /// round has to send them: at a progress, for `ms`.
    pub storm: (Progress, u64),
}

#[derive(Debug, Clone, Serialize)]
pub struct SchedulerKill {
    /// `extracting` (mid-export), `fanning_out` (mid-fan-out), `delivering`, `retrying` (a diff-retry
    /// round being prepared; only if the run has one).
    pub stage: &'static str,
    pub delay_ms: u64,
    pub restart_ms: u64,
}

/// The push budget of the handlers in these runs (`TestEnv` sets 20 s).
pub const PUSH_BUDGET_MS: u64 = 20_000;

impl Plan {
    pub fn new(seed: u64, multicast: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let faults = Faults {
            seed: Some(seed),
            p_500: 0.02,
            p_timeout: 0.01,
            p_lost_response: 0.01,
            p_429_burst: 0.0005,
            burst_429_ms: 1000,
            // Longer than the handlers' LINE timeout (10 s): the request times out on segcast's side.
            timeout_hang_ms: 12_000,
            ..Faults::default()
        };
        let quota = ((multicast as f64) * rng.random_range(0.3..0.7)) as u64;
        let quota_wait_s = rng.random_range(2.0..10.0);
        let mut scheduler_kills = Vec::new();
        for (stage, delay) in [
            ("extracting", 200..1500),
            ("fanning_out", 1000..8000),
            ("delivering", 0..10_000),
            ("retrying", 0..500),
        ] {
            scheduler_kills.push(SchedulerKill {
                stage,
                delay_ms: rng.random_range(delay),
                restart_ms: rng.random_range(0..3000),
            });
        }
        let mut handler_kills: Vec<(Progress, u64)> = (0..6)
            .map(|_| (rng.random_range(0.0..0.85), rng.random_range(0..3000)))
            .collect();
        handler_kills.sort_by(|a, b| a.0.total_cmp(&b.0));
        let handler_down = (rng.random_range(0.1..0.7), rng.random_range(10..=30));
        let mut sink_kills: Vec<(Progress, u64)> = (0..2)
            .map(|_| (rng.random_range(0.05..0.9), rng.random_range(0..5000)))
            .collect();
        sink_kills.sort_by(|a, b| a.0.total_cmp(&b.0));
        let pause = (rng.random_range(0.15..0.6), rng.random_range(3..=15));
        let mut bursts: Vec<(Progress, u64)> = (0..3)
            .map(|_| (rng.random_range(0.05..0.85), rng.random_range(300..3000)))
            .collect();
        bursts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let storm = (
            rng.random_range(0.3..0.7),
            PUSH_BUDGET_MS + rng.random_range(2000..8000),
        );
        Plan {
            seed,
            faults,
            quota,
            quota_wait_s,
            scheduler_kills,
            handler_kills,
            handler_down,
            sink_kills,
            pause,
            bursts,
            storm,
        }
    }

    /// The faults during a 429 window: every send starts (or meets) a burst. `k` varies the RNG's seed.
    pub fn all_429(&self, k: u64) -> Faults {
        Faults {
            seed: Some(self.seed.wrapping_add(k)),
            p_500: 0.0,
            p_timeout: 0.0,
            p_lost_response: 0.0,
            p_429_burst: 1.0,
            burst_429_ms: 100,
            ..self.faults.clone()
        }
    }

    /// The base faults again after a window (reseeded, so `k` differs per window).
    pub fn base(&self, k: u64) -> Faults {
        Faults {
            seed: Some(self.seed.wrapping_add(k)),
            ..self.faults.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_plan() {
        let a = serde_json::to_string(&Plan::new(7, 200_000)).unwrap();
        let b = serde_json::to_string(&Plan::new(7, 200_000)).unwrap();
        let c = serde_json::to_string(&Plan::new(8, 200_000)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let p = Plan::new(7, 200_000);
        assert!(p.quota > 0 && p.quota < 200_000);
        assert!(p.handler_kills.len() >= 5 && p.scheduler_kills.len() >= 3);
        assert!((10..=30).contains(&p.handler_down.1));
        assert!(p.storm.1 > PUSH_BUDGET_MS);
    }
}
