//! Dissemination: rumors piggybacked on every packet, each retransmitted a bounded number of
//! times.
//!
//! Three queues: membership rumors (keyed by member, so newer news about a member replaces the
//! older), user broadcasts (keyed by origin and id) and fresh key/value updates (keyed by
//! owner and version; anti-entropy repairs whatever they miss). When packing a packet, user broadcasts
//! are guaranteed `broadcast_share` of the piggyback space whenever any are pending, so a burst
//! of membership changes never starves them, and vice versa.

mod queue;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use compact_str::CompactString;
use hashbrown::{HashMap, HashSet};

pub use queue::{retransmit_limit, Priority, RumorQueue};

/// Key of the node's own record in the membership queue.
pub(crate) const SELF_KEY: u32 = u32::MAX;

/// How long a broadcast id is remembered for duplicate suppression.
const SEEN_TTL: Duration = Duration::from_secs(120);
/// Most broadcast ids remembered at once.
const SEEN_MAX: usize = 65_536;

/// A queued user broadcast.
#[derive(Debug, Clone)]
pub(crate) struct QueuedBroadcast {
    pub payload: Vec<u8>,
}

/// Both rumor queues and the duplicate filter for broadcasts.
#[derive(Debug)]
pub(crate) struct Dissemination {
    /// Membership rumors by member slot ([`SELF_KEY`] for the node itself).
    pub members: RumorQueue<u32>,
    /// User broadcasts by (origin, id).
    pub broadcasts: RumorQueue<(CompactString, u64)>,
    pub payloads: HashMap<(CompactString, u64), QueuedBroadcast, ahash::RandomState>,
    /// Fresh key/value updates by (owner, version); the update itself is read from the store.
    pub states: RumorQueue<(CompactString, u64)>,
    /// CRDT deltas by (object, rumor id); the deltas themselves are kept by the CRDT layer.
    pub crdts: RumorQueue<(CompactString, u64)>,
    seen: HashSet<(CompactString, u64), ahash::RandomState>,
    seen_order: VecDeque<(Instant, (CompactString, u64))>,
    /// Id of the next broadcast this node originates.
    pub next_broadcast_id: u64,
}

impl Dissemination {
    /// Queues of at most `capacity` rumors each; `keys` seed the hash tables so that keys from
    /// the network cannot be chosen to collide.
    pub fn new(capacity: usize, keys: [u64; 4]) -> Self {
        let hasher = || ahash::RandomState::with_seeds(keys[0], keys[2], keys[1], keys[3]);
        Dissemination {
            members: RumorQueue::new(capacity, keys),
            broadcasts: RumorQueue::new(capacity, keys),
            payloads: HashMap::with_hasher(hasher()),
            states: RumorQueue::new(capacity, keys),
            crdts: RumorQueue::new(capacity, keys),
            seen: HashSet::with_hasher(hasher()),
            seen_order: VecDeque::new(),
            next_broadcast_id: 0,
        }
    }

    /// Numbers this node's broadcasts from `start + 1` (a point of its own for each life,
    /// below 2^48).
    pub fn numbering_broadcasts_after(mut self, start: u64) -> Self {
        self.next_broadcast_id = start;
        self
    }

    /// Remembers a broadcast id; returns false if it was already seen (a duplicate).
    pub fn first_sighting(&mut self, now: Instant, key: &(CompactString, u64)) -> bool {
        while let Some((at, _)) = self.seen_order.front() {
            if now.saturating_duration_since(*at) < SEEN_TTL && self.seen_order.len() < SEEN_MAX {
                break;
            }
            if let Some((_, old)) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        if !self.seen.insert(key.clone()) {
            return false;
        }
        self.seen_order.push_back((now, key.clone()));
        true
    }

    /// Queues a user broadcast for retransmission.
    pub fn queue_broadcast(&mut self, key: (CompactString, u64), payload: Vec<u8>) {
        if let Some(evicted) = self.broadcasts.push(key.clone(), Priority::Routine) {
            self.payloads.remove(&evicted);
        }
        self.payloads.insert(key, QueuedBroadcast { payload });
    }

    /// Records a transmission of a broadcast, forgetting its payload once retired.
    pub fn broadcast_sent(&mut self, key: &(CompactString, u64), limit: u32) {
        self.broadcasts.sent(key, limit);
        if !self.broadcasts.contains(key) {
            self.payloads.remove(key);
        }
    }
}

impl<A: crate::membership::table::Address> crate::node::Node<A> {
    /// A gossip round: if any rumor is pending, send a packet of rumors to `gossip_fanout`
    /// random members.
    pub(crate) fn gossip_tick(&mut self) {
        if self.dissemination.members.is_empty()
            && self.dissemination.broadcasts.is_empty()
            && self.dissemination.states.is_empty()
            && self.dissemination.crdts.is_empty()
        {
            return;
        }
        for slot in self.pick_members(self.config.gossip_fanout, None) {
            if let Some(m) = self.members.get(slot) {
                let dest = m.addr.clone();
                self.outbox.push_back(crate::node::Outgoing { dest, messages: Vec::new(), piggyback: true });
            }
        }
    }
}
