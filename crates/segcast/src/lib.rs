//! segcast core: everything the binaries share.
//!
//! - [`domain`]: validated types (user IDs, campaign IDs, LINE messages, the campaign state machine, batches).
//! - [`config`]: settings from the environment (12-factor; emulator variables mapped onto endpoints in one place).
//! - [`telemetry`]: JSON logs that Cloud Logging understands.
//! - [`gcp`]: adapters for Datastore, Pub/Sub, BigQuery and Cloud Storage.
//! - [`line`]: the LINE Messaging API client, channel access tokens and the rate limiter.
//! - [`sql`]: every BigQuery statement the system runs, loaded from the repository's `sql/` directory.
//! - [`pipeline`]: the stages of the flow, one module each (claim, extract, fan-out, deliver, log sink, diff retry).
//! - [`segment_sql`]: the pre-parse of segment SQL (one read-only query), before BigQuery sees it.
//! - [`catalog`]: contents, segments, channels and campaigns as Datastore entities.
//! - [`click`]: click tracking (signed links, click rows), LINE insight, stats and CSV export.

pub mod catalog;
pub mod click;
pub mod config;
pub mod console;
pub mod ctx;
pub mod domain;
pub mod gcp;
pub mod http;
pub mod line;
pub mod pipeline;
pub mod segment_sql;
pub mod sql;
pub mod telemetry;
