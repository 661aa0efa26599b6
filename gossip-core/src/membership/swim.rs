//! SWIM's failure detector with Lifeguard's nacks and buddy system.
//!
//! Every probe period the node pings the next member of a randomized round-robin order
//! (every member once per cycle; the order is reshuffled each cycle and new members are
//! inserted at random positions, so detection time is bounded). With zones, a separate order
//! covers other zones and is used with `cross_zone_probability`. No ack within the direct
//! timeout (adapted to measured round trips, see [`super::rtt`]): `indirect_checks` helpers
//! ping on our behalf and, under Lifeguard, nack if the target stays silent. No ack within
//! `probe_timeout` after that: the member is suspected.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use compact_str::CompactString;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::dissemination::Priority;
use crate::event::Event;
use crate::membership::rtt::RttEstimator;
use crate::membership::table::{Address, MemberTable, Slot};
use crate::metrics::DropReason;
use crate::node::{Node, Outgoing};
use crate::timer::Timer;
use crate::wire::{MemberState, Message};

/// Most indirect probes relayed for others at once; more ping-reqs are ignored.
const MAX_RELAYS: usize = 1024;

/// Most new members held back before they are placed in the probe order (bounds the
/// memory of the batch).
const MAX_PENDING: usize = 4096;

/// A randomized round-robin order of members to probe.
#[derive(Debug, Default)]
pub(crate) struct ProbeOrder {
    order: Vec<Slot>,
    pos: usize,
    /// Members added since the last probe, inserted into `order` (at random unprobed
    /// positions) just before the next pick: a view of thousands of new members is then
    /// placed in one pass over a vector hot in cache, not one cache miss per member.
    pending: Vec<Slot>,
    /// Length of `order` plus `pending` at which duplicates are removed: a member that dies
    /// and comes back again and again is inserted each time, and must not grow the order
    /// without bound within one cycle.
    compact_at: usize,
}

impl ProbeOrder {
    /// Next live member in the order, reshuffling `live` into a new cycle when exhausted.
    fn next<A: Address>(&mut self, rng: &mut ChaCha8Rng, table: &MemberTable<A>, live: &[Slot]) -> Option<Slot> {
        self.place_pending(rng);
        for _ in 0..2 {
            while self.pos < self.order.len() {
                let slot = self.order[self.pos];
                self.pos += 1;
                if table.get(slot).is_some_and(|m| !m.state.is_gone()) {
                    return Some(slot);
                }
            }
            self.order.clear();
            self.order.reserve_exact(live.len());
            self.order.extend_from_slice(live);
            self.order.shuffle(rng);
            self.pos = 0;
        }
        None
    }

    /// Adds a new member; it takes a random position among those not yet probed this cycle
    /// before the next pick.
    fn insert(&mut self, rng: &mut ChaCha8Rng, slot: Slot) {
        if self.pending.len() >= MAX_PENDING {
            self.place_pending(rng);
        }
        crate::membership::table::push_compact(&mut self.pending, slot);
        if self.order.len() + self.pending.len() > self.compact_at {
            self.compact();
        }
    }

    /// Drops the part of the cycle already probed and every repeat of a member still to be
    /// probed (its first place is kept). What is left holds each slot once at most, so the
    /// next compaction comes after as many inserts again: amortized O(log n) per insert.
    fn compact(&mut self) {
        self.order.drain(..self.pos);
        self.pos = 0;
        let mut seen = BTreeSet::new();
        self.order.retain(|slot| seen.insert(*slot));
        self.pending.retain(|slot| seen.insert(*slot));
        self.compact_at = 2 * (self.order.len() + self.pending.len()) + 64;
    }

    /// Inserts each pending member at a random position among those not yet probed this
    /// cycle, in O(1) each: it takes the place of a random unprobed member, which moves to
    /// the end.
    fn place_pending(&mut self, rng: &mut ChaCha8Rng) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        self.order.reserve_exact(pending.len());
        for slot in pending {
            let at = rng.random_range(self.pos..=self.order.len());
            self.order.push(slot);
            let last = self.order.len() - 1;
            self.order.swap(at, last);
        }
    }
}

/// The probe in flight.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    seq: u32,
    sent_at: Instant,
    slot: Slot,
    name: CompactString,
    acked: bool,
    indirect: bool,
    expected_nacks: u32,
    nacks: u32,
}

/// An indirect probe this node runs for another member.
#[derive(Debug, Clone)]
pub(crate) struct Relay<A> {
    origin: A,
    origin_seq: u32,
    nack_at: Instant,
}

