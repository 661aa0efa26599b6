//! Dots and causal contexts: what the dot-based CRDTs (multi-value register, add-wins set)
//! use to tell "removed" from "never seen".
//!
//! A dot is one write event, (replica, sequence number). A causal context is the set of dots a
//! replica has seen, kept per replica as sorted, disjoint, non-adjacent intervals: a context
//! that saw everything is one interval per replica, and one with holes (dots that arrived out
//! of order, or the removed dots of a state split into pieces) stays exact. The representation
//! is canonical, so equal contexts are equal values (and hash alike).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::ReplicaId;

/// One write event: the `seq`-th write of `replica` to this object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// Who wrote.
    pub replica: ReplicaId,
    /// Its write counter, from 1.
    pub seq: u64,
}

/// The set of dots seen, as intervals per replica.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CausalContext {
    /// Per replica, sorted disjoint inclusive intervals with gaps between them.
    ranges: BTreeMap<ReplicaId, Vec<(u64, u64)>>,
}

impl CausalContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `dot` was seen.
    pub fn contains(&self, dot: &Dot) -> bool {
        let Some(r) = self.ranges.get(&dot.replica) else { return false };
        // The last interval starting at or before the dot.
        let i = r.partition_point(|&(lo, _)| lo <= dot.seq);
        i > 0 && r[i - 1].1 >= dot.seq
    }

    /// Highest sequence number seen of `replica` (0 if none).
    pub fn max_seq(&self, replica: ReplicaId) -> u64 {
        self.ranges.get(&replica).and_then(|r| r.last()).map_or(0, |&(_, hi)| hi)
    }

    /// Each replica seen, with its highest sequence number.
    pub(crate) fn tops(&self) -> impl Iterator<Item = (ReplicaId, u64)> + '_ {
        self.ranges.iter().filter_map(|(&r, ranges)| ranges.last().map(|&(_, hi)| (r, hi)))
    }

    /// The next dot `replica` writes with: after everything of it seen.
    pub fn next_dot(&self, replica: ReplicaId) -> Dot {
        Dot { replica, seq: self.max_seq(replica).saturating_add(1) }
    }

    /// Adds a dot.
    pub fn insert(&mut self, dot: Dot) {
        self.insert_range(dot.replica, dot.seq, dot.seq);
    }

    /// Adds the dots `lo..=hi` of `replica`; returns whether any was new.
    pub fn insert_range(&mut self, replica: ReplicaId, lo: u64, hi: u64) -> bool {
        if lo > hi {
            return false;
        }
        let r = self.ranges.entry(replica).or_default();
        let i = r.partition_point(|&(l, _)| l <= lo);
        if i > 0 && r[i - 1].1 >= hi {
            return false; // already seen
        }
        // Merge with every interval that overlaps or touches [lo, hi].
        let start = r.partition_point(|&(_, h)| h.saturating_add(1) < lo);
        let end = r.partition_point(|&(l, _)| l <= hi.saturating_add(1));
        let (mut new_lo, mut new_hi) = (lo, hi);
        if start < end {
            new_lo = new_lo.min(r[start].0);
            new_hi = new_hi.max(r[end - 1].1);
        }
        r.splice(start..end, std::iter::once((new_lo, new_hi)));
        true
    }

    /// Adds everything `other` saw; returns whether anything was new.
    pub fn join(&mut self, other: &CausalContext) -> bool {
        let mut changed = false;
        for (&replica, r) in &other.ranges {
            for &(lo, hi) in r {
                changed |= self.insert_range(replica, lo, hi);
            }
        }
        changed
    }

    /// Whether nothing was seen.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The context without the dots in `live`: the dots seen and since removed. Its size is
    /// about one interval per live dot, whatever the number of writes.
    pub fn without(&self, live: &BTreeSet<Dot>) -> CausalContext {
        let mut out = CausalContext::new();
        for (&replica, r) in &self.ranges {
            let holes: Vec<u64> =
                live.range(Dot { replica, seq: 0 }..=Dot { replica, seq: u64::MAX }).map(|d| d.seq).collect();
            for &(lo, hi) in r {
                // The first sequence number not yet handed out; `None` past `u64::MAX` (a
                // peer's context may reach it).
                let mut from = Some(lo);
                for &seq in holes.iter().filter(|&&s| s >= lo && s <= hi) {
                    if let Some(f) = from.filter(|&f| seq > f) {
                        out.insert_range(replica, f, seq - 1);
                    }
                    from = seq.checked_add(1);
                }
                if let Some(f) = from.filter(|&f| f <= hi) {
                    out.insert_range(replica, f, hi);
                }
            }
        }
        out
    }

    /// The removed dots (the context without `live`) in pieces of about `budget` encoded
    /// bytes: what a dot store's split adds to its live entries.
    pub(crate) fn removed_pieces(&self, live: &BTreeSet<Dot>, budget: usize) -> Vec<CausalContext> {
        /// Bytes of one encoded interval at most (replica, two varints, framing).
        const INTERVAL_BYTES: usize = 32;
        self.without(live).split((budget / INTERVAL_BYTES).max(1))
    }

    /// Splits into contexts of at most `intervals` intervals each, whose join is this one.
    pub fn split(&self, intervals: usize) -> Vec<CausalContext> {
        let intervals = intervals.max(1);
        let mut out = Vec::new();
        let mut piece = CausalContext::new();
        let mut count = 0;
        for (&replica, r) in &self.ranges {
            for &(lo, hi) in r {
                if count == intervals {
                    out.push(std::mem::take(&mut piece));
                    count = 0;
                }
                piece.insert_range(replica, lo, hi);
                count += 1;
            }
        }
        if !piece.is_empty() {
            out.push(piece);
        }
        out
    }

    /// The context's intervals sorted into `n` contexts by their replica's bucket.
    pub(crate) fn partition(&self, n: usize) -> Vec<CausalContext> {
        let mut out = vec![CausalContext::new(); n.max(1)];
        for (&replica, r) in &self.ranges {
            out[super::replica_bucket(replica, n)].ranges.insert(replica, r.clone());
        }
        out
    }

    /// Whether the context is in canonical form (sorted, disjoint, non-adjacent, non-empty
    /// interval lists): what a decoded context from a peer must be before it is used.
    pub fn is_canonical(&self) -> bool {
        self.ranges.values().all(|r| {
            !r.is_empty()
                && r.iter().all(|&(lo, hi)| lo >= 1 && lo <= hi)
                && r.windows(2).all(|w| w[0].1.saturating_add(1) < w[1].0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_dot_at_the_last_sequence_number_leaves_the_rest_of_its_interval() {
        let mut ctx = CausalContext::new();
        let r = ReplicaId(7);
        ctx.insert_range(r, u64::MAX - 3, u64::MAX);
        let live: BTreeSet<Dot> = [Dot { replica: r, seq: u64::MAX }, Dot { replica: r, seq: u64::MAX - 2 }].into();
        let mut expected = CausalContext::new();
        expected.insert_range(r, u64::MAX - 3, u64::MAX - 3);
        expected.insert_range(r, u64::MAX - 1, u64::MAX - 1);
        assert_eq!(ctx.without(&live), expected);
    }

    fn dot(r: u64, seq: u64) -> Dot {
        Dot { replica: ReplicaId(r), seq }
    }

    #[test]
    fn intervals_merge_and_stay_canonical() {
        let mut c = CausalContext::new();
        for seq in [5, 1, 3, 2, 7] {
            c.insert(dot(1, seq));
        }
        assert!(c.contains(&dot(1, 3)) && !c.contains(&dot(1, 4)) && !c.contains(&dot(2, 1)));
        assert_eq!(c.ranges[&ReplicaId(1)], vec![(1, 3), (5, 5), (7, 7)]);
        c.insert(dot(1, 4));
        c.insert(dot(1, 6));
        assert_eq!(c.ranges[&ReplicaId(1)], vec![(1, 7)]);
        assert!(c.is_canonical());
        assert_eq!(c.next_dot(ReplicaId(1)), dot(1, 8));
    }

    #[test]
    fn without_live_dots_leaves_the_removed_ones() {
        let mut c = CausalContext::new();
        c.insert_range(ReplicaId(1), 1, 10);
        let live: BTreeSet<Dot> = [dot(1, 3), dot(1, 10)].into_iter().collect();
        let removed = c.without(&live);
        assert_eq!(removed.ranges[&ReplicaId(1)], vec![(1, 2), (4, 9)]);
        let mut back = removed.clone();
        for d in &live {
            back.insert(*d);
        }
        assert_eq!(back, c);
        let pieces = c.without(&live).split(1);
        assert_eq!(pieces.len(), 2);
    }
}
