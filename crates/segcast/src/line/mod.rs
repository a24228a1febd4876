//! The LINE Messaging API: the client ([`client`]), channel access tokens ([`token`]) and the per-channel rate
//! limiter ([`rate_limit`]).

pub mod client;
pub mod rate_limit;
pub mod secrets;
pub mod token;

pub use client::{Endpoint, LineClient, SendOutcome};
