//! The pid file `.local/stacks/<name>/pids.json`: who owns a stack and which processes it runs, so that
//! `segcast-stack down` and `status` can act on a stack started by another process, by PID only.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::process::{same_process_alive, stop_recorded};

pub const FILE_NAME: &str = "pids.json";

/// Who owns the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnerKind {
    /// A `segcast-stack up` supervisor: `down` asks it to stop (SIGTERM).
    Cli,
    /// A library user (a test, a benchmark): `down` stops the stack's processes but not their owner.
    Library,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedProcess {
    pub name: String,
    pub pid: u32,
    pub start_time: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidFile {
    pub owner_pid: u32,
    pub owner_start_time: Option<u64>,
    pub owner_kind: OwnerKind,
    pub processes: Vec<RecordedProcess>,
}

impl PidFile {
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        Ok(serde_json::from_slice(&std::fs::read(path)?)?)
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        crate::install::write_atomic(path, &serde_json::to_vec_pretty(self)?)
    }

    pub fn owner_alive(&self) -> bool {
        same_process_alive(self.owner_pid, self.owner_start_time)
    }

    /// The recorded processes that still run (same PID and start time).
    pub fn alive_processes(&self) -> Vec<&RecordedProcess> {
        self.processes
            .iter()
            .filter(|p| same_process_alive(p.pid, p.start_time))
            .collect()
    }

    /// Stops the stack: a CLI owner is sent SIGTERM and given `grace` to stop its own children; then any
    /// recorded process still running is stopped by PID (process group). Returns how many were signalled.
    pub fn stop(&self, grace: Duration) -> usize {
        let mut signalled = 0;
        if self.owner_kind == OwnerKind::Cli && self.owner_pid != std::process::id() {
            signalled += usize::from(stop_recorded(
                self.owner_pid,
                self.owner_start_time,
                false,
                grace,
            ));
        }
        for p in &self.processes {
            signalled += usize::from(stop_recorded(
                p.pid,
                p.start_time,
                true,
                Duration::from_secs(3),
            ));
        }
        signalled
    }

    /// True when neither the owner nor any recorded process runs.
    pub fn all_gone(&self) -> bool {
        !self.owner_alive() && self.alive_processes().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_liveness() {
        let dir = std::env::temp_dir().join(format!("devstack-pidfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let me = std::process::id();
        let file = PidFile {
            owner_pid: me,
            owner_start_time: crate::process::process_start_time(me),
            owner_kind: OwnerKind::Library,
            processes: vec![RecordedProcess {
                name: "x".into(),
                pid: me,
                start_time: Some(1),
            }],
        };
        let path = dir.join(FILE_NAME);
        file.write(&path).unwrap();
        let back = PidFile::read(&path).unwrap();
        assert_eq!(back, file);
        assert!(back.owner_alive());
        assert!(
            back.alive_processes().is_empty(),
            "start time 1 is not this process"
        );
        assert!(!back.all_gone());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
