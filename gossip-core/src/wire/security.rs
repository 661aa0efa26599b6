//! Sealed datagrams: a keyring of ChaCha20-Poly1305 keys (RustCrypto), replay protection.
//!
//! A sealed datagram is `[SEALED][prefix: 4][counter: 8][ciphertext + tag: 16]`: the plaintext
//! is the ordinary datagram (version byte, envelope, messages); the nonce is the sender's
//! prefix (random for each node life) and a counter it never repeats; the associated data is
//! the marker byte and the cluster label, so a datagram sealed for another cluster does not
//! open here. The primary key (the first) seals; every key in the ring opens, which is what
//! lets a key rotate without a stranded node: install the new key everywhere, make it primary
//! everywhere, then remove the old one.
//!
//! Nonces never repeat under a key: a sender's prefix is random for each life, and so is where
//! its counter starts (below 2^62), so two lives repeat a nonce only if they draw the same 32-bit
//! prefix *and* overlapping stretches of a 62-bit counter. (A prefix alone, with every counter
//! starting at 1, made two lives under one key repeat nonces with probability n²/2³³.)
//!
//! Replays: each receiver keeps, per sender (its prefix and the 2^40-wide stretch its counter
//! is in, both read from the authenticated nonce; a bounded number of them, the least recently
//! heard forgotten first), the highest counter seen and a 64-counter window below it; a
//! counter seen before, or older than the window, is refused. Two lives that drew one prefix
//! start their counters in different stretches but for a chance of 2^-22, so they keep windows
//! of their own; and since the key comes from the datagram itself, a replay is refused from
//! whatever address it is sent.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use thiserror::Error;

/// First byte of a sealed datagram (a plain one starts with the protocol version).
pub const SEALED: u8 = 0xE1;

/// Bytes sealing adds to a datagram: marker, prefix, counter and tag.
pub const SEAL_OVERHEAD: usize = 1 + 4 + 8 + 16;

/// Senders whose replay windows are kept; the least recently heard is forgotten first.
const MAX_SENDERS: usize = 16_384;

/// A 256-bit key.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.id()) // never the key itself
    }
}

/// Why a key or keyring was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key is 64 hexadecimal digits (32 bytes).
    #[error("a key is 64 hexadecimal digits (32 bytes)")]
    BadKey,
    /// A keyring holds at least one key.
    #[error("the keyring is empty")]
    Empty,
    /// The key is not in the ring.
    #[error("key {0} is not in the keyring")]
    Unknown(String),
    /// The MTU leaves no room for sealing.
    #[error("mtu {mtu} leaves less than the {min} bytes a sealed datagram needs")]
    MtuTooSmall {
        /// The MTU once sealing's overhead is taken off.
        mtu: usize,
        /// What the configuration needs.
        min: usize,
    },
    /// The primary key cannot be removed (make another primary first).
    #[error("key {0} is the primary key: make another key primary before removing it")]
    RemovePrimary(String),
}

impl Key {
    /// From 32 bytes (use a CSPRNG, for instance `gossip keygen`).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Key(bytes)
    }

    /// From 64 hexadecimal digits.
    pub fn from_hex(hex: &str) -> Result<Self, KeyError> {
        let hex = hex.trim();
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(KeyError::BadKey);
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| KeyError::BadKey)?;
        }
        Ok(Key(out))
    }

    /// As 64 hexadecimal digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A short public id of the key (a hash, not the key), for logs and commands.
    pub fn id(&self) -> String {
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64_with_seed(&self.0, 0x6b65_7969_6400))
    }
}

