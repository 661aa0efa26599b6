//! Joining, push-pull state exchange, reconnection after partitions, and rejoining.
//!
//! A joining node sends its record to its seeds (retrying with exponential backoff) until one
//! answers with its full view. Periodically each node sends a random member a hash of its
//! view; only if the hashes differ do the two exchange views, paged to the MTU: all of it the
//! first time, later only what changed since the last exchange (change watermarks). A node
//! also periodically exchanges views with a member it believes dead, so the two sides of a
//! healed partition learn of each other and refute; and a node that finds itself alone
//! contacts its seeds again.

use std::time::Instant;

use rand::Rng;

use crate::event::Event;
use crate::membership::table::Address;
use crate::node::{Node, Outgoing, Source};
use crate::timer::Timer;
use crate::wire::{codec, MemberRecord, MemberState, Message, ViewEnd};

/// Most peers whose watermark is remembered.
const MAX_SYNC_MARKS: usize = 64;

/// Rejoin intervals between two contacts of seeds that are not live members (30 s with the
/// LAN preset: what Serf allows itself for reconnecting to failed members).
const STRAY_SEED_EVERY: u32 = 3;

impl<A: Address> Node<A> {
    /// Sends a join request to every seed and schedules the next attempt.
    pub(crate) fn join_retry(&mut self, now: Instant) {
        if !self.joining {
            return;
        }
        let record = self.self_record();
        for seed in self.seeds.clone() {
            self.outbox.push_back(Outgoing {
                dest: seed,
                messages: vec![Message::Join { record: record.clone() }],
                piggyback: false,
            });
        }
        self.metrics.join_attempts += 1;
        let wait = self.jittered(self.join_backoff);
        self.timers.set(Timer::Join, now + wait);
        self.join_backoff = (self.join_backoff * 2).min(self.config.join_retry_max);
    }

    pub(crate) fn finish_join(&mut self, now: Instant) {
        if self.joining {
            self.joining = false;
            self.timers.stop(Timer::Join);
            self.events.push_back(Event::Joined);
            // Announce ourselves too: the seed's rumor alone may be spent before it spreads.
            self.queue_self_rumor(false);
            // And compare views soon: members that joined around the same time are often
            // missed by rumors whose retransmit budget was sized for a tiny cluster.
            if let Some(period) = self.config.push_pull_interval {
                let soon = (self.config.gossip_interval * 3).min(period);
                let at = now + soon.mul_f64(0.5 + self.rng.random::<f64>());
                self.timers.set(Timer::PushPull, at);
                self.early_syncs = 0;
                self.seed_has_news = true;
            }
            tracing::debug!(node = %self.name, "joined");
        }
    }

    /// While alone, contact the seeds again. Otherwise, every few rejoin intervals, contact
    /// the seeds that are not live members: a seed whose own joiners all got their answer
    /// from another seed has never heard of anyone and nobody has heard of it, and after a
    /// long partition both sides may have forgotten each other. Without this the cluster
    /// would stay split for good; with it a decommissioned seed costs one small datagram per
    /// node every 30 s (LAN preset).
    pub(crate) fn rejoin_tick(&mut self, now: Instant) {
        if self.joining || self.seeds.is_empty() || self.self_state == MemberState::Left {
            return;
        }
        if self.members.live_count() == 0 {
            self.joining = true;
            self.join_backoff = self.config.join_retry_initial;
            self.join_retry(now);
            return;
        }
        if self.stray_seed_wait > 0 {
            self.stray_seed_wait -= 1;
            return;
        }
        let strays = self.seeds_not_live();
        if strays.is_empty() {
            return;
        }
        let record = self.self_record();
        for dest in strays {
            self.outbox.push_back(Outgoing {
                dest,
                messages: vec![Message::Join { record: record.clone() }],
                piggyback: true,
            });
        }
        self.metrics.join_attempts += 1;
        self.stray_seed_wait = STRAY_SEED_EVERY - 1;
    }

    /// Configured seeds at whose address no live member is known.
    fn seeds_not_live(&self) -> Vec<A> {
        let mut missing = self.seeds.clone();
        let (local, remote) = self.members.live();
        for &slot in local.iter().chain(remote) {
            if missing.is_empty() {
                break;
            }
            if let Some(m) = self.members.get(slot) {
                missing.retain(|s| *s != m.addr);
            }
        }
        missing
    }