/// Failure-detector state.
#[derive(Debug)]
pub(crate) struct Swim<A> {
    local: ProbeOrder,
    remote: ProbeOrder,
    seq: u32,
    probe: Option<Probe>,
    relays: BTreeMap<u32, Relay<A>>,
    relay_deadlines: BTreeSet<(Instant, u32)>,
    /// Check probes of suspects awaiting an ack: seq → (suspect slot, whether helpers were
    /// already asked).
    checks: BTreeMap<u32, (Slot, bool)>,
    check_deadlines: BTreeSet<(Instant, u32)>,
    /// Round trips of direct pings, for their timeout.
    pub rtt: RttEstimator,
}

impl<A> Default for Swim<A> {
    fn default() -> Self {
        Swim {
            local: ProbeOrder::default(),
            remote: ProbeOrder::default(),
            seq: 0,
            probe: None,
            relays: BTreeMap::new(),
            relay_deadlines: BTreeSet::new(),
            checks: BTreeMap::new(),
            check_deadlines: BTreeSet::new(),
            rtt: RttEstimator::default(),
        }
    }
}

impl<A> Swim<A> {
    /// Places held in both probe orders (for tests of their bounds).
    #[cfg(test)]
    pub fn probe_order_len(&self) -> usize {
        [&self.local, &self.remote].iter().map(|o| o.order.len() + o.pending.len()).sum()
    }

    pub fn probe_order_insert(&mut self, rng: &mut ChaCha8Rng, slot: Slot, local: bool) {
        if local {
            self.local.insert(rng, slot);
        } else {
            self.remote.insert(rng, slot);
        }
    }

    pub fn next_relay_deadline(&self) -> Option<Instant> {
        self.relay_deadlines.first().map(|(t, _)| *t)
    }

    /// Starts a check probe of suspect `slot`; returns its sequence number.
    pub fn start_check(&mut self, slot: Slot, deadline: Instant) -> u32 {
        let seq = self.next_seq();
        if self.checks.len() < MAX_RELAYS {
            self.checks.insert(seq, (slot, false));
            self.check_deadlines.insert((deadline, seq));
        }
        seq
    }

    /// Check probes whose deadline passed unanswered: (seq, slot, whether helpers were asked).
    /// Those not yet escalated stay registered, to be escalated by the caller.
    pub fn expired_checks(&mut self, now: Instant) -> Vec<(u32, Slot, bool)> {
        let mut out = Vec::new();
        while let Some(&(at, seq)) = self.check_deadlines.first() {
            if at > now {
                break;
            }
            self.check_deadlines.pop_first();
            if let Some(&(slot, escalated)) = self.checks.get(&seq) {
                if escalated {
                    self.checks.remove(&seq);
                }
                out.push((seq, slot, escalated));
            }
        }
        out
    }

    /// Drops a check probe (its suspicion was resolved).
    pub fn forget_check(&mut self, seq: u32) {
        self.checks.remove(&seq);
    }

    /// Marks a check probe as escalated to helpers, with a new deadline.
    pub fn escalate_check(&mut self, seq: u32, deadline: Instant) {
        if let Some(entry) = self.checks.get_mut(&seq) {
            entry.1 = true;
            self.check_deadlines.insert((deadline, seq));
        }
    }

    /// Earliest check-ping deadline.
    pub fn next_check_deadline(&self) -> Option<Instant> {
        self.check_deadlines.first().map(|(t, _)| *t)
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }
}

impl<A: Address> Node<A> {
    /// Start of a probe period: conclude the last probe, then ping the next member.
    pub(crate) fn probe_tick(&mut self, now: Instant) {
        if let Some(p) = self.swim.probe.take() {
            if !p.acked {
                self.probe_failed(now, &p);
            }
        }
        let (local, remote) = self.members.live();
        let use_remote = if local.is_empty() {
            true
        } else if remote.is_empty() {
            false
        } else {
            self.rng.random_bool(self.config.cross_zone_probability)
        };
        let slot = if use_remote {
            self.swim.remote.next(&mut self.rng, &self.members, remote)
        } else {
            self.swim.local.next(&mut self.rng, &self.members, local)
        };
        let Some(slot) = slot else { return };
        let Some(m) = self.members.get(slot) else { return };
        let (dest, name, suspect) = (m.addr.clone(), m.name.clone(), m.state == MemberState::Suspect);
        let seq = self.swim.next_seq();
        let mut messages = vec![Message::Ping { seq, target: name.clone() }];
        if suspect && self.config.lifeguard {
            // Buddy system: tell the suspect directly, so it can refute at once.
            if let Some(rumor) = self.member_rumor_for(slot) {
                messages.push(rumor);
            }
        } else {
            // Push-pull and anti-entropy openings ride on the probe.
            if std::mem::take(&mut self.push_pull_due) {
                messages.push(self.sync_digest_for(&dest));
            }
            if let Some(syn) = self.take_state_syn() {
                messages.push(syn);
                messages.extend(self.crdt_syn()); // on the same timer
            }
        }
        self.outbox.push_back(Outgoing { dest, messages, piggyback: true });
        self.swim.probe =
            Some(Probe { seq, sent_at: now, slot, name, acked: false, indirect: false, expected_nacks: 0, nacks: 0 });
        self.metrics.probes += 1;
        let timeout = self.health.scale(self.direct_probe_timeout());
        self.timers.set(Timer::ProbeTimeout, now + timeout);
    }

