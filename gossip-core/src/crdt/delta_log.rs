//! Delta intervals: what a replica changed since a peer last acknowledged it.
//!
//! Every change to a replicated object (a local update, or the parts of a peer's delta or
//! state that were news) gets the next sequence number of that object and goes into its
//! bounded [`DeltaLog`]. For each peer, [`PeerAcks`] remembers the highest sequence number the
//! peer is known to hold everything up to: it acknowledged a delta interval ending there, or
//! its state hash equalled ours then. When an anti-entropy exchange finds the object
//! different, the join of the log's entries after that point (the delta interval, Almeida,
//! Shoker and Baquero 2018) is all the peer lacks from us, usually far less than the state.
//! When the log no longer reaches back that far (its bytes are bounded, oldest dropped
//! first), or the peer is not known at all, the exchange falls back to comparing bucket
//! hashes and sending whole buckets. Entries every remembered peer holds are collected.

use std::collections::VecDeque;

use super::AnyCrdt;

/// Adjacent log entries are joined into one while it stays this small: fewer entries to
/// keep and join, and an interval rarely starts inside one (when it does, the joined entry
/// repeats a few parts the peer already holds, which joins harmlessly).
const COALESCE_BYTES: usize = 256;

/// Peers remembered per object; the one acknowledged longest ago makes room. A peer
/// forgotten gets buckets instead of an interval, as one never seen does.
pub const PEER_ACKS: usize = 32;

/// One entry: the join of the changes numbered up to `last` (from just after the previous
/// entry's `last`).
#[derive(Debug, Clone)]
struct Entry {
    last: u64,
    delta: AnyCrdt,
    len: usize,
}

/// An object's recent changes, numbered.
#[derive(Debug, Clone, Default)]
pub struct DeltaLog {
    /// Number of the latest change (0: none yet).
    seq: u64,
    /// Changes up to this number are no longer in `entries` (collected or dropped).
    dropped_through: u64,
    entries: VecDeque<Entry>,
    bytes: usize,
}

/// What the log holds for a peer known to hold everything up to some change.
#[derive(Debug, PartialEq)]
pub enum Interval {
    /// The log no longer reaches back that far: compare buckets instead.
    NotCovered,
    /// Nothing changed since: whatever differs is on the peer's side.
    Empty,
    /// The join of every change since, and the number of the last one.
    Changes(AnyCrdt, u64),
}

impl DeltaLog {
    /// Number of the latest change.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Bytes of deltas held (their encoded sizes).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Numbers a change and keeps it, dropping the oldest entries past `max_bytes` (with
    /// `max_bytes` 0 nothing is kept: every exchange compares buckets).
    pub fn record(&mut self, delta: &AnyCrdt, max_bytes: usize) {
        self.seq += 1;
        if max_bytes == 0 {
            self.dropped_through = self.seq;
            return;
        }
        let len = postcard::experimental::serialized_size(delta).unwrap_or(usize::MAX);
        let mut joined = false;
        if let Some(last) = self.entries.back_mut().filter(|l| l.len.saturating_add(len) <= COALESCE_BYTES) {
            if last.delta.join(delta).is_some() {
                let grown = postcard::experimental::serialized_size(&last.delta).unwrap_or(usize::MAX);
                self.bytes = self.bytes - last.len + grown;
                last.len = grown;
                last.last = self.seq;
                joined = true;
            }
        }
        if !joined {
            self.bytes = self.bytes.saturating_add(len);
            self.entries.push_back(Entry { last: self.seq, delta: delta.clone(), len });
        }
        while self.bytes > max_bytes {
            let Some(oldest) = self.entries.pop_front() else { break };
            self.bytes -= oldest.len;
            self.dropped_through = oldest.last;
        }
    }

    /// The changes after number `held` (a peer holds everything up to it).
    pub fn since(&self, held: u64) -> Interval {
        if held < self.dropped_through {
            return Interval::NotCovered;
        }
        let mut joined: Option<AnyCrdt> = None;
        for entry in self.entries.iter().filter(|e| e.last > held) {
            match &mut joined {
                Some(j) => {
                    j.join(&entry.delta);
                }
                None => joined = Some(entry.delta.clone()),
            }
        }
        joined.map_or(Interval::Empty, |j| Interval::Changes(j, self.seq))
    }

    /// Drops the entries of changes up to `held`: no remembered peer needs them.
    pub fn collect(&mut self, held: u64) {
        while self.entries.front().is_some_and(|e| e.last <= held) {
            if let Some(e) = self.entries.pop_front() {
                self.bytes -= e.len;
                self.dropped_through = e.last;
            }
        }
    }
}

