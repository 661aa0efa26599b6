//! SWIM membership with the Lifeguard extensions.
//!
//! - `table`: who is known, compactly, with live lists for random picks.
//! - `swim`: the failure detector — randomized round-robin probes, ping-req, nacks.
//! - `rtt`: direct-ping timeouts adapted from measured round trips.
//! - `phi`: phi accrual suspicion levels from the arrival times of members' datagrams.
//! - `suspicion`: Lifeguard's dynamic suspicion timeout.
//! - `health`: Lifeguard's local health multiplier.
//! - `sync`: joining through seeds, push-pull state exchange, leave, reconnect, reclaim.
//! - `signed`: signed self-state — members' proofs, accusations signed and limited per accuser.
//! - `limits`: rate limits per source address and per accuser.
//!
//! This file merges records into the view: SWIM's precedence (generation, then incarnation,
//! then state), refutation of suspicions of oneself, and the events each change raises.

pub(crate) mod health;
pub(crate) mod limits;
pub(crate) mod phi;
pub(crate) mod rtt;
pub(crate) mod signed;
pub(crate) mod suspicion;
pub(crate) mod swim;
pub(crate) mod sync;
pub(crate) mod table;

use std::collections::VecDeque;
use std::time::Instant;

use compact_str::CompactString;

use crate::dissemination::Priority;
use crate::event::Event;
use crate::node::{Node, Source};
use crate::wire::signing::Signature;
use crate::wire::{MemberRecord, MemberState};

use self::suspicion::{Accusations, Suspicion};
use self::table::{Address, Slot};

