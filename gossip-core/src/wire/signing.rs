//! Signed self-state: Ed25519 key pairs (ed25519-dalek) binding what a member says about itself
//! to a key.
//!
//! With [`Signing`] configured, a member's own claims — alive at an incarnation (joining,
//! refuting), its address and zone, its leave — carry a [`Proof`]: its public key and its
//! signature over the claim. Relays pass the proof on unchanged, so a claim is checked against
//! its author wherever it travels, and a rogue member cannot forge another's state or refute
//! on its behalf. Accusations (suspect, dead) are signed by their accuser instead, which is what
//! lets receivers rate-limit them per accuser.
//!
//! Key/value writes are signed one by one, and after each write the node also signs its
//! *head*: a hash of all its live keys at that version. A delta that skips versions (writes
//! since overwritten, tombstones since collected) or replaces a participant's state (a reset)
//! only shows once the head vouches for the result, so a rogue member can neither leave a
//! write out nor empty another node's keys (see [`crate::antientropy::store`]).
//!
//! CRDT states are signed claim by claim: each replica's count, register write and dot is
//! signed by the member writing as that replica, and a causal context's dots of a replica by
//! that replica's signed mark of the dots it issued (see [`crate::crdt::signed`]).
//!
//! Keys are bound to member names by [`Trust`]: trust on first use (the key of a member's
//! first admitted record is pinned until the member is forgotten) or a configured list.
//!
//! ```
//! use std::time::Instant;
//! use gossip_core::wire::signing::{Keypair, Signing, Trust};
//! use gossip_core::{Config, Identity, Node};
//!
//! // In production the secret comes from `gossip keygen --signing` (the OS's CSPRNG).
//! let keypair = Keypair::from_secret([7; 32]);
//! let public = keypair.public_key(); // what other members' trust lists name
//! let list = Trust::parse_list(&format!("node-a {}\n", public.to_hex()))?;
//! let signing = Signing { trust: list, ..Signing::new(keypair) };
//! let config = Config { signing: Some(signing), ..Config::lan() };
//! let node = Node::new(config, Identity { name: "node-a".into(), addr: 1u32, generation: 1 }, 1, Instant::now())?;
//! assert_eq!(node.self_record().proof.map(|p| p.key), Some(public));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use compact_str::CompactString;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{MemberRecord, MemberState};

/// Domain tags: a signature over one kind of statement never verifies as another.
const SELF_CLAIM: &str = "gossip/self-claim/v1";
const ACCUSATION: &str = "gossip/accusation/v1";
const KV_WRITE: &str = "gossip/kv-write/v1";
const KV_HEAD: &str = "gossip/kv-head/v1";
const CRDT_CLAIM: &str = "gossip/crdt-claim/v1";

/// Why a key pair or public key was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SigningError {
    /// A secret or public key is 64 hexadecimal digits (32 bytes).
    #[error("an Ed25519 key is 64 hexadecimal digits (32 bytes)")]
    BadKey,
    /// The bytes are not a valid Ed25519 public key.
    #[error("not a valid Ed25519 public key")]
    BadPublicKey,
    /// A trust list names a member twice, or a name is unusable.
    #[error("trust list entry {0:?} is invalid or repeated")]
    BadTrustEntry(String),
}

/// An Ed25519 public key: what others check a member's claims against.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublicKey([u8; 32]);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl PublicKey {
    /// Parses 64 hexadecimal digits.
    pub fn from_hex(hex: &str) -> Result<Self, SigningError> {
        let bytes = parse_hex32(hex)?;
        VerifyingKey::from_bytes(&bytes).map_err(|_| SigningError::BadPublicKey)?;
        Ok(PublicKey(bytes))
    }

    /// The key as 64 hexadecimal digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `sig` is this key's signature over `message` (false for a malformed key).
    fn verifies(&self, message: &[u8], sig: &Signature) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.0) else { return false };
        key.verify(message, &ed25519_dalek::Signature::from_bytes(&sig.0)).is_ok()
    }
}

/// How many verified signatures a [`SignatureMemo`] remembers (about 100 KiB).
const MEMO_ENTRIES: usize = 1024;

