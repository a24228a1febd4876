//! Accepted deliveries: one [`Record`] per accepted request (kept in memory and/or appended to an NDJSON file
//! by a writer thread), and compact per-recipient bookkeeping to count unique (unit, recipient) pairs and
//! duplicates without storing records: 24 bytes per pair in sharded hash maps.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::Endpoint;
use crate::util::jst_day;

/// One accepted request, as served by `GET /fake/deliveries` (one JSON object per line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub request_id: String,
    pub retry_key: Option<String>,
    pub channel_id: String,
    pub endpoint: Endpoint,
    /// User IDs for push and multicast; empty for broadcast and narrowcast.
    pub recipients: Vec<String>,
    /// Messages billed: recipients.len(), or the audience size for broadcast / narrowcast.
    pub recipient_count: u64,
    /// SHA-256 (hex) of the canonical JSON (sorted keys, no spaces) of the `messages` array.
    pub messages_sha256: String,
    /// `customAggregationUnits[0]`: the campaign, as segcast sets it.
    pub unit: Option<String>,
    /// `2024-05-01T12:00:00.123Z`.
    pub accepted_at: String,
    pub accepted_at_ms: u64,
    /// The fake accepted this request and then dropped the connection without answering.
    pub lost_response: bool,
}

/// Per-unit counts: `{"accepted": 10, "unique": 9, "duplicates": 1, "other_messages": 0}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitStats {
    /// Recipients accepted (a duplicate counts again).
    pub accepted: u64,
    /// Distinct recipients accepted.
    pub unique: u64,
    /// Acceptances of a recipient already accepted in this unit with the same messages.
    pub duplicates: u64,
    /// Acceptances of a recipient already accepted in this unit with different messages.
    pub other_messages: u64,
}

#[derive(Default)]
struct Unit {
    stats: UnitStats,
    /// JST day (yyyyMMdd) -> recipients first accepted that day.
    unique_by_day: BTreeMap<u32, u64>,
    /// Number of messages and (seq, url) of links, from the first request of the unit.
    message_count: usize,
    urls: Vec<(usize, String)>,
}

/// What the insight endpoint needs to know about a unit.
pub(crate) struct UnitInsight {
    pub unique_in_range: u64,
    pub message_count: usize,
    pub urls: Vec<(usize, String)>,
}

/// What users did with a unit's messages, as recorded through `POST /fake/interactions`.
#[derive(Debug, Default)]
pub(crate) struct UnitActivity {
    pub impressions: u64,
    pub unique_impressions: u64,
    pub unique_clickers: u64,
    /// (seq, url, clicks, unique clickers)
    pub clicks: Vec<(usize, String, u64, u64)>,
}

/// Units by name ("" for none), interned to small indexes for the pair maps.
#[derive(Default)]
struct UnitTable {
    index: HashMap<String, u32>,
    list: Vec<(String, Unit)>,
}

const SHARDS: usize = 16;
/// (recipient id as 16 bytes, unit index) -> first 4 bytes of the messages hash.
type PairShard = HashMap<([u8; 16], u32), u32>;

enum WriterMsg {
    Record(Box<Record>),
    Flush(mpsc::SyncSender<()>),
    Truncate,
}

#[derive(Default)]
struct Totals {
    accepted_requests: AtomicU64,
    recipients_accepted: AtomicU64,
    unique: AtomicU64,
    duplicates: AtomicU64,
    other_messages: AtomicU64,
}

/// Requests whose messages are kept for `GET /fake/messages` (when records are kept in memory).
pub const RECENT_MESSAGES: usize = 2000;

/// A recorded user interaction with a delivered message (`POST /fake/interactions`): LINE's insight counts
/// these; the fake has no users, so tests say what the users did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interaction {
    /// The user opened the message.
    Impression,
    /// The user tapped a URL in message `seq` (1-based).
    Click { seq: usize, url: String },
}

#[derive(Default)]
struct UnitInteractions {
    impressions: u64,
    impressed: std::collections::HashSet<String>,
    /// (seq, url) -> (clicks, distinct users)
    clicks: BTreeMap<(usize, String), (u64, std::collections::HashSet<String>)>,
    clickers: std::collections::HashSet<String>,
}

