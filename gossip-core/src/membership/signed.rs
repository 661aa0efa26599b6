//! Signed self-state on the node's side (with [`crate::Config::signing`]): checking members'
//! proofs against the keys bound to their names, pinning keys on first use, checking and
//! rate-limiting accusations per accuser, and attaching proofs and accusation signatures to
//! what this node sends.
//!
//! What a verified proof buys: a member's liveness claim (alive at an incarnation, its
//! address, its leave) cannot be made by anyone else, so a rogue member cannot refute on
//! another's behalf, move it to another address, or make it leave. What it cannot buy: an
//! accusation is an opinion, not a fact. A signed accusation is accepted as a suspicion (a
//! "dead" from another node only confirms one), which the accused refutes; the accuser's
//! name makes it accountable and lets receivers limit how many accusations it makes.

use std::time::Instant;

use compact_str::CompactString;
use hashbrown::HashMap;

use crate::membership::limits::TokenBuckets;
use crate::membership::table::{Address, Slot};
use crate::node::Node;
use crate::wire::signing::{self, Keypair, Proof, PublicKey, Signature, SignatureMemo, Signing, Trust};
use crate::wire::{MemberRecord, MemberState};

/// A signed suspicion this node relays (a death it declares, it signs itself).
#[derive(Debug, Clone)]
pub(crate) struct HeldAccusation {
    pub accuser: CompactString,
    pub sig: Signature,
    pub generation: u64,
    pub incarnation: u32,
}

/// The node's signing state.
#[derive(Debug)]
pub(crate) struct SignedState {
    pub keypair: Keypair,
    trust: Trust,
    /// Keys bound to names on first use; bounded by `max_pins`.
    pinned: HashMap<CompactString, PublicKey, ahash::RandomState>,
    max_pins: usize,
    /// Each member's proof for the claim the table holds, with a hash of that claim (a copy
    /// of a record already verified is not verified again).
    proofs: HashMap<Slot, (Proof, [u8; 32]), ahash::RandomState>,
    /// For suspect members: the accusation this node passes on.
    pub accusations: HashMap<Slot, HeldAccusation, ahash::RandomState>,
    /// This node's own signature accusing each member it accused, by the life and
    /// incarnation accused (signed once, not at every transmission).
    own_accusations: HashMap<Slot, (u64, u32, Signature), ahash::RandomState>,
    accusers: TokenBuckets<CompactString>,
    /// This node's proof of its current record (signed once per change, not per message).
    self_proof: Option<Proof>,
    /// Signatures verified lately (membership, key/value and CRDT claims alike).
    pub memo: SignatureMemo,
}

impl SignedState {
    pub fn new(signing: Signing, max_members: usize, keys: [u64; 4]) -> Self {
        let hasher = |i: usize| ahash::RandomState::with_seeds(keys[i % 4], keys[(i + 1) % 4], keys[(i + 2) % 4], 7);
        SignedState {
            keypair: signing.keypair,
            trust: signing.trust,
            pinned: HashMap::with_hasher(hasher(0)),
            max_pins: max_members.saturating_mul(2).saturating_add(1024),
            proofs: HashMap::with_hasher(hasher(1)),
            accusations: HashMap::with_hasher(hasher(2)),
            own_accusations: HashMap::with_hasher(hasher(3)),
            accusers: TokenBuckets::new(signing.accusation_burst, signing.accusations_per_s, keys),
            self_proof: None,
            memo: SignatureMemo::default(),
        }
    }
}

/// What a verified claim is remembered by: SHA-256 of what was signed (a weaker hash would let
/// a forged record that hashes alike pass as the copy of a verified one).
fn claim_hash<A: Address>(label: &str, record: &MemberRecord<A>) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(signing::self_claim_bytes(label, record)).into()
}

impl<A: Address> Node<A> {
    /// The key bound to `name`, if any.
    pub(crate) fn key_of(&self, name: &str) -> Option<PublicKey> {
        let s = self.signed.as_ref()?;
        if name == self.name {
            return Some(s.keypair.public_key());
        }
        match &s.trust {
            Trust::FirstUse => s.pinned.get(name).copied(),
            Trust::Listed(list) => list.get(name).copied(),
        }
    }

