//! The replicated key/value state and its Scuttlebutt reconciliation.
//!
//! Each participant (a node, in one generation) owns keys; every write it makes gets the next
//! version of its own counter. Everybody holds, per participant, the highest version it has
//! merged *with nothing missing below it* (`max_version`). A digest lists those; a peer
//! answers a digest with the updates the other lacks, in version order, so merging them one
//! by one keeps `max_version` meaningful. Deletions are tombstones (versioned like values);
//! after a grace period they are collected, and `gc_version` remembers up to which version:
//! a peer whose `max_version` is below it may still hold a deleted key, so it gets the
//! participant's full state as a reset instead of a delta.
//!
//! With signed self-state every write carries its owner's signature, and the owner also signs
//! a *head* after each write: the SHA-256 of its live keys, values and versions. A delta that
//! holds every version after the receiver's (nothing can be left out) is merged at once. Any
//! other (a reset, a jump over superseded or collected versions, a piece continuing one)
//! builds a pending state that becomes visible only when a head signed by the owner vouches
//! for all of it: a rogue member can neither empty another's keys with a forged reset nor make
//! a node skip one of its writes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// Limits on what one participant may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvLimits {
    /// Most keys (tombstones included) per participant.
    pub max_keys: usize,
    /// Longest key, in bytes.
    pub max_key_len: usize,
    /// Largest value, in bytes.
    pub max_value_len: usize,
}

impl Default for KvLimits {
    /// 1,024 keys of up to 128 bytes, values up to 1,024 bytes (one update fits a datagram).
    fn default() -> Self {
        KvLimits { max_keys: 1024, max_key_len: 128, max_value_len: 1024 }
    }
}

/// A write refused by [`KvStore::set`] or [`KvStore::delete`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// Keys must not be empty.
    #[error("keys must not be empty")]
    EmptyKey,
    /// The key is longer than [`KvLimits::max_key_len`].
    #[error("key of {len} bytes is longer than the limit of {max}")]
    KeyTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The value is larger than [`KvLimits::max_value_len`].
    #[error("value of {len} bytes is larger than the limit of {max}")]
    ValueTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The participant holds [`KvLimits::max_keys`] keys already.
    #[error("this node already holds the limit of {max} keys")]
    TooManyKeys {
        /// The limit.
        max: usize,
    },
}

/// What one node knows of one participant: enough for a peer to tell what it lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantDigest {
    /// The participant's node name.
    pub node: CompactString,
    /// Its generation (a restart replaces the old generation's state).
    pub generation: u64,
    /// Every update of this generation up to this version has been merged.
    pub max_version: u64,
    /// Holds no key deleted at or below this version (tombstones collected here, or a reset
    /// received): a peer that collected tombstones up to it need not send a reset.
    pub gc_version: u64,
}

/// One key's value at a version; `None` is a deletion (tombstone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyUpdate {
    /// The key.
    pub key: CompactString,
    /// The value, or `None` if the key was deleted.
    #[serde(with = "serde_bytes")]
    pub value: Option<Vec<u8>>,
    /// The participant's version of this write.
    pub version: u64,
    /// With signed self-state: the participant's signature over this write.
    pub sig: Option<crate::wire::signing::Signature>,
}

/// With signed self-state: a participant's signature over the hash of its live keys at a
/// version (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHead {
    /// SHA-256 over the live keys in key order: each key, version and value, length-prefixed.
    pub root: [u8; 32],
    /// The participant's signature over (cluster label, name, generation, version, root).
    pub sig: crate::wire::signing::Signature,
}

/// Updates of one participant, in increasing version order, with no version left out between
/// `after` and the last one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantDelta {
    /// The participant.
    pub node: CompactString,
    /// Its generation.
    pub generation: u64,
    /// Replace everything held for this participant (the receiver may hold deleted keys
    /// whose tombstones are collected, or an older generation).
    pub reset: bool,
    /// The updates continue from this version (0 for a reset): the receiver must have merged
    /// everything up to it.
    pub after: u64,
    /// Once these updates are merged, the receiver holds everything up to this version (the
    /// last update's, or beyond it when the versions in between were collected tombstones).
    pub through: u64,
    /// The sender's collected-tombstone version: a reset makes it the receiver's too, and a
    /// receiver reset past it does not take updates from a sender behind it.
    pub gc_version: u64,
    /// The updates.
    #[serde(deserialize_with = "crate::wire::bounded::vec")]
    pub updates: Vec<KeyUpdate>,
    /// With signed self-state, on a piece that ends at the sender's latest version: the
    /// participant's signed head there, if the sender holds it.
    pub head: Option<SignedHead>,
}

impl ParticipantDelta {
    /// Whether every version from `after + 1` to `through` is here: merged onto a state
    /// complete at `after`, it gives the participant's state at `through`, with nothing left
    /// out. (Versions go missing legitimately when a later write superseded them or a
    /// tombstone was collected, and illegitimately when a sender leaves a write out.)
    fn is_gapless(&self) -> bool {
        let mut expect = self.after;
        for u in &self.updates {
            if u.version != expect.saturating_add(1) {
                return false;
            }
            expect = u.version;
        }
        self.through == expect
    }
}

/// A change merged into the store, for events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvChange {
    /// `node`'s `key` has a new value at `version`.
    Changed {
        /// The participant.
        node: CompactString,
        /// The key.
        key: CompactString,
        /// The version written.
        version: u64,
    },
    /// `node`'s `key` was deleted at `version` (0: dropped with an old generation or by a reset).
    Deleted {
        /// The participant.
        node: CompactString,
        /// The key.
        key: CompactString,
        /// The deletion's version.
        version: u64,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    value: Option<Vec<u8>>,
    version: u64,
    /// The owner's signature over this write, with signed self-state (boxed: most stores
    /// hold none).
    sig: Option<Box<crate::wire::signing::Signature>>,
    /// When this node learned of the deletion (tombstones only).
    deleted_at: Option<Instant>,
}

#[derive(Debug, Clone, Default)]
struct Participant {
    generation: u64,
    entries: BTreeMap<CompactString, Entry>,
    /// Version → key, for the updates after a version in order.
    by_version: BTreeMap<u64, CompactString>,
    max_version: u64,
    /// Tombstones up to this version have been collected.
    gc_version: u64,
    /// With signed self-state: the owner's signed head at this version (the latest one
    /// verified here).
    head: Option<(u64, SignedHead)>,
    /// With signed self-state: state being built from deltas not yet vouched for by a head.
    pending: Option<Box<Pending>>,
}

