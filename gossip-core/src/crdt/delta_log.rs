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
        let Some(len) = postcard::experimental::serialized_size(delta).ok().filter(|_| max_bytes > 0) else {
            return self.drop_all();
        };
        let mut joined = false;
        if let Some(last) = self.entries.back_mut().filter(|l| l.len.saturating_add(len) <= COALESCE_BYTES) {
            if last.delta.join(delta).is_some() {
                let Ok(grown) = postcard::experimental::serialized_size(&last.delta) else {
                    return self.drop_all();
                };
                self.bytes = self.bytes.saturating_sub(last.len).saturating_add(grown);
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
            self.bytes = self.bytes.saturating_sub(oldest.len);
            self.dropped_through = oldest.last;
        }
    }

    /// Keeps nothing: every change so far is out of reach (a change that could not be kept
    /// must not be skipped by a later interval).
    fn drop_all(&mut self) {
        self.entries.clear();
        self.bytes = 0;
        self.dropped_through = self.seq;
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
                self.bytes = self.bytes.saturating_sub(e.len);
                self.dropped_through = e.last;
            }
        }
    }
}

/// Exchanges that may find an object different since the peer's note was last vouched for
/// (its state hash equalled ours, or it acknowledged a whole state), before the note is
/// dropped and the whole state sent again. Bounds the harm of a wrong note (a peer that lost
/// its state without our noticing, an acknowledgement forged on an unsealed cluster): while
/// a note says the peer holds everything, we send it only what changed since.
pub const MAX_DIFFERING_EXCHANGES: u8 = 4;

/// Most datagrams an interval may span (one acknowledgement bit each).
pub const MAX_PARTS: usize = 64;

/// What we know a peer holds.
#[derive(Debug, Clone)]
struct Note<A> {
    peer: A,
    /// The peer holds every change of ours up to this one.
    held: u64,
    /// When the note last moved (an ever-growing stamp): the oldest makes room.
    stamp: u64,
    /// Exchanges that found the object different since the note was vouched for.
    differing: u8,
}

/// An interval sent and not yet acknowledged in full.
#[derive(Debug, Clone)]
struct Unacked<A> {
    peer: A,
    /// Which transmission: acknowledgements of another one do not count.
    send: u32,
    seq: u64,
    parts: u8,
    /// Whether it was the whole state (an acknowledgement then vouches for the note).
    whole: bool,
    /// Bit `i`: part `i` acknowledged.
    acked: u64,
}

/// Per peer, the latest change of ours it is known to hold everything up to, and the interval
/// last sent to it until every part of it is acknowledged.
#[derive(Debug, Clone)]
pub struct PeerAcks<A> {
    notes: Vec<Note<A>>,
    stamp: u64,
    /// At most one per peer, at most [`PEER_ACKS`].
    unacked: Vec<Unacked<A>>,
    next_send: u32,
}

impl<A> Default for PeerAcks<A> {
    fn default() -> Self {
        PeerAcks { notes: Vec::new(), stamp: 0, unacked: Vec::new(), next_send: 0 }
    }
}

impl<A: PartialEq + Clone> PeerAcks<A> {
    /// What `peer` is known to hold everything up to, if anything.
    pub fn held_by(&self, peer: &A) -> Option<u64> {
        self.notes.iter().find(|n| &n.peer == peer).map(|n| n.held)
    }

    /// Notes that `peer` holds everything up to change `seq` (never moving back); `vouched`
    /// when we know it holds our whole state as of then (equal hashes, a whole state
    /// acknowledged), which restarts the count of [`MAX_DIFFERING_EXCHANGES`].
    pub fn note(&mut self, peer: &A, seq: u64, vouched: bool) {
        self.stamp += 1;
        if let Some(n) = self.notes.iter_mut().find(|n| &n.peer == peer) {
            n.held = n.held.max(seq);
            n.stamp = self.stamp;
            if vouched {
                n.differing = 0;
            }
            return;
        }
        if self.notes.len() >= PEER_ACKS {
            if let Some(oldest) = self.notes.iter().enumerate().min_by_key(|(_, n)| n.stamp).map(|(i, _)| i) {
                self.notes.swap_remove(oldest);
            }
        }
        self.notes.push(Note { peer: peer.clone(), held: seq, stamp: self.stamp, differing: 0 });
    }

    /// Forgets `peer` (it died, left or restarted: its state is no longer what it acknowledged).
    pub fn forget(&mut self, peer: &A) {
        self.notes.retain(|n| &n.peer != peer);
        self.unacked.retain(|u| &u.peer != peer);
    }

