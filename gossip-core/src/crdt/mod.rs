//! Delta-state CRDTs (Almeida, Shoker, Baquero 2018): replicated objects whose states form a
//! join-semilattice, so replicas that have merged the same updates, in any order and any number
//! of times, hold the same state.
//!
//! Each mutator is pure and returns a *delta*: a small state holding just the change, which
//! the caller joins into its replica and which spreads like any state (the node piggybacks it
//! as a rumor; anti-entropy repairs what rumors miss by exchanging whole states, split into
//! datagram-sized pieces whose join is the state).
//!
//! | type | value | merge |
//! |---|---|---|
//! | [`GCounter`] | grow-only count | per-replica max |
//! | [`PnCounter`] | count up and down | two grow-only counters |
//! | [`LwwRegister`] | one value, last writer wins | highest (Lamport counter, replica) |
//! | [`MvRegister`] | every concurrently written value | dots and a causal context |
//! | [`AwSet`] | add-wins observed-remove set | dots and a causal context |
//!
//! No wall clock anywhere: the register orders writes by a Lamport counter and the replica
//! id, so the core stays deterministic.

pub(crate) mod claims;
pub mod context;
pub mod counter;
pub mod delta_log;
pub mod register;
pub mod replication;
pub mod set;
pub mod signed;

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use xxhash_rust::xxh3::xxh3_64;

pub use context::{CausalContext, Dot};
pub use counter::{GCounter, PnCounter};
pub use register::{LwwRegister, MvRegister};
pub use set::AwSet;

/// One life of one node as a writer (from its name and generation): a restarted node writes
/// as a new replica, so its old contributions stay counted and never collide with new ones.
/// 64 bits of SHA-256: a collision among a cluster's replicas has odds of about n²/2⁶⁵, and
/// nobody can pick a name and generation that land on another's replica (with signed
/// self-state, that would let a member sign claims for another's replica).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReplicaId(pub u64);

impl ReplicaId {
    /// The replica id of node `name` in `generation`.
    pub fn new(name: &str, generation: u64) -> Self {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"gossip/replica/v1\0");
        h.update(generation.to_le_bytes());
        h.update(name.as_bytes());
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        ReplicaId(u64::from_le_bytes(first))
    }
}

/// A join-semilattice state with delta mutators.
///
/// Laws (checked by the property tests for every built-in): `join` is commutative,
/// associative and idempotent, and joining the pieces of [`Crdt::split`] gives the state back.
pub trait Crdt: Clone + Default + PartialEq + Debug + Serialize + DeserializeOwned {
    /// Which built-in this is, on the wire.
    const KIND: CrdtKind;

    /// Merges `other` into `self`: the least upper bound of both. Returns whether `self`
    /// changed (false: it already held everything in `other`), which is how a node tells news
    /// worth passing on from a rumor it has seen.
    fn join(&mut self, other: &Self) -> bool;

    /// Merges `other` into `self` and returns the parts of `other` that changed `self` (its
    /// pieces of [`Crdt::split`] at the finest grain), or `None` if none did: what a node
    /// passes on from a rumor, which mostly carries what it already holds. Types whose parts
    /// are independent override this to do it in one pass.
    fn join_news(&mut self, other: &Self) -> Option<Self> {
        let mut fresh: Option<Self> = None;
        for part in other.split(1) {
            if self.join(&part) {
                match &mut fresh {
                    Some(f) => {
                        f.join(&part);
                    }
                    None => fresh = Some(part),
                }
            }
        }
        fresh
    }

    /// Pieces whose join is `self`, each encoding to at most about `budget` bytes where the
    /// state allows (a single value larger than the budget stays whole), for sending a whole
    /// state over datagrams.
    fn split(&self, budget: usize) -> Vec<Self>;

    /// The state cut into `n` buckets whose join is `self`: every part (a replica's count, a
    /// set element with its dots, a replica's removed dots) goes to the bucket its key picks,
    /// the same on every replica, so that two replicas compare bucket by bucket and exchange
    /// only the buckets that differ. Returns exactly `n` states (some empty).
    fn buckets(&self, n: usize) -> Vec<Self>;