/// A participant's state built from deltas that a signed head has not vouched for yet.
#[derive(Debug, Clone)]
struct Pending {
    state: Participant,
    since: Instant,
}

/// How long a pending state may wait for the head that vouches for it: a peer that starts
/// one and never finishes must not hold the participant back for longer.
const PENDING_TTL: Duration = Duration::from_secs(30);

impl Participant {
    fn new(generation: u64) -> Self {
        Participant { generation, ..Participant::default() }
    }

    /// What this node tells peers it holds: the pending state's versions while there is one,
    /// so that a transfer in several pieces continues it.
    fn advertised(&self) -> &Participant {
        self.pending.as_ref().map_or(self, |q| &q.state)
    }

    /// SHA-256 of the live keys, in key order (what a signed head vouches for).
    fn root(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for (key, entry) in &self.entries {
            let Some(value) = &entry.value else { continue };
            h.update((key.len() as u64).to_le_bytes());
            h.update(key.as_bytes());
            h.update(entry.version.to_le_bytes());
            h.update((value.len() as u64).to_le_bytes());
            h.update(value);
        }
        h.finalize().into()
    }

    fn put(&mut self, key: CompactString, entry: Entry) {
        if let Some(old) = self.entries.get(&key) {
            self.by_version.remove(&old.version);
        }
        self.by_version.insert(entry.version, key.clone());
        self.max_version = self.max_version.max(entry.version);
        self.entries.insert(key, entry);
    }

    /// The signed head at `version`, if that is the one held.
    fn head_at(&self, version: u64) -> Option<SignedHead> {
        self.head.as_ref().filter(|(v, _)| *v == version).map(|(_, h)| h.clone())
    }

    fn update(&self, version: u64) -> Option<KeyUpdate> {
        let key = self.by_version.get(&version)?;
        let entry = self.entries.get(key)?;
        Some(KeyUpdate { key: key.clone(), value: entry.value.clone(), version, sig: entry.sig.as_deref().copied() })
    }
}

/// The replicated key/value state as one node holds it. Pure: times come in as arguments.
#[derive(Debug, Clone)]
pub struct KvStore {
    own: CompactString,
    limits: KvLimits,
    tombstone_grace: Duration,
    participants: BTreeMap<CompactString, Participant>,
    /// Updates of other participants refused for breaking the limits.
    rejected: u64,
    /// With signed self-state: pending states refused because the head did not vouch for them.
    unvouched: u64,
}

impl KvStore {
    /// The state of node `own` in `generation`, holding nothing yet. Tombstones are kept
    /// `tombstone_grace` after this node learned of them.
    pub fn new(own: &str, generation: u64, limits: KvLimits, tombstone_grace: Duration) -> Self {
        let mut participants = BTreeMap::new();
        participants.insert(CompactString::from(own), Participant::new(generation));
        KvStore { own: own.into(), limits, tombstone_grace, participants, rejected: 0, unvouched: 0 }
    }

    fn check_key(&self, key: &str) -> Result<(), KvError> {
        if key.is_empty() {
            return Err(KvError::EmptyKey);
        }
        if key.len() > self.limits.max_key_len {
            return Err(KvError::KeyTooLong { len: key.len(), max: self.limits.max_key_len });
        }
        Ok(())
    }

    fn own_mut(&mut self) -> &mut Participant {
        self.participants.entry(self.own.clone()).or_default()
    }

    /// Sets one of this node's keys; returns the version written.
    pub fn set(&mut self, key: &str, value: Vec<u8>) -> Result<u64, KvError> {
        self.check_key(key)?;
        if value.len() > self.limits.max_value_len {
            return Err(KvError::ValueTooLarge { len: value.len(), max: self.limits.max_value_len });
        }
        let max_keys = self.limits.max_keys;
        let own = self.own_mut();
        if !own.entries.contains_key(key) && own.entries.len() >= max_keys {
            return Err(KvError::TooManyKeys { max: max_keys });
        }
        let version = own.max_version + 1;
        own.put(key.into(), Entry { value: Some(value), version, sig: None, deleted_at: None });
        Ok(version)
    }

    /// Deletes one of this node's keys, leaving a tombstone; returns its version, or `None`
    /// if the key was not set.
    pub fn delete(&mut self, now: Instant, key: &str) -> Result<Option<u64>, KvError> {
        self.check_key(key)?;
        let own = self.own_mut();
        if own.entries.get(key).is_none_or(|e| e.value.is_none()) {
            return Ok(None);
        }
        let version = own.max_version + 1;
        own.put(key.into(), Entry { value: None, version, sig: None, deleted_at: Some(now) });
        Ok(Some(version))
    }

    /// This node's write at `version`, to be signed.
    pub(crate) fn own_update(&self, version: u64) -> Option<KeyUpdate> {
        self.participants.get(&self.own)?.update(version)
    }

    /// Attaches this node's signature to its write at `version`.
    pub(crate) fn sign_own(&mut self, version: u64, sig: crate::wire::signing::Signature) {
        let own = self.own_mut();
        let Some(key) = own.by_version.get(&version).cloned() else { return };
        if let Some(entry) = own.entries.get_mut(&key) {
            entry.sig = Some(Box::new(sig));
        }
    }

    /// Hash of this node's live keys, for its signed head.
    pub(crate) fn own_root(&self) -> [u8; 32] {
        self.participants.get(&self.own).map_or_else(|| Participant::default().root(), Participant::root)
    }

    /// Records this node's signed head at `version` (its latest write).
    pub(crate) fn set_own_head(&mut self, version: u64, head: SignedHead) {
        self.own_mut().head = Some((version, head));
    }

    /// Pending states refused because the owner's signed head did not vouch for them (a
    /// delta that left something out, or a forged reset).
    pub fn unvouched(&self) -> u64 {
        self.unvouched
    }

    /// `node`'s value of `key` and its version, if set (not deleted).
    pub fn get(&self, node: &str, key: &str) -> Option<(&[u8], u64)> {
        let entry = self.participants.get(node)?.entries.get(key)?;
        entry.value.as_deref().map(|v| (v, entry.version))
    }

