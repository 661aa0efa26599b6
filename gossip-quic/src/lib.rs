//! # gossip-quic — QUIC adapter on quinn (not implemented yet)
//!
//! This crate will bind [`gossip_core::Node`] to a quinn endpoint: unreliable datagrams for
//! probes and rumors, streams for bulk state, and mutual TLS against a cluster CA.
//!
//! **Nothing is implemented yet.** The adapter is tracked by the "QUIC adapter" issue.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use gossip_core;
