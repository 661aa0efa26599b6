//! Replicating named CRDT objects between nodes.
//!
//! - An update's delta is joined locally and spreads as a `CrdtDelta` rumor piggybacked like
//!   membership news (`state_retransmit_mult`); a receiver whose state it changed passes it
//!   on, one it did not change stops there. Deltas of one object queued together are joined
//!   into one rumor while it fits a datagram.
//! - Anti-entropy repairs what rumors missed, riding on the key/value exchange's timer: a
//!   `CrdtSyn` hash of every object's state on a probe ping (in sync: one number), then on a
//!   mismatch a digest page of (object, state hash). For each object whose hashes differ:
//!   - if the peer is known to hold everything up to some change of ours and the object's
//!     [`DeltaLog`] still reaches back there, the delta interval
//!     since (`CrdtInterval` parts, each acknowledged by a `CrdtAck`): what the peer lacks
//!     from us; nothing at all if nothing changed since (the difference is on the peer's
//!     side, and its own leg of the exchange repairs it);
//!   - otherwise, for a small object (up to four datagrams), its whole state in parts whose
//!     join is the state, sent as the interval of every change so far so that the peer's
//!     acknowledgements start the bookkeeping; for a large one, one hash per bucket first,
//!     then the buckets that differ (up to `state_sync_datagrams` datagrams per exchange, in
//!     both directions).
//!
//!   A peer is known to hold everything up to a change when it acknowledged every part of
//!   an interval ending there, or its state hash equalled ours then. Joins are idempotent and
//!   commute, so lost, duplicated or reordered pieces need no bookkeeping; an interval with a
//!   part lost is simply not counted, and the next exchange sends it again (grown).

use std::collections::BTreeMap;
use std::time::Instant;

use compact_str::CompactString;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::delta_log::{DeltaLog, Interval, PeerAcks, MAX_PARTS};
use super::signed::{CrdtAuthors, CrdtProof, ObjectProofs, ProvenPart, Refusal};
use super::{AnyCrdt, Crdt, CrdtError, CrdtKind, ReplicaId};
use crate::dissemination::Priority;
use crate::error::CommandError;
use crate::event::Event;
use crate::membership::table::Address;
use crate::node::{Node, Outgoing};
use crate::wire::Message;

/// Longest object name.
pub const MAX_OBJECT_NAME: usize = 128;

/// Buckets a large object is compared by (`CrdtBuckets` carries one hash each).
pub const BUCKETS: usize = 64;

/// Objects up to this many datagrams go whole when they differ (a bucket comparison costs a
/// round trip and a datagram of hashes, and saves little on a small object).
const WHOLE_STATE_DATAGRAMS: usize = 4;

/// With signed self-state, parts are first cut to this share of a datagram.
const SIGNED_PART_SHARE: usize = 6;

/// One object in a digest page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectDigest {
    /// The object's name.
    pub name: CompactString,
    /// Hash of its state's encoding (states are canonical: equal states hash alike).
    pub hash: u64,
}

/// A named replicated object as a node holds it.
#[derive(Debug, Clone)]
pub(crate) struct CrdtObject<A> {
    pub state: AnyCrdt,
    /// Hash of the state's encoding, computed when an exchange needs it (not on every
    /// delta: that would cost a whole encoding per rumor).
    pub hash: Option<u64>,
    /// Encoded length, computed when needed (cleared with `hash`).
    len: Option<usize>,
    /// Bucket hashes, computed when a bucket comparison needs them (cleared with `hash`).
    bucket_hashes: Option<Vec<u64>>,
    /// The object's recent changes, numbered, for delta intervals.
    log: DeltaLog,
    /// Per peer, the change of ours it is known to hold everything up to.
    acks: PeerAcks<A>,
    /// With signed self-state: the signatures of the state's claims.
    pub(crate) proofs: ObjectProofs,
}

impl<A: Clone + PartialEq> CrdtObject<A> {
    fn new(state: AnyCrdt) -> Self {
        CrdtObject {
            state,
            hash: None,
            len: None,
            bucket_hashes: None,
            log: DeltaLog::default(),
            acks: PeerAcks::default(),
            proofs: ObjectProofs::default(),
        }
    }

