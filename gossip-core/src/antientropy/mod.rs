//! Anti-entropy of application state: every node owns a versioned key/value map that the whole
//! cluster replicates, reconciled Scuttlebutt-style (van Renesse et al. 2008; Cassandra's
//! application state, chitchat's key/values).
//!
//! - [`store`]: the replicated state, per participant (node) and generation: local writes
//!   with limits, digests, deltas ordered most-stale first that never skip a version,
//!   merging, tombstones and their safe collection (a peer that was away longer than the
//!   grace period gets a full reset instead of resurrecting deleted keys).
//!
//! Status: the store and its reconciliation logic are complete and tested here; carrying
//! digests and deltas on the wire (the SYN / ACK / ACK2 exchange, paging, the in-sync hash)
//! and the node's `set` / `delete` commands are the next step of this layer.

pub mod store;

pub use store::{KeyUpdate, KvChange, KvError, KvLimits, KvStore, ParticipantDelta, ParticipantDigest};
