//! # gossip-core — the sans-IO gossip protocol
//!
//! One deterministic state machine per node, [`Node`], composing the protocol layers:
//!
//! | module | layer |
//! |---|---|
//! | [`membership`] | SWIM failure detection with the Lifeguard extensions (and phi accrual), join, leave, push-pull |
//! | [`dissemination`] | rumors piggybacked on every packet, retransmit-limited, failure news first |
//! | [`antientropy`] | replicated key/value state reconciled Scuttlebutt-style: digests, deltas, tombstones |
//! | [`crdt`] | delta-state CRDTs (counters, registers, add-wins set) replicated by rumors and anti-entropy |
//! | [`aggregate`] | push-sum: cluster-wide sum, count and average of a per-node value |
//! | [`wire`] | messages, envelope and the bounded postcard codec; datagram sealing with a keyring ([`wire::security`]) and signed self-state ([`wire::signing`]) |
//! | [`config`] | settings, presets (`lan`, `wan`, `local`) and validation |
//! | [`event`], [`transmit`], [`metrics`] | what the node hands back to its driver |
//!
//! The core owns no socket, reads no clock (every call takes `now`), starts no thread and
//! uses no global randomness (each node owns a seeded ChaCha RNG): the same seed and the same
//! inputs give the same outputs. See [`Node`] for the driving loop. Runtime adapters
//! (`gossip-tokio`, `gossip-smol`, `gossip-quic`) and the simulator (`gossip-sim`) drive it.
//!
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod aggregate;
pub mod antientropy;
pub mod config;
pub mod crdt;
pub mod dissemination;
pub mod error;
pub mod event;
pub mod membership;
pub mod metrics;
mod node;
mod timer;
pub mod transmit;
pub mod wire;

pub use config::{Config, ConfigError, PhiAccrual};
pub use error::{CommandError, HandleError, NewNodeError};
pub use event::Event;
pub use membership::table::{record_hash, Address};
pub use metrics::{DropReason, Metrics};
pub use node::{Identity, Node};
pub use transmit::Transmit;
pub use wire::{MemberRecord, MemberState};