impl<A: Address> Node<A> {
    /// Merges one record into the view. `accuser` and `signature` come with accusations
    /// (`signature` only with signed self-state).
    pub(crate) fn apply_record(
        &mut self,
        now: Instant,
        mut record: MemberRecord<A>,
        accuser: Option<&CompactString>,
        signature: Option<Signature>,
        source: Source,
        from: Option<&A>,
    ) {
        let mut accuser = accuser.cloned();
        if self.signed.is_some() {
            // The member's own claim must be its own; an accusation must be its accuser's.
            if record.name != self.name && !self.check_claim(&record) {
                self.metrics.forged_records += 1;
                return;
            }
            if record.state.is_accusation() {
                let signed = match (&accuser, &signature) {
                    (Some(a), Some(sig)) => self.check_accusation(&record, a, sig),
                    _ => false,
                };
                match signed {
                    // One accuser's verdict is its opinion: a confirmation of a suspicion here,
                    // which the member may still refute, never a removal by itself.
                    true if record.state == MemberState::Dead => record.state = MemberState::Suspect,
                    true => {}
                    false => {
                        if source == Source::Gossip {
                            self.metrics.accusations_unsigned += 1;
                        }
                        // Keep only what the member itself vouched for.
                        record.state = MemberState::Alive;
                        accuser = None;
                    }
                }
            }
        }
        if record.name == self.name {
            self.apply_record_about_self(now, &record, from, accuser.as_ref());
            return;
        }
        // A full-state exchange saying "dead" is second-hand and possibly old news from the
        // other side of a partition: suspect instead, so the member gets a chance to refute.
        if source == Source::Sync && record.state == MemberState::Dead {
            record.state = MemberState::Suspect;
            accuser = None;
        }
        let Some(slot) = self.members.find(&record.name) else {
            self.add_member(now, record, accuser, signature, source, from);
            return;
        };
        let Some(current) = self.members.get(slot) else { return };
        let (cur_gen, cur_inc, cur_state) = (current.generation, current.incarnation, current.state);
        let addr_changed = current.addr != record.addr;
        let old_addr = current.addr.clone();
        if !record.overrides(cur_gen, cur_inc, cur_state) {
            // Not newer; but it may independently confirm a suspicion we hold.
            if record.state == MemberState::Suspect
                && cur_state == MemberState::Suspect
                && record.generation == cur_gen
                && record.incarnation == cur_inc
            {
                // Not rate-limited: an accuser confirms a suspicion once at most, and the
                // limit is for accusations that start one (a partition makes an honest node
                // confirm hundreds at once).
                if let Some(by) = &accuser {
                    if self.confirm_suspicion(slot, by) {
                        self.remember_signed(slot, &record, accuser.as_ref(), signature);
                    }
                }
            }
            // An accusation the member already refuted: its sender missed the refutation and
            // will keep its timer running. Correct it directly, as the member itself would.
            let stale_accusation = record.state.is_accusation()
                && record.generation == cur_gen
                && record.incarnation < cur_inc
                && cur_state == MemberState::Alive;
            if let (true, Source::Gossip, Some(to)) = (stale_accusation, source, from) {
                if let Some(mine) = self.record_out(slot) {
                    self.send_record(to.clone(), mine, true);
                    self.metrics.corrections_sent += 1;
                }
            }
            return;
        }
        if record.state == MemberState::Suspect {
            if let Some(by) = &accuser {
                if !self.admit_accusation(now, by) {
                    return;
                }
            }
        }
        let generation_changed = record.generation != cur_gen;
        if generation_changed {
            self.phi.forget(slot); // a new life: its arrivals start over
            self.crdt_forget_peer(&old_addr); // ...holding none of our CRDT changes
            self.crdt_forget_peer(&record.addr);
            if record.generation > cur_gen {
                self.drop_older_state(&record.name, record.generation); // ...and its key/values
            }
        }
        self.members.update(slot, &record);
        self.remember_signed(slot, &record, accuser.as_ref(), signature);
        if cur_state == MemberState::Suspect || generation_changed {
            self.clear_suspicion(slot);
        }
        let priority = match record.state {
            MemberState::Alive if cur_state.is_gone() => {
                self.swim.probe_order_insert(&mut self.rng, slot, self.members.is_local(slot));
                self.events.push_back(Event::MemberUp(record.clone()));
                tracing::debug!(node = %self.name, member = %record.name, "member up again");
                // Undoing a death is as urgent as the death was, even when learned from a
                // view exchange: after a partition it is what brings the two sides together.
                Priority::Failure
            }
            MemberState::Alive => {
                if cur_state == MemberState::Suspect || addr_changed || generation_changed {
                    self.events.push_back(Event::MemberUpdated(record.clone()));
                }
                if cur_state == MemberState::Suspect || generation_changed {
                    Priority::Failure
                } else {
                    Priority::Routine
                }
            }
            MemberState::Suspect => {
                if cur_state.is_gone() {
                    self.swim.probe_order_insert(&mut self.rng, slot, self.members.is_local(slot));
                    self.events
                        .push_back(Event::MemberUp(MemberRecord { state: MemberState::Alive, ..record.clone() }));
                }
                let by = accuser.unwrap_or_else(|| CompactString::const_new("?"));
                self.start_suspicion(now, slot, by);
                self.events.push_back(Event::MemberSuspect(record.clone()));
                Priority::Failure
            }
            MemberState::Dead | MemberState::Left => {
                self.mark_gone(now, slot, &record);
                Priority::Failure
            }
        };
        if source == Source::Gossip || priority == Priority::Failure {
            self.queue_member_rumor(slot, priority);
        }
    }