/// Exchanges in a row that may find an object different while we hold nothing the peer
/// lacks, before we stop trusting what we noted for it. Normally the difference is on the
/// peer's side and its own interval repairs it; this bounds the harm of a wrong note (a peer
/// that lost its state without our noticing).
pub const MAX_EMPTY_DIFFERENCES: u8 = 3;

/// Most datagrams an interval may span (one acknowledgement bit each).
pub const MAX_PARTS: usize = 64;

/// An interval sent and not yet acknowledged in full.
#[derive(Debug, Clone)]
struct Unacked<A> {
    peer: A,
    seq: u64,
    parts: u8,
    /// Bit `i`: part `i` acknowledged.
    acked: u64,
}

/// Per peer, the latest change of ours it is known to hold everything up to, and the interval
/// last sent to it until every part of it is acknowledged.
#[derive(Debug, Clone)]
pub struct PeerAcks<A> {
    /// (peer, change number, when it was recorded: an ever-growing stamp, exchanges in a row
    /// that found a difference we had nothing for).
    acks: Vec<(A, u64, u64, u8)>,
    stamp: u64,
    /// At most one per peer, at most [`PEER_ACKS`].
    unacked: Vec<Unacked<A>>,
}

impl<A> Default for PeerAcks<A> {
    fn default() -> Self {
        PeerAcks { acks: Vec::new(), stamp: 0, unacked: Vec::new() }
    }
}

impl<A: PartialEq + Clone> PeerAcks<A> {
    /// What `peer` is known to hold everything up to, if anything.
    pub fn held_by(&self, peer: &A) -> Option<u64> {
        self.acks.iter().find(|(p, ..)| p == peer).map(|&(_, seq, ..)| seq)
    }

    /// Notes that `peer` holds everything up to change `seq` (never moving back).
    pub fn note(&mut self, peer: &A, seq: u64) {
        self.stamp += 1;
        if let Some(entry) = self.acks.iter_mut().find(|(p, ..)| p == peer) {
            entry.1 = entry.1.max(seq);
            entry.2 = self.stamp;
            entry.3 = 0;
            return;
        }
        if self.acks.len() >= PEER_ACKS {
            if let Some(oldest) = self.acks.iter().enumerate().min_by_key(|(_, a)| a.2).map(|(i, _)| i) {
                self.acks.swap_remove(oldest);
            }
        }
        self.acks.push((peer.clone(), seq, self.stamp, 0));
    }

    /// Forgets `peer` (it died, left or restarted: its state is no longer what it acknowledged).
    pub fn forget(&mut self, peer: &A) {
        self.acks.retain(|(p, ..)| p != peer);
        self.unacked.retain(|u| &u.peer != peer);
    }

    /// An exchange with `peer` found the object different though we hold nothing it lacks.
    /// Returns whether that happened too often in a row: the note is then dropped, and the
    /// caller sends the whole state instead.
    pub fn differs_with_nothing_to_send(&mut self, peer: &A) -> bool {
        let Some(i) = self.acks.iter().position(|(p, ..)| p == peer) else { return true };
        self.acks[i].3 += 1;
        if self.acks[i].3 < MAX_EMPTY_DIFFERENCES {
            return false;
        }
        self.acks.swap_remove(i);
        true
    }

    /// An interval up to change `seq` in `parts` parts (1 to [`MAX_PARTS`]) went to `peer`; it
    /// replaces any earlier one still unacknowledged.
    pub fn sent(&mut self, peer: &A, seq: u64, parts: u8) {
        self.unacked.retain(|u| &u.peer != peer);
        if self.unacked.len() >= PEER_ACKS {
            self.unacked.remove(0); // the oldest
        }
        self.unacked.push(Unacked { peer: peer.clone(), seq, parts, acked: 0 });
    }

    /// `peer` acknowledged part `part` of the interval up to `seq`. Returns `seq` once every
    /// part of it has been (the peer then holds our changes up to `seq`).
    pub fn acked(&mut self, peer: &A, seq: u64, part: u8) -> Option<u64> {
        let i = self.unacked.iter().position(|u| &u.peer == peer && u.seq == seq && part < u.parts)?;
        let u = &mut self.unacked[i];
        u.acked |= 1 << part;
        let all = if u.parts >= 64 { u64::MAX } else { (1u64 << u.parts) - 1 };
        if u.acked != all {
            return None;
        }
        self.unacked.swap_remove(i);
        Some(seq)
    }

