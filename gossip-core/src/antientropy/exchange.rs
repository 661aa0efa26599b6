//! The anti-entropy exchange on the wire, one random member every `state_sync_interval`.
//!
//! 1. A → B `StateSyn { hash }`, riding on A's next probe ping: equal hashes end it (stores in
//!    sync exchange one number, and no extra datagram).
//! 2. B → A `StateDigest { range, reply }`: one MTU-sized page of B's digest, the next range
//!    after the one B last sent (large digests are covered over several rounds).
//! 3. A → B `StateDelta`s with what B lacks in that range (most stale first, never skipping,
//!    up to `state_sync_datagrams` datagrams within the MTU), then A's own `StateDigest` of
//!    the same range.
//! 4. B → A `StateDelta`s with what A lacks there.
//!
//! A side whose burst was cut at `state_sync_datagrams` says so on its last delta, and the
//! receiver answers with its digest of the range at once (step 2 again): bulk transfers run at
//! one burst per round trip instead of one per interval.
//!
//! This is Cassandra's SYN / ACK / ACK2 with a hash in front and a name range on every digest.
//! Fresh writes also spread at once as `StateUpdate` rumors piggybacked like membership news;
//! a rumor is merged only if it is the next version the receiver lacks, so the exchange above
//! only repairs what rumors missed.

use std::time::Instant;

use compact_str::CompactString;
use rand::Rng;

use crate::event::Event;
use crate::membership::table::Address;
use crate::node::{Node, Outgoing};
use crate::wire::{codec, Message, StateContinuation};

use super::store::SignedHead;
use super::KvChange;

/// Bytes of a datagram's room kept for the message's own framing.
const FRAMING: usize = 48;

impl<A: Address> Node<A> {
    /// Room for one message in a datagram after the envelope (rumors, openings, shares).
    pub(crate) fn state_room(&self) -> usize {
        self.room_within(self.config.mtu)
    }

    /// Room for one anti-entropy transfer (digest pages, deltas, CRDT pieces): a datagram, or
    /// `bulk_mtu` when the transport carries those on reliable streams.
    pub(crate) fn bulk_room(&self) -> usize {
        self.room_within(self.config.bulk_mtu.unwrap_or(self.config.mtu))
    }

    fn room_within(&self, size: usize) -> usize {
        let mut header = Vec::new();
        codec::encode_header(&mut header, &self.config.cluster_label, &self.name);
        size.saturating_sub(header.len() + FRAMING)
    }

    /// Largest value under `key` whose update fits one anti-entropy datagram, given the MTU
    /// and the names involved.
    pub(crate) fn max_state_value(&self, key: &str) -> usize {
        // The delta's owner name, generation, flags, versions and list length; the update's
        // key, version and value length prefixes; its signature, if any.
        // (With signing, the write's signature and the head: root and signature.)
        let signature = if self.signed.is_some() { 66 + 98 } else { 1 };
        let overhead = self.name.len() + 40 + key.len() + 16 + signature;
        self.bulk_room().saturating_sub(overhead)
    }

    /// Time for an exchange: the next probe's ping carries the opening hash, so a cluster in
    /// sync pays a few bytes on datagrams it sends anyway, and no extra packet. (The probe
    /// target is a random member in randomized round-robin order.)
    pub(crate) fn state_sync_tick(&mut self) {
        self.state_syn_due = true;
    }

    /// The opening hash, if an exchange is due.
    pub(crate) fn take_state_syn(&mut self) -> Option<Message<A>> {
        std::mem::take(&mut self.state_syn_due).then(|| Message::StateSyn { hash: self.state.digest_hash() })
    }

    pub(crate) fn on_state_syn(&mut self, from: &A, hash: u64) {
        if hash == self.state.digest_hash() {
            return;
        }
        let start = self.state_cursor.clone();
        let (entries, end) = self.state.digest_from(&start, self.bulk_room());
        // Next time, the next range (or from the start again).
        self.state_cursor = end.clone().unwrap_or_default();
        let message = Message::StateDigest { start, end, entries, reply: true };
        self.outbox.push_back(Outgoing { dest: from.clone(), messages: vec![message], piggyback: false });
    }