    fn add_member(
        &mut self,
        now: Instant,
        record: MemberRecord<A>,
        accuser: Option<CompactString>,
        signature: Option<Signature>,
        source: Source,
        from: Option<&A>,
    ) {
        if record.state.is_gone() {
            return; // news of the death of a stranger: nothing to do
        }
        if let (MemberState::Suspect, Some(by)) = (record.state, &accuser) {
            if !self.admit_accusation(now, by) {
                return;
            }
        }
        if let Some(&(generation, incarnation)) = self.forgotten.get(&record.name) {
            if !record.overrides(generation, incarnation, MemberState::Dead) {
                // Stale gossip about a member already forgotten; unless the member itself
                // sent it (a join, or its own record in a view): then it is alive and does
                // not know we declared it dead. Tell it, so it refutes with a higher
                // incarnation, sent straight back; otherwise two sides of a long partition
                // that forgot each other could not meet again until the tombstone expires.
                if from == Some(&record.addr) && record.generation == generation {
                    let dead = MemberRecord { state: MemberState::Dead, incarnation, proof: None, ..record };
                    let (accuser, signature) = self.own_accusation(&dead);
                    self.outbox.push_back(crate::node::Outgoing {
                        dest: dead.addr.clone(),
                        messages: vec![crate::wire::Message::Member { record: dead, accuser, signature }],
                        piggyback: true,
                    });
                    self.metrics.corrections_sent += 1;
                }
                return;
            }
            self.forgotten.remove(&record.name);
        }
        if self.members.len() >= self.config.max_members || !self.pin_key(&record) {
            self.metrics.members_refused += 1;
            return;
        }
        let slot = self.members.insert(&record);
        self.forget_signed(slot); // the slot may be a reclaimed member's
        self.remember_signed(slot, &record, accuser.as_ref(), signature);
        // Anti-entropy may have brought an older life's key/values before we heard of this one.
        self.drop_older_state(&record.name, record.generation);
        self.phi.forget(slot);
        self.swim.probe_order_insert(&mut self.rng, slot, self.members.is_local(slot));
        self.events.push_back(Event::MemberUp(record.clone()));
        tracing::debug!(node = %self.name, member = %record.name, "member up");
        if record.state == MemberState::Suspect {
            let by = accuser.unwrap_or_else(|| CompactString::const_new("?"));
            self.start_suspicion(now, slot, by);
            self.events.push_back(Event::MemberSuspect(record));
            self.queue_member_rumor(slot, Priority::Failure);
        } else if source == Source::Gossip {
            self.queue_member_rumor(slot, Priority::Routine);
        }
        if self.joining && source == Source::Gossip {
            // Someone told us about the cluster: we are in, even if the seed's reply is lost.
            self.finish_join(now);
        }
    }

    /// `name` lives in `generation`: what an older life wrote is gone.
    fn drop_older_state(&mut self, name: &str, generation: u64) {
        for change in self.state.new_generation(name, generation) {
            if let crate::antientropy::KvChange::Deleted { node, key, version } = change {
                self.events.push_back(Event::KeyDeleted { node, key, version });
            }
        }
    }

    /// Someone talks about this node: refute suspicion or death, ignore stale lives.
    fn apply_record_about_self(
        &mut self,
        now: Instant,
        record: &MemberRecord<A>,
        from: Option<&A>,
        accuser: Option<&CompactString>,
    ) {
        if record.generation != self.generation || self.self_state == MemberState::Left {
            return; // an older life of ours (superseded by our own announcements), or we left
        }
        let accusation = record.state.is_accusation();
        if record.incarnation > self.incarnation {
            // Only this node raises its own incarnation: a higher one is forged (or from a
            // peer gone wrong). Following it could push us to u32::MAX, where no refutation
            // can ever win again.
            tracing::warn!(node = %self.name, incarnation = record.incarnation, "ignoring a record of ourselves from the future");
            return;
        }
        if accusation && record.incarnation < self.incarnation {
            // Already refuted, but this sender missed it: tell it directly, or it may declare
            // us dead on a stale suspicion when its timer runs out.
            if let Some(to) = from {
                let mine = self.self_record();
                self.send_record(to.clone(), mine, false);
            }
            return;
        }
        if accusation {
            if let Some(by) = accuser {
                if !self.admit_accusation(now, by) {
                    return; // an accuser over its limit: no refutation for it to feed on
                }
            }
            self.incarnation = record.incarnation.saturating_add(1);
            self.refresh_self_proof();
            self.queue_self_rumor(true);
            // Besides the rumor, answer the sender and the accuser directly: the rumor's few
            // retransmissions may all miss them, and their timers are running.
            let mine = self.self_record();
            let accuser_addr =
                accuser.and_then(|a| self.members.find(a)).and_then(|s| self.members.get(s)).map(|m| m.addr.clone());
            let mut targets: Vec<A> = from.into_iter().cloned().collect();
            if let Some(addr) = accuser_addr {
                if !targets.contains(&addr) {
                    targets.push(addr);
                }
            }
            for dest in targets {
                self.send_record(dest, mine.clone(), false);
            }
            self.metrics.refutations += 1;
            if self.config.lifeguard {
                self.health.apply(1);
            }
            tracing::debug!(node = %self.name, incarnation = self.incarnation, "refuting suspicion of self");
        }
    }