    /// `node`'s keys with their values and versions, deleted ones left out.
    pub fn entries(&self, node: &str) -> impl Iterator<Item = (&str, &[u8], u64)> + '_ {
        self.participants
            .get(node)
            .into_iter()
            .flat_map(|p| p.entries.iter().filter_map(|(k, e)| e.value.as_deref().map(|v| (k.as_str(), v, e.version))))
    }

    /// Updates of other participants refused for breaking the limits (the participant's
    /// later updates wait, since versions must not be skipped).
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// What this node holds, per participant (participants that never wrote anything are
    /// left out: a cluster without keys keeps no per-member state).
    pub fn digest(&self) -> Vec<ParticipantDigest> {
        self.digest_from("", usize::MAX).0
    }

    fn digest_of(node: &CompactString, p: &Participant) -> Option<ParticipantDigest> {
        let p = p.advertised();
        (p.max_version > 0).then(|| ParticipantDigest {
            node: node.clone(),
            generation: p.generation,
            max_version: p.max_version,
            gc_version: p.gc_version,
        })
    }

    /// Order-independent hash of the digest: two stores holding the same versions of the
    /// same participants hash alike, so an exchange between stores in sync costs one number.
    pub fn digest_hash(&self) -> u64 {
        self.participants
            .iter()
            .filter_map(|(node, p)| Self::digest_of(node, p))
            .map(|d| {
                let mut buf = [0u8; 24];
                buf[..8].copy_from_slice(&d.generation.to_le_bytes());
                buf[8..16].copy_from_slice(&d.max_version.to_le_bytes());
                buf[16..].copy_from_slice(&d.gc_version.to_le_bytes());
                xxhash_rust::xxh3::xxh3_64_with_seed(d.node.as_bytes(), xxhash_rust::xxh3::xxh3_64(&buf))
            })
            .fold(0, |acc, h| acc ^ h)
    }

    /// The digest of the participants named `start` or later, in name order, up to `budget`
    /// encoded bytes; with the name where the next page starts, if any is left.
    pub fn digest_from(&self, start: &str, budget: usize) -> (Vec<ParticipantDigest>, Option<CompactString>) {
        let range = (std::ops::Bound::Included(start), std::ops::Bound::Unbounded);
        let entries = self
            .participants
            .range::<str, _>(range)
            .filter_map(|(node, p)| Self::digest_of(node, p).map(|d| (node.clone(), d)));
        super::digest_page(entries, budget)
    }

    /// `node`'s update of `version` as a one-update delta following `version - 1` (each write
    /// takes the owner's next version), if this store still holds it.
    pub fn update_delta(&self, node: &str, version: u64) -> Option<ParticipantDelta> {
        let p = self.participants.get(node)?;
        let update = p.update(version)?;
        Some(ParticipantDelta {
            node: node.into(),
            generation: p.generation,
            reset: false,
            after: version.saturating_sub(1),
            through: version,
            gc_version: p.gc_version,
            updates: vec![update],
            head: p.head_at(version),
        })
    }

    /// Highest version of `node` merged with nothing missing below it.
    pub fn max_version(&self, node: &str) -> u64 {
        self.participants.get(node).map_or(0, |p| p.advertised().max_version)
    }

    /// The membership layer saw `node` restart as `generation`: what its older generation
    /// wrote is gone (the new one starts empty, and an empty participant is never in a digest,
    /// so no delta would ever say so). Returns the keys dropped.
    pub fn new_generation(&mut self, node: &str, generation: u64) -> Vec<KvChange> {
        let Some(p) = self.participants.get_mut(node).filter(|p| p.generation < generation) else {
            return Vec::new();
        };
        let dropped = std::mem::take(&mut p.entries)
            .into_iter()
            .filter(|(_, e)| e.value.is_some())
            .map(|(key, _)| KvChange::Deleted { node: node.into(), key, version: 0 })
            .collect();
        *p = Participant::new(generation);
        dropped
    }

    /// Forgets a participant (a member that left or died and was reclaimed).
    pub fn forget(&mut self, node: &str) {
        if node != self.own {
            self.participants.remove(node);
        }
    }

    /// The updates a peer with digest `peer` lacks, at most `budget` bytes of them (as
    /// postcard encodes them): participants the peer is furthest behind on first, each one's
    /// updates in version order and cut, never skipped, where the budget runs out.
    pub fn deltas_for(&self, peer: &[ParticipantDigest], budget: usize) -> Vec<ParticipantDelta> {
        self.deltas_in_range(peer, "", None, budget)
    }

    /// Like [`KvStore::deltas_for`] for a digest page: only participants named from `start`
    /// up to (excluding) `end`, the range the page covers; in it, participants missing from
    /// the page are ones the peer lacks.
    pub fn deltas_in_range(
        &self,
        peer: &[ParticipantDigest],
        start: &str,
        end: Option<&str>,
        budget: usize,
    ) -> Vec<ParticipantDelta> {
        self.delta_pages(peer, start, end, budget, 1, 0).0.pop().unwrap_or_default()
    }

    /// What the peer lacks in the range, as up to `pages` messages of at most `budget`
    /// encoded bytes each, so that one exchange can move more than a datagram. A participant
    /// too large for what is left of a page continues on the next one: the piece there
    /// follows the previous piece's last version, so each message is a valid delta on its
    /// own, and a receiver that lost a piece refuses the later ones as a gap (no version is
    /// ever skipped) until a later exchange fills it. Participants equally far behind go in
    /// an order drawn from `salt`: peers that fill in a node at the same time then mostly
    /// send it different participants instead of the same ones. The flag says whether the
    /// page limit left something out.
    pub fn delta_pages(
        &self,
        peer: &[ParticipantDigest],
        start: &str,
        end: Option<&str>,
        budget: usize,
        pages: usize,
        salt: u64,
    ) -> (Vec<Vec<ParticipantDelta>>, bool) {
        let known: BTreeMap<&str, &ParticipantDigest> = peer.iter().map(|d| (d.node.as_str(), d)).collect();
        // (missing updates, node, reset, after)
        let mut wanted: Vec<(usize, &CompactString, bool, u64)> = Vec::new();
        let Some(range) = super::name_range(start, end) else { return (Vec::new(), false) };
        for (node, p) in self.participants.range::<str, _>(range) {
            if p.max_version == 0 {
                continue; // nothing written
            }
            let (reset, after) = match known.get(node.as_str()) {
                None => (true, 0),
                Some(d) if d.generation < p.generation => (true, 0),
                Some(d) if d.generation > p.generation => continue,
                Some(d) if d.max_version >= p.max_version => continue,
                // The peer was reset past tombstones we have not seen collected, and is still
                // filling in: our older view of the deleted keys must not reach it.
                Some(d) if d.gc_version > p.gc_version && d.max_version < d.gc_version => continue,
                Some(d) if d.max_version < p.gc_version && d.gc_version < p.gc_version => (true, 0),
                Some(d) => (false, d.max_version),
            };
            // Behind even when nothing is left to send (the versions in between were
            // collected tombstones): an empty delta moves the peer's version up.
            let missing = p.by_version.range(after + 1..).count();
            wanted.push((missing, node, reset, after));
        }
        let tie = |node: &CompactString| xxhash_rust::xxh3::xxh3_64_with_seed(node.as_bytes(), salt);
        wanted.sort_by_cached_key(|&(missing, node, _, _)| (std::cmp::Reverse(missing), tie(node), node.clone()));
        // Participants still to send from, in order: each one's first piece before anyone's
        // second, so that a burst's datagrams depend on each other only when there are fewer
        // participants to send than datagrams (a lost or overtaken datagram then costs only
        // its own pieces).
        let mut queue: std::collections::VecDeque<(&CompactString, bool, u64)> =
            wanted.into_iter().map(|(_, node, reset, after)| (node, reset, after)).collect();
        let mut out: Vec<Vec<ParticipantDelta>> = Vec::new();
        let mut page = Vec::new();
        let mut room = budget;
        let mut cut_short = false;
        'participants: while let Some((node, reset, after)) = queue.pop_front() {
            let Some(p) = self.participants.get(node) else { continue };
            // Node name and its length, generation, flag, three versions (varints of at most
            // ten bytes) and the length of the list.
            // And the signed head, if any.
            let overhead = node.len() + 45 + if p.head.is_some() { 98 } else { 1 };
            let mut piece = ParticipantDelta {
                node: node.clone(),
                generation: p.generation,
                reset,
                after,
                through: after,
                gc_version: p.gc_version,
                updates: Vec::new(),
                head: None,
            };
            loop {
                if room < overhead {
                    // On to the next page, if there is one.
                    if !page.is_empty() {
                        out.push(std::mem::take(&mut page));
                    }
                    room = budget;
                    if out.len() >= pages || room < overhead {
                        cut_short = out.len() >= pages;
                        break 'participants;
                    }
                }
                let fresh_page = room == budget;
                let mut left = room - overhead;
                let mut cut = false;
                for version in p.by_version.range(piece.through + 1..).map(|(v, _)| *v) {
                    let Some(update) = p.update(version) else {
                        cut = true;
                        break;
                    };
                    let size = crate::wire::codec::encoded_len(&update);
                    if size > left {
                        cut = true; // never skip: later versions wait for the next piece
                        break;
                    }
                    left -= size;
                    piece.through = version;
                    piece.updates.push(update);
                }
                if !cut {
                    // Beyond the last update when the versions after it were collected.
                    piece.through = p.max_version;
                    piece.head = p.head_at(p.max_version);
                }
                let says_something = !piece.updates.is_empty() || piece.reset || piece.through > piece.after;
                if !says_something {
                    if fresh_page {
                        continue 'participants; // an update larger than a whole page
                    }
                    room = 0; // try again on a fresh page
                    continue;
                }
                room = if cut { 0 } else { left };
                if cut {
                    // The rest follows this piece, after everyone else's first one.
                    queue.push_back((node, false, piece.through));
                }
                page.push(piece);
                continue 'participants;
            }
        }
        if !page.is_empty() && out.len() < pages {
            out.push(page);
        }
        (out, cut_short)
    }

    /// Merges deltas from a peer; returns the changes, in order.
    pub fn apply(&mut self, now: Instant, deltas: Vec<ParticipantDelta>) -> Vec<KvChange> {
        let mut changes = Vec::new();
        for delta in deltas {
            if delta.node == self.own {
                continue; // our own state is ours to write
            }
            let node = delta.node.clone();
            let p = self.participants.entry(node.clone()).or_insert_with(|| Participant::new(delta.generation));
            merge(&self.limits, &mut self.rejected, p, delta, now, &mut changes);
            self.drop_if_empty(&node);
        }
        changes
    }

    /// Forgets a participant that holds nothing (a delta that brought nothing must not leave
    /// an empty entry behind).
    fn drop_if_empty(&mut self, node: &str) {
        let empty = self
            .participants
            .get(node)
            .is_some_and(|p| p.max_version == 0 && p.gc_version == 0 && p.entries.is_empty() && p.pending.is_none());
        if empty && node != self.own {
            self.participants.remove(node);
        }
    }

    /// Like [`KvStore::apply`], with signed self-state (each update's signature already
    /// checked): `verify(node, generation, version, head)` says whether `head` carries the
    /// participant's valid signature. A delta holding every version after ours is merged at
    /// once; any other builds a pending state, visible once a verified head vouches for it.
    pub(crate) fn apply_vouched(
        &mut self,
        now: Instant,
        deltas: Vec<ParticipantDelta>,
        verify: &mut dyn FnMut(&str, u64, u64, &SignedHead) -> bool,
    ) -> Vec<KvChange> {
        let mut changes = Vec::new();
        for mut delta in deltas {
            if delta.node == self.own {
                continue;
            }
            let node = delta.node.clone();
            let p = self.participants.entry(node.clone()).or_insert_with(|| Participant::new(delta.generation));
            if delta.generation < p.generation {
                continue;
            }
            if p.pending.as_ref().is_some_and(|q| now.saturating_duration_since(q.since) >= PENDING_TTL) {
                p.pending = None; // its head never came: start over from what is vouched for
            }
            let head = delta.head.take();
            let fresh = delta.reset || delta.generation > p.generation;
            let base_max = if fresh { 0 } else { p.max_version };
            let complete = delta.after <= base_max && delta.through >= base_max && delta.is_gapless();
            if (fresh || p.pending.is_none()) && complete {
                // Every version after ours: nothing can have been left out.
                let through = delta.through;
                p.pending = None;
                merge(&self.limits, &mut self.rejected, p, delta, now, &mut changes);
                if let Some(h) = head.filter(|h| p.max_version == through && verify(&node, p.generation, through, h)) {
                    if p.root() == h.root {
                        p.head = Some((through, h));
                    }
                }
                self.drop_if_empty(&node);
                continue;
            }
            let mut pending = match p.pending.take() {
                Some(q) if !fresh && q.state.generation == delta.generation => *q,
                _ if fresh => Pending { state: Participant::new(delta.generation), since: now },
                _ => Pending { state: Participant { pending: None, ..p.clone() }, since: now },
            };
            if head.is_none() {
                // Only a head may vouch for versions beyond the last update.
                delta.through = delta.updates.last().map_or(delta.after, |u| u.version).max(delta.after);
            }
            let through = delta.through;
            merge(&self.limits, &mut self.rejected, &mut pending.state, delta, now, &mut Vec::new());
            match head {
                Some(h) if pending.state.max_version == through => {
                    let state = pending.state;
                    if state.root() == h.root && verify(&node, state.generation, through, &h) {
                        changes.extend(diff(&node, p, &state));
                        *p = state;
                        p.head = Some((through, h));
                    } else {
                        self.unvouched += 1; // and the pending state goes
                    }
                }
                _ => p.pending = Some(Box::new(pending)),
            }
            self.drop_if_empty(&node);
        }
        changes
    }

    /// Collects tombstones older than the grace period; peers that have not merged up to them
    /// since will get a reset of that participant.
    pub fn collect_tombstones(&mut self, now: Instant) {
        let grace = self.tombstone_grace;
        for p in self.participants.values_mut() {
            let expired: Vec<(CompactString, u64)> = p
                .entries
                .iter()
                .filter(|(_, e)| e.deleted_at.is_some_and(|at| now.saturating_duration_since(at) >= grace))
                .map(|(k, e)| (k.clone(), e.version))
                .collect();
            for (key, version) in expired {
                p.entries.remove(&key);
                p.by_version.remove(&version);
                p.gc_version = p.gc_version.max(version);
            }
        }
    }
}

