//! Counters: grow-only, and up-and-down as two grow-only counters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{chunks, AnyCrdt, Crdt, CrdtKind, ReplicaId};

/// A grow-only counter: each replica counts its own increments; the value is the sum and the
/// merge takes each replica's maximum.
///
/// ```
/// use gossip_core::crdt::{Crdt, GCounter, ReplicaId};
/// let (a, b) = (ReplicaId(1), ReplicaId(2));
/// let mut x = GCounter::default();
/// let mut y = GCounter::default();
/// let d = x.increment(a, 3); // the delta
/// x.join(&d);
/// y.join(&y.increment(b, 4));
/// x.join(&y);
/// y.join(&d);
/// assert_eq!((x.value(), y.value()), (7, 7));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "GCounterWire")]
pub struct GCounter {
    counts: BTreeMap<ReplicaId, u64>,
    /// The sum of `counts`, kept up to date by every change: reading a counter of many
    /// replicas is frequent and would otherwise walk them all. Not on the wire.
    #[serde(skip)]
    total: u128,
}

/// What a [`GCounter`] is on the wire: its counts (the total is derived).
#[derive(Deserialize)]
struct GCounterWire {
    counts: BTreeMap<ReplicaId, u64>,
}

impl From<GCounterWire> for GCounter {
    fn from(wire: GCounterWire) -> Self {
        GCounter::from_counts(wire.counts)
    }
}

impl GCounter {
    fn from_counts(counts: BTreeMap<ReplicaId, u64>) -> Self {
        let total = counts.values().map(|&c| u128::from(c)).sum();
        GCounter { counts, total }
    }

    /// The count: the sum over replicas.
    pub fn value(&self) -> u128 {
        self.total
    }

    /// What `replica` counted.
    pub fn count_of(&self, replica: ReplicaId) -> u64 {
        self.counts.get(&replica).copied().unwrap_or(0)
    }

    /// Replicas that counted something.
    pub fn replicas(&self) -> usize {
        self.counts.len()
    }

    /// Each replica's count as its claim (`negative`: counts of decrements).
    pub(crate) fn claims<'a>(&'a self, negative: bool, out: &mut Vec<super::claims::Claim<'a>>) {
        for (&author, &count) in &self.counts {
            out.push(super::claims::Claim { author, statement: super::claims::Statement::Count { negative, count } });
        }
    }

    /// The delta of `replica` adding `by` (a replica's own count stops at `u64::MAX`).
    pub fn increment(&self, replica: ReplicaId, by: u64) -> GCounter {
        let mut delta = GCounter::default();
        let count = self.count_of(replica).saturating_add(by);
        if count > 0 {
            delta.counts.insert(replica, count);
            delta.total = u128::from(count);
        }
        delta
    }
}

impl Crdt for GCounter {
    const KIND: CrdtKind = CrdtKind::GCounter;

    fn join(&mut self, other: &Self) -> bool {
        let mut changed = false;
        for (&replica, &count) in &other.counts {
            if count == 0 {
                continue; // zero is the default: never stored, so equal states compare equal
            }
            let mine = self.counts.entry(replica).or_insert(0);
            if count > *mine {
                self.total += u128::from(count - *mine);
                *mine = count;
                changed = true;
            }
        }
        changed
    }

    fn join_news(&mut self, other: &Self) -> Option<Self> {
        let mut news = GCounter::default();
        for (&replica, &count) in &other.counts {
            if count == 0 {
                continue; // never stored (see `join`)
            }
            let mine = self.counts.entry(replica).or_insert(0);
            if count > *mine {
                self.total += u128::from(count - *mine);
                *mine = count;
                news.counts.insert(replica, count);
                news.total += u128::from(count);
            }
        }
        (!news.counts.is_empty()).then_some(news)
    }

    fn split(&self, budget: usize) -> Vec<Self> {
        chunks(self.counts.iter().map(|(&r, &c)| (r, c)), budget)
            .into_iter()
            .map(|part| GCounter::from_counts(part.into_iter().collect()))
            .collect()
    }

    fn buckets(&self, n: usize) -> Vec<Self> {
        let mut out = vec![GCounter::default(); n.max(1)];
        for (&replica, &count) in &self.counts {
            let bucket = &mut out[super::replica_bucket(replica, n)];
            bucket.counts.insert(replica, count);
            bucket.total += u128::from(count);
        }
        out
    }

    fn bucket_hashes(&self, n: usize) -> Vec<u64> {
        // Order-independent: the sum of each entry's hash, in one pass with no bucket built.
        let mut sums = vec![0u64; n.max(1)];
        for (&replica, &count) in &self.counts {
            let sum = &mut sums[super::replica_bucket(replica, n)];
            *sum = sum.wrapping_add(hash_pair(replica.0, count));
        }
        sums
    }