    /// Notes a change (`delta`, already joined into the state) in the log.
    fn changed(&mut self, delta: &AnyCrdt, max_log_bytes: usize) {
        self.hash = None;
        self.len = None;
        self.bucket_hashes = None;
        self.log.record(delta, max_log_bytes);
    }

    /// `peer` holds everything up to change `seq` of ours (`vouched`: it held our whole state
    /// then): remember it, and collect what every remembered peer holds.
    fn held_by(&mut self, peer: &A, seq: u64, vouched: bool) {
        self.acks.note(peer, seq.min(self.log.seq()), vouched);
        if let Some(all) = self.acks.held_by_all() {
            self.log.collect(all);
        }
    }

    /// What `peer`, whose state differs, needs from us, if the log can tell: `Some(None)` when
    /// it holds all our changes (the difference is on its side: its own interval repairs it),
    /// `Some(Some(..))` with the delta interval in parts of about `room` bytes and the number
    /// of its last change, `None` when we must send the state (the peer unknown, the log not
    /// reaching back, or its note unvouched for too long).
    fn interval_for(&mut self, peer: &A, room: usize) -> Option<Option<(Vec<AnyCrdt>, u64)>> {
        let held = self.acks.held_by(peer)?;
        if !self.acks.still_trusted_after_difference(peer) {
            return None;
        }
        match self.log.since(held) {
            Interval::NotCovered => None,
            Interval::Empty => Some(None),
            Interval::Changes(delta, seq) => Some(Some((delta.split(room), seq))),
        }
    }

    fn hash(&mut self) -> u64 {
        *self.hash.get_or_insert_with(|| state_hash(&self.state))
    }

    fn encoded_len(&mut self) -> usize {
        *self.len.get_or_insert_with(|| crate::wire::codec::encoded_len(&self.state))
    }

    fn bucket_hashes(&mut self) -> &[u64] {
        self.bucket_hashes.get_or_insert_with(|| self.state.bucket_hashes(BUCKETS))
    }
}

fn state_hash(state: &AnyCrdt) -> u64 {
    postcard::to_allocvec(state).map_or(0, |bytes| xxhash_rust::xxh3::xxh3_64(&bytes))
}

/// Rumors of CRDT deltas waiting for piggyback room.
#[derive(Debug, Default)]
pub(crate) struct CrdtRumors {
    /// Each queued rumor's message, encoded once (packets copy the bytes), by (object,
    /// rumor id).
    pub encoded: hashbrown::HashMap<(CompactString, u64), Vec<u8>>,
    /// Per object, the newest rumor not sent yet, with its delta, open for joining further
    /// deltas into (only these keep a decoded delta).
    pub open: hashbrown::HashMap<CompactString, (u64, AnyCrdt)>,
    pub next_id: u64,
    /// Bytes held in `encoded`, bounded by `Config::max_crdt_rumor_bytes`.
    bytes: usize,
}

impl CrdtRumors {
    fn put(&mut self, key: (CompactString, u64), message: Vec<u8>) {
        self.bytes += message.len();
        if let Some(old) = self.encoded.insert(key, message) {
            self.bytes -= old.len();
        }
    }

    /// Forgets a rumor (sent for the last time, or evicted).
    fn forget(&mut self, key: &(CompactString, u64)) {
        if let Some(old) = self.encoded.remove(key) {
            self.bytes -= old.len();
        }
        if self.open.get(&key.0).is_some_and(|(id, _)| *id == key.1) {
            self.open.remove(&key.0);
        }
    }
}

/// The CRDT objects of a node.
#[derive(Debug)]
pub(crate) struct Crdts<A> {
    pub objects: BTreeMap<CompactString, CrdtObject<A>>,
    /// Where the next digest page starts.
    pub cursor: CompactString,
    pub rumors: CrdtRumors,
    /// With signed self-state: who writes as each replica whose claims this node holds.
    pub authors: CrdtAuthors,
}

impl<A> Default for Crdts<A> {
    fn default() -> Self {
        Crdts {
            objects: BTreeMap::new(),
            cursor: CompactString::default(),
            rumors: CrdtRumors::default(),
            authors: CrdtAuthors::default(),
        }
    }
}

impl<A: Clone + PartialEq> Crdts<A> {
    /// Hash over every object (order-independent): what `CrdtSyn` carries.
    pub fn hash(&mut self) -> u64 {
        self.objects
            .iter_mut()
            .map(|(name, o)| xxhash_rust::xxh3::xxh3_64_with_seed(name.as_bytes(), o.hash()))
            .fold(0, |acc, h| acc ^ h)
    }