/// An accepted request's recipients and messages.
type RecentRequest = std::sync::Arc<(Vec<String>, Value)>;

pub(crate) struct Deliveries {
    /// The last [`RECENT_MESSAGES`] accepted requests' recipients and messages.
    recent: Option<Mutex<std::collections::VecDeque<RecentRequest>>>,
    interactions: Mutex<HashMap<String, UnitInteractions>>,
    memory: Option<Mutex<Vec<Record>>>,
    file: Option<(PathBuf, Mutex<mpsc::Sender<WriterMsg>>)>,
    pairs: Vec<Mutex<PairShard>>,
    units: Mutex<UnitTable>,
    totals: Totals,
}

/// Totals reported in stats.
pub(crate) struct DeliveryTotals {
    pub accepted_requests: u64,
    pub recipients_accepted: u64,
    pub unique: u64,
    pub duplicates: u64,
    pub other_messages: u64,
}

impl Deliveries {
    pub(crate) fn new(keep: bool, file: Option<PathBuf>) -> std::io::Result<Self> {
        let file = match file {
            Some(path) => {
                let f = OpenOptions::new().create(true).append(true).open(&path)?;
                let (tx, rx) = mpsc::channel();
                let p = path.clone();
                std::thread::Builder::new()
                    .name("fake-line-records".into())
                    .spawn(move || writer_thread(f, p, rx))?;
                Some((path, Mutex::new(tx)))
            }
            None => None,
        };
        Ok(Deliveries {
            recent: keep.then(|| Mutex::new(std::collections::VecDeque::new())),
            interactions: Mutex::new(HashMap::new()),
            memory: keep.then(|| Mutex::new(Vec::new())),
            file,
            pairs: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            units: Mutex::new(UnitTable::default()),
            totals: Totals::default(),
        })
    }

    /// Records an accepted request whose `messages` are `messages`.
    pub(crate) fn record(&self, record: Record, messages: &Value) {
        let unit_name = record.unit.clone().unwrap_or_default();
        let hash =
            u32::from_str_radix(record.messages_sha256.get(..8).unwrap_or("0"), 16).unwrap_or(0);
        let day = jst_day(record.accepted_at_ms);

        let unit_index = {
            let mut units = self.units.lock();
            let UnitTable { index, list } = &mut *units;
            match index.get(&unit_name) {
                Some(&i) => i,
                None => {
                    let i = list.len() as u32;
                    let (message_count, urls) = describe_messages(messages);
                    list.push((
                        unit_name.clone(),
                        Unit {
                            message_count,
                            urls,
                            ..Unit::default()
                        },
                    ));
                    index.insert(unit_name, i);
                    i
                }
            }
        };

        let (mut new, mut dup, mut other) = (0u64, 0u64, 0u64);
        for r in &record.recipients {
            let key = recipient_key(r);
            let shard = key[15] as usize % SHARDS;
            let mut pairs = self.pairs[shard].lock();
            match pairs.get(&(key, unit_index)) {
                None => {
                    pairs.insert((key, unit_index), hash);
                    new += 1;
                }
                Some(&h) if h == hash => dup += 1,
                Some(_) => other += 1,
            }
        }

        {
            let mut units = self.units.lock();
            let unit = &mut units.list[unit_index as usize].1;
            unit.stats.accepted += record.recipients.len() as u64;
            unit.stats.unique += new;
            unit.stats.duplicates += dup;
            unit.stats.other_messages += other;
            if new > 0 {
                *unit.unique_by_day.entry(day).or_default() += new;
            }
        }
        let t = &self.totals;
        t.accepted_requests.fetch_add(1, Ordering::Relaxed);
        t.recipients_accepted
            .fetch_add(record.recipient_count, Ordering::Relaxed);
        t.unique.fetch_add(new, Ordering::Relaxed);
        t.duplicates.fetch_add(dup, Ordering::Relaxed);
        t.other_messages.fetch_add(other, Ordering::Relaxed);

        if let Some(recent) = &self.recent {
            let mut recent = recent.lock();
            if recent.len() >= RECENT_MESSAGES {
                recent.pop_front();
            }
            recent.push_back(std::sync::Arc::new((
                record.recipients.clone(),
                messages.clone(),
            )));
        }
        match (&self.memory, &self.file) {
            (Some(mem), Some((_, tx))) => {
                let _ = tx.lock().send(WriterMsg::Record(Box::new(record.clone())));
                mem.lock().push(record);
            }
            (Some(mem), None) => mem.lock().push(record),
            (None, Some((_, tx))) => {
                let _ = tx.lock().send(WriterMsg::Record(Box::new(record)));
            }
            (None, None) => {}
        }
    }

