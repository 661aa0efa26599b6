//! # gossip-smol — async-io UDP adapter for smol and async-std (not implemented yet)
//!
//! This crate will bind [`gossip_core::Node`] to an `async-io` UDP socket and timers, so that
//! it runs under smol and under async-std (which is deprecated in favour of smol), with the
//! same API as `gossip-tokio`.
//!
//! **Nothing is implemented yet.** The adapter is tracked by the "Runtime adapters" issue.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use gossip_core;