    pub(crate) fn queue_member_rumor(&mut self, slot: Slot, priority: Priority) {
        self.metrics.rumors_queued += 1;
        if self.dissemination.members.push(slot, priority).is_some() {
            self.metrics.rumors_evicted += 1;
        }
    }

    pub(crate) fn start_suspicion(&mut self, now: Instant, slot: Slot, accuser: CompactString) {
        self.clear_suspicion(slot);
        let n = self.members.live_count() + 1;
        let min = suspicion::min_timeout(self.config.suspicion_mult, n, self.config.probe_interval);
        let (max, k) = if self.config.lifeguard {
            (min * self.config.suspicion_max_timeout_mult, self.config.suspicion_confirmations)
        } else {
            (min, 0)
        };
        let health_scale = self.suspicion_health_scale();
        let s = Suspicion { started: now, accusations: Accusations::new(min, max, k, accuser), health_scale };
        self.suspicion_deadlines.insert((s.deadline(), slot));
        // Check on the suspect ourselves at a random moment in the first half of the minimum
        // timeout (spread out so a large cluster does not ping it all at once).
        let check_at = now + (min / 2).mul_f64(rand::Rng::random::<f64>(&mut self.rng));
        self.suspicion_checks.insert((check_at, slot));
        self.suspicions.insert(slot, s);
    }

    /// Lifeguard scales suspicion timeouts by local health, as it does probes: a node missing
    /// acks is probably the slow one (it may be reading its input seconds late) and must give
    /// the members it suspects longer to refute. Plain SWIM: 1.
    fn suspicion_health_scale(&self) -> u32 {
        if self.config.lifeguard {
            self.health.score() + 1
        } else {
            1
        }
    }

    /// This node's own failed probe or check of a suspect: an independent confirmation, but
    /// only from a healthy node. An unhealthy one (missing acks and nacks) cannot tell a dead
    /// member from its own lateness, and its confirmation would hasten everyone's timer.
    pub(crate) fn confirm_suspicion_ourselves(&mut self, slot: Slot) {
        if self.suspicion_health_scale() > 1 {
            return;
        }
        let me = self.name.clone();
        self.confirm_suspicion(slot, &me);
    }

    /// Counts `accuser`'s confirmation of a suspicion; true if it was a new one.
    pub(crate) fn confirm_suspicion(&mut self, slot: Slot, accuser: &str) -> bool {
        let Some(s) = self.suspicions.get_mut(&slot) else { return false };
        let before = s.deadline();
        if !s.accusations.confirm(accuser) {
            return false;
        }
        let after = s.deadline();
        self.suspicion_deadlines.remove(&(before, slot));
        self.suspicion_deadlines.insert((after, slot));
        // Independent confirmations are news too: others speed up their timers.
        self.queue_member_rumor(slot, Priority::Failure);
        true
    }

    pub(crate) fn clear_suspicion(&mut self, slot: Slot) {
        if let Some(s) = self.suspicions.remove(&slot) {
            self.suspicion_deadlines.remove(&(s.deadline(), slot));
        }
    }