/// The keys a node holds: the first seals, all open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl Keyring {
    /// A ring of `keys`, the first primary.
    pub fn new(keys: Vec<Key>) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        let mut unique: Vec<Key> = Vec::new();
        for k in keys {
            if !unique.contains(&k) {
                unique.push(k);
            }
        }
        Ok(Keyring { keys: unique })
    }

    /// The primary key.
    pub fn primary(&self) -> &Key {
        &self.keys[0]
    }

    /// Every key, the primary first.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// Adds a key that opens (no change if present).
    pub fn install(&mut self, key: Key) {
        if !self.keys.contains(&key) {
            self.keys.push(key);
        }
    }

    /// Makes an installed key primary.
    pub fn use_key(&mut self, id: &str) -> Result<(), KeyError> {
        let i = self.keys.iter().position(|k| k.id() == id).ok_or_else(|| KeyError::Unknown(id.into()))?;
        let key = self.keys.remove(i);
        self.keys.insert(0, key);
        Ok(())
    }

    /// Removes a key that is not primary.
    pub fn remove(&mut self, id: &str) -> Result<(), KeyError> {
        let i = self.keys.iter().position(|k| k.id() == id).ok_or_else(|| KeyError::Unknown(id.into()))?;
        if i == 0 {
            return Err(KeyError::RemovePrimary(id.into()));
        }
        self.keys.remove(i);
        Ok(())
    }

    /// From a keyring file: one key per line in hex, the first primary; blank lines and lines
    /// starting with `#` are skipped.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let keys = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(Key::from_hex)
            .collect::<Result<Vec<_>, _>>()?;
        Keyring::new(keys)
    }
}

/// How a node treats sealing: the steps of turning encryption on across a running cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SealMode {
    /// Holds keys and opens sealed datagrams, but sends plaintext (step 1: install the keyring
    /// on every node).
    Open,
    /// Seals what it sends and still accepts plaintext (step 2, once every node opens).
    Seal,
    /// Seals, and drops plaintext (step 3, once every node seals).
    #[default]
    Require,
}

/// Why a sealed datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Not a sealed datagram's shape.
    Truncated,
    /// No key in the ring opens it: tampered, sealed with a key not here, or another cluster.
    Unopenable,
    /// Seen before, or older than the replay window.
    Replayed,
}

#[derive(Debug, Default, Clone, Copy)]
struct Window {
    highest: u64,
    /// Bit i: counter `highest - i` seen.
    seen: u64,
}

impl Window {
    /// Records `counter`; false if it was seen or is too old.
    fn accept(&mut self, counter: u64) -> bool {
        if counter > self.highest {
            let shift = counter - self.highest;
            self.seen = if shift >= 64 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.highest = counter;
            return true;
        }
        let back = self.highest - counter;
        if back >= 64 || self.seen & (1 << back) != 0 {
            return false;
        }
        self.seen |= 1 << back;
        true
    }
}

/// A sender as the replay windows tell senders apart: its nonce prefix and the stretch of
/// 2^40 counters its counter is in (two lives that drew one prefix start in different
/// stretches, almost surely, and so do not share a window).
type Sender = ([u8; 4], u64);

/// Counters per stretch: a life crosses into the next one only after 2^40 datagrams at most.
const STRETCH_BITS: u32 = 40;

/// A node's sealing state: its keyring and mode, its nonce prefix and counter, and the replay
/// windows of the senders it hears.
#[derive(Debug)]
pub(crate) struct Sealer {
    pub keyring: Keyring,
    pub mode: SealMode,
    prefix: [u8; 4],
    counter: u64,
    /// Each sender's window and when it was last heard (a tick of `heard`).
    windows: HashMap<Sender, (Window, u64)>,
    /// Senders by when they were last heard: the first goes when the table is full.
    by_heard: BTreeMap<u64, Sender>,
    heard: u64,
}

impl Sealer {
    pub fn new(keyring: Keyring, mode: SealMode, prefix: [u8; 4]) -> Self {
        Sealer { keyring, mode, prefix, counter: 0, windows: HashMap::new(), by_heard: BTreeMap::new(), heard: 0 }
    }

    /// Starts the counter after `start` (the node draws it at random for each life, below
    /// 2^62 so it never wraps).
    pub fn with_counter_after(mut self, start: u64) -> Self {
        self.counter = start;
        self
    }

    /// Seals `plain` for cluster `label`.
    pub fn seal(&mut self, plain: &[u8], label: &str) -> Vec<u8> {
        self.counter += 1;
        seal_datagram(self.keyring.primary(), self.prefix, self.counter, plain, label)
    }