    /// A node asks to join through us: take its record and answer with our full view.
    pub(crate) fn on_join(&mut self, now: Instant, from: &A, record: MemberRecord<A>) {
        self.apply_record(now, record, None, None, Source::Gossip, Some(from));
        if self.may_send_view(now, from) {
            self.send_view(from.clone(), false, 0);
        }
    }

    /// Whether a requested view may go to `to` now: at most one per peer per quarter of a
    /// gossip interval, so a datagram packed with requests (or a flood of them from a forged
    /// address) cannot make this node send its whole view again and again.
    pub(crate) fn may_send_view(&mut self, now: Instant, to: &A) -> bool {
        let gap = self.config.gossip_interval / 4;
        if self.views_sent.get(to).is_some_and(|&at| now.saturating_duration_since(at) < gap) {
            self.metrics.views_throttled += 1;
            return false;
        }
        if self.views_sent.len() >= 4096 {
            self.views_sent.retain(|_, at| now.saturating_duration_since(*at) < gap);
            if self.views_sent.len() >= 4096 {
                self.views_sent.clear();
            }
        }
        self.views_sent.insert(to.clone(), now);
        true
    }

    /// Sends a digest of our view to a random member, or, in the first rounds after joining,
    /// to a seed: during a join storm the seed has heard every join directly, so its view is
    /// the most complete one to compare with.
    ///
    /// The regular exchanges ride on the next probe ping (its target is a random member in
    /// randomized round-robin order): a cluster in sync pays a few bytes and no extra packet.
    pub(crate) fn push_pull_tick(&mut self, early: bool) {
        if !early || self.seeds.is_empty() {
            self.push_pull_due = true;
            return;
        }
        let dest = self.seeds[self.rng.random_range(0..self.seeds.len())].clone();
        let message = self.sync_digest_for(&dest);
        self.outbox.push_back(Outgoing { dest, messages: vec![message], piggyback: true });
    }

    /// Our membership digest, for `dest`.
    pub(crate) fn sync_digest_for(&self, dest: &A) -> Message<A> {
        let digest = self.membership_digest();
        let count = (self.members.live_count() + 1).min(u32::MAX as usize) as u32;
        let since = self.sync_marks.get(dest).copied().unwrap_or(0);
        Message::SyncDigest { digest, count, since }
    }

    pub(crate) fn on_sync_digest(&mut self, now: Instant, from: &A, digest: u64, since: u32) {
        if digest != self.membership_digest() && self.may_send_view(now, from) {
            self.send_view(from.clone(), true, since);
        }
    }

    pub(crate) fn on_sync_page(&mut self, now: Instant, from: &A, end: Option<ViewEnd>, members: Vec<MemberRecord<A>>) {
        // Changes made while merging this peer's view came from it: a reply leaves them out.
        let merge_start = match &self.merging {
            Some((peer, start)) if peer == from => *start,
            _ => self.members.changes(),
        };
        self.merging = if end.is_some() { None } else { Some((from.clone(), merge_start)) };
        if self.seeds.contains(from) {
            self.seed_has_news = true; // a seed sent us (part of) its view: ask again soon
        }
        for record in members {
            self.apply_record(now, record, None, None, Source::Sync, Some(from));
        }
        self.finish_join(now);
        let Some(end) = end else { return };
        // We now hold everything the sender had up to its watermark: next time, what changed
        // after it is enough. (If a page was lost, exchanges with other members, which start
        // from zero, repair the gap.)
        remember_mark(&mut self.sync_marks, from, end.mark);
        let mine = self.membership_digest();
        // The sender holds every record we changed before this merge if we had none (a join
        // reply to a new node) or it already held them; what changed during the merge came
        // from it.
        let held_before = merge_start == 0 || self.peer_marks.get(from).is_some_and(|&m| m >= merge_start);
        if end.digest == mine || held_before {
            // Our views are equal, or differ only by what the sender told us (a Dead record
            // merged as Suspect, say): it holds every record we have changed so far. (Not
            // assumed after an arbitrary join reply: others may have joined through us.)
            self.note_peer_knows(from);
        }
        if end.digest != mine && end.reply && self.may_send_view(now, from) {
            // Send back what changed here since the peer last saw our view (all, if never),
            // except what we just learned from it.
            let since = self.peer_marks.get(from).copied().unwrap_or(0);
            self.send_view_between(from.clone(), false, since, merge_start);
        }
    }

