//! Registers: last-writer-wins, and multi-value (every concurrent write kept).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::context::{CausalContext, Dot};
use super::{chunks, AnyCrdt, Crdt, CrdtKind, ReplicaId};

/// One write to a [`LwwRegister`]: ordered by (Lamport counter, replica, value).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LwwWrite {
    /// Higher than every counter the writer had seen.
    pub counter: u64,
    /// The writer (breaks ties between concurrent writes).
    pub replica: ReplicaId,
    /// The value written.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

/// A register holding one value: the write with the highest (Lamport counter, replica) wins.
/// A write after seeing another always wins over it; of two concurrent writes, the replica
/// with the higher id wins, the same everywhere. No wall clock is read.
///
/// ```
/// use gossip_core::crdt::{Crdt, LwwRegister, ReplicaId};
/// let mut r = LwwRegister::default();
/// r.join(&r.set(ReplicaId(1), b"a".to_vec()));
/// r.join(&r.set(ReplicaId(2), b"b".to_vec()));
/// assert_eq!(r.value(), Some(&b"b"[..]));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LwwRegister {
    write: Option<LwwWrite>,
}

impl LwwRegister {
    /// The current value, if any was written.
    pub fn value(&self) -> Option<&[u8]> {
        self.write.as_ref().map(|w| w.value.as_slice())
    }

    /// The winning write.
    pub fn write(&self) -> Option<&LwwWrite> {
        self.write.as_ref()
    }

    /// The delta of `replica` writing `value` after everything this replica has seen.
    pub fn set(&self, replica: ReplicaId, value: Vec<u8>) -> LwwRegister {
        let counter = self.write.as_ref().map_or(0, |w| w.counter).saturating_add(1);
        LwwRegister { write: Some(LwwWrite { counter, replica, value }) }
    }
}

impl Crdt for LwwRegister {
    const KIND: CrdtKind = CrdtKind::LwwRegister;

    fn join(&mut self, other: &Self) -> bool {
        let newer = other.write > self.write;
        if newer {
            self.write.clone_from(&other.write);
        }
        newer
    }

    fn split(&self, _budget: usize) -> Vec<Self> {
        vec![self.clone()]
    }

    fn buckets(&self, n: usize) -> Vec<Self> {
        let mut out = vec![LwwRegister::default(); n.max(1)];
        out[0] = self.clone();
        out
    }

    fn into_any(self) -> AnyCrdt {
        AnyCrdt::LwwRegister(self)
    }

    fn from_any(any: &AnyCrdt) -> Option<&Self> {
        match any {
            AnyCrdt::LwwRegister(s) => Some(s),
            _ => None,
        }
    }
}

/// A register that keeps every value written concurrently: a write replaces the values its
/// writer had seen; writes that did not see each other both stay, for the application to
/// resolve (by writing again).
///
/// ```
/// use gossip_core::crdt::{Crdt, MvRegister, ReplicaId};
/// let (mut x, mut y) = (MvRegister::default(), MvRegister::default());
/// x.join(&x.set(ReplicaId(1), b"x".to_vec()));
/// y.join(&y.set(ReplicaId(2), b"y".to_vec()));
/// x.join(&y); // concurrent: both kept
/// assert_eq!(x.values().len(), 2);
/// x.join(&x.set(ReplicaId(1), b"z".to_vec())); // saw both: replaces both
/// assert_eq!(x.values(), vec![&b"z"[..]]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MvRegister {
    entries: BTreeMap<Dot, ByteBuf>,
    context: CausalContext,
}

impl MvRegister {
    /// The current values, in dot order (one unless writes were concurrent; none if never
    /// written).
    pub fn values(&self) -> Vec<&[u8]> {
        self.entries.values().map(|v| v.as_slice()).collect()
    }

    /// The delta of `replica` writing `value`, replacing every value this replica has seen.
    pub fn set(&self, replica: ReplicaId, value: Vec<u8>) -> MvRegister {
        let dot = self.context.next_dot(replica);
        let mut context = CausalContext::new();
        for d in self.entries.keys() {
            context.insert(*d);
        }
        context.insert(dot);
        MvRegister { entries: [(dot, ByteBuf::from(value))].into_iter().collect(), context }
    }

    /// The values held, by dot (for claims).
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&Dot, &[u8])> + '_ {
        self.entries.iter().map(|(d, v)| (d, v.as_slice()))
    }

    /// The dots seen (for claims).
    pub(crate) fn context(&self) -> &CausalContext {
        &self.context
    }

    fn dots(&self) -> BTreeSet<Dot> {
        self.entries.keys().copied().collect()
    }
}

impl Crdt for MvRegister {
    const KIND: CrdtKind = CrdtKind::MvRegister;

    fn join(&mut self, other: &Self) -> bool {
        // The dot-store join, in place (see `AwSet::join`).
        let before = self.entries.len();
        self.entries.retain(|d, _| other.entries.contains_key(d) || !other.context.contains(d));
        let mut changed = self.entries.len() != before;
        for (dot, value) in &other.entries {
            match self.entries.get_mut(dot) {
                // A dot names one write, so two values under it come from a faulty or hostile
                // peer: keep the larger, so that every replica still ends on the same state.
                Some(mine) if value > mine => {
                    mine.clone_from(value);
                    changed = true;
                }
                Some(_) => {}
                None if !self.context.contains(dot) => {
                    self.entries.insert(*dot, value.clone());
                    changed = true;
                }
                None => {}
            }
        }
        changed |= self.context.join(&other.context);
        changed
    }

    fn split(&self, budget: usize) -> Vec<Self> {
        let live = chunks(self.entries.iter().map(|(d, v)| (*d, v.clone())), budget).into_iter().map(|part| {
            let mut context = CausalContext::new();
            for (d, _) in &part {
                context.insert(*d);
            }
            MvRegister { entries: part.into_iter().collect(), context }
        });
        let removed = self
            .context
            .removed_pieces(&self.dots(), budget)
            .into_iter()
            .map(|context| MvRegister { entries: BTreeMap::new(), context });
        live.chain(removed).collect()
    }

    fn buckets(&self, n: usize) -> Vec<Self> {
        let mut out: Vec<MvRegister> = self
            .context
            .without(&self.dots())
            .partition(n)
            .into_iter()
            .map(|context| MvRegister { entries: BTreeMap::new(), context })
            .collect();
        for (dot, value) in &self.entries {
            let b = &mut out[super::replica_bucket(dot.replica, n)];
            b.entries.insert(*dot, value.clone());
            b.context.insert(*dot);
        }
        out
    }

    fn is_well_formed(&self) -> bool {
        self.context.is_canonical() && self.entries.keys().all(|d| self.context.contains(d))
    }

    fn into_any(self) -> AnyCrdt {
        AnyCrdt::MvRegister(self)
    }

    fn from_any(any: &AnyCrdt) -> Option<&Self> {
        match any {
            AnyCrdt::MvRegister(s) => Some(s),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `crdt_merge` fuzz target: a faulty peer sends another value under a dot
    /// we hold. Join must still be commutative, or replicas would disagree forever.
    #[test]
    fn two_values_under_one_dot_join_the_same_way_round() {
        let a = MvRegister::default().set(ReplicaId(1), vec![0]);
        let b = MvRegister::default().set(ReplicaId(1), vec![1]);
        let (mut ab, mut ba) = (a.clone(), b.clone());
        assert!(ab.join(&b));
        assert!(!ba.join(&a));
        assert_eq!(ab, ba);
        assert_eq!(ab.values(), vec![&[1u8][..]]);
        assert!(!ab.clone().join(&ab), "idempotent");
    }
}
