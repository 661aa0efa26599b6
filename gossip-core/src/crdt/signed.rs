//! Signed CRDT claims (with [`crate::Config::signing`]): no member can write in another's name.
//!
//! Every part of a CRDT state is a claim of one replica (see the claims module): its count, its
//! register write, its dot and the value under it, and, in a causal context, the dots it
//! issued. The author of a replica is the member whose name and life hash to the replica id,
//! and it signs each claim it makes (a count or a dot as it writes it; each new dot also as
//! "issued up to here"). States travel with a [`CrdtProof`]: the authors (name, life, key)
//! and one signature per claim. A receiver checks the key against the one bound to the name
//! (pinned on first use, or listed), then every signature, and joins nothing of a state with
//! one claim unproven.
//!
//! What this stops: counts, writes and elements made up in another member's name, and a
//! causal context claiming dots another member has not issued yet (which would cancel its
//! future writes before they are made). What it does not: removes in an add-wins set are
//! anyone's to make, so a member may remove any of a replica's adds up to the replica's
//! signed mark (adds that exist), as any member can. Replica ids are 64 bits of SHA-256, so no
//! name and generation can be picked to land on another's replica.
//!
//! An author's key must be the one bound to its name: by the trust list, or under trust on
//! first use by the member's verified record, or else by the first CRDT author accepted under
//! that name (kept apart from the membership's pins, which made-up authors cannot use up). A
//! member that changes its key cannot prove its old lives' claims with the new one: states
//! holding them are refused where the old key is bound. Authors are bounded, at a life for
//! every member twice over plus 1,024 and at [`MAX_LIVES_PER_NAME`] per name. A state that
//! would bring authors past that is refused and counted (`crdt_refused`), so that whatever a
//! node joined it can prove on.
//!
//! A node keeps, per object, the signatures of the claims it holds, and sends each part
//! with the proofs it can give; a part it cannot prove (a signature it no longer holds) is
//! left for anti-entropy to send later.

use std::collections::BTreeMap;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::claims::{Claim, Statement};
use super::{AnyCrdt, ReplicaId};
use crate::membership::table::Address;
use crate::node::Node;
use crate::wire::codec::encoded_len;
use crate::wire::signing::{self, PublicKey, Signature, SignatureMemo};

/// The member writing as a replica: its name and life (which hash to the replica id) and the
/// key it signs with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimAuthor {
    /// The member's name.
    pub name: CompactString,
    /// Its generation (life).
    pub generation: u64,
    /// Its public key.
    pub key: PublicKey,
}

/// One claim's signature. For a claim of issued dots, `issued` is the highest dot its author
/// signed as issued (at least the claim's): the signature is over that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimSignature {
    /// For a claim of issued dots: the dot signed for.
    pub issued: Option<u64>,
    /// The author's signature.
    pub sig: Signature,
}

/// What makes a CRDT state verifiable under signed self-state: the authors of its claims and
/// one signature per claim, in the state's claim order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrdtProof {
    /// Every author of a claim in the state.
    #[serde(deserialize_with = "crate::wire::bounded::vec")]
    pub authors: Vec<ClaimAuthor>,
    /// One per claim.
    #[serde(deserialize_with = "crate::wire::bounded::vec")]
    pub signatures: Vec<ClaimSignature>,
}

/// The signatures a node holds for the claims of one object.
#[derive(Debug, Clone, Default)]
pub(crate) struct ObjectProofs {
    /// Signatures of exact claims, by SHA-256 of (author, statement): a weaker hash would let
    /// a forged claim that hashes alike pass as one verified before.
    sigs: BTreeMap<[u8; 32], Signature>,
    /// Per replica, the highest dot it signed as issued.
    issued: BTreeMap<ReplicaId, (u64, Signature)>,
    /// `sigs` is pruned to the state's claims when it grows past this (superseded counts and
    /// removed dots leave signatures behind).
    prune_at: usize,
}

impl ObjectProofs {
    /// The signature this node can send for `claim`, if it holds one.
    fn signature_for(&self, claim: &Claim<'_>) -> Option<ClaimSignature> {
        match claim.statement {
            Statement::Issued { seq } => match self.issued.get(&claim.author) {
                Some(&(upto, sig)) if upto >= seq => Some(ClaimSignature { issued: Some(upto), sig }),
                _ => None,
            },
            _ => self.sigs.get(&claim_hash(claim)).map(|&sig| ClaimSignature { issued: None, sig }),
        }
    }