    pub(crate) fn totals(&self) -> DeliveryTotals {
        let t = &self.totals;
        DeliveryTotals {
            accepted_requests: t.accepted_requests.load(Ordering::Relaxed),
            recipients_accepted: t.recipients_accepted.load(Ordering::Relaxed),
            unique: t.unique.load(Ordering::Relaxed),
            duplicates: t.duplicates.load(Ordering::Relaxed),
            other_messages: t.other_messages.load(Ordering::Relaxed),
        }
    }

    /// Unit name ("" for requests without `customAggregationUnits`) -> counts.
    pub(crate) fn unit_stats(&self) -> BTreeMap<String, UnitStats> {
        self.units
            .lock()
            .list
            .iter()
            .map(|(name, u)| (name.clone(), u.stats))
            .collect()
    }

    /// Unique recipients of `unit` first accepted between the JST days `from..=to` (yyyyMMdd numbers).
    pub(crate) fn unit_insight(&self, unit: &str, from: u32, to: u32) -> Option<UnitInsight> {
        let units = self.units.lock();
        let &i = units.index.get(unit)?;
        let u = &units.list[i as usize].1;
        Some(UnitInsight {
            unique_in_range: u.unique_by_day.range(from..=to).map(|(_, n)| n).sum(),
            message_count: u.message_count,
            urls: u.urls.clone(),
        })
    }

    /// The messages of the recent accepted requests to `to` (oldest first; at most the last
    /// [`RECENT_MESSAGES`] requests are kept). `None` when records are not kept in memory.
    pub(crate) fn messages_to(&self, to: &str) -> Option<Vec<Value>> {
        let recent = self.recent.as_ref()?.lock();
        Some(
            recent
                .iter()
                .filter(|r| r.0.iter().any(|u| u == to))
                .map(|r| r.1.clone())
                .collect(),
        )
    }

    /// Whether `user` was accepted as a recipient of `unit`.
    pub(crate) fn was_delivered(&self, unit: &str, user: &str) -> bool {
        let Some(&i) = self.units.lock().index.get(unit) else {
            return false;
        };
        let key = recipient_key(user);
        self.pairs[key[15] as usize % SHARDS]
            .lock()
            .contains_key(&(key, i))
    }

    /// Records what a user did with a message of `unit` (false: the user was never sent the unit).
    pub(crate) fn interact(&self, unit: &str, user: &str, what: Interaction) -> bool {
        if !self.was_delivered(unit, user) {
            return false;
        }
        let mut all = self.interactions.lock();
        let u = all.entry(unit.to_owned()).or_default();
        match what {
            Interaction::Impression => {
                u.impressions += 1;
                u.impressed.insert(user.to_owned());
            }
            Interaction::Click { seq, url } => {
                // Tapping a link means the message was seen.
                u.impressed.insert(user.to_owned());
                let e = u.clicks.entry((seq, url)).or_default();
                e.0 += 1;
                e.1.insert(user.to_owned());
                u.clickers.insert(user.to_owned());
            }
        }
        true
    }

    /// The recorded interactions of `unit`: (impressions, unique impressions, unique clickers,
    /// per (seq, url): clicks and unique clickers).
    pub(crate) fn interactions(&self, unit: &str) -> UnitActivity {
        let all = self.interactions.lock();
        let Some(u) = all.get(unit) else {
            return UnitActivity::default();
        };
        UnitActivity {
            impressions: u.impressions.max(u.impressed.len() as u64),
            unique_impressions: u.impressed.len() as u64,
            unique_clickers: u.clickers.len() as u64,
            clicks: u
                .clicks
                .iter()
                .map(|((seq, url), (n, users))| (*seq, url.clone(), *n, users.len() as u64))
                .collect(),
        }
    }