/// Merges one delta into `p` (what [`KvStore::apply`] does per participant), pushing the
/// changes.
fn merge(
    limits: &KvLimits,
    rejected: &mut u64,
    p: &mut Participant,
    delta: ParticipantDelta,
    now: Instant,
    changes: &mut Vec<KvChange>,
) {
    if delta.generation < p.generation {
        return;
    }
    let replace = delta.reset || delta.generation > p.generation;
    if replace {
        if !delta.reset && delta.after > 0 {
            return; // a newer generation, but not from its start: wait for a reset
        }
        for (key, entry) in std::mem::take(&mut p.entries) {
            if entry.value.is_some() {
                changes.push(KvChange::Deleted { node: delta.node.clone(), key, version: 0 });
            }
        }
        *p = Participant::new(delta.generation);
        p.gc_version = delta.gc_version;
    } else if p.max_version < delta.after {
        return; // a gap: what lies between would be missing
    } else if delta.gc_version > p.gc_version && p.max_version < delta.gc_version {
        // Tombstones we never merged have been collected since: only a reset may bring
        // us on (this is a continuation of a reset whose first piece we missed, or a
        // rumor), or the deleted keys we still hold would stay.
        return;
    } else if delta.gc_version < p.gc_version && p.max_version < p.gc_version {
        // We were reset past collected tombstones and are still filling in; a sender
        // that has not seen them collected may hold the deleted keys: only the owner's
        // view (or one as recent) may fill the gap.
        return;
    }
    let mut complete = true;
    for update in delta.updates {
        if update.version <= p.max_version {
            continue; // had it
        }
        let new_key = !p.entries.contains_key(&update.key);
        let too_big = update.key.is_empty()
            || update.key.len() > limits.max_key_len
            || update.value.as_ref().is_some_and(|v| v.len() > limits.max_value_len)
            || (new_key && p.entries.len() >= limits.max_keys);
        if too_big {
            *rejected += 1;
            complete = false;
            break; // and not the later versions either: no gaps
        }
        let change = match update.value {
            Some(_) => KvChange::Changed { node: delta.node.clone(), key: update.key.clone(), version: update.version },
            None => KvChange::Deleted { node: delta.node.clone(), key: update.key.clone(), version: update.version },
        };
        let was_set = p.entries.get(&update.key).is_some_and(|e| e.value.is_some());
        let deleted_at = update.value.is_none().then_some(now);
        if update.value.is_some() || was_set {
            changes.push(change);
        }
        let sig = update.sig.map(Box::new);
        p.put(update.key, Entry { value: update.value, version: update.version, sig, deleted_at });
    }
    if complete {
        p.max_version = p.max_version.max(delta.through);
    }
}

