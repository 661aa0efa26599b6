//! The add-wins observed-remove set.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::context::{CausalContext, Dot};
use super::{chunks, AnyCrdt, Crdt, CrdtKind, ReplicaId};

/// A set of byte strings where an add concurrent with a remove of the same element wins: a
/// remove only takes away the adds its replica had seen (their dots), so an add it had not
/// seen survives it.
///
/// ```
/// use gossip_core::crdt::{AwSet, Crdt, ReplicaId};
/// let (mut x, mut y) = (AwSet::default(), AwSet::default());
/// x.join(&x.add(ReplicaId(1), b"apple".to_vec()));
/// y.join(&x);
/// x.join(&x.remove(b"apple")); // x removes what it saw...
/// y.join(&y.add(ReplicaId(2), b"apple".to_vec())); // ...while y adds it again
/// x.join(&y);
/// y.join(&x);
/// assert!(x.contains(b"apple") && y.contains(b"apple")); // the add wins
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AwSet {
    /// Each element present, with the dots of the adds that keep it there.
    entries: BTreeMap<ByteBuf, BTreeSet<Dot>>,
    context: CausalContext,
}

impl AwSet {
    /// Whether `element` is in the set.
    pub fn contains(&self, element: &[u8]) -> bool {
        self.entries.contains_key(&ByteBuf::from(element))
    }

    /// The elements, in byte order.
    pub fn elements(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.entries.keys().map(|e| e.as_slice())
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The delta of `replica` adding `element` (replacing the adds of it this replica saw).
    pub fn add(&self, replica: ReplicaId, element: Vec<u8>) -> AwSet {
        let dot = self.context.next_dot(replica);
        let mut context = CausalContext::new();
        let element = ByteBuf::from(element);
        for d in self.entries.get(&element).into_iter().flatten() {
            context.insert(*d);
        }
        context.insert(dot);
        AwSet { entries: [(element, [dot].into_iter().collect())].into_iter().collect(), context }
    }

    /// The delta of removing `element`: the adds of it this replica has seen. Empty if the
    /// element is not here.
    pub fn remove(&self, element: &[u8]) -> AwSet {
        let mut context = CausalContext::new();
        for d in self.entries.get(&ByteBuf::from(element)).into_iter().flatten() {
            context.insert(*d);
        }
        AwSet { entries: BTreeMap::new(), context }
    }

    /// The elements with their dots (for claims).
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&[u8], &BTreeSet<Dot>)> + '_ {
        self.entries.iter().map(|(e, d)| (e.as_slice(), d))
    }

    /// The dots seen (for claims).
    pub(crate) fn context(&self) -> &CausalContext {
        &self.context
    }

    fn dots(&self) -> BTreeSet<Dot> {
        self.entries.values().flatten().copied().collect()
    }
}

impl Crdt for AwSet {
    const KIND: CrdtKind = CrdtKind::AwSet;

    fn join(&mut self, other: &Self) -> bool {
        // The dot-store join, in place: our dots survive unless the other side saw them and
        // no longer holds them; theirs come in unless we saw them (and removed them).
        let mut changed = false;
        self.entries.retain(|element, dots| {
            let theirs = other.entries.get(element);
            let before = dots.len();
            dots.retain(|d| theirs.is_some_and(|t| t.contains(d)) || !other.context.contains(d));
            changed |= dots.len() != before;
            !dots.is_empty()
        });
        for (element, theirs) in &other.entries {
            for dot in theirs.iter().filter(|d| !self.context.contains(d)) {
                changed |= self.entries.entry(element.clone()).or_default().insert(*dot);
            }
        }
        changed |= self.context.join(&other.context);
        changed
    }

    fn split(&self, budget: usize) -> Vec<Self> {
        // An element added concurrently by many replicas (many dots) and too large for the
        // budget goes in one piece per dot: the pieces still join to it.
        let items = self.entries.iter().flat_map(|(e, dots)| {
            let whole = e.len().saturating_add(dots.len().saturating_mul(12)) <= budget || dots.len() == 1;
            let parts: Vec<BTreeSet<Dot>> =
                if whole { vec![dots.clone()] } else { dots.iter().map(|d| [*d].into_iter().collect()).collect() };
            parts.into_iter().map(move |d| (e.clone(), d))
        });
        let live = chunks(items, budget).into_iter().map(|part| {
            let mut context = CausalContext::new();
            for d in part.iter().flat_map(|(_, dots)| dots) {
                context.insert(*d);
            }
            let mut entries: BTreeMap<ByteBuf, BTreeSet<Dot>> = BTreeMap::new();
            for (element, dots) in part {
                entries.entry(element).or_default().extend(dots); // one element's dot pieces, together
            }
            AwSet { entries, context }
        });
        let removed = self
            .context
            .removed_pieces(&self.dots(), budget)
            .into_iter()
            .map(|context| AwSet { entries: BTreeMap::new(), context });
        live.chain(removed).collect()
    }

    fn buckets(&self, n: usize) -> Vec<Self> {
        let mut out: Vec<AwSet> = self
            .context
            .without(&self.dots())
            .partition(n)
            .into_iter()
            .map(|context| AwSet { entries: BTreeMap::new(), context })
            .collect();
        for (element, dots) in &self.entries {
            let b = &mut out[(xxhash_rust::xxh3::xxh3_64(element) % n.max(1) as u64) as usize];
            for d in dots {
                b.context.insert(*d);
            }
            b.entries.insert(element.clone(), dots.clone());
        }
        out
    }

    fn is_well_formed(&self) -> bool {
        // Every dot is one add of one element: a dot under two elements (never written by a
        // replica) would make the state's pieces join to something else.
        let dots: usize = self.entries.values().map(BTreeSet::len).sum();
        self.context.is_canonical()
            && self.entries.values().all(|dots| !dots.is_empty() && dots.iter().all(|d| self.context.contains(d)))
            && dots == self.dots().len()
    }

    fn into_any(self) -> AnyCrdt {
        AnyCrdt::AwSet(self)
    }

    fn from_any(any: &AnyCrdt) -> Option<&Self> {
        match any {
            AnyCrdt::AwSet(s) => Some(s),
            _ => None,
        }
    }
}