    /// The kept records as NDJSON, optionally only those of `unit`. `None` when records are neither kept in
    /// memory nor written to a file.
    pub(crate) fn ndjson(&self, unit: Option<&str>) -> Option<String> {
        if let Some(mem) = &self.memory {
            let mem = mem.lock();
            let mut out = String::new();
            for r in mem.iter() {
                if unit.is_none_or(|u| r.unit.as_deref() == Some(u)) {
                    out.push_str(&serde_json::to_string(r).unwrap_or_default());
                    out.push('\n');
                }
            }
            return Some(out);
        }
        let (path, tx) = self.file.as_ref()?;
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        tx.lock().send(WriterMsg::Flush(done_tx)).ok()?;
        done_rx.recv().ok()?;
        let text = std::fs::read_to_string(path).ok()?;
        Some(match unit {
            None => text,
            Some(u) => text
                .lines()
                .filter(|l| {
                    serde_json::from_str::<Record>(l).is_ok_and(|r| r.unit.as_deref() == Some(u))
                })
                .flat_map(|l| [l, "\n"])
                .collect(),
        })
    }

    /// Whether reading records needs blocking file IO.
    pub(crate) fn reads_file(&self) -> bool {
        self.memory.is_none() && self.file.is_some()
    }

    pub(crate) fn clear(&self) {
        if let Some(m) = &self.memory {
            m.lock().clear();
        }
        if let Some((_, tx)) = &self.file {
            let _ = tx.lock().send(WriterMsg::Truncate);
        }
        for s in &self.pairs {
            s.lock().clear();
        }
        if let Some(r) = &self.recent {
            r.lock().clear();
        }
        self.interactions.lock().clear();
        *self.units.lock() = UnitTable::default();
        let t = &self.totals;
        for c in [
            &t.accepted_requests,
            &t.recipients_accepted,
            &t.unique,
            &t.duplicates,
            &t.other_messages,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// 16 bytes identifying a recipient: the 128 bits of a `U` + 32-hex user ID, else a hash of the string.
fn recipient_key(id: &str) -> [u8; 16] {
    if line_spec::is_valid_recipient_id(id)
        && let Ok(n) = u128::from_str_radix(&id[1..], 16)
    {
        let mut k = n.to_be_bytes();
        // Keep user, group and room IDs with the same digits apart.
        k[0] ^= id.as_bytes()[0];
        return k;
    }
    let d = Sha256::digest(id.as_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

/// The number of messages and the (1-based message seq, URL) of every link in them.
fn describe_messages(messages: &Value) -> (usize, Vec<(usize, String)>) {
    let Some(list) = messages.as_array() else {
        return (0, Vec::new());
    };
    let mut urls = Vec::new();
    for (i, m) in list.iter().enumerate() {
        collect_urls(m, i + 1, &mut urls);
    }
    (list.len(), urls)
}

fn collect_urls(v: &Value, seq: usize, out: &mut Vec<(usize, String)>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if (k == "uri" || k == "linkUri")
                    && let Value::String(u) = child
                    && u.starts_with("http")
                    && !out.iter().any(|(s, x)| *s == seq && x == u)
                {
                    out.push((seq, u.clone()));
                }
                collect_urls(child, seq, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|c| collect_urls(c, seq, out)),
        _ => {}
    }
}

fn writer_thread(file: File, path: PathBuf, rx: mpsc::Receiver<WriterMsg>) {
    let mut w = BufWriter::with_capacity(1 << 16, file);
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                WriterMsg::Record(r) => {
                    let _ = serde_json::to_writer(&mut w, &r);
                    let _ = w.write_all(b"\n");
                }
                WriterMsg::Flush(done) => {
                    let _ = w.flush();
                    let _ = done.send(());
                }
                WriterMsg::Truncate => {
                    let _ = w.flush();
                    if let Ok(f) = OpenOptions::new().write(true).truncate(true).open(&path) {
                        drop(f);
                    }
                    if let Ok(f) = OpenOptions::new().append(true).open(&path) {
                        w = BufWriter::with_capacity(1 << 16, f);
                    }
                }
            }
            next = rx.try_recv().ok();
        }
        let _ = w.flush();
    }
}
