//! The stages of the flow, one module each, in the order a campaign meets them:
//!
//! 1. [`claim`]: find due campaigns and claim each exactly once (a Datastore transaction with a lease).
//! 2. [`extract`]: segment SQL -> per-campaign target table in BigQuery -> sharded export to Cloud Storage.
//! 3. [`fanout`]: stream the exported files and publish deterministic batches over N delivery topics
//!    ([`batch_wire`]: a batch's one wire format), checkpointing in Datastore so a crash resumes where it stopped.
//! 4. [`deliver`]: the push handler's work: dedupe, send to LINE with retry keys at the rate limit, log, mark done.
//! 5. [`log_sink`]: delivery-log topic -> BigQuery (locally; a BigQuery subscription does it in production).
//! 6. [`diff_retry`]: when a round has settled, `targets EXCEPT DISTINCT settled` becomes the next round.
//!
//! [`scheduler`] drives a campaign through 1-3 and 6; [`control`] holds the marketer's commands (schedule,
//! pause, resume, cancel, test send: each a rule of `Campaign` applied by `catalog::change_campaign`);
//! [`records`] the pipeline's own Datastore records (dedupe, sends, parked batches, checkpoints); [`provision`]
//! creates the topics, subscriptions and tables locally (terraform does it in production).

pub mod batch_wire;
pub mod claim;
pub mod control;
pub mod deliver;
pub mod diff_retry;
pub mod export_file;
pub mod extract;
pub mod fanout;
pub mod log_sink;
pub mod provision;
pub mod records;
pub mod scheduler;