    /// An exchange with `peer` found the object different. Returns false when the note has
    /// gone unvouched for too long ([`MAX_DIFFERING_EXCHANGES`]): it is dropped, and the
    /// caller sends the whole state.
    pub fn still_trusted_after_difference(&mut self, peer: &A) -> bool {
        let Some(i) = self.notes.iter().position(|n| &n.peer == peer) else { return false };
        self.notes[i].differing = self.notes[i].differing.saturating_add(1);
        if self.notes[i].differing <= MAX_DIFFERING_EXCHANGES {
            return true;
        }
        self.notes.swap_remove(i);
        false
    }

    /// An interval up to change `seq` in `parts` parts (1 to [`MAX_PARTS`]) goes to `peer`
    /// (`whole`: it is the whole state); it replaces any earlier one still unacknowledged.
    /// Returns the transmission's id, which the parts and their acknowledgements carry.
    pub fn sent(&mut self, peer: &A, seq: u64, parts: u8, whole: bool) -> u32 {
        self.next_send = self.next_send.wrapping_add(1);
        self.unacked.retain(|u| &u.peer != peer);
        if self.unacked.len() >= PEER_ACKS {
            self.unacked.remove(0); // the oldest
        }
        self.unacked.push(Unacked { peer: peer.clone(), send: self.next_send, seq, parts, whole, acked: 0 });
        self.next_send
    }

    /// `peer` acknowledged part `part` of transmission `send`. Once every part of it has been,
    /// returns the interval's last change and whether it was the whole state (the peer then
    /// holds our changes up to there).
    pub fn acked(&mut self, peer: &A, send: u32, part: u8) -> Option<(u64, bool)> {
        let i = self.unacked.iter().position(|u| &u.peer == peer && u.send == send && part < u.parts)?;
        let u = &mut self.unacked[i];
        u.acked |= 1u64 << part.min(63);
        let all = if u.parts >= 64 { u64::MAX } else { (1u64 << u.parts) - 1 };
        if u.acked != all {
            return None;
        }
        let done = (u.seq, u.whole);
        self.unacked.swap_remove(i);
        Some(done)
    }

    /// The change every remembered peer holds (`None`: no peer remembered).
    pub fn held_by_all(&self) -> Option<u64> {
        self.notes.iter().map(|n| n.held).min()
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
    fn an_interval_counts_as_held_once_every_part_of_that_transmission_is_acknowledged() {
        let mut acks = PeerAcks::default();
        let send = acks.sent(&7u32, 10, 3, false);
        assert_eq!(acks.acked(&7, send, 0), None);
        assert_eq!(acks.acked(&7, send, 3), None, "no such part");
        assert_eq!(acks.acked(&7, send + 1, 1), None, "another transmission");
        assert_eq!(acks.acked(&8, send, 1), None, "another peer");
        assert_eq!(acks.acked(&7, send, 2), None);
        assert_eq!(acks.acked(&7, send, 2), None, "twice the same part");
        assert_eq!(acks.acked(&7, send, 1), Some((10, false)));
        assert_eq!(acks.acked(&7, send, 1), None, "done with");
        // The same interval sent again: acknowledgements of the first sending do not count.
        let first = acks.sent(&7, 11, 2, true);
        assert_eq!(acks.acked(&7, first, 0), None);
        let second = acks.sent(&7, 11, 2, true);
        assert_eq!(acks.acked(&7, first, 1), None);
        assert_eq!(acks.acked(&7, second, 1), None);
        assert_eq!(acks.acked(&7, second, 0), Some((11, true)));
    }

    #[test]
    fn a_note_unvouched_for_over_too_many_differing_exchanges_is_dropped() {
        let mut acks = PeerAcks::default();
        acks.note(&1u32, 5, true);
        for _ in 0..MAX_DIFFERING_EXCHANGES {
            assert!(acks.still_trusted_after_difference(&1));
        }
        acks.note(&1, 6, false); // an acknowledged delta interval does not vouch
        assert!(!acks.still_trusted_after_difference(&1));
        assert_eq!(acks.held_by(&1), None);
        acks.note(&1, 7, true);
        for _ in 0..MAX_DIFFERING_EXCHANGES {
            assert!(acks.still_trusted_after_difference(&1));
        }
        acks.note(&1, 8, true); // equal hashes, or a whole state acknowledged, do
        assert!(acks.still_trusted_after_difference(&1));
        assert!(!acks.still_trusted_after_difference(&2), "an unknown peer");
    }

    #[test]
    fn peer_acknowledgements_only_grow() {
        let mut acks = PeerAcks::default();
        acks.note(&1u32, 5, true);
        acks.note(&1u32, 3, true);
        assert_eq!(acks.held_by(&1), Some(5));
        for p in 2..=PEER_ACKS as u32 {
            acks.note(&p, 10, true);
        }
        assert_eq!(acks.held_by_all(), Some(5));
        acks.note(&1000, 10, true); // full: peer 1, noted longest ago, goes
        assert_eq!(acks.held_by(&1), None);
        assert_eq!(acks.held_by_all(), Some(10));
        acks.forget(&1000);
        assert_eq!(acks.held_by(&1000), None);
    }
}