    /// The change every remembered peer holds (`None`: no peer remembered).
    pub fn held_by_all(&self) -> Option<u64> {
        self.acks.iter().map(|&(_, seq, ..)| seq).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::{Crdt, GCounter, ReplicaId};

    fn inc(c: &mut GCounter, r: u64) -> AnyCrdt {
        let d = c.increment(ReplicaId(r), 1);
        c.join(&d);
        d.into_any()
    }

    #[test]
    fn an_interval_holds_exactly_the_changes_after_the_acknowledged_one() {
        let (mut log, mut state) = (DeltaLog::default(), GCounter::default());
        for r in 1..=5 {
            log.record(&inc(&mut state, r), 1 << 16);
        }
        assert_eq!(log.seq(), 5);
        let Interval::Changes(AnyCrdt::GCounter(after_two), 5) = log.since(2) else { panic!("changes expected") };
        // Entries coalesce, so an interval may repeat older parts; it always holds the newer.
        for r in 3..=5 {
            assert_eq!(after_two.count_of(ReplicaId(r)), 1);
        }
        assert_eq!(log.since(5), Interval::Empty);
        let Interval::Changes(AnyCrdt::GCounter(all), 5) = log.since(0) else { panic!("changes expected") };
        assert_eq!(all, state);
    }

    #[test]
    fn a_log_past_its_bytes_no_longer_covers_old_acknowledgements() {
        let (mut log, mut state) = (DeltaLog::default(), GCounter::default());
        for r in 1..=200 {
            log.record(&inc(&mut state, r * 1_000_000), 300);
        }
        assert!(log.bytes() <= 300);
        assert_eq!(log.since(0), Interval::NotCovered);
        assert!(matches!(log.since(199), Interval::Changes(..)));
        log.collect(200);
        assert_eq!(log.bytes(), 0);
        assert_eq!(log.since(200), Interval::Empty);
        assert_eq!(log.since(199), Interval::NotCovered);
    }

    #[test]
    fn a_log_of_zero_bytes_keeps_nothing() {
        let (mut log, mut state) = (DeltaLog::default(), GCounter::default());
        log.record(&inc(&mut state, 1), 0);
        assert_eq!(log.since(0), Interval::NotCovered);
        assert_eq!(log.since(1), Interval::Empty);
    }

    #[test]
    fn an_interval_counts_as_held_once_every_part_is_acknowledged() {
        let mut acks = PeerAcks::default();
        acks.sent(&7u32, 10, 3);
        assert_eq!(acks.acked(&7, 10, 0), None);
        assert_eq!(acks.acked(&7, 10, 3), None, "no such part");
        assert_eq!(acks.acked(&7, 9, 1), None, "another interval");
        assert_eq!(acks.acked(&8, 10, 1), None, "another peer");
        assert_eq!(acks.acked(&7, 10, 2), None);
        assert_eq!(acks.acked(&7, 10, 2), None, "twice the same part");
        assert_eq!(acks.acked(&7, 10, 1), Some(10));
        assert_eq!(acks.acked(&7, 10, 1), None, "done with");
        acks.sent(&7, 11, 2);
        acks.sent(&7, 12, 1); // replaces the unacknowledged 11
        assert_eq!(acks.acked(&7, 11, 0), None);
        assert_eq!(acks.acked(&7, 12, 0), Some(12));
    }

    #[test]
    fn a_peer_that_keeps_differing_while_holding_all_our_changes_is_no_longer_trusted() {
        let mut acks = PeerAcks::default();
        acks.note(&1u32, 5);
        for _ in 1..MAX_EMPTY_DIFFERENCES {
            assert!(!acks.differs_with_nothing_to_send(&1));
        }
        acks.note(&1, 6); // an acknowledgement starts the count again
        for _ in 1..MAX_EMPTY_DIFFERENCES {
            assert!(!acks.differs_with_nothing_to_send(&1));
        }
        assert!(acks.differs_with_nothing_to_send(&1));
        assert_eq!(acks.held_by(&1), None);
    }

    #[test]
    fn peer_acknowledgements_only_grow_and_the_oldest_peer_makes_room() {
        let mut acks = PeerAcks::default();
        acks.note(&1u32, 5);
        acks.note(&1u32, 3);
        assert_eq!(acks.held_by(&1), Some(5));
        for p in 2..=PEER_ACKS as u32 {
            acks.note(&p, 10);
        }
        assert_eq!(acks.held_by_all(), Some(5));
        acks.note(&1000, 10); // full: peer 1, noted longest ago, goes
        assert_eq!(acks.held_by(&1), None);
        assert_eq!(acks.held_by_all(), Some(10));
        acks.forget(&1000);
        assert_eq!(acks.held_by(&1000), None);
    }
}