    /// How long a direct ping waits for its ack: adapted to measured round trips, between
    /// `min_probe_timeout` and `probe_timeout` (before Lifeguard's health scaling).
    pub(crate) fn direct_probe_timeout(&self) -> Duration {
        self.swim.rtt.timeout(self.config.min_probe_timeout, self.config.probe_timeout)
    }

    /// The probe's timer: after the direct ping, ask helpers; after the helpers' time
    /// (`probe_timeout`, in which they ack or nack), conclude the probe.
    pub(crate) fn probe_timeout(&mut self, now: Instant) {
        let Some(p) = self.swim.probe.as_ref() else { return };
        if p.acked {
            return;
        }
        if p.indirect {
            if let Some(p) = self.swim.probe.take() {
                self.probe_failed(now, &p);
            }
            return;
        }
        self.swim.rtt.timed_out();
        let (seq, slot, name) = (p.seq, p.slot, p.name.clone());
        let Some(target_addr) = self.members.get(slot).map(|m| m.addr.clone()) else { return };
        let helpers = self.pick_members(self.config.indirect_checks, Some(slot));
        for &h in &helpers {
            if let Some(helper) = self.members.get(h) {
                let dest = helper.addr.clone();
                self.outbox.push_back(Outgoing {
                    dest,
                    messages: vec![Message::PingReq { seq, target: name.clone(), target_addr: target_addr.clone() }],
                    piggyback: true,
                });
            }
        }
        if let Some(p) = self.swim.probe.as_mut() {
            p.indirect = true;
            p.expected_nacks = if self.config.lifeguard { helpers.len() as u32 } else { 0 };
        }
        self.metrics.indirect_probes += 1;
        let wait = self.health.scale(self.config.probe_timeout);
        self.timers.set(Timer::ProbeTimeout, now + wait);
    }

    /// No ack by the end of the period: adjust local health and suspect the member.
    fn probe_failed(&mut self, now: Instant, p: &Probe) {
        self.metrics.probe_failures += 1;
        if self.config.lifeguard {
            // With helpers, missing nacks point at ourselves; without, any failure does.
            let delta = if p.expected_nacks > 0 { p.expected_nacks.saturating_sub(p.nacks) } else { 1 };
            self.health.apply(i64::from(delta));
        }
        let Some(m) = self.members.get(p.slot) else { return };
        if m.name != p.name || m.state.is_gone() {
            return; // gone, or the slot was reused
        }
        if m.state == MemberState::Suspect {
            // Already suspected by others: our failed probe is an independent confirmation.
            self.confirm_suspicion_ourselves(p.slot);
            return;
        }
        tracing::debug!(node = %self.name, member = %m.name, "probe failed: suspect");
        self.suspect_member(now, p.slot);
    }

    /// This node accuses a live member: it becomes a suspect, and the news goes out first.
    fn suspect_member(&mut self, now: Instant, slot: Slot) {
        let Some(mut record) = self.members.record(slot) else { return };
        record.state = MemberState::Suspect;
        self.members.update(slot, &record);
        let me = self.name.clone();
        self.start_suspicion(now, slot, me);
        self.metrics.suspicions_raised += 1;
        self.events.push_back(Event::MemberSuspect(record));
        self.queue_member_rumor(slot, Priority::Failure);
    }

    /// Phi accrual conviction mode: suspects every alive member whose phi exceeds the
    /// threshold (checked every gossip round, alongside SWIM's own probes).
    pub(crate) fn convict_by_phi(&mut self, now: Instant) {
        let Some(phi) = self.config.phi_accrual.clone() else { return };
        let Some(threshold) = phi.conviction_threshold else { return };
        let (local, remote) = self.members.live();
        let convicted: Vec<Slot> = local
            .iter()
            .chain(remote)
            .copied()
            .filter(|&slot| self.members.get(slot).is_some_and(|m| m.state == MemberState::Alive))
            .filter(|&slot| self.phi.phi(&phi, slot, now).is_some_and(|v| v > threshold))
            .collect();
        for slot in convicted {
            if let Some(m) = self.members.get(slot) {
                tracing::debug!(node = %self.name, member = %m.name, "phi above the conviction threshold: suspect");
            }
            self.metrics.phi_convictions += 1;
            self.suspect_member(now, slot);
        }
    }

