//! Monthly message quotas per channel: a limit (none = unlimited) and the usage, one unit per accepted
//! recipient. Limits are configurable and changeable at runtime.

use std::collections::{BTreeMap, HashMap};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// A channel's quota as reported in stats: `{"limit": 1000 | null, "used": 12}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaStats {
    pub limit: Option<u64>,
    pub used: u64,
}

pub(crate) struct Quotas {
    default_limit: Option<u64>,
    configured: BTreeMap<String, u64>,
    state: Mutex<HashMap<String, QuotaStats>>,
    /// The month the usage counts (LINE's quota is monthly: a new month starts from zero).
    month: Mutex<Option<(i32, u8)>>,
}

impl Quotas {
    pub(crate) fn new(default_limit: Option<u64>, configured: BTreeMap<String, u64>) -> Self {
        Quotas {
            default_limit,
            configured,
            state: Mutex::new(HashMap::new()),
            month: Mutex::new(None),
        }
    }

    fn initial(&self, channel: &str) -> QuotaStats {
        QuotaStats {
            limit: self.configured.get(channel).copied().or(self.default_limit),
            used: 0,
        }
    }

    /// Consumes `n` messages of `month`'s quota if it allows all of them; otherwise consumes nothing.
    pub(crate) fn try_consume(&self, channel: &str, n: u64, month: (i32, u8)) -> bool {
        let mut state = self.state.lock();
        let mut current = self.month.lock();
        if current.is_some_and(|m| m != month) {
            // A new month: every channel's usage starts again (limits stay).
            for q in state.values_mut() {
                q.used = 0;
            }
        }
        *current = Some(month);
        drop(current);
        let q = match state.get_mut(channel) {
            Some(q) => q,
            None => state
                .entry(channel.to_string())
                .or_insert(self.initial(channel)),
        };
        if q.limit.is_some_and(|l| q.used.saturating_add(n) > l) {
            return false;
        }
        q.used += n;
        true
    }

    pub(crate) fn set_limit(&self, channel: &str, limit: Option<u64>) {
        let mut state = self.state.lock();
        let initial = self.initial(channel);
        state.entry(channel.to_string()).or_insert(initial).limit = limit;
    }

    pub(crate) fn get(&self, channel: &str) -> QuotaStats {
        self.state
            .lock()
            .get(channel)
            .copied()
            .unwrap_or_else(|| self.initial(channel))
    }

    pub(crate) fn snapshot(&self) -> BTreeMap<String, QuotaStats> {
        self.state
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    pub(crate) fn clear(&self) {
        self.state.lock().clear();
    }
}
