//! The LINE Messaging API: the client ([`client`]), channel access tokens ([`access_token`]) and the per-channel rate
//! limiter ([`rate_limit`]).

pub mod access_token;
pub mod client;
pub mod rate_limit;
pub mod secrets;

pub use client::{Endpoint, LineClient, SendOutcome};