    pub(crate) fn on_ping(&mut self, from: &A, seq: u32, target: &str) {
        if target != self.name {
            self.metrics.drops[DropReason::WrongTarget as usize] += 1;
            return;
        }
        self.outbox.push_back(Outgoing { dest: from.clone(), messages: vec![Message::Ack { seq }], piggyback: true });
    }

    pub(crate) fn on_ack(&mut self, now: Instant, seq: u32) {
        if let Some(p) = self.swim.probe.as_mut() {
            if p.seq == seq && !p.acked {
                p.acked = true;
                if !p.indirect {
                    // Only a direct answer times the path (a relayed ack carries the same seq).
                    self.swim.rtt.sample(now.saturating_duration_since(p.sent_at));
                }
                if self.config.lifeguard {
                    self.health.apply(-1);
                }
                return;
            }
        }
        if let Some((slot, _)) = self.swim.checks.remove(&seq) {
            // The suspect answered a check ping: no confirmation from us. Its refutation
            // travels in the same datagram; should the suspicion still stand once that is
            // read (the suspect has not refuted yet), check again a period later rather than
            // let a stale suspicion run out against a member we just heard from.
            let at = now + self.config.probe_interval;
            self.suspicion_checks.insert((at, slot));
            return;
        }
        if let Some(relay) = self.swim.relays.remove(&seq) {
            self.swim.relay_deadlines.remove(&(relay.nack_at, seq));
            self.outbox.push_back(Outgoing {
                dest: relay.origin,
                messages: vec![Message::Ack { seq: relay.origin_seq }],
                piggyback: true,
            });
        }
    }

    pub(crate) fn on_nack(&mut self, seq: u32) {
        if let Some(p) = self.swim.probe.as_mut() {
            if p.seq == seq && p.indirect {
                p.nacks += 1;
                self.metrics.nacks_received += 1;
            }
        }
    }

    pub(crate) fn on_ping_req(
        &mut self,
        now: Instant,
        from: &A,
        origin_seq: u32,
        target: CompactString,
        target_addr: A,
    ) {
        if self.swim.relays.len() >= MAX_RELAYS || target == self.name {
            return;
        }
        let seq = self.swim.next_seq();
        // The requester judges its probe `probe_timeout` after asking us (longer if it is
        // unhealthy): nack well before then, or the nack arrives too late to count.
        let nack_at = now + self.config.probe_timeout.mul_f64(0.8);
        self.swim.relays.insert(seq, Relay { origin: from.clone(), origin_seq, nack_at });
        self.swim.relay_deadlines.insert((nack_at, seq));
        let mut messages = vec![Message::Ping { seq, target: target.clone() }];
        if self.config.lifeguard {
            if let Some(slot) = self.members.find(&target) {
                if self.members.get(slot).is_some_and(|m| m.state == MemberState::Suspect) {
                    if let Some(rumor) = self.member_rumor_for(slot) {
                        messages.push(rumor);
                    }
                }
            }
        }
        self.outbox.push_back(Outgoing { dest: target_addr, messages, piggyback: true });
    }

    /// Relays whose target stayed silent: nack the requester (Lifeguard) and forget them.
    pub(crate) fn fire_relays(&mut self, now: Instant) {
        while let Some(&(at, seq)) = self.swim.relay_deadlines.first() {
            if at > now {
                break;
            }
            self.swim.relay_deadlines.pop_first();
            if let Some(relay) = self.swim.relays.remove(&seq) {
                if self.config.lifeguard {
                    self.outbox.push_back(Outgoing {
                        dest: relay.origin,
                        messages: vec![Message::Nack { seq: relay.origin_seq }],
                        piggyback: true,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn a_member_inserted_again_and_again_keeps_the_order_bounded() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut order = ProbeOrder::default();
        for slot in 0..10 {
            order.insert(&mut rng, slot);
        }
        for _ in 0..100_000 {
            order.insert(&mut rng, 3);
            assert!(order.order.len() + order.pending.len() <= 2 * 10 + 64 + 1, "bounded at every step");
        }
        order.place_pending(&mut rng);
        let mut unprobed = order.order[order.pos..].to_vec();
        unprobed.sort_unstable();
        unprobed.dedup();
        assert_eq!(unprobed, (0..10).collect::<Vec<Slot>>(), "every member still has its place");
    }
}
