//! # gossip-tokio — tokio UDP adapter (not implemented yet)
//!
//! This crate will bind [`gossip_core::Node`] to a tokio `UdpSocket`, tokio timers and
//! command/event channels: a builder from a `Config`, a bind address and seeds, returning a
//! cloneable handle (join, leave, members, broadcast, metrics, shutdown) and an event stream.
//!
//! **Nothing is implemented yet.** The adapter is tracked by the "Runtime adapters" issue;
//! until it lands, drive [`gossip_core::Node`] yourself (see its documentation for the loop)
//! or use the deterministic simulator in `gossip-sim`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use gossip_core;