    /// Early in a suspicion, ping the suspect once ourselves, carrying the suspicion (buddy
    /// system). A live suspect acks and answers with its current record even if we missed its
    /// refutation (under loss a node can miss every copy of a refutation rumor); a dead one
    /// stays silent, and that silence is our own independent confirmation (see
    /// [`Node::fire_checks`]), which brings the timeout down toward the minimum.
    pub(crate) fn fire_suspicion_checks(&mut self, now: Instant) {
        while let Some(&(at, slot)) = self.suspicion_checks.first() {
            if at > now {
                break;
            }
            self.suspicion_checks.pop_first();
            let still_suspect = self.suspicions.contains_key(&slot);
            let Some(m) = self.members.get(slot).filter(|m| still_suspect && m.state == MemberState::Suspect) else {
                continue;
            };
            let (dest, target) = (m.addr.clone(), m.name.clone());
            let seq = self.swim.start_check(slot, now + self.direct_probe_timeout());
            let mut messages = vec![crate::wire::Message::Ping { seq, target }];
            if let Some(rumor) = self.member_rumor_for(slot) {
                messages.push(rumor);
            }
            self.outbox.push_back(crate::node::Outgoing { dest, messages, piggyback: true });
        }
    }

    /// Check probes that got no ack in time. Like a regular probe: first helpers are asked to
    /// try too; only if they also stay silent is it our independent confirmation of the
    /// suspicion (a lost datagram alone must not speed up a live member's removal).
    pub(crate) fn fire_checks(&mut self, now: Instant) {
        for (seq, slot, escalated) in self.swim.expired_checks(now) {
            let Some(m) = self.members.get(slot).filter(|m| m.state == MemberState::Suspect) else {
                self.swim.forget_check(seq);
                continue;
            };
            if escalated {
                self.confirm_suspicion_ourselves(slot);
                continue;
            }
            let (target, target_addr) = (m.name.clone(), m.addr.clone());
            for h in self.pick_members(self.config.indirect_checks, Some(slot)) {
                if let Some(helper) = self.members.get(h) {
                    let dest = helper.addr.clone();
                    let message =
                        crate::wire::Message::PingReq { seq, target: target.clone(), target_addr: target_addr.clone() };
                    self.outbox.push_back(crate::node::Outgoing { dest, messages: vec![message], piggyback: true });
                }
            }
            self.swim.escalate_check(seq, now + self.config.probe_timeout);
        }
    }

    /// Declares dead every suspect whose suspicion ran out.
    pub(crate) fn fire_suspicions(&mut self, now: Instant) {
        while let Some(&(at, slot)) = self.suspicion_deadlines.first() {
            if at > now {
                break;
            }
            self.suspicion_deadlines.pop_first();
            let scale = self.suspicion_health_scale();
            if let Some(s) = self.suspicions.get_mut(&slot).filter(|s| s.health_scale < scale) {
                // We fell behind since the suspicion started: give the suspect longer.
                s.health_scale = scale;
                self.suspicion_deadlines.insert((s.deadline(), slot));
                continue;
            }
            self.suspicions.remove(&slot);
            let Some(mut record) = self.members.record(slot) else { continue };
            if record.state != MemberState::Suspect {
                continue;
            }
            record.state = MemberState::Dead;
            self.members.update(slot, &record);
            self.metrics.suspicions_confirmed += 1;
            tracing::debug!(node = %self.name, member = %record.name, "suspicion timed out: dead");
            self.mark_gone(now, slot, &record);
            self.queue_member_rumor(slot, Priority::Failure);
        }
    }

    /// Bookkeeping for a member that just became dead or left.
    fn mark_gone(&mut self, now: Instant, slot: Slot, record: &MemberRecord<A>) {
        self.clear_suspicion(slot);
        self.crdt_forget_peer(&record.addr);
        self.gone.push_back((now, slot, record.generation, record.incarnation));
        if self.gone.len() > 2 * self.members.len() + 64 {
            self.compact_gone();
        }
        let event = if record.state == MemberState::Left {
            Event::MemberLeft(record.clone())
        } else {
            Event::MemberDown(record.clone())
        };
        self.events.push_back(event);
    }