/// The changes that replacing `old` by `new` makes visible (a pending state committed).
fn diff(node: &CompactString, old: &Participant, new: &Participant) -> Vec<KvChange> {
    let mut changes = Vec::new();
    for (key, entry) in &new.entries {
        let before = old.entries.get(key);
        if before.is_some_and(|b| b.version == entry.version && old.generation == new.generation) {
            continue;
        }
        let was_set = before.is_some_and(|b| b.value.is_some());
        match entry.value {
            Some(_) => changes.push(KvChange::Changed { node: node.clone(), key: key.clone(), version: entry.version }),
            None if was_set => {
                changes.push(KvChange::Deleted { node: node.clone(), key: key.clone(), version: entry.version })
            }
            None => {}
        }
    }
    for (key, entry) in &old.entries {
        if entry.value.is_some() && !new.entries.contains_key(key) {
            changes.push(KvChange::Deleted { node: node.clone(), key: key.clone(), version: 0 });
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(60);

    fn store(name: &str) -> KvStore {
        KvStore::new(name, 1, KvLimits::default(), GRACE)
    }

    /// Exchanges deltas both ways with `budget` bytes per message until nothing moves.
    fn sync(a: &mut KvStore, b: &mut KvStore, now: Instant, budget: usize) -> usize {
        let mut rounds = 0;
        loop {
            let to_b = a.deltas_for(&b.digest(), budget);
            let to_a = b.deltas_for(&a.digest(), budget);
            if to_a.is_empty() && to_b.is_empty() {
                return rounds;
            }
            b.apply(now, to_b);
            a.apply(now, to_a);
            rounds += 1;
            assert!(rounds < 10_000, "no progress");
        }
    }

    #[test]
    fn writes_are_versioned_and_limited() {
        let now = Instant::now();
        let mut a = KvStore::new("a", 1, KvLimits { max_keys: 2, max_key_len: 4, max_value_len: 3 }, GRACE);
        assert_eq!(a.set("k1", b"v".to_vec()), Ok(1));
        assert_eq!(a.set("k1", b"w".to_vec()), Ok(2));
        assert_eq!(a.get("a", "k1"), Some((&b"w"[..], 2)));
        assert_eq!(a.set("", vec![]), Err(KvError::EmptyKey));
        assert_eq!(a.set("long-key", vec![]), Err(KvError::KeyTooLong { len: 8, max: 4 }));
        assert_eq!(a.set("k2", vec![0; 4]), Err(KvError::ValueTooLarge { len: 4, max: 3 }));
        assert_eq!(a.set("k2", vec![]), Ok(3));
        assert_eq!(a.set("k3", vec![]), Err(KvError::TooManyKeys { max: 2 }));
        assert_eq!(a.delete(now, "k1"), Ok(Some(4)));
        assert_eq!(a.delete(now, "k1"), Ok(None), "already deleted");
        assert_eq!(a.get("a", "k1"), None);
    }

    #[test]
    fn two_stores_converge_through_small_deltas() {
        let now = Instant::now();
        let (mut a, mut b) = (store("a"), store("b"));
        for i in 0..50 {
            a.set(&format!("key{i}"), vec![i as u8; 40]).expect("set");
        }
        b.set("x", b"1".to_vec()).expect("set");
        let rounds = sync(&mut a, &mut b, now, 300);
        assert!(rounds > 5, "a 300-byte budget splits 50 updates over rounds: {rounds}");
        assert_eq!(b.entries("a").count(), 50);
        assert_eq!(a.get("b", "x"), Some((&b"1"[..], 1)));
        assert_eq!(a.digest(), b.digest());
    }

    #[test]
    fn digest_pages_cover_every_participant_once_in_name_order() {
        let now = Instant::now();
        let mut hub = store("hub");
        for i in 0..200 {
            let mut other = store(&format!("node-{i:03}"));
            other.set("k", vec![1]).expect("set");
            hub.apply(now, other.deltas_for(&hub.digest(), 10_000));
        }
        let mut seen = Vec::new();
        let mut start = CompactString::default();
        let mut pages = 0;
        loop {
            let (page, next) = hub.digest_from(&start, 300);
            let size: usize = page.iter().map(|d| postcard::experimental::serialized_size(d).expect("size")).sum();
            assert!(size <= 300, "page of {size} bytes");
            assert!(page.iter().all(|d| d.node >= start && next.as_ref().is_none_or(|n| d.node < *n)));
            seen.extend(page.into_iter().map(|d| d.node));
            pages += 1;
            match next {
                Some(n) => start = n,
                None => break,
            }
        }
        assert!(pages > 5, "{pages} pages");
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(seen, sorted, "in order, none twice");
        assert_eq!(seen.len(), 200, "every participant that wrote (not the hub, which wrote nothing)");
        // A delta for one page's range leaves the rest alone.
        let (_, next) = hub.digest_from("node-050", 300);
        let deltas = hub.deltas_in_range(&[], "node-050", next.as_deref(), 100_000);
        assert!(deltas.iter().all(|d| d.node.as_str() >= "node-050" && next.as_ref().is_none_or(|n| d.node < *n)));
        assert!(!deltas.is_empty());
    }

    #[test]
    fn a_delta_never_skips_a_version() {
        let (mut a, b) = (store("a"), store("b"));
        for i in 0..20 {
            a.set(&format!("k{i}"), vec![0; if i == 5 { 500 } else { 10 }]).expect("set");
        }
        let deltas = a.deltas_for(&b.digest(), 400);
        let versions: Vec<u64> = deltas[0].updates.iter().map(|u| u.version).collect();
        assert_eq!(versions, vec![1, 2, 3, 4, 5].into_iter().take(versions.len()).collect::<Vec<_>>());
        assert!(!versions.contains(&6), "the large version 6 did not fit, so nothing after it: {versions:?}");
    }

    #[test]
    fn delta_pages_fit_their_budget_and_continue_where_the_last_one_stopped() {
        let now = Instant::now();
        let mut writers: Vec<KvStore> = (0..3).map(|i| store(&format!("w{i}"))).collect();
        for (i, w) in writers.iter_mut().enumerate() {
            for k in 0..40 {
                w.set(&format!("key-{k}"), vec![i as u8; 30]).expect("set");
            }
        }
        let mut hub = store("hub");
        for w in &writers {
            hub.apply(now, w.deltas_for(&hub.digest(), usize::MAX));
        }
        let budget = 500;
        let (pages, cut_short) = hub.delta_pages(&[], "", None, budget, 100, 7);
        assert!(pages.len() > 3 && !cut_short, "{} pages", pages.len());
        for page in &pages {
            let size: usize = page.iter().map(|d| postcard::experimental::serialized_size(d).expect("size")).sum();
            assert!(size <= budget, "a page of {size} bytes");
        }
        // Every piece of a participant follows the previous one.
        let mut through: BTreeMap<CompactString, u64> = BTreeMap::new();
        for d in pages.iter().flatten() {
            assert_eq!(d.after, through.get(&d.node).copied().unwrap_or(0), "{}", d.node);
            assert_eq!(d.reset, d.after == 0);
            through.insert(d.node.clone(), d.through);
        }
        assert!(through.values().all(|&v| v == 40));
        // Delivering all pages but one: the lost piece's participant stops there, nothing
        // after it is merged, and a later exchange completes it.
        let mut fresh = store("fresh");
        for (i, page) in pages.iter().enumerate() {
            if i != 1 {
                fresh.apply(now, page.clone());
            }
        }
        let lost = &pages[1][0];
        assert_eq!(fresh.max_version(&lost.node), lost.after);
        assert!(fresh.get(&lost.node, &lost.updates[0].key).is_none_or(|(_, v)| v < lost.updates[0].version));
        for page in hub.delta_pages(&fresh.digest(), "", None, budget, 100, 7).0 {
            fresh.apply(now, page);
        }
        assert_eq!(fresh.digest_hash(), hub.digest_hash());
        // A page limit cuts the tail only.
        assert_eq!(hub.delta_pages(&[], "", None, budget, 2, 7), (pages[..2].to_vec(), true));
    }

    #[test]
    fn a_reset_continued_without_its_first_piece_is_refused() {
        let mut now = Instant::now();
        let (mut a, mut b) = (store("a"), store("b"));
        a.set("k1", vec![1; 6]).expect("set");
        a.set("gone", vec![]).expect("set");
        a.set("k2", vec![2; 41]).expect("set");
        b.apply(now, a.deltas_for(&b.digest(), 1000));
        a.delete(now, "gone").expect("delete");
        now += GRACE;
        a.collect_tombstones(now);
        a.set("k0", vec![0; 47]).expect("set");
        // b is behind the collected tombstone: a reset, cut in two pieces.
        let (pages, _) = a.delta_pages(&b.digest(), "", None, 108, 2, 0);
        assert_eq!(pages.len(), 2);
        assert!(pages[0][0].reset && !pages[1][0].reset && pages[1][0].after == b.max_version("a"));
        // The first piece is lost: the second follows b's version, but not its view of the
        // deleted key.
        b.apply(now, pages[1].clone());
        assert_eq!(b.max_version("a"), 3);
        b.apply(now, a.deltas_for(&b.digest(), 1000));
        assert!(b.get("a", "gone").is_none());
        assert_eq!(b.digest_hash(), a.digest_hash());
    }

    #[test]
    fn a_range_ending_before_it_starts_is_empty() {
        let mut a = store("a");
        a.set("k", vec![1]).expect("set");
        // From the network: a peer's `end` at or before its `start` must not panic.
        assert_eq!(a.delta_pages(&[], "b", Some("a"), 1000, 4, 0), (Vec::new(), false));
        assert_eq!(a.delta_pages(&[], "a", Some("a"), 1000, 4, 0), (Vec::new(), false));
    }

    #[test]
    fn the_most_stale_participant_goes_first() {
        let now = Instant::now();
        let (mut a, mut b, mut c) = (store("a"), store("b"), store("c"));
        a.set("one", vec![1]).expect("set");
        for i in 0..5 {
            b.set(&format!("k{i}"), vec![2]).expect("set");
        }
        // c learns a and b; a peer that knows nothing gets b's five updates first.
        let to_c = a.deltas_for(&c.digest(), 10_000);
        c.apply(now, to_c);
        let to_c = b.deltas_for(&c.digest(), 10_000);
        c.apply(now, to_c);
        let fresh = store("d");
        let deltas = c.deltas_for(&fresh.digest(), 10_000);
        let order: Vec<&str> = deltas.iter().map(|d| d.node.as_str()).collect();
        assert_eq!(order[0], "b", "{order:?}");
    }

    #[test]
    fn a_peer_away_longer_than_the_grace_gets_a_reset_not_the_deleted_key() {
        let t0 = Instant::now();
        let (mut a, mut b) = (store("a"), store("b"));
        a.set("doomed", vec![1]).expect("set");
        a.set("kept", vec![2]).expect("set");
        sync(&mut a, &mut b, t0, 10_000);
        assert!(b.get("a", "doomed").is_some());
        // b goes away; a deletes and, after the grace period, collects the tombstone.
        a.delete(t0, "doomed").expect("delete");
        let later = t0 + GRACE + Duration::from_secs(1);
        a.collect_tombstones(later);
        let deltas = a.deltas_for(&b.digest(), 10_000);
        assert!(deltas[0].reset, "b is behind the collected tombstone");
        let changes = b.apply(later, deltas);
        assert_eq!(b.get("a", "doomed"), None, "not resurrected");
        assert_eq!(b.get("a", "kept"), Some((&[2u8][..], 2)));
        assert!(changes.iter().any(|c| matches!(c, KvChange::Deleted { key, .. } if key == "doomed")));
        assert_eq!(a.digest(), b.digest());
    }

    #[test]
    fn a_new_generation_replaces_the_old_state() {
        let now = Instant::now();
        let (mut a, mut b) = (store("a"), store("b"));
        a.set("old", vec![1]).expect("set");
        sync(&mut a, &mut b, now, 10_000);
        let mut a2 = KvStore::new("a", 2, KvLimits::default(), GRACE);
        a2.set("new", vec![2]).expect("set");
        let changes = b.apply(now, a2.deltas_for(&b.digest(), 10_000));
        assert_eq!(b.get("a", "old"), None);
        assert_eq!(b.get("a", "new"), Some((&[2u8][..], 1)));
        assert!(changes.contains(&KvChange::Deleted { node: "a".into(), key: "old".into(), version: 0 }));
        // The old generation's deltas are ignored from now on.
        b.apply(now, a.deltas_for(&[], 10_000));
        assert_eq!(b.get("a", "old"), None);
    }

    #[test]
    fn oversized_updates_from_peers_are_refused_without_a_gap() {
        let now = Instant::now();
        let mut big = KvStore::new("a", 1, KvLimits { max_value_len: 100, ..KvLimits::default() }, GRACE);
        big.set("small", vec![0; 10]).expect("set");
        big.set("large", vec![0; 100]).expect("set");
        big.set("after", vec![0; 10]).expect("set");
        let mut strict = KvStore::new("b", 1, KvLimits { max_value_len: 50, ..KvLimits::default() }, GRACE);
        strict.apply(now, big.deltas_for(&strict.digest(), 10_000));
        assert!(strict.get("a", "small").is_some());
        assert!(strict.get("a", "after").is_none(), "nothing after the refused version");
        assert_eq!(strict.rejected(), 1);
        assert_eq!(strict.digest().iter().find(|d| d.node == "a").map(|d| d.max_version), Some(1));
    }

    // ----- signed self-state: deltas vouched for by the owner's signed head -----------------

    use crate::wire::signing::Keypair;

    const LABEL: &str = "test";

    /// The owner's store with writes signed as a node does (each write and the head after it).
    fn signed_write(owner: &mut KvStore, kp: &Keypair, key: &str, value: Option<&[u8]>, now: Instant) {
        let version = match value {
            Some(v) => owner.set(key, v.to_vec()).expect("set"),
            None => owner.delete(now, key).expect("delete").expect("was set"),
        };
        let update = owner.own_update(version).expect("written");
        let own = owner.own.clone();
        owner.sign_own(version, kp.sign_write(LABEL, &own, 1, &update));
        let root = owner.own_root();
        owner.set_own_head(version, SignedHead { root, sig: kp.sign_head(LABEL, &own, 1, version, &root) });
    }

    fn verifier(kp: &Keypair) -> impl FnMut(&str, u64, u64, &SignedHead) -> bool {
        let key = kp.public_key();
        let mut memo = crate::wire::signing::SignatureMemo::default();
        move |node, generation, version, head| {
            memo.verifies(
                &key,
                &crate::wire::signing::kv_head_bytes(LABEL, node, generation, version, &head.root),
                &head.sig,
            )
        }
    }

    fn visible(s: &KvStore, node: &str) -> Vec<(String, Vec<u8>, u64)> {
        s.entries(node).map(|(k, v, ver)| (k.to_owned(), v.to_vec(), ver)).collect()
    }

    /// `a` wrote x, y, then x again (its first version superseded), and deleted nothing.
    fn owner_with_a_superseded_write(kp: &Keypair, now: Instant) -> KvStore {
        let mut a = store("a");
        signed_write(&mut a, kp, "x", Some(b"1"), now);
        signed_write(&mut a, kp, "y", Some(b"2"), now);
        signed_write(&mut a, kp, "x", Some(b"3"), now);
        a
    }

    #[test]
    fn a_delta_with_every_version_is_merged_at_once_and_one_with_gaps_once_vouched_for() {
        let now = Instant::now();
        let kp = Keypair::from_secret([7; 32]);
        let mut verify = verifier(&kp);
        let a = owner_with_a_superseded_write(&kp, now);
        // Version 1 was superseded: a's delta holds 2 and 3 only, with its head at 3.
        let mut b = store("b");
        let deltas = a.deltas_for(&b.digest(), 10_000);
        assert!(deltas[0].head.is_some() && !deltas[0].is_gapless());
        b.apply_vouched(now, deltas, &mut verify);
        assert_eq!(visible(&b, "a"), visible(&a, "a"), "the head vouches for the gap");
        // Cut in pieces of one update each: nothing shows until the last piece's head.
        let mut c = store("c");
        // (144 bytes of participant and head, 72 of one signed update.)
        for piece in a.deltas_for(&c.digest(), 230).into_iter().take(1) {
            assert!(piece.head.is_none(), "not the last piece");
            c.apply_vouched(now, vec![piece], &mut verify);
        }
        assert!(visible(&c, "a").is_empty(), "pending until vouched for");
        assert_eq!(c.max_version("a"), 2, "but advertised, so the transfer continues");
        sync_vouched(&a, &mut c, now, 230, &mut verify);
        assert_eq!(visible(&c, "a"), visible(&a, "a"));
        // A fresh write with nothing left out is merged at once, head or not.
        let mut a = a;
        signed_write(&mut a, &kp, "z", Some(b"4"), now);
        let mut rumor = a.update_delta("a", 4).expect("held");
        rumor.head = None;
        b.apply_vouched(now, vec![rumor], &mut verify);
        assert_eq!(visible(&b, "a"), visible(&a, "a"));
    }

    /// Sends `to` what `from` holds that it lacks until nothing moves.
    fn sync_vouched(
        from: &KvStore,
        to: &mut KvStore,
        now: Instant,
        budget: usize,
        verify: &mut dyn FnMut(&str, u64, u64, &SignedHead) -> bool,
    ) {
        for _ in 0..100 {
            let deltas = from.deltas_for(&to.digest(), budget);
            if deltas.is_empty() {
                return;
            }
            to.apply_vouched(now, deltas, verify);
        }
        panic!("no progress");
    }

    #[test]
    fn a_forged_reset_or_a_left_out_write_never_shows() {
        let now = Instant::now();
        let kp = Keypair::from_secret([7; 32]);
        let mut verify = verifier(&kp);
        let a = owner_with_a_superseded_write(&kp, now);
        let mut b = store("b");
        sync_vouched(&a, &mut b, now, 10_000, &mut verify);
        let honest = visible(&b, "a");
        assert_eq!(honest.len(), 2);
        // A reset holding only x (genuine, signed by a), with a's genuine head at 3 replayed:
        // y is left out, so the head does not match and the whole reset is refused.
        let mut forged = a.deltas_for(&[], 10_000).remove(0);
        forged.updates.retain(|u| u.key == "x");
        b.apply_vouched(now, vec![forged.clone()], &mut verify);
        assert_eq!(visible(&b, "a"), honest);
        assert_eq!(b.unvouched(), 1);
        // Without the head it waits, pending, and never shows; its head never comes, and
        // after a while the pending state goes and b is back where it was.
        forged.head = None;
        b.apply_vouched(now, vec![forged], &mut verify);
        assert_eq!(visible(&b, "a"), honest);
        let later = now + PENDING_TTL;
        b.apply_vouched(later, a.deltas_for(&b.digest(), 10_000), &mut verify);
        assert_eq!(visible(&b, "a"), honest);
        assert_eq!(b.max_version("a"), a.max_version("a"), "in sync again");
        // A delta behind b's version that jumps past a write it leaves out: pending, unseen.
        let mut c = store("c");
        let mut first = a.deltas_for(&c.digest(), 10_000).remove(0);
        first.updates.retain(|u| u.key == "y"); // version 2 only: x@3 left out, through 3
        first.head = None;
        c.apply_vouched(now, vec![first], &mut verify);
        assert!(visible(&c, "a").is_empty(), "a gap without a head shows nothing");
        assert_eq!(c.max_version("a"), 2, "and the claimed version beyond the last update is not taken");
        sync_vouched(&a, &mut c, now, 10_000, &mut verify);
        assert_eq!(visible(&c, "a"), honest, "the honest rest completes it, vouched for");
    }
}