    /// Whether keys are bound to names on first use (not by a configured list).
    pub(crate) fn trusts_first_use(&self) -> bool {
        self.signed.as_ref().is_some_and(|s| matches!(s.trust, Trust::FirstUse))
    }

    /// Whether `record` carries its member's valid proof (always true without signing). Under
    /// trust on first use, a name with no key bound yet passes with any key that signed the
    /// record; the key is bound when the member is admitted ([`Node::pin_key`]), not here, so
    /// records that are never admitted (a stranger's leave, a full table) bind nothing.
    pub(crate) fn check_claim(&mut self, record: &MemberRecord<A>) -> bool {
        let Some(s) = &self.signed else { return true };
        let Some(proof) = record.proof.as_deref().copied() else { return false };
        let hash = claim_hash(&self.config.cluster_label, record);
        let slot = self.members.find(&record.name);
        if slot.and_then(|slot| s.proofs.get(&slot)).is_some_and(|held| held == &(proof, hash)) {
            return true; // a copy of what we verified already
        }
        let bound = self.key_of(&record.name);
        let listed = matches!(s.trust, Trust::Listed(_));
        match bound {
            Some(key) if key != proof.key => return false,
            None if listed => return false,
            _ => {}
        }
        let Some(s) = self.signed.as_mut() else { return false };
        signing::verify_claim(&self.config.cluster_label, record, &proof, &mut s.memo)
    }

    /// Binds the key of `record`'s proof to its name under trust on first use, as the member
    /// is admitted; false if the pins are at their limit (the member is then refused).
    pub(crate) fn pin_key(&mut self, record: &MemberRecord<A>) -> bool {
        let Some(s) = self.signed.as_mut() else { return true };
        if !matches!(s.trust, Trust::FirstUse) || s.pinned.contains_key(record.name.as_str()) {
            return true;
        }
        let Some(proof) = record.proof.as_deref() else { return false };
        if s.pinned.len() >= s.max_pins {
            return false;
        }
        s.pinned.insert(record.name.clone(), proof.key);
        true
    }

    /// Releases the key bound to a name the node no longer knows at all (its member was
    /// reclaimed and the record of its last life has expired): pins stay bounded by the
    /// members and the recently forgotten, and a node that comes back after that long with a
    /// new key is bound to the new one.
    pub(crate) fn unpin_key(&mut self, name: &str) {
        if let Some(s) = self.signed.as_mut() {
            s.pinned.remove(name);
        }
    }

    /// Whether `sig` is `accuser`'s valid signature accusing `record` (a suspect or dead
    /// record), by the key bound to the accuser. A copy of the accusation held for the member
    /// (verified when it was kept; keys bound to names never change) is not verified again.
    pub(crate) fn check_accusation(&mut self, record: &MemberRecord<A>, accuser: &str, sig: &Signature) -> bool {
        let Some(s) = &self.signed else { return false };
        let held = self.members.find(&record.name).and_then(|slot| s.accusations.get(&slot));
        if held.is_some_and(|a| {
            a.accuser == accuser
                && a.sig == *sig
                && a.generation == record.generation
                && a.incarnation == record.incarnation
        }) {
            return true;
        }
        let Some(key) = self.key_of(accuser) else { return false };
        let Some(s) = self.signed.as_mut() else { return false };
        signing::verify_accusation(&self.config.cluster_label, record, accuser, &key, sig, &mut s.memo)
    }

    /// Takes one of `accuser`'s tokens for an accusation that starts a suspicion or a
    /// refutation (always succeeds without signing).
    pub(crate) fn admit_accusation(&mut self, now: Instant, accuser: &CompactString) -> bool {
        let Some(s) = self.signed.as_mut() else { return true };
        if s.accusers.take(now, accuser) {
            return true;
        }
        self.metrics.accusations_rate_limited += 1;
        false
    }