    /// Digest entries from `start` on, up to `budget` encoded bytes; with where the next page
    /// starts, if any is left.
    fn digest_from(&mut self, start: &str, budget: usize) -> (Vec<ObjectDigest>, Option<CompactString>) {
        let range = (std::ops::Bound::Included(start), std::ops::Bound::Unbounded);
        let entries = self
            .objects
            .range_mut::<str, _>(range)
            .map(|(name, o)| (name.clone(), ObjectDigest { name: name.clone(), hash: o.hash() }));
        crate::antientropy::digest_page(entries, budget)
    }
}

fn valid_object_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_OBJECT_NAME && !name.chars().any(char::is_control)
}

impl<A: Address> Node<A> {
    /// This node's replica id in CRDTs: its name and generation.
    pub fn replica_id(&self) -> ReplicaId {
        ReplicaId::new(&self.name, self.generation)
    }

    /// The replicated object `name`, if this node holds it and it is a `T`.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use gossip_core::{Config, Identity, Node};
    /// use gossip_core::crdt::PnCounter;
    /// # let mut node = Node::new(Config::local(), Identity { name: "a".into(), addr: 1u32, generation: 1 }, 7, Instant::now()).expect("valid config");
    /// node.update_crdt::<PnCounter>("requests", |c, me| c.increment(me, 2))?;
    /// assert_eq!(node.crdt::<PnCounter>("requests").map(|c| c.value()), Some(2));
    /// # Ok::<(), gossip_core::CommandError>(())
    /// ```
    pub fn crdt<T: Crdt>(&self, name: &str) -> Option<&T> {
        self.crdts.objects.get(name).and_then(|o| T::from_any(&o.state))
    }