/// Signatures verified lately, so that the copies of a rumor gossip delivers again and again
/// cost one Ed25519 verification, not one each. Only successes are remembered, by SHA-256 of
/// key, signature and message: a hit is exactly a triple verified before (a forgery never
/// hits, and a flood of them cannot grow the memo). The oldest are forgotten first.
#[derive(Debug, Default)]
pub(crate) struct SignatureMemo {
    verified: BTreeSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl SignatureMemo {
    /// Whether `sig` is `key`'s signature over `message`.
    pub(crate) fn verifies(&mut self, key: &PublicKey, message: &[u8], sig: &Signature) -> bool {
        use sha2::{Digest, Sha256};
        // Key and signature have fixed lengths, so the concatenation is unambiguous.
        let digest: [u8; 32] =
            Sha256::new().chain_update(key.0).chain_update(sig.0).chain_update(message).finalize().into();
        if self.verified.contains(&digest) {
            return true;
        }
        if !key.verifies(message, sig) {
            return false;
        }
        if self.order.len() >= MEMO_ENTRIES {
            if let Some(oldest) = self.order.pop_front() {
                self.verified.remove(&oldest);
            }
        }
        self.order.push_back(digest);
        self.verified.insert(digest);
        true
    }
}

/// An Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature(#[serde(with = "serde_bytes")] [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

/// A member's Ed25519 key pair. `Debug` shows the public key only.
#[derive(Clone)]
pub struct Keypair(SigningKey);

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", self.public_key().to_hex())
    }
}

impl PartialEq for Keypair {
    fn eq(&self, other: &Self) -> bool {
        self.public_key() == other.public_key()
    }
}

impl Keypair {
    /// The key pair whose secret key is `secret` (32 bytes from a secure random source: see
    /// `gossip keygen --signing`).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        Keypair(SigningKey::from_bytes(&secret))
    }

    /// Parses a secret key written as 64 hexadecimal digits.
    pub fn from_hex(hex: &str) -> Result<Self, SigningError> {
        Ok(Keypair::from_secret(parse_hex32(hex)?))
    }

    /// The secret key as 64 hexadecimal digits (for writing a key file; handle with care).
    pub fn secret_hex(&self) -> String {
        self.0.to_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The public key others verify this key pair's claims with.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }
}

/// A member's signature over its own claim, with the key to check it (so that a first
/// contact can pin the key). 97 bytes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// The author's public key.
    pub key: PublicKey,
    /// Its signature over the claim.
    pub sig: Signature,
}

/// How member names are bound to public keys.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Trust {
    /// The key of the first record admitted for a name (validly signed, and taken into the
    /// member table) is pinned: a later claim under another key is refused. A member that
    /// loses its key needs a new name, or to stay away until every node has forgotten it
    /// (`dead_reclaim_time` after it was reclaimed, twice that after its death or leave).
    #[default]
    FirstUse,
    /// Only these members, with these keys, are accepted.
    Listed(BTreeMap<CompactString, PublicKey>),
}

impl Trust {
    /// Parses a trust list: one `NAME PUBLIC_KEY_HEX` per line; blank lines and `#` comments
    /// are skipped.
    pub fn parse_list(text: &str) -> Result<Self, SigningError> {
        let mut list = BTreeMap::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let mut parts = line.split_whitespace();
            let (Some(name), Some(key), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(SigningError::BadTrustEntry(line.to_string()));
            };
            if crate::config::check_name("trust", name, false).is_err() {
                return Err(SigningError::BadTrustEntry(name.to_string()));
            }
            if list.insert(CompactString::from(name), PublicKey::from_hex(key)?).is_some() {
                return Err(SigningError::BadTrustEntry(name.to_string()));
            }
        }
        Ok(Trust::Listed(list))
    }
}

/// Signed self-state settings ([`crate::Config::signing`]). Every member of a cluster must
/// sign once one does: unsigned claims are refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Signing {
    /// This node's key pair.
    pub keypair: Keypair,
    /// How other members' keys are trusted.
    pub trust: Trust,
    /// Accusations (suspect or dead) that start a suspicion, or make this node refute,
    /// accepted from one accuser in a burst. (Confirmations of a suspicion already held are
    /// not limited: each accuser counts once per suspicion.)
    pub accusation_burst: u32,
    /// Such accusations per second one accuser earns back. An honest member starts at most
    /// one suspicion per probe interval (its failed probe) and passes on others' accusations
    /// under their names.
    pub accusations_per_s: f64,
}

impl Signing {
    /// Signing with `keypair`, trust on first use, and accusation limits of 16 at once and
    /// 2 per second per accuser.
    pub fn new(keypair: Keypair) -> Self {
        Signing { keypair, trust: Trust::FirstUse, accusation_burst: 16, accusations_per_s: 2.0 }
    }
}

/// The bytes a member signs to claim `record` about itself: its name, address, life,
/// incarnation, zone, and whether it is alive or has left. A suspect or dead record carries
/// the proof of the alive claim it accuses.
pub(crate) fn self_claim_bytes<A: Serialize>(label: &str, record: &MemberRecord<A>) -> Vec<u8> {
    let state = if record.state == MemberState::Left { MemberState::Left } else { MemberState::Alive };
    let claim =
        (SELF_CLAIM, label, &record.name, &record.addr, record.generation, record.incarnation, state, &record.zone);
    postcard::to_allocvec(&claim).unwrap_or_default()
}

