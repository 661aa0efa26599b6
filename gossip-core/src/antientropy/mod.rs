//! Anti-entropy of application state: every node owns a versioned key/value map that the whole
//! cluster replicates, reconciled Scuttlebutt-style (van Renesse et al. 2008; Cassandra's
//! application state, chitchat's key/values).
//!
//! - [`store`]: the replicated state, per participant (node) and generation: local writes
//!   with limits, digests, deltas ordered most-stale first that never skip a version,
//!   merging, tombstones and their safe collection (a peer that was away longer than the
//!   grace period gets a full reset instead of resurrecting deleted keys).
//!
//! - `exchange`: the exchange on the wire: a hash first, then digest pages by name range and
//!   MTU-sized deltas both ways; fresh writes also travel as piggybacked rumors.

mod exchange;
pub mod store;

pub use store::{KeyUpdate, KvChange, KvError, KvLimits, KvStore, ParticipantDelta, ParticipantDigest};