    /// One hash per bucket of [`Crdt::buckets`], equal for equal buckets on every node: what
    /// two replicas compare. By default the hash of each bucket's encoding; types override it
    /// to skip building the buckets (for a large object, the cost of every comparison).
    fn bucket_hashes(&self, n: usize) -> Vec<u64> {
        self.buckets(n).iter().map(|b| postcard::to_allocvec(b).map_or(0, |bytes| xxh3_64(&bytes))).collect()
    }

    /// The buckets numbered in `which` (distinct numbers, in that order; numbers past `n` are
    /// skipped): what differs after a comparison. Types override it to build only those.
    fn some_buckets(&self, n: usize, which: &[usize]) -> Vec<Self> {
        let mut all = self.buckets(n);
        which.iter().filter_map(|&i| all.get_mut(i).map(std::mem::take)).collect()
    }

    /// Whether a state decoded from a peer is well formed (canonical contexts).
    fn is_well_formed(&self) -> bool {
        true
    }

    /// Wraps the state for the wire.
    fn into_any(self) -> AnyCrdt;

    /// The state inside `any`, if it is of this type.
    fn from_any(any: &AnyCrdt) -> Option<&Self>;
}

/// The built-in CRDT types, as named on the wire and in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CrdtKind {
    /// [`GCounter`].
    GCounter,
    /// [`PnCounter`].
    PnCounter,
    /// [`LwwRegister`].
    LwwRegister,
    /// [`MvRegister`].
    MvRegister,
    /// [`AwSet`].
    AwSet,
}

/// A state of any built-in type: what the node stores per named object and sends.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(missing_docs)] // one variant per type, named after it
pub enum AnyCrdt {
    GCounter(GCounter),
    PnCounter(PnCounter),
    LwwRegister(LwwRegister),
    MvRegister(MvRegister),
    AwSet(AwSet),
}

/// Why a CRDT operation was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CrdtError {
    /// The object exists with another type.
    #[error("object {name:?} is a {actual:?}, not a {requested:?}")]
    WrongKind {
        /// The object.
        name: String,
        /// Its type.
        actual: CrdtKind,
        /// The type asked for.
        requested: CrdtKind,
    },
    /// Object names are 1 to 128 bytes.
    #[error("object name must be 1 to 128 bytes, got {0}")]
    BadName(usize),
    /// The node holds its limit of objects.
    #[error("too many objects (limit {0})")]
    TooManyObjects(usize),
    /// The update's delta does not fit in one datagram.
    #[error("the update's delta is {len} bytes, more than the {max} that fit in a datagram")]
    DeltaTooLarge {
        /// Encoded size of the delta.
        len: usize,
        /// Room in a datagram.
        max: usize,
    },
    /// With signed self-state, an update may write only as this node's own replica (or
    /// repeat a claim of another replica that it holds signed): others' claims cannot be
    /// signed here, so peers would refuse them.
    #[error("with signed self-state, an update may write only as this node's replica, not as {replica:?}")]
    NotOwnWrite {
        /// The other replica the update wrote as.
        replica: ReplicaId,
    },
    /// A register or set value is larger than the limit.
    #[error("value of {len} bytes exceeds the limit of {max}")]
    ValueTooLarge {
        /// Size given.
        len: usize,
        /// Limit.
        max: usize,
    },
}

macro_rules! dispatch {
    ($any:expr, $s:ident => $body:expr) => {
        match $any {
            AnyCrdt::GCounter($s) => $body,
            AnyCrdt::PnCounter($s) => $body,
            AnyCrdt::LwwRegister($s) => $body,
            AnyCrdt::MvRegister($s) => $body,
            AnyCrdt::AwSet($s) => $body,
        }
    };
}

