//! A retransmit-limited rumor queue (memberlist's `TransmitLimitedQueue`).
//!
//! Each key holds at most one rumor: queueing a key again replaces the older rumor and
//! resets its count, which is how a newer update about a member invalidates older ones.
//! Rumors are handed out by priority class (failure news first), then fewest transmissions,
//! then newest; a rumor is dropped once sent `limit` times.

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::hash::Hash;

use hashbrown::HashMap;

/// Priority of a rumor: lower goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Suspicions, deaths, leaves and refutations.
    Failure = 0,
    /// Joins and other routine changes.
    Routine = 1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    priority: Priority,
    transmits: u32,
    newest: Reverse<u64>,
}

/// Queue of rumors keyed by `K`.
#[derive(Debug)]
pub struct RumorQueue<K: Ord + Hash + Eq + Clone> {
    order: BTreeSet<(Rank, K)>,
    ranks: HashMap<K, Rank, ahash::RandomState>,
    next_id: u64,
    capacity: usize,
}

impl<K: Ord + Hash + Eq + Clone> RumorQueue<K> {
    /// An empty queue keeping at most `capacity` rumors.
    pub fn new(capacity: usize, keys: [u64; 4]) -> Self {
        RumorQueue {
            order: BTreeSet::new(),
            ranks: HashMap::with_hasher(ahash::RandomState::with_seeds(keys[3], keys[2], keys[1], keys[0])),
            next_id: 0,
            capacity,
        }
    }

    /// Number of queued rumors.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Queues (or re-queues, resetting its count) the rumor for `key`. Returns the key of a
    /// rumor dropped to stay within capacity, if any.
    pub fn push(&mut self, key: K, priority: Priority) -> Option<K> {
        self.remove(&key);
        self.next_id += 1;
        let rank = Rank { priority, transmits: 0, newest: Reverse(self.next_id) };
        self.order.insert((rank, key.clone()));
        self.ranks.insert(key, rank);
        if self.order.len() > self.capacity {
            // Drop the least urgent: routine news sent most often, oldest.
            if let Some((_, victim)) = self.order.pop_last() {
                self.ranks.remove(&victim);
                return Some(victim);
            }
        }
        None
    }

    /// Removes and returns the least urgent rumor: routine before failure news, sent most
    /// often, oldest.
    pub fn pop_least_urgent(&mut self) -> Option<K> {
        let (_, key) = self.order.pop_last()?;
        self.ranks.remove(&key);
        Some(key)
    }

    /// Removes the rumor for `key`.
    pub fn remove(&mut self, key: &K) -> bool {
        match self.ranks.remove(key) {
            Some(rank) => self.order.remove(&(rank, key.clone())),
            None => false,
        }
    }

    /// Whether `key` has a rumor queued.
    pub fn contains(&self, key: &K) -> bool {
        self.ranks.contains_key(key)
    }

    /// Keys in send order, best first.
    pub fn iter(&self) -> impl Iterator<Item = &K> + '_ {
        self.order.iter().map(|(_, k)| k)
    }

    /// Records one transmission of `key`; drops the rumor once sent `limit` times.
    pub fn sent(&mut self, key: &K, limit: u32) {
        if let Some(rank) = self.ranks.get(key).copied() {
            self.order.remove(&(rank, key.clone()));
            let next = Rank { transmits: rank.transmits + 1, ..rank };
            if next.transmits >= limit {
                self.ranks.remove(key);
            } else {
                self.order.insert((next, key.clone()));
                self.ranks.insert(key.clone(), next);
            }
        }
    }
}

/// Retransmission limit: `mult * ceil(log10(n + 1))`, at least 1.
pub fn retransmit_limit(mult: u32, n: usize) -> u32 {
    let scale = ((n as f64) + 1.0).log10().ceil().max(1.0) as u32;
    mult.saturating_mul(scale).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_news_first_then_fewest_transmits_then_newest() {
        let mut q = RumorQueue::new(10, [1, 2, 3, 4]);
        q.push(1u32, Priority::Routine);
        q.push(2, Priority::Routine);
        q.push(3, Priority::Failure);
        assert_eq!(q.iter().copied().collect::<Vec<_>>(), vec![3, 2, 1]);
        q.sent(&2, 5);
        assert_eq!(q.iter().copied().collect::<Vec<_>>(), vec![3, 1, 2]);
    }

    #[test]
    fn requeue_invalidates_and_limit_drops() {
        let mut q = RumorQueue::new(10, [1, 2, 3, 4]);
        q.push(1u32, Priority::Routine);
        q.sent(&1, 3);
        q.sent(&1, 3);
        q.push(1, Priority::Failure); // newer news about the same key resets the count
        assert_eq!(q.len(), 1);
        for _ in 0..3 {
            assert!(q.contains(&1));
            q.sent(&1, 3);
        }
        assert!(q.is_empty());
    }

    #[test]
    fn capacity_evicts_least_urgent() {
        let mut q = RumorQueue::new(2, [1, 2, 3, 4]);
        q.push(1u32, Priority::Failure);
        q.push(2, Priority::Routine);
        q.sent(&2, 9);
        assert_eq!(q.push(3, Priority::Routine), Some(2));
    }

    #[test]
    fn limit_matches_memberlist() {
        assert_eq!(retransmit_limit(4, 0), 4);
        assert_eq!(retransmit_limit(4, 9), 4);
        assert_eq!(retransmit_limit(4, 10), 8);
        assert_eq!(retransmit_limit(4, 128), 12);
        assert_eq!(retransmit_limit(4, 10_000), 20);
    }
}
