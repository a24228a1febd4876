//! `X-Line-Retry-Key` bookkeeping: accepted keys per channel, with the request id they were accepted under and
//! when, expiring after the configured TTL (LINE: 24 h). Sharded by key; the shard guard is held across the
//! whole accept decision so that a key is accepted at most once even under concurrent repeats.

use std::collections::HashMap;

use parking_lot::{Mutex, MutexGuard};
use uuid::Uuid;

const SHARDS: usize = 32;

#[derive(Clone, Copy)]
struct Accepted {
    request_id: Uuid,
    at_ms: u64,
}

type Shard = HashMap<(String, u128), Accepted>;

pub(crate) struct RetryKeys {
    shards: Vec<Mutex<Shard>>,
    ttl_ms: u64,
}

/// A locked shard for one (channel, key): check, then record, atomically.
pub(crate) struct KeySlot<'a> {
    guard: MutexGuard<'a, Shard>,
    key: (String, u128),
    ttl_ms: u64,
}

impl RetryKeys {
    pub(crate) fn new(ttl_secs: u64) -> Self {
        RetryKeys {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            ttl_ms: ttl_secs.saturating_mul(1000),
        }
    }

    /// Locks the shard of `(channel, key)`. Hold the slot until the request is accepted or rejected.
    pub(crate) fn slot(&self, channel: &str, key: Uuid) -> KeySlot<'_> {
        let k = key.as_u128();
        let shard = ((k ^ (k >> 64)) as usize) % SHARDS;
        KeySlot {
            guard: self.shards[shard].lock(),
            key: (channel.to_string(), k),
            ttl_ms: self.ttl_ms,
        }
    }

    /// Drops expired keys.
    pub(crate) fn sweep(&self, now_ms: u64) {
        for s in &self.shards {
            s.lock()
                .retain(|_, a| now_ms.saturating_sub(a.at_ms) < self.ttl_ms);
        }
    }

    pub(crate) fn clear(&self) {
        for s in &self.shards {
            s.lock().clear();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

impl KeySlot<'_> {
    /// The request id the key was accepted under, if it was accepted within the TTL.
    pub(crate) fn accepted(&self, now_ms: u64) -> Option<Uuid> {
        self.guard
            .get(&self.key)
            .filter(|a| now_ms.saturating_sub(a.at_ms) < self.ttl_ms)
            .map(|a| a.request_id)
    }

    /// Records the key as accepted under `request_id`.
    pub(crate) fn record(mut self, request_id: Uuid, now_ms: u64) {
        let key = std::mem::take(&mut self.key.0);
        self.guard.insert(
            (key, self.key.1),
            Accepted {
                request_id,
                at_ms: now_ms,
            },
        );
    }
}