    /// Keeps what the table's record for `slot` rests on: its member's proof, and for a
    /// suspect, the accusation (accuser and signature) to pass on.
    pub(crate) fn remember_signed(
        &mut self,
        slot: Slot,
        record: &MemberRecord<A>,
        accuser: Option<&CompactString>,
        signature: Option<Signature>,
    ) {
        if self.signed.is_none() {
            return;
        }
        let hash = claim_hash(&self.config.cluster_label, record);
        let Some(s) = self.signed.as_mut() else { return };
        if let Some(proof) = record.proof.as_deref() {
            s.proofs.insert(slot, (*proof, hash));
        }
        if let (MemberState::Suspect, Some(by), Some(sig)) = (record.state, accuser, signature) {
            let held = HeldAccusation {
                accuser: by.clone(),
                sig,
                generation: record.generation,
                incarnation: record.incarnation,
            };
            s.accusations.insert(slot, held);
        }
    }

    /// Forgets what was kept for a slot whose member is gone from the table.
    pub(crate) fn forget_signed(&mut self, slot: Slot) {
        if let Some(s) = self.signed.as_mut() {
            s.proofs.remove(&slot);
            s.accusations.remove(&slot);
            s.own_accusations.remove(&slot);
        }
    }

    /// The table's record for `slot` with its member's proof, for sending.
    pub(crate) fn record_out(&self, slot: Slot) -> Option<MemberRecord<A>> {
        let mut record = self.members.record(slot)?;
        if let Some(s) = &self.signed {
            record.proof = s.proofs.get(&slot).map(|p| Box::new(p.0));
        }
        Some(record)
    }

    /// This node's proof for its own current record.
    pub(crate) fn self_proof(&self) -> Option<Proof> {
        self.signed.as_ref().and_then(|s| s.self_proof)
    }

    /// Signs this node's record anew: call after its incarnation or state changed.
    pub(crate) fn refresh_self_proof(&mut self) {
        if self.signed.is_none() {
            return;
        }
        let record = MemberRecord { proof: None, ..self.self_record() };
        if let Some(s) = self.signed.as_mut() {
            s.self_proof = Some(s.keypair.prove(&self.config.cluster_label, &record));
        }
    }

    /// This node's accusation of `record` (accuser and, in signed mode, signature).
    pub(crate) fn own_accusation(&self, record: &MemberRecord<A>) -> (Option<CompactString>, Option<Signature>) {
        let signature = self.signed.as_ref().map(|s| s.keypair.accuse(&self.config.cluster_label, record, &self.name));
        (Some(self.name.clone()), signature)
    }

    /// [`Node::own_accusation`] of the table's member in `slot`, signed once per life and
    /// incarnation accused.
    fn own_accusation_of(
        &mut self,
        slot: Slot,
        record: &MemberRecord<A>,
    ) -> (Option<CompactString>, Option<Signature>) {
        let label = &self.config.cluster_label;
        let Some(s) = self.signed.as_mut() else { return (Some(self.name.clone()), None) };
        let sig = match s.own_accusations.get(&slot) {
            Some(&(generation, incarnation, sig))
                if generation == record.generation && incarnation == record.incarnation =>
            {
                sig
            }
            _ => {
                let sig = s.keypair.accuse(label, record, &self.name);
                s.own_accusations.insert(slot, (record.generation, record.incarnation, sig));
                sig
            }
        };
        (Some(self.name.clone()), Some(sig))
    }

    /// Accuser and signature to send with a suspect or dead `record`: the held accusation
    /// (naming `announce` if given), or this node's own.
    pub(crate) fn accusation_out(
        &mut self,
        slot: Slot,
        record: &MemberRecord<A>,
        announce: Option<&CompactString>,
    ) -> (Option<CompactString>, Option<Signature>) {
        let Some(s) = &self.signed else { return (announce.cloned(), None) };
        let held = s.accusations.get(&slot).filter(|a| {
            a.generation == record.generation
                && a.incarnation == record.incarnation
                && record.state == MemberState::Suspect
                && announce.is_none_or(|n| *n == a.accuser)
        });
        match held {
            Some(a) => (Some(a.accuser.clone()), Some(a.sig)),
            None => self.own_accusation_of(slot, record),
        }
    }
}
