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
//! future writes before they are made). What it does not: a remove in an add-wins set is
//! anyone's right, so a member may still remove what it has seen, as any member can.
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
use crate::wire::signing::{self, PublicKey, Signature};

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
    /// Signatures of exact claims, by hash of (author, statement).
    sigs: BTreeMap<u64, Signature>,
    /// Per replica, the highest dot it signed as issued.
    issued: BTreeMap<ReplicaId, (u64, Signature)>,
    /// `sigs` is pruned to the state's claims when it grows past this (superseded counts and
    /// removed dots leave signatures behind).
    prune_at: usize,
}

impl ObjectProofs {
    fn keep(&mut self, verified: &Verified, state: &AnyCrdt) {
        self.sigs.extend(verified.sigs.iter().copied());
        for &(replica, seq, sig) in &verified.issued {
            let held = self.issued.entry(replica).or_insert((seq, sig));
            if seq > held.0 {
                *held = (seq, sig);
            }
        }
        if self.sigs.len() > self.prune_at {
            let live: std::collections::BTreeSet<u64> = state.claims().iter().map(claim_hash).collect();
            self.sigs.retain(|h, _| live.contains(h));
            self.prune_at = self.sigs.len().saturating_mul(2).saturating_add(64);
        }
    }
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
}

/// What a verified proof adds: signatures, issued marks, authors, and keys to pin.
#[derive(Debug, Default)]
pub(crate) struct Verified {
    sigs: Vec<(u64, Signature)>,
    issued: Vec<(ReplicaId, u64, Signature)>,
    authors: Vec<(ReplicaId, ClaimAuthor)>,
}

/// A part of a state with its proof (`None` without signing): what goes in one message.
pub(crate) type ProvenPart = (AnyCrdt, Option<Box<CrdtProof>>);

/// A part this node cannot prove (it lacks a signature or an author for one of its claims).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unprovable;

fn claim_hash(claim: &Claim<'_>) -> u64 {
    postcard::to_allocvec(&(claim.author, &claim.statement)).map_or(0, |bytes| xxhash_rust::xxh3::xxh3_64(&bytes))
}

impl<A: Address> Node<A> {
    /// Checks `proof` for `state`, a state of object `object` from a peer: `Some` with what to
    /// keep once it is joined, `None` if a claim is unproven (refuse the whole state). Always
    /// `Some` without signing.
    pub(crate) fn verify_crdt(&self, object: &str, state: &AnyCrdt, proof: Option<&CrdtProof>) -> Option<Verified> {
        let mut out = Verified::default();
        if self.signed.is_none() {
            return Some(out);
        }
        let proof = proof?;
        let claims = state.claims();
        if claims.len() != proof.signatures.len() {
            return None;
        }
        let mut authors: BTreeMap<ReplicaId, &ClaimAuthor> = BTreeMap::new();
        let mut names: BTreeMap<&str, &PublicKey> = BTreeMap::new();
        for author in &proof.authors {
            // One key per name within a proof, and that key bound to the name (or bindable).
            if names.insert(author.name.as_str(), &author.key).is_some_and(|k| *k != author.key) {
                return None;
            }
            self.key_binding(&author.name, &author.key)?;
            authors.insert(ReplicaId::new(&author.name, author.generation), author);
        }
        let held = self.crdts.objects.get(object).map(|o| &o.proofs);
        let (label, kind) = (self.config.cluster_label.as_str(), state.kind());
        let mut used: BTreeMap<ReplicaId, &ClaimAuthor> = BTreeMap::new();
        for (claim, signed) in claims.iter().zip(&proof.signatures) {
            let author = *authors.get(&claim.author)?;
            used.insert(claim.author, author);
            let verify = |statement: &Statement<'_>| {
                signing::verify_crdt_claim(label, object, kind, claim.author, statement, &author.key, &signed.sig)
            };
            match (claim.statement, signed.issued) {
                (Statement::Issued { seq }, Some(upto)) if upto >= seq => {
                    if held.and_then(|h| h.issued.get(&claim.author)) == Some(&(upto, signed.sig)) {
                        continue; // verified before
                    }
                    if !verify(&Statement::Issued { seq: upto }) {
                        return None;
                    }
                    out.issued.push((claim.author, upto, signed.sig));
                }
                (Statement::Issued { .. }, _) | (_, Some(_)) => return None,
                (statement, None) => {
                    let hash = claim_hash(claim);
                    if held.and_then(|h| h.sigs.get(&hash)) == Some(&signed.sig) {
                        continue;
                    }
                    if !verify(&statement) {
                        return None;
                    }
                    out.sigs.push((hash, signed.sig));
                }
            }
        }
        out.authors = used.into_iter().map(|(id, a)| (id, a.clone())).collect();
        Some(out)
    }

    /// Keeps what a verified proof brought, for object `object` (already joined): the
    /// signatures, the authors, and their keys where first seen.
    pub(crate) fn keep_crdt_proofs(&mut self, object: &str, verified: Verified) {
        if self.signed.is_none() {
            return;
        }
        let max_authors = self.config.max_members.saturating_mul(2).saturating_add(1024);
        for (id, author) in &verified.authors {
            self.pin_key(&author.name, author.key);
            if self.crdts.authors.len() < max_authors || self.crdts.authors.contains_key(id) {
                self.crdts.authors.insert(*id, author.clone());
            }
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
        verified.authors.push((me, author));
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
                || (self.crdts.authors.contains_key(&claim.author)
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
            let state_len = encoded_size(&part);
            match self.prove_crdt(object, &part) {
                Ok(proof) if state_len.saturating_add(encoded_size(&proof)) <= room => {
                    out.push((part, proof));
                    continue;
                }
                _ => {}
            }
            // Too large, or a claim unproven: cut it smaller (what can be proven still goes).
            let pieces = part.split(state_len / 2);
            if pieces.len() > 1 && pieces.iter().all(|p| encoded_size(p) < state_len) {
                todo.extend(pieces.into_iter().rev());
            } else {
                self.metrics.crdt_unprovable += 1;
                complete = false;
            }
        }
        (out, complete)
    }
}

fn encoded_size<T: Serialize>(value: &T) -> usize {
    postcard::experimental::serialized_size(value).unwrap_or(usize::MAX)
}