    /// Keeps verified signatures (the higher issued marks), pruning those of superseded claims
    /// now and then.
    fn keep(&mut self, verified: &Verified, state: &AnyCrdt) {
        self.sigs.extend(verified.sigs.iter().copied());
        for &(replica, seq, sig) in &verified.issued {
            let held = self.issued.entry(replica).or_insert((seq, sig));
            if seq > held.0 {
                *held = (seq, sig);
            }
        }
        if self.sigs.len() > self.prune_at {
            let live: std::collections::BTreeSet<[u8; 32]> = state.claims().iter().map(claim_hash).collect();
            self.sigs.retain(|h, _| live.contains(h));
            self.prune_at = self.sigs.len().saturating_mul(2).saturating_add(64);
        }
    }
}

/// Lives of one member name whose claims a node accepts: a member writing under many made-up
/// generations (each a replica of its own) cannot fill the authors table.
pub const MAX_LIVES_PER_NAME: usize = 1024;

/// Who writes as each replica whose claims a node holds, bounded (see [`Node::keep_crdt_proofs`]).
#[derive(Debug, Default)]
pub(crate) struct CrdtAuthors {
    by_replica: BTreeMap<ReplicaId, ClaimAuthor>,
    /// How many lives of each name `by_replica` holds.
    lives: BTreeMap<CompactString, usize>,
    /// Under trust on first use, for names no member record has bound: the key of the first
    /// author accepted under that name (its later lives must use it). Kept here, apart from
    /// the membership's pins, so that made-up authors cannot use those up.
    keys: BTreeMap<CompactString, PublicKey>,
    /// This node's own life, kept apart from the bound.
    own: Option<(ReplicaId, ClaimAuthor)>,
}

impl CrdtAuthors {
    fn get(&self, replica: &ReplicaId) -> Option<&ClaimAuthor> {
        match &self.own {
            Some((id, author)) if id == replica => Some(author),
            _ => self.by_replica.get(replica),
        }
    }

    /// Whether new authors, `added` lives per name, fit within `max` authors in all and
    /// [`MAX_LIVES_PER_NAME`] per name.
    fn has_room(&self, added: &BTreeMap<&str, usize>, max: usize) -> bool {
        let total: usize = added.values().sum();
        self.by_replica.len().saturating_add(total) <= max
            && added
                .iter()
                .all(|(name, &n)| self.lives.get(*name).copied().unwrap_or(0).saturating_add(n) <= MAX_LIVES_PER_NAME)
    }

    fn insert(&mut self, replica: ReplicaId, author: ClaimAuthor) {
        if self.get(&replica).is_none() {
            *self.lives.entry(author.name.clone()).or_insert(0) += 1;
            self.keys.entry(author.name.clone()).or_insert(author.key);
            self.by_replica.insert(replica, author);
        }
    }
}

/// Why a peer's state was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A claim lacked its author's valid signature, or the author its bound key.
    Forged,
    /// A new author past the authors table's bounds.
    TooManyAuthors,
}

/// What a verified proof adds: signatures, issued marks and authors.
#[derive(Debug, Default)]
pub(crate) struct Verified {
    sigs: Vec<([u8; 32], Signature)>,
    issued: Vec<(ReplicaId, u64, Signature)>,
    authors: Vec<(ReplicaId, ClaimAuthor)>,
}

/// A part of a state with its proof (`None` without signing): what goes in one message.
pub(crate) type ProvenPart = (AnyCrdt, Option<Box<CrdtProof>>);

/// A part this node cannot prove (it lacks a signature or an author for one of its claims).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unprovable;

fn claim_hash(claim: &Claim<'_>) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(postcard::to_allocvec(&(claim.author, &claim.statement)).unwrap_or_default()).into()
}

impl<A: Address> Node<A> {
    /// Checks `proof` for `state`, a state of object `object` from a peer: `Ok` with what to
    /// keep once it is joined, `Err` if a claim is unproven or a new author does not fit
    /// (refuse the whole state, so that what is joined can always be proven on). Always `Ok`
    /// without signing.
    pub(crate) fn verify_crdt(
        &mut self,
        object: &str,
        state: &AnyCrdt,
        proof: Option<&CrdtProof>,
    ) -> Result<Verified, Refusal> {
        let Some(s) = self.signed.as_mut() else { return Ok(Verified::default()) };
        let mut memo = std::mem::take(&mut s.memo);
        let checked = self.check_crdt_proof(object, state, proof, &mut memo);
        if let Some(s) = self.signed.as_mut() {
            s.memo = memo;
        }
        checked
    }