    pub(crate) fn on_state_digest(
        &mut self,
        from: &A,
        start: CompactString,
        end: Option<CompactString>,
        entries: Vec<crate::antientropy::ParticipantDigest>,
        reply: bool,
    ) {
        let (pages, cut_short) = self.state.delta_pages(
            &entries,
            &start,
            end.as_deref(),
            self.bulk_room(),
            self.config.state_sync_datagrams,
            self.rng.random(),
        );
        let count = pages.len();
        let burst: u32 = self.rng.random();
        for (i, deltas) in pages.into_iter().enumerate() {
            self.metrics.state_deltas_sent += 1;
            // On the last two, so that one lost datagram does not end the transfer.
            let more = (cut_short && i + 2 >= count).then(|| StateContinuation {
                burst,
                start: start.clone(),
                end: end.clone(),
            });
            let message = Message::StateDelta { deltas, more };
            self.outbox.push_back(Outgoing { dest: from.clone(), messages: vec![message], piggyback: false });
        }
        if reply {
            // Our digest of the same range, so the peer can send what we lack there.
            self.send_state_digest(from, start, end, false);
        }
    }

    /// Sends our digest of the range from `start` to `end`, cut at the MTU like any page (what
    /// does not fit waits for a later round); `reply` asks the peer for its digest back.
    fn send_state_digest(&mut self, to: &A, start: CompactString, end: Option<CompactString>, reply: bool) {
        let (mine, cut) = self.state.digest_from(&start, self.bulk_room());
        let (mine, end) = super::reply_page(mine, cut, end, |d| d.node.as_str());
        let message = Message::StateDigest { start, end, entries: mine, reply };
        self.outbox.push_back(Outgoing { dest: to.clone(), messages: vec![message], piggyback: false });
    }

    /// Queues a fresh update of `node` for piggybacking.
    pub(crate) fn queue_state_rumor(&mut self, node: CompactString, version: u64) {
        if self.config.state_retransmit_mult > 0 {
            self.dissemination.states.push((node, version), crate::dissemination::Priority::Routine);
        }
    }

    /// A fresh update arrived as a rumor: merged if it is the next version we lack (then
    /// passed on), ignored otherwise.
    pub(crate) fn on_state_update(&mut self, now: Instant, delta: crate::antientropy::ParticipantDelta) {
        let node = delta.node.clone();
        let Some(version) = delta.updates.first().map(|u| u.version) else { return };
        if delta.updates.len() != 1 || delta.reset || self.state.max_version(&node) != delta.after {
            return;
        }
        self.apply_state_deltas(now, vec![delta]);
        if self.state.max_version(&node) == version {
            self.queue_state_rumor(node, version);
        }
    }

    pub(crate) fn on_state_delta(
        &mut self,
        now: Instant,
        from: &A,
        deltas: Vec<crate::antientropy::ParticipantDelta>,
        more: Option<StateContinuation>,
    ) {
        let before = more.as_ref().map(|_| self.state.digest_hash());
        self.apply_state_deltas(now, deltas);
        // The peer has more for us: ask again at once, once per burst, and only while its
        // deltas move us on (a peer whose updates we refuse cannot keep us busy).
        let Some((more, before)) = more.zip(before) else { return };
        let asked = self.state_continued.iter().any(|(peer, burst)| peer == from && *burst == more.burst);
        if asked || self.state.digest_hash() == before {
            return;
        }
        if self.state_continued.len() >= 8 {
            self.state_continued.pop_front();
        }
        self.state_continued.push_back((from.clone(), more.burst));
        self.send_state_digest(from, more.start, more.end, true);
    }