    /// Keeps, of the `gone` entries, only each member's latest that still describes it (the
    /// others would be skipped when reclaiming): a member that flaps between alive and dead
    /// adds an entry per death, and the list must stay bounded by the members.
    fn compact_gone(&mut self) {
        let mut seen = std::collections::BTreeSet::new();
        let members = &self.members;
        let mut kept: VecDeque<_> =
            self.gone
                .iter()
                .rev()
                .filter(|&&(_, slot, generation, incarnation)| {
                    members.get(slot).is_some_and(|m| {
                        m.state.is_gone() && m.generation == generation && m.incarnation == incarnation
                    }) && seen.insert(slot)
                })
                .copied()
                .collect();
        kept.make_contiguous().reverse();
        self.gone = kept;
    }

    /// Forgets members dead or left for longer than `dead_reclaim_time`, keeping a record of
    /// their last incarnation for as long again so stale gossip cannot bring them back.
    pub(crate) fn reclaim(&mut self, now: Instant) {
        let keep = self.config.dead_reclaim_time;
        while let Some(&(at, slot, generation, incarnation)) = self.gone.front() {
            if now.saturating_duration_since(at) < keep {
                break;
            }
            self.gone.pop_front();
            let still_same = self
                .members
                .get(slot)
                .is_some_and(|m| m.state.is_gone() && m.generation == generation && m.incarnation == incarnation);
            if !still_same {
                continue;
            }
            if let Some(m) = self.members.remove(slot) {
                self.phi.forget(slot);
                self.forget_signed(slot);
                self.state.forget(&m.name);
                self.dissemination.members.remove(&slot);
                self.forgotten.insert(m.name.clone(), (m.generation, m.incarnation));
                self.forgotten_order.push_back((now + keep, m.name, m.generation, m.incarnation));
            }
        }
        while let Some((until, ..)) = self.forgotten_order.front() {
            if *until > now {
                break;
            }
            let Some((_, name, generation, incarnation)) = self.forgotten_order.pop_front() else { break };
            // The member may have come back (and maybe gone again, with a newer record that
            // expires later) since this entry was made: only its own record goes.
            if self.forgotten.get(&name) != Some(&(generation, incarnation)) {
                continue;
            }
            self.forgotten.remove(&name);
            if self.members.find(&name).is_none() {
                self.unpin_key(&name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::wire::{codec, MemberRecord, MemberState, Message};
    use crate::{Config, Identity, Node};

    #[test]
    fn a_member_flapping_between_dead_and_alive_keeps_the_bookkeeping_bounded() {
        let t0 = Instant::now();
        let id = Identity { name: "a".into(), addr: 1u32, generation: 1 };
        let mut node = Node::new(Config::local(), id, 1, t0).expect("node");
        let label = node.config().cluster_label.clone();
        for incarnation in 0..20_000u32 {
            let state = if incarnation % 2 == 0 { MemberState::Alive } else { MemberState::Dead };
            let record = MemberRecord {
                name: "flapper".into(),
                addr: 2,
                generation: 1,
                incarnation,
                state,
                zone: None,
                proof: None,
            };
            let message = Message::Member { record, accuser: Some("flapper".into()), signature: None };
            let bytes = codec::encode_datagram(&label, "flapper", &[message]);
            let now = t0 + Duration::from_millis(2 * u64::from(incarnation));
            node.handle_message(now, 2, &bytes).expect("handled");
            assert!(node.gone.len() <= 2 * node.members.len() + 65, "gone: {}", node.gone.len());
            assert!(node.swim.probe_order_len() <= 2 * 2 + 64 + 1, "probe order: {}", node.swim.probe_order_len());
        }
        assert_eq!(node.member("flapper").map(|m| m.state), Some(MemberState::Dead));
    }
}