    /// Opens a sealed datagram from cluster `label` with any key in the ring, then checks the
    /// replay window of its sender.
    pub fn open(&mut self, sealed: &[u8], label: &str) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < SEAL_OVERHEAD || sealed[0] != SEALED {
            return Err(OpenError::Truncated);
        }
        let nonce = Nonce::from_slice(&sealed[1..13]);
        let aad = aad(label);
        let plain = self
            .keyring
            .keys()
            .iter()
            .find_map(|k| {
                ChaCha20Poly1305::new((&k.0).into()).decrypt(nonce, Payload { msg: &sealed[13..], aad: &aad }).ok()
            })
            .ok_or(OpenError::Unopenable)?;
        let mut prefix = [0u8; 4];
        prefix.copy_from_slice(&sealed[1..5]);
        let mut counter = [0u8; 8];
        counter.copy_from_slice(&sealed[5..13]);
        let counter = u64::from_be_bytes(counter);
        if !self.window((prefix, counter >> STRETCH_BITS)).accept(counter) {
            return Err(OpenError::Replayed);
        }
        Ok(plain)
    }

    /// The window of `sender` (authenticated: its datagram opened), now the most recently
    /// heard; the least recently heard sender is forgotten when the table is full.
    fn window(&mut self, sender: Sender) -> &mut Window {
        self.heard += 1;
        let heard = self.heard;
        match self.windows.get_mut(&sender) {
            Some((_, last)) => {
                self.by_heard.remove(last);
                *last = heard;
            }
            None => {
                if self.windows.len() >= MAX_SENDERS {
                    if let Some((_, oldest)) = self.by_heard.pop_first() {
                        self.windows.remove(&oldest);
                    }
                }
                self.windows.insert(sender, (Window::default(), heard));
            }
        }
        self.by_heard.insert(heard, sender);
        &mut self.windows.entry(sender).or_insert((Window::default(), heard)).0
    }
}

/// Seals one datagram `plain` with `key` for cluster `label`, under nonce `prefix`
/// `counter`, as a node does: for tools that speak the wire format (a fuzzer, a traffic
/// generator). A node never repeats a nonce under one key; a caller must not either, or the
/// cipher's secrecy is lost.
///
/// ```
/// use gossip_core::wire::security::{seal_datagram, Key, SEALED, SEAL_OVERHEAD};
/// let sealed = seal_datagram(&Key::from_bytes([1; 32]), [0, 0, 0, 1], 1, b"datagram", "prod");
/// assert_eq!(sealed[0], SEALED);
/// assert_eq!(sealed.len(), b"datagram".len() + SEAL_OVERHEAD);
/// ```
pub fn seal_datagram(key: &Key, prefix: [u8; 4], counter: u64, plain: &[u8], label: &str) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(&prefix);
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    let aad = aad(label);
    let cipher = ChaCha20Poly1305::new((&key.0).into());
    let sealed = cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad: &aad });
    let mut out = Vec::with_capacity(plain.len() + SEAL_OVERHEAD);
    out.push(SEALED);
    out.extend_from_slice(&nonce);
    // Encryption into a Vec cannot fail; an empty result would be dropped as truncated.
    out.extend_from_slice(&sealed.unwrap_or_default());
    out
}