/// The bytes an accuser signs to accuse `record`'s member in that life and incarnation. The
/// signature does not say suspect or dead: a receiver treats another node's "dead" as a
/// suspicion anyway, and passes it on as one under the same signature.
pub(crate) fn accusation_bytes<A>(label: &str, record: &MemberRecord<A>, accuser: &str) -> Vec<u8> {
    let claim = (ACCUSATION, label, accuser, &record.name, record.generation, record.incarnation);
    postcard::to_allocvec(&claim).unwrap_or_default()
}

/// The bytes a member signs for one write of its key/value state (a set or a deletion) in a
/// life: relays cannot change the value, the key or the version.
pub(crate) fn kv_write_bytes(
    label: &str,
    node: &str,
    generation: u64,
    update: &crate::antientropy::KeyUpdate,
) -> Vec<u8> {
    let value = update.value.as_deref();
    let claim = (KV_WRITE, label, node, generation, &update.key, update.version, value);
    postcard::to_allocvec(&claim).unwrap_or_default()
}

/// What a node signs for its key/value state as a whole: the hash of its live keys after
/// its write at `version` (see [`crate::antientropy::KvStore`]).
pub(crate) fn kv_head_bytes(label: &str, node: &str, generation: u64, version: u64, root: &[u8; 32]) -> Vec<u8> {
    postcard::to_allocvec(&(KV_HEAD, label, node, generation, version, root)).unwrap_or_default()
}

/// The bytes a replica's author signs for one claim of its own about CRDT object `object`
/// (see [`crate::crdt::signed`]): the object, its type and the replica are part of it, so a
/// signature is good for that statement only.
pub(crate) fn crdt_claim_bytes(
    label: &str,
    object: &str,
    kind: crate::crdt::CrdtKind,
    replica: crate::crdt::ReplicaId,
    statement: &crate::crdt::claims::Statement<'_>,
) -> Vec<u8> {
    postcard::to_allocvec(&(CRDT_CLAIM, label, object, kind, replica, statement)).unwrap_or_default()
}

impl Keypair {
    /// This key pair's signature over one of its replica's claims about a CRDT object.
    pub(crate) fn sign_crdt_claim(
        &self,
        label: &str,
        object: &str,
        kind: crate::crdt::CrdtKind,
        replica: crate::crdt::ReplicaId,
        statement: &crate::crdt::claims::Statement<'_>,
    ) -> Signature {
        self.sign(&crdt_claim_bytes(label, object, kind, replica, statement))
    }

    /// This key pair's signature over the hash `root` of its own live keys at `version`.
    pub fn sign_head(&self, label: &str, node: &str, generation: u64, version: u64, root: &[u8; 32]) -> Signature {
        self.sign(&kv_head_bytes(label, node, generation, version, root))
    }

    /// This key pair's signature over its own key/value write.
    pub fn sign_write(
        &self,
        label: &str,
        node: &str,
        generation: u64,
        update: &crate::antientropy::KeyUpdate,
    ) -> Signature {
        self.sign(&kv_write_bytes(label, node, generation, update))
    }

    /// This key pair's proof for `record`, a claim about itself (what a node attaches to
    /// its own records; public for tools and tests that speak for this key).
    pub fn prove<A: Serialize>(&self, label: &str, record: &MemberRecord<A>) -> Proof {
        Proof { key: self.public_key(), sig: self.sign(&self_claim_bytes(label, record)) }
    }

    /// This key pair's signature accusing `record`'s member, as `accuser`.
    pub fn accuse<A>(&self, label: &str, record: &MemberRecord<A>, accuser: &str) -> Signature {
        self.sign(&accusation_bytes(label, record, accuser))
    }
}

/// Whether `proof` is a valid signature of `record`'s claim under `proof.key`.
pub(crate) fn verify_claim<A: Serialize>(
    label: &str,
    record: &MemberRecord<A>,
    proof: &Proof,
    memo: &mut SignatureMemo,
) -> bool {
    memo.verifies(&proof.key, &self_claim_bytes(label, record), &proof.sig)
}

/// Whether `sig` is `key`'s accusation of `record` as `accuser`.
pub(crate) fn verify_accusation<A>(
    label: &str,
    record: &MemberRecord<A>,
    accuser: &str,
    key: &PublicKey,
    sig: &Signature,
    memo: &mut SignatureMemo,
) -> bool {
    memo.verifies(key, &accusation_bytes(label, record, accuser), sig)
}