    /// [`Node::verify_crdt`] on a signed node, verifying signatures through `memo`.
    fn check_crdt_proof(
        &self,
        object: &str,
        state: &AnyCrdt,
        proof: Option<&CrdtProof>,
        memo: &mut SignatureMemo,
    ) -> Result<Verified, Refusal> {
        let mut out = Verified::default();
        let proof = proof.ok_or(Refusal::Forged)?;
        let claims = state.claims();
        if claims.len() != proof.signatures.len() {
            return Err(Refusal::Forged);
        }
        let mut authors: BTreeMap<ReplicaId, &ClaimAuthor> = BTreeMap::new();
        let mut names: BTreeMap<&str, &PublicKey> = BTreeMap::new();
        for author in &proof.authors {
            // A valid name, one key per name within a proof, and that key the name's.
            if !crate::node::valid_name(&author.name)
                || names.insert(author.name.as_str(), &author.key).is_some_and(|k| *k != author.key)
            {
                return Err(Refusal::Forged);
            }
            let bound = match self.key_of(&author.name) {
                Some(key) => Some(key),
                None if !self.trusts_first_use() => return Err(Refusal::Forged), // not listed
                None => self.crdts.authors.keys.get(author.name.as_str()).copied(),
            };
            if bound.is_some_and(|key| key != author.key) {
                return Err(Refusal::Forged);
            }
            authors.insert(ReplicaId::new(&author.name, author.generation), author);
        }
        // Every author must fit the table (or be there already, the same), so that what is
        // joined can be proven on (checked once the signatures hold: a forgery is a forgery).
        let mut added: BTreeMap<&str, usize> = BTreeMap::new();
        for (id, author) in &authors {
            match self.crdts.authors.get(id) {
                Some(held) if held == *author => {}
                Some(_) => return Err(Refusal::Forged),
                None => *added.entry(author.name.as_str()).or_insert(0) += 1,
            }
        }
        let room = self.crdts.authors.has_room(&added, self.max_crdt_authors());
        let held = self.crdts.objects.get(object).map(|o| &o.proofs);
        let (label, kind) = (self.config.cluster_label.as_str(), state.kind());
        let mut used: BTreeMap<ReplicaId, &ClaimAuthor> = BTreeMap::new();
        for (claim, signed) in claims.iter().zip(&proof.signatures) {
            let author = *authors.get(&claim.author).ok_or(Refusal::Forged)?;
            used.insert(claim.author, author);
            let mut verify = |statement: &Statement<'_>| {
                let claimed = signing::crdt_claim_bytes(label, object, kind, claim.author, statement);
                memo.verifies(&author.key, &claimed, &signed.sig)
            };
            match (claim.statement, signed.issued) {
                (Statement::Issued { seq }, Some(upto)) if upto >= seq => {
                    if held.and_then(|h| h.issued.get(&claim.author)) == Some(&(upto, signed.sig)) {
                        continue; // verified before
                    }
                    if !verify(&Statement::Issued { seq: upto }) {
                        return Err(Refusal::Forged);
                    }
                    out.issued.push((claim.author, upto, signed.sig));
                }
                (Statement::Issued { .. }, _) | (_, Some(_)) => return Err(Refusal::Forged),
                (statement, None) => {
                    let hash = claim_hash(claim);
                    if held.and_then(|h| h.sigs.get(&hash)) == Some(&signed.sig) {
                        continue;
                    }
                    if !verify(&statement) {
                        return Err(Refusal::Forged);
                    }
                    out.sigs.push((hash, signed.sig));
                }
            }
        }
        if !room {
            return Err(Refusal::TooManyAuthors);
        }
        out.authors = used.into_iter().map(|(id, a)| (id, a.clone())).collect();
        Ok(out)
    }

    /// At most what a proof of `part` adds to its message (signatures, marks, authors): an
    /// update whose smallest parts do not fit a datagram with their proofs could never be
    /// sent, so it is refused. 0 without signing.
    pub(crate) fn proof_bytes_bound(&self, part: &AnyCrdt) -> usize {
        if self.signed.is_none() {
            return 0;
        }
        let me = self.replica_id();
        let claims = part.claims();
        let mut authors: BTreeMap<ReplicaId, usize> = BTreeMap::new();
        for claim in &claims {
            let name = if claim.author == me {
                self.name.len()
            } else {
                self.crdts.authors.get(&claim.author).map_or(crate::config::MAX_NAME_LEN, |a| a.name.len())
            };
            // Name and its length, generation, key and its length.
            authors.insert(claim.author, name + 2 + 10 + 33);
        }
        // Per claim: the signature and its length, the mark. Two vector lengths, the option.
        claims.len() * (65 + 11) + authors.values().sum::<usize>() + 2 * 5 + 1
    }

    /// Bound of the CRDT authors table: a life for every member, twice over, and more.
    fn max_crdt_authors(&self) -> usize {
        self.config.max_members.saturating_mul(2).saturating_add(1024)
    }

    /// Keeps what a verified proof brought, for object `object` (already joined): the
    /// signatures and the authors. (No membership pin is made from a CRDT proof.)
    pub(crate) fn keep_crdt_proofs(&mut self, object: &str, verified: Verified) {
        if self.signed.is_none() {
            return;
        }
        for (id, author) in &verified.authors {
            // `verify_crdt` made room: every author of what was joined is kept.
            self.crdts.authors.insert(*id, author.clone());
        }
        if let Some(o) = self.crdts.objects.get_mut(object) {
            o.proofs.keep(&verified, &o.state);
        }
    }

    /// Signs this node's own claims in `delta`, a local update of object `object` (already
    /// joined), and keeps the signatures.
    pub(crate) fn sign_own_crdt(&mut self, object: &str, delta: &AnyCrdt) {
        let Some(s) = &self.signed else { return };
        let me = self.replica_id();
        let (label, kind) = (self.config.cluster_label.as_str(), delta.kind());
        let mut verified = Verified::default();
        for claim in delta.claims().iter().filter(|c| c.author == me) {
            let sig = s.keypair.sign_crdt_claim(label, object, kind, me, &claim.statement);
            match claim.statement {
                Statement::Issued { seq } => verified.issued.push((me, seq, sig)),
                _ => verified.sigs.push((claim_hash(claim), sig)),
            }
        }
        let author = ClaimAuthor { name: self.name.clone(), generation: self.generation, key: s.keypair.public_key() };
        self.crdts.authors.own = Some((me, author));
        self.keep_crdt_proofs(object, verified);
    }

    /// The proof to send with `state`, a part of object `object`: `Ok(None)` without
    /// signing, `Err` when this node lacks a signature or an author for one of its claims.
    pub(crate) fn prove_crdt(&self, object: &str, state: &AnyCrdt) -> Result<Option<Box<CrdtProof>>, Unprovable> {
        if self.signed.is_none() {
            return Ok(None);
        }
        let proofs = &self.crdts.objects.get(object).ok_or(Unprovable)?.proofs;
        let mut authors: BTreeMap<ReplicaId, ()> = BTreeMap::new();
        let mut proof = CrdtProof { authors: Vec::new(), signatures: Vec::new() };
        for claim in state.claims() {
            if authors.insert(claim.author, ()).is_none() {
                proof.authors.push(self.crdts.authors.get(&claim.author).ok_or(Unprovable)?.clone());
            }
            proof.signatures.push(proofs.signature_for(&claim).ok_or(Unprovable)?);
        }
        Ok(Some(Box::new(proof)))
    }

    /// With signing: the first replica other than this node's that `delta`, a local update
    /// of object `object`, writes as without this node holding that claim signed (a node
    /// signs for its own replica only). `None` when the update is fine.
    pub(crate) fn unsigned_writer(&self, object: &str, delta: &AnyCrdt) -> Option<ReplicaId> {
        self.signed.as_ref()?;
        let me = self.replica_id();
        let proofs = self.crdts.objects.get(object).map(|o| &o.proofs);
        delta.claims().into_iter().find_map(|claim| {
            let held = claim.author == me
                || (self.crdts.authors.get(&claim.author).is_some()
                    && proofs.and_then(|p| p.signature_for(&claim)).is_some());
            (!held).then_some(claim.author)
        })
    }

    /// `parts` of object `object` with their proofs, each part with its proof encoding to at
    /// most `room` bytes: parts too large with their proofs are split further; parts that
    /// cannot be proven, or one claim too large, are left out and counted. The flag tells
    /// whether nothing was left out (the parts still join to the join of `parts`).
    pub(crate) fn prove_parts(&mut self, object: &str, parts: Vec<AnyCrdt>, room: usize) -> (Vec<ProvenPart>, bool) {
        if self.signed.is_none() {
            return (parts.into_iter().map(|p| (p, None)).collect(), true);
        }
        let mut complete = true;
        let mut out = Vec::with_capacity(parts.len());
        let mut todo: Vec<AnyCrdt> = parts.into_iter().rev().collect();
        while let Some(part) = todo.pop() {
            let state_len = encoded_len(&part);
            match self.prove_crdt(object, &part) {
                Ok(proof) if state_len.saturating_add(encoded_len(&proof)) <= room => {
                    out.push((part, proof));
                    continue;
                }
                _ => {}
            }
            // Too large, or a claim unproven: cut it smaller (what can be proven still goes).
            let pieces = part.split(state_len / 2);
            if pieces.len() > 1 && pieces.iter().all(|p| encoded_len(p) < state_len) {
                todo.extend(pieces.into_iter().rev());
            } else {
                self.metrics.crdt_unprovable += 1;
                complete = false;
            }
        }
        (out, complete)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::crdt::{Crdt, GCounter};
    use crate::wire::signing::{Keypair, Signing};
    use crate::wire::{codec, Message};
    use crate::{Config, Identity};

    fn signed_node(config: Config) -> Node<u32> {
        let config = Config { signing: Some(Signing::new(Keypair::from_secret([1; 32]))), ..config };
        Node::new(config, Identity { name: "n0".into(), addr: 1, generation: 1 }, 3, Instant::now()).expect("node")
    }

    /// A count of 1 written as `name` in `generation`, signed by `key`, as a datagram.
    fn count_as(node: &Node<u32>, key: &Keypair, name: &str, generation: u64) -> Vec<u8> {
        let label = node.config().cluster_label.clone();
        let replica = ReplicaId::new(name, generation);
        let delta = GCounter::default().increment(replica, 1).into_any();
        let claims = delta.claims();
        let sig = key.sign_crdt_claim(&label, "c", delta.kind(), replica, &claims[0].statement);
        let proof = CrdtProof {
            authors: vec![ClaimAuthor { name: name.into(), generation, key: key.public_key() }],
            signatures: vec![ClaimSignature { issued: None, sig }],
        };
        codec::encode_datagram(
            &label,
            name,
            &[Message::<u32>::CrdtDelta { object: "c".into(), delta, proof: Some(Box::new(proof)) }],
        )
    }

    fn value(node: &Node<u32>) -> u128 {
        node.crdt::<GCounter>("c").map_or(0, GCounter::value)
    }

    #[test]
    fn a_member_writing_under_many_made_up_lives_is_bounded() {
        let mut node = signed_node(Config { source_rate_limit: None, ..Config::local() });
        let rogue = Keypair::from_secret([9; 32]);
        let now = Instant::now();
        let lives = MAX_LIVES_PER_NAME as u64 + 6;
        for generation in 1..=lives {
            let bytes = count_as(&node, &rogue, "rogue", generation);
            node.handle_message(now, 2, &bytes).expect("well-formed");
        }
        assert_eq!(value(&node), MAX_LIVES_PER_NAME as u128, "the first lives count");
        assert_eq!(node.metrics().crdt_refused, 6, "the rest refused and counted");
        assert_eq!(node.metrics().forged_crdt_states, 0, "properly signed: not forgeries");
    }

    #[test]
    fn authors_past_the_bound_are_refused_and_pin_nothing() {
        // One key under ever new names (trust on first use): once the authors table is full,
        // a new name's claim is refused; the membership's key pins are left alone.
        let mut node = signed_node(Config { max_members: 8, source_rate_limit: None, ..Config::local() });
        let writer = Keypair::from_secret([9; 32]);
        let now = Instant::now();
        let bound = node.max_crdt_authors();
        for i in 0..bound + 10 {
            let bytes = count_as(&node, &writer, &format!("w{i}"), 1);
            node.handle_message(now, 2, &bytes).expect("well-formed");
        }
        assert_eq!(value(&node), bound as u128);
        assert_eq!(node.metrics().crdt_refused, 10);
        assert!(node.key_of("w0").is_none(), "CRDT authors never use up the membership's pins");
        // A known author still writes; another key under its name is a forgery.
        let bytes = count_as(&node, &writer, "w0", 1);
        node.handle_message(now, 2, &bytes).expect("well-formed");
        assert_eq!(node.metrics().crdt_refused, 10, "a copy of a known claim is fine");
        let bytes = count_as(&node, &Keypair::from_secret([8; 32]), "w0", 2);
        node.handle_message(now, 2, &bytes).expect("well-formed");
        assert_eq!(node.metrics().forged_crdt_states, 1, "the first key of a name binds its later lives");
    }

    #[test]
    fn replica_ids_are_a_cryptographic_hash_of_name_and_life() {
        // Not the identity, not the seed: distinct lives and names give distinct ids.
        assert_ne!(ReplicaId::new("a", 1), ReplicaId::new("a", 2));
        assert_ne!(ReplicaId::new("a", 1), ReplicaId::new("b", 1));
        assert_ne!(ReplicaId::new("", 0), ReplicaId::new("\0", 0));
        assert_eq!(ReplicaId::new("a", 1), ReplicaId::new("a", 1));
    }
}