    /// The names and types of the objects this node holds.
    pub fn crdt_objects(&self) -> impl Iterator<Item = (&str, CrdtKind)> + '_ {
        self.crdts.objects.iter().map(|(name, o)| (name.as_str(), o.state.kind()))
    }

    /// Updates object `name` (created empty if new): `mutate` gets the current state and this
    /// node's replica id and returns a delta (a mutator of the type), which is joined here and
    /// spread to every node. Returns the delta.
    pub fn update_crdt<T: Crdt>(
        &mut self,
        name: &str,
        mutate: impl FnOnce(&T, ReplicaId) -> T,
    ) -> Result<T, CommandError> {
        if self.self_state == crate::wire::MemberState::Left {
            return Err(CommandError::Left);
        }
        if !valid_object_name(name) {
            return Err(CrdtError::BadName(name.len()).into());
        }
        let existing = self.crdts.objects.get(name);
        if let Some(o) = existing {
            if o.state.kind() != T::KIND {
                let (actual, requested) = (o.state.kind(), T::KIND);
                return Err(CrdtError::WrongKind { name: name.into(), actual, requested }.into());
            }
        } else if self.crdts.objects.len() >= self.config.max_crdt_objects {
            return Err(CrdtError::TooManyObjects(self.config.max_crdt_objects).into());
        }
        let empty = T::default();
        let current = existing.and_then(|o| T::from_any(&o.state)).unwrap_or(&empty);
        let delta = mutate(current, self.replica_id());
        let any = delta.clone().into_any();
        let message = Message::<A>::CrdtDelta { object: name.into(), delta: any.clone(), proof: None };
        let len = crate::wire::codec::encoded_len(&message);
        let max = self.state_room();
        if len > max {
            return Err(CrdtError::DeltaTooLarge { len, max }.into());
        }
        if let Some(replica) = self.unsigned_writer(name, &any) {
            return Err(CrdtError::NotOwnWrite { replica }.into());
        }
        if self.signed.is_some() {
            // Signed, each smallest part must fit a datagram with its proof (in the room every
            // path leaves a part, the rumor's and anti-entropy's, at any relay: whose name in
            // the header may be longer than ours).
            let longer_relay = crate::config::MAX_NAME_LEN.saturating_sub(self.name.len());
            let room = max.saturating_sub(name.len() + 32 + longer_relay);
            for part in any.split(1) {
                let len = crate::wire::codec::encoded_len(&part).saturating_add(self.proof_bytes_bound(&part));
                if len > room {
                    return Err(CrdtError::DeltaTooLarge { len, max: room }.into());
                }
            }
        }
        let object = self.crdts.objects.entry(name.into()).or_insert_with(|| CrdtObject::new(AnyCrdt::empty(T::KIND)));
        if object.state.join(&any) == Some(true) {
            object.changed(&any, self.config.crdt_delta_log_bytes);
        }
        self.sign_own_crdt(name, &any);
        self.queue_crdt_rumor(name.into(), any);
        Ok(delta)
    }

    /// Queues a delta for piggybacking, joined into the object's open rumor (one not sent
    /// yet) while that stays small (a quarter of a datagram, so that rumors fit beside other
    /// traffic). With signing, the delta goes with its proof, in parts if it does not fit a
    /// datagram with it.
    fn queue_crdt_rumor(&mut self, object: CompactString, delta: AnyCrdt) {
        if self.config.state_retransmit_mult == 0 {
            return;
        }
        let room = self.state_room();
        let parts = self.prove_parts(&object, vec![delta], room.saturating_sub(object.len() + 16)).0;
        for (delta, proof) in parts {
            self.queue_proven_rumor(object.clone(), delta, proof, room / 4);
        }
    }

    fn queue_proven_rumor(&mut self, object: CompactString, delta: AnyCrdt, proof: Option<Box<CrdtProof>>, cap: usize) {
        let encode = |object: &CompactString, delta: &AnyCrdt, proof: Option<Box<CrdtProof>>| {
            let mut out = Vec::new();
            crate::wire::codec::encode_message(
                &mut out,
                &Message::<A>::CrdtDelta { object: object.clone(), delta: delta.clone(), proof },
            );
            out
        };
        let delta_len = crate::wire::codec::encoded_len(&delta).saturating_add(crate::wire::codec::encoded_len(&proof));
        if let Some(&(id, _)) = self.crdts.rumors.open.get(&object) {
            let key = (object.clone(), id);
            let held = self.crdts.rumors.encoded.get(&key).map(Vec::len);
            // A join is never larger than its two sides together (nor its proof).
            if held.is_some_and(|len| len.saturating_add(delta_len) <= cap) {
                if self.signed.is_some() {
                    // Joined into a copy, kept only if it can still be proven (the signatures of
                    // claims it supersedes may be gone): if not, the delta opens its own rumor.
                    let joined = self.crdts.rumors.open.get(&object).and_then(|(_, open)| {
                        let mut joined = open.clone();
                        joined.join(&delta).map(|_| joined)
                    });
                    if let Some(joined) = joined {
                        if let Ok(proof) = self.prove_crdt(&object, &joined) {
                            let message = encode(&object, &joined, proof);
                            self.crdts.rumors.put(key, message);
                            self.crdts.rumors.open.insert(object, (id, joined));
                            self.evict_crdt_rumors();
                            return;
                        }
                    }
                } else if let Some((_, open)) = self.crdts.rumors.open.get_mut(&object) {
                    if open.join(&delta).is_some() {
                        let message = encode(&object, open, None);
                        self.crdts.rumors.put(key, message);
                        self.evict_crdt_rumors();
                        return;
                    }
                }
            }
        }
        let rumors = &mut self.crdts.rumors;
        rumors.next_id += 1;
        let key = (object.clone(), rumors.next_id);
        let message = encode(&object, &delta, proof);
        rumors.put(key.clone(), message);
        rumors.open.insert(object, (rumors.next_id, delta));
        if let Some(evicted) = self.dissemination.crdts.push(key, Priority::Routine) {
            self.crdts.rumors.forget(&evicted);
        }
        self.evict_crdt_rumors();
    }

    /// Drops the least urgent rumors (sent most often, oldest) while their bytes exceed
    /// `max_crdt_rumor_bytes`: anti-entropy repairs what they would have carried. Under a
    /// storm of updates this bounds what every node holds in flight.
    fn evict_crdt_rumors(&mut self) {
        while self.crdts.rumors.bytes > self.config.max_crdt_rumor_bytes {
            let Some(victim) = self.dissemination.crdts.pop_least_urgent() else { break };
            self.crdts.rumors.forget(&victim);
            self.metrics.rumors_evicted += 1;
        }
    }

    /// A rumor was sent: no more deltas join it (each delta then gets the full count of
    /// transmissions, no more); once sent for the last time, its delta is forgotten.
    pub(crate) fn crdt_rumor_sent(&mut self, key: &(CompactString, u64)) {
        if self.crdts.rumors.open.get(&key.0).is_some_and(|(id, _)| *id == key.1) {
            self.crdts.rumors.open.remove(&key.0);
        }
        if !self.dissemination.crdts.contains(key) {
            self.crdts.rumors.forget(key);
        }
    }

    /// Joins a state (a delta, an interval or a piece) from a peer into object `name`.
    /// Objects of another type, malformed states and objects past the limit are refused and
    /// counted.
    fn join_remote(&mut self, name: CompactString, state: AnyCrdt, proof: Option<&CrdtProof>) -> Joined {
        if !valid_object_name(&name) || !state.is_well_formed() {
            self.metrics.crdt_refused += 1;
            return Joined::Refused;
        }
        if !self.crdts.objects.contains_key(&name) && self.crdts.objects.len() >= self.config.max_crdt_objects {
            self.metrics.crdt_refused += 1;
            return Joined::Refused;
        }
        if self.crdts.objects.get(&name).is_some_and(|o| o.state.kind() != state.kind()) {
            self.metrics.crdt_refused += 1;
            return Joined::Refused;
        }
        let verified = match self.verify_crdt(&name, &state, proof) {
            Ok(verified) => verified,
            Err(Refusal::Forged) => {
                self.metrics.forged_crdt_states += 1;
                return Joined::Refused;
            }
            Err(Refusal::TooManyAuthors) => {
                self.metrics.crdt_refused += 1;
                return Joined::Refused;
            }
        };
        let object =
            self.crdts.objects.entry(name.clone()).or_insert_with(|| CrdtObject::new(AnyCrdt::empty(state.kind())));
        // Only the parts that were new: a rumor that joined many deltas mostly carries what we
        // already hold, and passing that on again (or logging it) would multiply it.
        let Some(news) = object.state.join_news(&state) else {
            self.metrics.crdt_refused += 1; // another type than the object
            return Joined::Refused;
        };
        let Some(news) = news else {
            self.keep_crdt_proofs(&name, verified);
            return Joined::Unchanged;
        };
        object.changed(&news, self.config.crdt_delta_log_bytes);
        self.keep_crdt_proofs(&name, verified);
        self.events.push_back(Event::CrdtChanged { object: name });
        Joined::News(news)
    }

    pub(crate) fn on_crdt_delta(&mut self, object: CompactString, delta: AnyCrdt, proof: Option<&CrdtProof>) {
        if let Joined::News(news) = self.join_remote(object.clone(), delta, proof) {
            self.queue_crdt_rumor(object, news); // news to us: pass it on
        }
    }

    /// A delta interval from `from`: joined, and acknowledged so that the next interval
    /// starts after it.
    pub(crate) fn on_crdt_interval(
        &mut self,
        from: &A,
        object: CompactString,
        (send, part, parts): (u32, u8, u8),
        delta: AnyCrdt,
        proof: Option<&CrdtProof>,
    ) {
        if part >= parts || usize::from(parts) > MAX_PARTS {
            self.metrics.crdt_refused += 1;
            return;
        }
        if let Joined::Refused = self.join_remote(object.clone(), delta, proof) {
            return;
        }
        let message = Message::CrdtAck { object, send, part };
        self.outbox.push_back(Outgoing { dest: from.clone(), messages: vec![message], piggyback: false });
    }

    /// `from` acknowledged part `part` of our interval transmission `send`.
    pub(crate) fn on_crdt_ack(&mut self, from: &A, object: CompactString, send: u32, part: u8) {
        if let Some(o) = self.crdts.objects.get_mut(&object) {
            if let Some((seq, whole)) = o.acks.acked(from, send, part) {
                o.held_by(from, seq, whole);
            }
        }
    }

    /// Forgets what `peer` was known to hold (it died, left or restarted).
    pub(crate) fn crdt_forget_peer(&mut self, peer: &A) {
        for o in self.crdts.objects.values_mut() {
            o.acks.forget(peer);
        }
    }

    /// The opening hash, when there are objects to compare (a node without any learns of
    /// them from its peers' openings).
    pub(crate) fn crdt_syn(&mut self) -> Option<Message<A>> {
        (!self.crdts.objects.is_empty()).then(|| Message::CrdtSyn { hash: self.crdts.hash() })
    }

    pub(crate) fn on_crdt_syn(&mut self, from: &A, hash: u64) {
        if hash == self.crdts.hash() {
            // Same states: the peer holds every change we made so far.
            for o in self.crdts.objects.values_mut() {
                let seq = o.log.seq();
                o.held_by(from, seq, true);
            }
            return;
        }
        let start = self.crdts.cursor.clone();
        let (entries, end) = self.crdts.digest_from(&start, self.bulk_room());
        self.crdts.cursor = end.clone().unwrap_or_default();
        let message = Message::CrdtDigest { start, end, entries, reply: true };
        self.outbox.push_back(Outgoing { dest: from.clone(), messages: vec![message], piggyback: false });
    }

    pub(crate) fn on_crdt_digest(
        &mut self,
        from: &A,
        start: CompactString,
        end: Option<CompactString>,
        entries: Vec<ObjectDigest>,
        reply: bool,
    ) {
        let theirs: BTreeMap<&str, u64> = entries.iter().map(|d| (d.name.as_str(), d.hash)).collect();
        let Some(range) = crate::antientropy::name_range(start.as_str(), end.as_deref()) else { return };
        let mut differing: Vec<CompactString> = Vec::new();
        for (name, o) in self.crdts.objects.range_mut::<str, _>(range) {
            if theirs.get(name.as_str()) == Some(&o.hash()) {
                let seq = o.log.seq();
                o.held_by(from, seq, true); // the same state: the peer holds all our changes
            } else {
                differing.push(name.clone());
            }
        }
        // Objects that differ: a small one goes whole; for a large one, bucket hashes go first
        // (only on the first leg, the one that asks for a reply: the other side would
        // otherwise open the same comparison), and each side then sends the buckets that differ.
        // Which objects go first rotates, so a burst too small for all still covers each in turn.
        let room = self.bulk_room();
        let mut budget = self.config.state_sync_datagrams;
        let first = if differing.is_empty() { 0 } else { self.rng.random_range(0..differing.len()) };
        for name in differing.iter().cycle().skip(first).take(differing.len()) {
            if budget == 0 {
                break;
            }
            let piece_room = room.saturating_sub(name.len() + 32);
            let part_room = self.first_part_room(piece_room);
            let Some(object) = self.crdts.objects.get_mut(name) else { continue };
            let interval = object.interval_for(from, part_room);
            match interval {
                Some(None) => continue, // nothing the peer lacks from us
                Some(Some((parts, seq))) => {
                    let (parts, complete) = self.prove_parts(name, parts, piece_room);
                    if complete && parts.len() <= MAX_PARTS.min(budget) {
                        self.metrics.crdt_intervals_sent += 1;
                        self.send_crdt_interval(from, name, (seq, false), parts, &mut budget);
                        continue;
                    }
                }
                None => {}
            }
            let Some(object) = self.crdts.objects.get_mut(name) else { continue };
            if object.encoded_len() <= part_room * WHOLE_STATE_DATAGRAMS {
                // A small object goes whole: as the interval of every change so far, so that the
                // peer's acknowledgements tell what it holds from now on.
                let (pieces, seq) = (object.state.split(part_room), object.log.seq());
                let (pieces, complete) = self.prove_parts(name, pieces, piece_room);
                if complete && pieces.len() <= MAX_PARTS {
                    let sent = self.send_crdt_interval(from, name, (seq, true), pieces, &mut budget);
                    self.metrics.crdt_pieces_sent += sent;
                } else {
                    self.send_crdt_pieces(from, name, pieces, &mut budget);
                }
            } else if reply {
                let hashes = object.bucket_hashes().to_vec();
                budget -= 1;
                let message = Message::CrdtBuckets { object: name.clone(), hashes, reply: true };
                self.outbox.push_back(Outgoing { dest: from.clone(), messages: vec![message], piggyback: false });
            }
        }
        if reply {
            let (mine, cut) = self.crdts.digest_from(&start, room);
            let (mine, end) = crate::antientropy::reply_page(mine, cut, end, |d| d.name.as_str());
            let message = Message::CrdtDigest { start, end, entries: mine, reply: false };
            self.outbox.push_back(Outgoing { dest: from.clone(), messages: vec![message], piggyback: false });
        }
    }

    pub(crate) fn on_crdt_state(
        &mut self,
        _now: Instant,
        object: CompactString,
        piece: AnyCrdt,
        proof: Option<&CrdtProof>,
    ) {
        self.join_remote(object, piece, proof);
    }

    /// A peer's bucket hashes of a large object: send the buckets that differ (in pieces),
    /// and our hashes back if asked, so the peer sends us its differing ones.
    pub(crate) fn on_crdt_buckets(&mut self, from: &A, object: CompactString, hashes: Vec<u64>, reply: bool) {
        if hashes.len() != BUCKETS {
            self.metrics.crdt_refused += 1;
            return;
        }
        let room = self.bulk_room().saturating_sub(object.len() + 16);
        let part_room = self.first_part_room(room);
        let Some(mine) = self.crdts.objects.get_mut(&object) else {
            return; // unknown here: the peer's pieces will come when it compares our digest
        };
        let differing: Vec<usize> =
            mine.bucket_hashes().iter().zip(&hashes).enumerate().filter(|(_, (a, b))| a != b).map(|(i, _)| i).collect();
        let my_hashes = reply.then(|| mine.bucket_hashes().to_vec());
        let pieces: Vec<AnyCrdt> =
            mine.state.some_buckets(BUCKETS, &differing).iter().flat_map(|b| b.split(part_room)).collect();
        let pieces = self.prove_parts(&object, pieces, room).0;
        let mut budget = self.config.state_sync_datagrams;
        if let Some(hashes) = my_hashes {
            budget -= 1;
            let message = Message::CrdtBuckets { object: object.clone(), hashes, reply: false };
            self.outbox.push_back(Outgoing { dest: from.clone(), messages: vec![message], piggyback: false });
        }
        self.send_crdt_pieces(from, &object, pieces, &mut budget);
    }

    /// The size to first cut state into for pieces of `room` bytes: smaller with signing, as
    /// a signature per claim is most of a signed part ([`Node::prove_parts`] cuts again what
    /// is still too large).
    fn first_part_room(&self, room: usize) -> usize {
        if self.signed.is_some() {
            room / SIGNED_PART_SHARE
        } else {
            room
        }
    }

    /// Sends the parts (at most [`MAX_PARTS`]) of an interval up to change `seq` (`whole`: the
    /// whole state) while the burst allows, and notes it as sent so that acknowledgements of
    /// every part count. Returns the parts sent.
    fn send_crdt_interval(
        &mut self,
        to: &A,
        name: &CompactString,
        (seq, whole): (u64, bool),
        parts: Vec<ProvenPart>,
        budget: &mut usize,
    ) -> u64 {
        let mut sent = 0;
        let count = u8::try_from(parts.len().min(MAX_PARTS)).unwrap_or(u8::MAX);
        let Some(object) = self.crdts.objects.get_mut(name) else { return 0 };
        let send = object.acks.sent(to, seq, count, whole);
        for (part, (delta, proof)) in (0..count).zip(parts) {
            if *budget == 0 {
                break;
            }
            *budget -= 1;
            sent += 1;
            let message = Message::CrdtInterval { object: name.clone(), send, part, parts: count, delta, proof };
            self.outbox.push_back(Outgoing { dest: to.clone(), messages: vec![message], piggyback: false });
        }
        sent
    }

    /// Sends pieces of an object's state while the burst allows.
    fn send_crdt_pieces(&mut self, to: &A, object: &CompactString, pieces: Vec<ProvenPart>, budget: &mut usize) {
        for (piece, proof) in pieces {
            if *budget == 0 {
                break;
            }
            *budget -= 1;
            self.metrics.crdt_pieces_sent += 1;
            let message = Message::CrdtState { object: object.clone(), piece, proof };
            self.outbox.push_back(Outgoing { dest: to.clone(), messages: vec![message], piggyback: false });
        }
    }
}

/// What joining a peer's state did.
enum Joined {
    /// Refused (and counted): malformed, of another type, or past the object limit.
    Refused,
    /// Nothing new.
    Unchanged,
    /// These parts were new here.
    News(AnyCrdt),
}