    /// Remembers that `peer` holds every record we have changed so far.
    fn note_peer_knows(&mut self, peer: &A) {
        let mark = self.members.changes();
        remember_mark(&mut self.peer_marks, peer, mark);
    }

    /// A datagram arrived from `sender`: an arrival for phi accrual. If we believe it dead, the network between us works
    /// again (a partition healed): reach out to the other dead members soon instead of at the
    /// next reconnect tick.
    pub(crate) fn note_sender(&mut self, now: Instant, sender: &str) {
        let Some(slot) = self.members.find(sender) else { return };
        if let Some(phi) = &self.config.phi_accrual {
            self.phi.arrival(phi, slot, now);
        }
        if self.members.get(slot).is_some_and(|m| m.state == MemberState::Dead)
            && self.config.reconnect_interval.is_some()
        {
            let soon = now + self.config.gossip_interval;
            if self.timers.get(Timer::Reconnect).is_none_or(|at| at > soon) {
                self.timers.set(Timer::Reconnect, soon);
            }
        }
    }

    /// Exchange views with a member believed dead: heals partitions.
    pub(crate) fn reconnect_tick(&mut self) {
        if self.gone.is_empty() {
            return;
        }
        for _ in 0..4 {
            let i = self.rng.random_range(0..self.gone.len());
            let (_, slot, generation, _) = self.gone[i];
            let Some(m) = self.members.get(slot) else { continue };
            if m.state == MemberState::Dead && m.generation == generation {
                let dest = m.addr.clone();
                self.send_view(dest, true, 0);
                return;
            }
        }
    }

    /// Queues this node's view to `dest`, paged to the MTU: itself plus every member changed
    /// after watermark `since` (0: all). The last page carries our digest and watermark and,
    /// with `reply`, asks for the receiver's view back if the two still differ.
    pub(crate) fn send_view(&mut self, dest: A, reply: bool, since: u32) {
        let until = self.members.changes();
        self.send_view_between(dest, reply, since, until);
    }

    /// Like [`Node::send_view`], but only members changed after `since` and up to `until`.
    ///
    /// Pages are cut as the records are read, never holding the whole view at once: a seed
    /// answering a join storm would otherwise allocate (and the OS zero) a fresh
    /// view-sized buffer per reply.
    pub(crate) fn send_view_between(&mut self, dest: A, reply: bool, since: u32, until: u32) {
        let mut header = Vec::new();
        codec::encode_header(&mut header, &self.config.cluster_label, &self.name);
        // Message tag, the view end and the length prefix take at most 32 bytes.
        let room = self.config.mtu.saturating_sub(header.len() + 32);
        let end = ViewEnd { digest: self.membership_digest(), mark: self.members.changes(), reply };
        if since == 0 {
            self.metrics.views_full += 1;
        } else {
            self.metrics.views_delta += 1;
        }
        let mut pages: Vec<Vec<MemberRecord<A>>> = Vec::new();
        let mut page: Vec<MemberRecord<A>> = Vec::new();
        let mut used = 0;
        let mut count = 0u64;
        let changed = self.members.changed_between(since, until).filter_map(|s| self.record_out(s));
        for record in std::iter::once(self.self_record()).chain(changed) {
            let len = postcard::experimental::serialized_size(&record).unwrap_or(room);
            if used + len > room && !page.is_empty() {
                pages.push(std::mem::take(&mut page));
                used = 0;
            }
            used += len;
            count += 1;
            page.push(record);
        }
        pages.push(page);
        self.metrics.view_records += count;
        // Once these pages arrive the peer holds all we have; if some are lost, exchanges with
        // other members (which start from zero) repair the gap.
        self.note_peer_knows(&dest);
        let last = pages.len() - 1;
        for (i, members) in pages.into_iter().enumerate() {
            self.outbox.push_back(Outgoing {
                dest: dest.clone(),
                messages: vec![Message::SyncPage { end: (i == last).then_some(end), members }],
                piggyback: i == last,
            });
        }
    }
}

/// Records a watermark for `peer` in a map bounded to [`MAX_SYNC_MARKS`] peers (forgetting all
/// marks when full only costs a full exchange next time).
fn remember_mark<A: Address>(marks: &mut hashbrown::HashMap<A, u32, ahash::RandomState>, peer: &A, mark: u32) {
    if marks.len() >= MAX_SYNC_MARKS && !marks.contains_key(peer) {
        marks.clear();
    }
    marks.insert(peer.clone(), mark);
}