/// Whether `update` carries `key`'s valid signature as `node`'s write in `generation`.
pub(crate) fn verify_write(
    label: &str,
    node: &str,
    generation: u64,
    update: &crate::antientropy::KeyUpdate,
    key: &PublicKey,
    memo: &mut SignatureMemo,
) -> bool {
    update.sig.is_some_and(|sig| memo.verifies(key, &kv_write_bytes(label, node, generation, update), &sig))
}

fn parse_hex32(hex: &str) -> Result<[u8; 32], SigningError> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(SigningError::BadKey);
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| SigningError::BadKey)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: MemberState, incarnation: u32) -> MemberRecord<u32> {
        MemberRecord { name: "a".into(), addr: 7, generation: 1, incarnation, state, zone: None, proof: None }
    }

    #[test]
    fn claims_verify_only_as_signed() {
        let id = Keypair::from_secret([7; 32]);
        let alive = record(MemberState::Alive, 3);
        let proof = id.prove("c", &alive);
        let memo = &mut SignatureMemo::default();
        assert!(verify_claim("c", &alive, &proof, memo));
        // A suspicion of the same incarnation carries the alive proof.
        assert!(verify_claim("c", &record(MemberState::Suspect, 3), &proof, memo));
        assert!(!verify_claim("c", &record(MemberState::Alive, 4), &proof, memo), "another incarnation");
        assert!(!verify_claim("c", &record(MemberState::Left, 3), &proof, memo), "a leave is its own claim");
        assert!(!verify_claim("other-cluster", &alive, &proof, memo));
        let moved = MemberRecord { addr: 8, ..alive.clone() };
        assert!(!verify_claim("c", &moved, &proof, memo), "the address is part of the claim");
        let stranger = Keypair::from_secret([8; 32]);
        assert!(!verify_claim("c", &alive, &Proof { key: stranger.public_key(), ..proof }, memo));
    }

    #[test]
    fn accusations_name_their_accuser() {
        let id = Keypair::from_secret([9; 32]);
        let suspect = record(MemberState::Suspect, 2);
        let sig = id.accuse("c", &suspect, "b");
        let memo = &mut SignatureMemo::default();
        assert!(verify_accusation("c", &suspect, "b", &id.public_key(), &sig, memo));
        assert!(!verify_accusation("c", &suspect, "x", &id.public_key(), &sig, memo), "another accuser");
        assert!(
            verify_accusation("c", &record(MemberState::Dead, 2), "b", &id.public_key(), &sig, memo),
            "suspect or dead"
        );
        assert!(!verify_accusation("c", &record(MemberState::Suspect, 3), "b", &id.public_key(), &sig, memo));
    }

    #[test]
    fn the_memo_remembers_exact_verified_signatures_only() {
        let (id, other) = (Keypair::from_secret([3; 32]), Keypair::from_secret([4; 32]));
        let sig = id.sign(b"m");
        let memo = &mut SignatureMemo::default();
        assert!(memo.verifies(&id.public_key(), b"m", &sig));
        assert!(memo.verifies(&id.public_key(), b"m", &sig), "a copy");
        assert!(!memo.verifies(&id.public_key(), b"n", &sig), "another message");
        assert!(!memo.verifies(&other.public_key(), b"m", &sig), "another key");
        assert!(!memo.verifies(&id.public_key(), b"m", &other.sign(b"m")), "another signature");
        assert_eq!(memo.order.len(), 1, "failures are not remembered");
        for i in 0..MEMO_ENTRIES + 10 {
            let message = i.to_le_bytes();
            assert!(memo.verifies(&id.public_key(), &message, &id.sign(&message)));
        }
        assert_eq!((memo.order.len(), memo.verified.len()), (MEMO_ENTRIES, MEMO_ENTRIES), "bounded");
        assert!(memo.verifies(&id.public_key(), b"m", &sig), "forgotten, then verified again");
    }

    #[test]
    fn keys_and_trust_lists_parse() {
        let id = Keypair::from_secret([1; 32]);
        assert_eq!(Keypair::from_hex(&id.secret_hex()).map(|i| i.public_key()), Ok(id.public_key()));
        assert_eq!(PublicKey::from_hex(&id.public_key().to_hex()), Ok(id.public_key()));
        assert_eq!(PublicKey::from_hex("zz"), Err(SigningError::BadKey));
        let list = format!("# members\nnode-1 {}\n\n", id.public_key().to_hex());
        assert!(matches!(Trust::parse_list(&list), Ok(Trust::Listed(l)) if l.len() == 1));
        let twice = format!("{list}node-1 {}\n", id.public_key().to_hex());
        assert!(matches!(Trust::parse_list(&twice), Err(SigningError::BadTrustEntry(_))));
        assert!(!format!("{id:?}").contains(&id.secret_hex()), "Debug must not print the secret");
    }
}