fn aad(label: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(1 + label.len());
    aad.push(SEALED);
    aad.extend_from_slice(label.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(b: u8) -> Keyring {
        Keyring::new(vec![Key::from_bytes([b; 32])]).expect("ring")
    }

    #[test]
    fn sealed_opens_once_with_the_right_key_and_label_only() {
        let mut a = Sealer::new(ring(1), SealMode::Require, [1, 2, 3, 4]);
        let mut b = Sealer::new(ring(1), SealMode::Require, [5, 6, 7, 8]);
        let sealed = a.seal(b"hello", "gossip");
        assert_eq!(sealed.len(), 5 + SEAL_OVERHEAD);
        assert_eq!(b.open(&sealed, "gossip"), Ok(b"hello".to_vec()));
        assert_eq!(b.open(&sealed, "gossip"), Err(OpenError::Replayed));
        let other = a.seal(b"x", "gossip");
        assert_eq!(b.open(&other, "elsewhere"), Err(OpenError::Unopenable));
        let mut tampered = a.seal(b"y", "gossip");
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(b.open(&tampered, "gossip"), Err(OpenError::Unopenable));
        let mut stranger = Sealer::new(ring(9), SealMode::Require, [0; 4]);
        assert_eq!(stranger.open(&a.seal(b"z", "gossip"), "gossip"), Err(OpenError::Unopenable));
    }

    #[test]
    fn lives_that_drew_one_prefix_keep_windows_of_their_own() {
        let mut reader = Sealer::new(ring(1), SealMode::Require, [0; 4]);
        // Two lives with the same prefix, their counters starting in different stretches.
        let mut early = Sealer::new(ring(1), SealMode::Require, [7; 4]).with_counter_after(10);
        let mut late = Sealer::new(ring(1), SealMode::Require, [7; 4]).with_counter_after(1 << 50);
        let from_late = late.seal(b"late", "g");
        let from_early = early.seal(b"early", "g");
        assert!(reader.open(&from_late, "g").is_ok());
        assert!(reader.open(&from_early, "g").is_ok(), "not taken for a replay of the other life");
        assert_eq!(reader.open(&from_early, "g"), Err(OpenError::Replayed));
        assert_eq!(reader.open(&from_late, "g"), Err(OpenError::Replayed));
        // The counter starts where it was told: the nonce carries start + 1.
        assert_eq!(&from_late[5..13], &((1u64 << 50) + 1).to_be_bytes());
    }

    #[test]
    fn the_least_recently_heard_sender_is_forgotten_first() {
        let mut reader = Sealer::new(ring(1), SealMode::Require, [0; 4]);
        let mut senders: Vec<Sealer> =
            (0..=MAX_SENDERS as u32).map(|i| Sealer::new(ring(1), SealMode::Require, i.to_be_bytes())).collect();
        let old = senders[0].seal(b"first", "g");
        assert!(reader.open(&old, "g").is_ok());
        for s in &mut senders[1..MAX_SENDERS] {
            assert!(reader.open(&s.seal(b"x", "g"), "g").is_ok());
        }
        // Sender 0 is heard again, so sender 1 is now the least recently heard ...
        assert!(reader.open(&senders[0].seal(b"again", "g"), "g").is_ok());
        assert!(reader.open(&senders[MAX_SENDERS].seal(b"new", "g"), "g").is_ok());
        // ... and goes, while sender 0 keeps its window: its old datagram is still a replay.
        assert_eq!(reader.windows.len(), MAX_SENDERS);
        assert!(!reader.windows.contains_key(&(1u32.to_be_bytes(), 0)));
        assert_eq!(reader.open(&old, "g"), Err(OpenError::Replayed));
    }

    #[test]
    fn the_replay_window_takes_reordered_counters_once() {
        let mut w = Window::default();
        assert!(w.accept(5) && w.accept(3) && w.accept(7) && w.accept(4));
        assert!(!w.accept(3) && !w.accept(7));
        assert!(w.accept(200));
        assert!(!w.accept(100), "older than the window");
    }

    #[test]
    fn rotation_keeps_old_senders_readable_until_the_old_key_goes() {
        let old = Key::from_bytes([1; 32]);
        let new = Key::from_bytes([2; 32]);
        let mut ring = Keyring::new(vec![old.clone()]).expect("ring");
        ring.install(new.clone());
        let mut reader = Sealer::new(ring.clone(), SealMode::Require, [0; 4]);
        let mut old_sender = Sealer::new(Keyring::new(vec![old.clone()]).expect("ring"), SealMode::Require, [1; 4]);
        let mut new_sender = Sealer::new(Keyring::new(vec![new.clone()]).expect("ring"), SealMode::Require, [2; 4]);
        assert!(reader.open(&old_sender.seal(b"a", "g"), "g").is_ok());
        assert!(reader.open(&new_sender.seal(b"b", "g"), "g").is_ok());
        assert_eq!(reader.keyring.remove(&old.id()), Err(KeyError::RemovePrimary(old.id())));
        reader.keyring.use_key(&new.id()).expect("installed");
        reader.keyring.remove(&old.id()).expect("not primary any more");
        assert_eq!(reader.open(&old_sender.seal(b"c", "g"), "g"), Err(OpenError::Unopenable));
        assert_eq!(Key::from_hex(&new.to_hex()), Ok(new));
        assert_eq!(
            Keyring::parse("# ring\n\n0101010101010101010101010101010101010101010101010101010101010101\n")
                .map(|r| r.keys().len()),
            Ok(1)
        );
        assert_eq!(Key::from_hex("zz"), Err(KeyError::BadKey));
    }
}