    fn some_buckets(&self, n: usize, which: &[usize]) -> Vec<Self> {
        let n = n.max(1);
        let wanted: Vec<usize> = which.iter().copied().filter(|&i| i < n).collect();
        let mut slot = vec![None; n];
        for (k, &i) in wanted.iter().enumerate() {
            slot[i] = Some(k);
        }
        let mut out = vec![GCounter::default(); wanted.len()];
        for (&replica, &count) in &self.counts {
            if let Some(k) = slot[super::replica_bucket(replica, n)] {
                out[k].counts.insert(replica, count);
                out[k].total += u128::from(count);
            }
        }
        out
    }

    fn is_well_formed(&self) -> bool {
        self.counts.values().all(|&c| c > 0)
    }

    fn into_any(self) -> AnyCrdt {
        AnyCrdt::GCounter(self)
    }

    fn from_any(any: &AnyCrdt) -> Option<&Self> {
        match any {
            AnyCrdt::GCounter(s) => Some(s),
            _ => None,
        }
    }
}

/// A counter that goes up and down: increments and decrements counted apart.
///
/// ```
/// use gossip_core::crdt::{Crdt, PnCounter, ReplicaId};
/// let mut c = PnCounter::default();
/// c.join(&c.increment(ReplicaId(1), 5));
/// c.join(&c.decrement(ReplicaId(2), 7));
/// assert_eq!(c.value(), -2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PnCounter {
    up: GCounter,
    down: GCounter,
}

impl PnCounter {
    /// Increments minus decrements.
    pub fn value(&self) -> i128 {
        // Each side is at most 2^64 x 2^64: both fit an i128 once shifted into range.
        self.up.value() as i128 - self.down.value() as i128
    }

    /// The delta of `replica` adding `by`.
    pub fn increment(&self, replica: ReplicaId, by: u64) -> PnCounter {
        PnCounter { up: self.up.increment(replica, by), down: GCounter::default() }
    }

    /// Both counters' claims.
    pub(crate) fn claims<'a>(&'a self, out: &mut Vec<super::claims::Claim<'a>>) {
        self.up.claims(false, out);
        self.down.claims(true, out);
    }

    /// The delta of `replica` subtracting `by`.
    pub fn decrement(&self, replica: ReplicaId, by: u64) -> PnCounter {
        PnCounter { up: GCounter::default(), down: self.down.increment(replica, by) }
    }
}

impl Crdt for PnCounter {
    const KIND: CrdtKind = CrdtKind::PnCounter;

    fn join(&mut self, other: &Self) -> bool {
        let up = self.up.join(&other.up);
        let down = self.down.join(&other.down);
        up || down
    }

    fn join_news(&mut self, other: &Self) -> Option<Self> {
        let up = self.up.join_news(&other.up);
        let down = self.down.join_news(&other.down);
        (up.is_some() || down.is_some())
            .then(|| PnCounter { up: up.unwrap_or_default(), down: down.unwrap_or_default() })
    }

    fn split(&self, budget: usize) -> Vec<Self> {
        let ups = self.up.split(budget).into_iter().map(|up| PnCounter { up, down: GCounter::default() });
        let downs = self.down.split(budget).into_iter().map(|down| PnCounter { up: GCounter::default(), down });
        ups.chain(downs).collect()
    }

    fn buckets(&self, n: usize) -> Vec<Self> {
        self.up.buckets(n).into_iter().zip(self.down.buckets(n)).map(|(up, down)| PnCounter { up, down }).collect()
    }

    fn bucket_hashes(&self, n: usize) -> Vec<u64> {
        let ups = self.up.bucket_hashes(n);
        let downs = self.down.bucket_hashes(n);
        ups.iter().zip(&downs).map(|(&up, &down)| hash_pair(up, down)).collect()
    }

    fn some_buckets(&self, n: usize, which: &[usize]) -> Vec<Self> {
        let ups = self.up.some_buckets(n, which);
        let downs = self.down.some_buckets(n, which);
        ups.into_iter().zip(downs).map(|(up, down)| PnCounter { up, down }).collect()
    }

    fn is_well_formed(&self) -> bool {
        self.up.is_well_formed() && self.down.is_well_formed()
    }

    fn into_any(self) -> AnyCrdt {
        AnyCrdt::PnCounter(self)
    }

    fn from_any(any: &AnyCrdt) -> Option<&Self> {
        match any {
            AnyCrdt::PnCounter(s) => Some(s),
            _ => None,
        }
    }
}

/// The hash of two numbers (bucket hashes of counters are built from these).
fn hash_pair(a: u64, b: u64) -> u64 {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_le_bytes());
    bytes[8..].copy_from_slice(&b.to_le_bytes());
    xxhash_rust::xxh3::xxh3_64(&bytes)
}