/// Runs `$body` on two states of the same type (`Some` of its result), or gives `None`.
macro_rules! dispatch_same {
    ($mine:expr, $theirs:expr, ($a:ident, $b:ident) => $body:expr) => {
        match ($mine, $theirs) {
            (AnyCrdt::GCounter($a), AnyCrdt::GCounter($b)) => Some($body),
            (AnyCrdt::PnCounter($a), AnyCrdt::PnCounter($b)) => Some($body),
            (AnyCrdt::LwwRegister($a), AnyCrdt::LwwRegister($b)) => Some($body),
            (AnyCrdt::MvRegister($a), AnyCrdt::MvRegister($b)) => Some($body),
            (AnyCrdt::AwSet($a), AnyCrdt::AwSet($b)) => Some($body),
            _ => None,
        }
    };
}

impl AnyCrdt {
    /// The state's type.
    pub fn kind(&self) -> CrdtKind {
        dispatch!(self, s => kind_of(s))
    }

    /// An empty state of `kind`.
    pub fn empty(kind: CrdtKind) -> Self {
        match kind {
            CrdtKind::GCounter => GCounter::default().into_any(),
            CrdtKind::PnCounter => PnCounter::default().into_any(),
            CrdtKind::LwwRegister => LwwRegister::default().into_any(),
            CrdtKind::MvRegister => MvRegister::default().into_any(),
            CrdtKind::AwSet => AwSet::default().into_any(),
        }
    }

    /// Joins `other` into `self` if it is of the same type; returns whether the state changed
    /// (`None`: another type, nothing done).
    pub fn join(&mut self, other: &AnyCrdt) -> Option<bool> {
        dispatch_same!(self, other, (a, b) => a.join(b))
    }

    /// [`Crdt::join_news`] if `other` is of the same type: `None` if another type, else the
    /// news (`None` inside when nothing changed).
    pub fn join_news(&mut self, other: &AnyCrdt) -> Option<Option<AnyCrdt>> {
        dispatch_same!(self, other, (a, b) => a.join_news(b).map(Crdt::into_any))
    }

    /// [`Crdt::bucket_hashes`] of the state inside.
    pub fn bucket_hashes(&self, n: usize) -> Vec<u64> {
        dispatch!(self, s => s.bucket_hashes(n))
    }

    /// [`Crdt::some_buckets`] of the state inside.
    pub fn some_buckets(&self, n: usize, which: &[usize]) -> Vec<AnyCrdt> {
        dispatch!(self, s => s.some_buckets(n, which).into_iter().map(Crdt::into_any).collect())
    }

    /// [`Crdt::split`] of the state inside.
    pub fn split(&self, budget: usize) -> Vec<AnyCrdt> {
        dispatch!(self, s => s.split(budget).into_iter().map(Crdt::into_any).collect())
    }

    /// [`Crdt::buckets`] of the state inside.
    pub fn buckets(&self, n: usize) -> Vec<AnyCrdt> {
        dispatch!(self, s => s.buckets(n).into_iter().map(Crdt::into_any).collect())
    }

    /// [`Crdt::is_well_formed`] of the state inside.
    pub fn is_well_formed(&self) -> bool {
        dispatch!(self, s => s.is_well_formed())
    }
}

/// The bucket of a replica's parts.
pub(crate) fn replica_bucket(replica: ReplicaId, n: usize) -> usize {
    (replica.0 % n.max(1) as u64) as usize
}

fn kind_of<T: Crdt>(_: &T) -> CrdtKind {
    T::KIND
}

/// Groups `items` into runs whose encodings add up to at most `budget` bytes (an item larger
/// than the budget goes alone).
pub(crate) fn chunks<T: Serialize>(items: impl IntoIterator<Item = T>, budget: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut used = 0usize;
    for item in items {
        let size = crate::wire::codec::encoded_len(&item);
        if !current.is_empty() && used.saturating_add(size) > budget {
            out.push(std::mem::take(&mut current));
            used = 0;
        }
        used = used.saturating_add(size);
        current.push(item);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}
