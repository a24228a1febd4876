//! CPU time by component during a scenario, read from `/proc` (Linux): which process the 2 cores went to is
//! what tells "bounded by the emulators" from "bounded by segcast".

use std::collections::BTreeMap;

/// The component a process belongs to, from its command line; `None` for processes the bench does not
/// attribute (shells, the test runner's own children that are not part of the stack).
fn component(cmdline: &str, bench_pid: u32, pid: u32) -> Option<&'static str> {
    if pid == bench_pid {
        // The bench process hosts the fake LINE server, the log sink (pulling delivery logs into BigQuery) and
        // its own polling.
        return Some("bench_fake_line_and_log_sink");
    }
    let c = cmdline;
    if c.contains("segcast-scheduler") {
        Some("scheduler")
    } else if c.contains("segcast-delivery") {
        Some("delivery_handler")
    } else if c.contains("segcast-log-sink") {
        Some("log_sink")
    } else if c.contains("pubsub-emulator") || c.contains("cloud-pubsub-emulator") {
        Some("pubsub_emulator")
    } else if c.contains("firestore") {
        Some("firestore_emulator")
    } else if c.contains("bqemulator") {
        Some("bigquery_emulator")
    } else if c.contains("fake-gcs") {
        Some("gcs_emulator")
    } else {
        None
    }
}

/// Clock ticks (utime + stime) per component, summed over its processes.
#[derive(Default, Clone)]
pub struct Snapshot(BTreeMap<&'static str, u64>);

pub fn snapshot() -> Snapshot {
    let me = std::process::id();
    let mut by = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Snapshot(by);
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let Some(name) = component(&cmdline, me, pid) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the `(comm)`, which may hold spaces: state is field 3, utime 14, stime 15.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        *by.entry(name).or_insert(0) += ticks;
    }
    Snapshot(by)
}

/// CPU seconds per component between two snapshots (a process started in between counts from zero).
pub fn seconds_between(before: &Snapshot, after: &Snapshot) -> BTreeMap<String, f64> {
    // Linux reports utime/stime in USER_HZ, which is 100 on every architecture Rust's std supports here.
    const TICKS_PER_S: f64 = 100.0;
    after
        .0
        .iter()
        .map(|(k, v)| {
            let d = v.saturating_sub(*before.0.get(k).unwrap_or(&0));
            (k.to_string(), crate::round(d as f64 / TICKS_PER_S, 1))
        })
        .collect()
}
