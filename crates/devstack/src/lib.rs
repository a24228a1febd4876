//! The one-command local GCP stack for segcast: the Pub/Sub emulator, the Firestore emulator in Datastore
//! mode, bqemulator (BigQuery), fake-gcs-server (Cloud Storage, behind the export [`bridge`]) and the fake
//! LINE API, each on a free port, in a per-stack state directory under the workspace's `.local/`.
//!
//! Start one with [`Stack::start`] (async) or [`Stack::start_blocking`]; attach to one that runs elsewhere
//! with [`Stack::from_env`] or [`Stack::attach_env_file`]. Everything a stack starts is stopped by PID when
//! it is stopped or dropped, and dies with the process that owns it.

// Process groups, signals and pids of the emulators it runs (libc): the one place in the workspace that needs
// unsafe code.
#![allow(unsafe_code)]

pub mod bridge;
pub mod emulators;
pub mod env_file;
pub mod gcs_sync;
pub mod install;
pub mod line;
pub mod paths;
pub mod pid_file;
pub mod ports;
pub mod process;
pub mod stack;

pub use env_file::StackEnv;
pub use install::Installation;
pub use stack::{Stack, StackOptions};
