//! segcast core: everything the binaries share, in layers that only point down:
//!
//! 1. [`domain`]: validated types (user IDs, campaign IDs, LINE messages and their link syntax, the campaign
//!    state machine and its rules, batches, delivery-log rows); and [`config`], settings from the environment
//!    (one table of every variable), [`telemetry`] (JSON logs) and [`sql`] (every BigQuery statement).
//! 2. Adapters: [`gcp`] (Datastore, Pub/Sub, BigQuery, Cloud Storage), [`line`] (the LINE client, channel access
//!    tokens, the rate limiter); [`catalog`] (what marketers register, and the one way a campaign changes);
//!    [`ctx`] (settings + clients + clock, what every stage gets).
//! 3. Stages: [`pipeline`] (claim, extract, fan-out, the batch on the wire, deliver, log sink, diff retry, and the
//!    scheduler that drives them) and [`click`] (signed click links, LINE insight, stats, CSV export);
//!    [`segment_sql`] (the pre-parse of segment SQL).
//! 4. Faces: [`http`] (the binaries' routers: delivery push, scheduler tick, click redirect) and the console (its own crate, `services/console`).

pub mod catalog;
pub mod click;
pub mod config;
pub mod ctx;
pub mod domain;
pub mod gcp;
pub mod http;
pub mod line;
pub mod pipeline;
pub mod segment_sql;
pub mod sql;
pub mod telemetry;