    /// Signs this node's write at `version` and its head there (with signing on).
    pub(crate) fn sign_own_write(&mut self, version: u64) {
        let Some(s) = &self.signed else { return };
        let Some(update) = self.state.own_update(version) else { return };
        let label = &self.config.cluster_label;
        let sig = s.keypair.sign_write(label, &self.name, self.generation, &update);
        let root = self.state.own_root();
        let head = SignedHead { root, sig: s.keypair.sign_head(label, &self.name, self.generation, version, &root) };
        self.state.sign_own(version, sig);
        self.state.set_own_head(version, head);
    }

    /// With signing on: cuts each participant's delta before its first write that does not
    /// carry the participant's valid signature (later writes must not skip it), counting the
    /// forgeries. Writes the store already holds are not checked again.
    fn check_writes(&mut self, deltas: &mut [crate::antientropy::ParticipantDelta]) {
        if self.signed.is_none() {
            return;
        }
        for delta in deltas.iter_mut().filter(|d| d.node != self.name) {
            let held = if delta.reset { 0 } else { self.state.max_version(&delta.node) };
            let key = self.key_of(&delta.node);
            let label = &self.config.cluster_label;
            let Some(s) = self.signed.as_mut() else { return };
            let bad = delta.updates.iter().position(|u| {
                u.version > held
                    && !key.is_some_and(|k| {
                        crate::wire::signing::verify_write(label, &delta.node, delta.generation, u, &k, &mut s.memo)
                    })
            });
            if let Some(i) = bad {
                self.metrics.forged_writes += (delta.updates.len() - i) as u64;
                delta.updates.truncate(i);
                // Only the writes kept are vouched for; the rest must come again, signed.
                delta.through = delta.updates.last().map_or(delta.after, |u| u.version);
            }
        }
    }

    fn apply_state_deltas(&mut self, now: Instant, mut deltas: Vec<crate::antientropy::ParticipantDelta>) {
        // Only members' state is kept: anyone can name any participant, and a store open to
        // strangers would grow by a datagram's worth with every datagram, copied to every
        // node and never removed. A member's state that arrives before the member does comes
        // again at a later exchange. A peer that has not heard of a restart yet may still send
        // the old life's state; once we know of the new life, that state must not come back
        // (the new life may never write, and an empty participant is in no digest that would
        // correct it).
        deltas.retain(|d| {
            let known = self.members.find(&d.node).and_then(|slot| self.members.get(slot)).map(|m| m.generation);
            known.is_some_and(|g| d.generation >= g)
        });
        self.check_writes(&mut deltas);
        let before = (self.state.rejected(), self.state.unvouched());
        let changes = if self.signed.is_some() {
            // Each participant's key, looked up before the store is borrowed.
            let keys: Vec<(CompactString, Option<crate::wire::signing::PublicKey>)> =
                deltas.iter().map(|d| (d.node.clone(), self.key_of(&d.node))).collect();
            let label = &self.config.cluster_label;
            let mut memo = self.signed.as_mut().map(|s| &mut s.memo);
            let mut verify = |node: &str, generation: u64, version: u64, head: &SignedHead| {
                let key = keys.iter().find(|(n, _)| n == node).and_then(|(_, k)| k.as_ref());
                match (key, memo.as_deref_mut()) {
                    (Some(k), Some(memo)) => {
                        let signed = crate::wire::signing::kv_head_bytes(label, node, generation, version, &head.root);
                        memo.verifies(k, &signed, &head.sig)
                    }
                    _ => false,
                }
            };
            self.state.apply_vouched(now, deltas, &mut verify)
        } else {
            self.state.apply(now, deltas)
        };
        for change in changes {
            self.events.push_back(match change {
                KvChange::Changed { node, key, version } => Event::KeyChanged { node, key, version },
                KvChange::Deleted { node, key, version } => Event::KeyDeleted { node, key, version },
            });
        }
        self.metrics.state_updates_refused += self.state.rejected() - before.0;
        self.metrics.forged_writes += self.state.unvouched() - before.1;
    }
}
