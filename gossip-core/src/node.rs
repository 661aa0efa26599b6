//! The node: every protocol layer composed behind one sans-IO driving contract.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use compact_str::CompactString;
use hashbrown::HashMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::{check_name, Config, MAX_NAME_LEN};
use crate::dissemination::{retransmit_limit, Dissemination, SELF_KEY};
use crate::error::{CommandError, HandleError, NewNodeError};
use crate::event::Event;
use crate::membership::health::Health;
use crate::membership::suspicion::Suspicion;
use crate::membership::swim::Swim;
use crate::membership::table::{record_hash, Address, MemberTable, Slot};
use crate::metrics::{DropReason, Metrics};
use crate::timer::{Timer, TimerTable};
use crate::transmit::Transmit;
use crate::wire::{codec, MemberRecord, MemberState, Message};

/// Who a node is: a unique name (stable across restarts), the address others reach it at, and
/// the generation of this life.
///
/// Give every restart a larger generation (a wall-clock timestamp taken by the caller, or a
/// counter kept on disk): the new life then supersedes the old one everywhere, even at a new
/// address, without a name conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity<A> {
    /// Unique member name (1 to 128 bytes, no control characters).
    pub name: String,
    /// Address the node receives datagrams at, as others should use it.
    pub addr: A,
    /// Generation of this life of the node.
    pub generation: u64,
}

/// How far down the outbox `poll_transmit` looks for more messages to the same destination.
const COALESCE_SCAN: usize = 32;

/// Anti-entropy requests answered per peer address at once, and per second after that: a
/// transfer asks again after each burst it receives, so catching up on a large store takes a
/// few a second; more is a peer gone wrong or a forged source address.
const ANSWER_BURST: u32 = 32;
const ANSWERS_PER_S: f64 = 32.0;

/// A message waiting to be packed into a datagram by `poll_transmit`.
#[derive(Debug)]
pub(crate) struct Outgoing<A> {
    pub dest: A,
    pub messages: Vec<Message<A>>,
    /// Whether rumors may fill the rest of the datagram.
    pub piggyback: bool,
}

/// A validated datagram: the sender's name and each message with its encoded length.
type Decoded<A> = (CompactString, Vec<(Message<A>, usize)>);

/// Where a record came from: decides whether it is news worth re-gossiping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// A rumor or a direct announcement.
    Gossip,
    /// A full-state exchange (push-pull, join reply).
    Sync,
}

/// One gossip node: SWIM + Lifeguard membership, rumor dissemination and the wire codec,
/// with no sockets, clocks, threads or global randomness.
///
/// # The driving contract
///
/// The node never does I/O and never reads a clock. The caller feeds it datagrams and the
/// current time, and drains what it wants sent and what it wants to say:
///
/// - [`handle_message`](Node::handle_message)`(now, from, bytes)` — one received datagram.
///   Never panics; bad input is a typed [`HandleError`] and a counted drop.
/// - [`poll_timer`](Node::poll_timer)`(now)` — fires every timer due by `now` and returns the
///   next deadline: sleep until then (or until a datagram arrives).
/// - [`poll_transmit`](Node::poll_transmit)`()` — the next datagram to send; drain until `None`
///   after every input.
/// - [`poll_event`](Node::poll_event)`()` — the next membership change or broadcast; drain
///   until `None`.
///
/// Every random choice comes from a ChaCha RNG seeded by the caller, so the same seed and the
/// same inputs give the same outputs, bit for bit: the simulator replays runs by seed.
///
/// # Example: two nodes wired together in memory
///
/// ```
/// use std::time::{Duration, Instant};
/// use gossip_core::{Config, Event, Identity, Node};
///
/// let start = Instant::now();
/// let mut a = Node::new(Config::lan(), Identity { name: "a".into(), addr: 1u32, generation: 1 }, 7, start)?;
/// let mut b = Node::new(Config::lan(), Identity { name: "b".into(), addr: 2u32, generation: 1 }, 8, start)?;
/// b.join(start, vec![1]);
///
/// let mut now = start;
/// for _ in 0..50 {
///     now += Duration::from_millis(100);
///     for node in [&mut a, &mut b] {
///         node.poll_timer(now);
///     }
///     // Deliver everything in flight (a real adapter sends these over UDP).
///     loop {
///         let mut moved = false;
///         while let Some(t) = a.poll_transmit() { b.handle_message(now, 1, &t.contents).ok(); moved = true; }
///         while let Some(t) = b.poll_transmit() { a.handle_message(now, 2, &t.contents).ok(); moved = true; }
///         if !moved { break; }
///     }
/// }
/// let mut a_saw_b = false;
/// while let Some(e) = a.poll_event() {
///     if let Event::MemberUp(m) = e { a_saw_b |= m.name == "b"; }
/// }
/// assert!(a_saw_b);
/// assert_eq!(b.members().len(), 1);
/// # Ok::<(), gossip_core::NewNodeError>(())
/// ```
#[derive(Debug)]
pub struct Node<A: Address> {
    pub(crate) config: Config,
    pub(crate) name: CompactString,
    pub(crate) addr: A,
    pub(crate) generation: u64,
    pub(crate) incarnation: u32,
    pub(crate) self_state: MemberState,
    pub(crate) zone: Option<CompactString>,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) members: MemberTable<A>,
    pub(crate) swim: Swim<A>,
    pub(crate) health: Health,
    pub(crate) phi: crate::membership::phi::PhiDetector,
    /// The replicated key/value state.
    pub(crate) state: crate::antientropy::KvStore,
    pub(crate) crdts: crate::crdt::replication::Crdts<A>,
    /// Keyring, mode, nonce counter and replay windows, with encryption on.
    pub(crate) sealer: Option<crate::wire::security::Sealer>,
    pub(crate) aggregates: crate::aggregate::Aggregates,
    /// Where the next anti-entropy digest page starts.
    pub(crate) state_cursor: CompactString,
    /// An anti-entropy exchange is due: the next probe ping opens it.
    pub(crate) state_syn_due: bool,
    /// The last few bursts of deltas (peer, burst id) we asked to continue: a burst says so on
    /// its last two datagrams, and only one of them may trigger the next.
    pub(crate) state_continued: VecDeque<(A, u32)>,
    /// A membership push-pull is due: the next probe ping carries our digest.
    pub(crate) push_pull_due: bool,
    /// Whether the next early exchange after a join goes straight to a seed: the first does,
    /// later ones only if the previous one brought news.
    pub(crate) seed_has_news: bool,
    pub(crate) suspicions: HashMap<Slot, Suspicion, ahash::RandomState>,
    pub(crate) suspicion_deadlines: BTreeSet<(Instant, Slot)>,
    /// When to send each suspect a check ping.
    pub(crate) suspicion_checks: BTreeSet<(Instant, Slot)>,
    pub(crate) dissemination: Dissemination,
    pub(crate) outbox: VecDeque<Outgoing<A>>,
    pub(crate) events: VecDeque<Event<A>>,
    pub(crate) metrics: Metrics,
    pub(crate) timers: TimerTable,
    pub(crate) seeds: Vec<A>,
    pub(crate) joining: bool,
    pub(crate) join_backoff: Duration,
    /// Rejoin ticks to skip before contacting seeds that are not live members again.
    pub(crate) stray_seed_wait: u32,
    /// Push-pull rounds since joining (the first few come early).
    pub(crate) early_syncs: u32,
    /// Dead or left members in the order they went, for reclaiming.
    pub(crate) gone: VecDeque<(Instant, Slot, u64, u32)>,
    /// Forgotten members' last (generation, incarnation), so stale gossip cannot resurrect
    /// them, with the time each record may be dropped.
    pub(crate) forgotten: HashMap<CompactString, (u64, u32), ahash::RandomState>,
    /// When each forgotten record expires, with the record (a stale entry, whose member came
    /// back since, must not remove a newer record).
    pub(crate) forgotten_order: VecDeque<(Instant, CompactString, u64, u32)>,
    /// When each peer was last sent a view in answer to a request (bounded; see
    /// `Node::may_send_view`).
    pub(crate) views_sent: HashMap<A, Instant, ahash::RandomState>,
    /// Our own change watermark when each peer's view last equalled ours: what it already
    /// holds of our records.
    pub(crate) peer_marks: HashMap<A, u32, ahash::RandomState>,
    /// The peer whose multi-page view is being merged, and our change watermark before it.
    pub(crate) merging: Option<(A, u32)>,
    /// Peers' change watermarks from the last exchange that left views equal.
    pub(crate) sync_marks: HashMap<A, u32, ahash::RandomState>,
    /// Signed self-state, when configured.
    pub(crate) signed: Option<crate::membership::signed::SignedState>,
    /// Datagrams per source per second, when limited.
    source_limiter: Option<crate::membership::limits::SourceLimiter<A>>,
    /// Per peer address: anti-entropy requests answered (each answer may be many datagrams).
    answer_limits: crate::membership::limits::TokenBuckets<A>,
    buf: Vec<u8>,
}

impl<A: Address> Node<A> {
    /// Creates a node. It is alone until [`join`](Node::join) is called (or another node
    /// joins through it). `rng_seed` drives every random choice.
    pub fn new(mut config: Config, identity: Identity<A>, rng_seed: u64, now: Instant) -> Result<Self, NewNodeError> {
        config.validate()?;
        check_name("name", &identity.name, false)?;
        let mut rng = ChaCha8Rng::seed_from_u64(rng_seed);
        let keys: [u64; 4] = rng.random();
        let keyring = config.keyring.take();
        let signed =
            config.signing.take().map(|s| crate::membership::signed::SignedState::new(s, config.max_members, keys));
        let source_limiter =
            config.source_rate_limit.map(|limit| crate::membership::limits::SourceLimiter::new(limit, keys));
        let mut node = Node {
            name: identity.name.as_str().into(),
            addr: identity.addr,
            generation: identity.generation,
            incarnation: 0,
            self_state: MemberState::Alive,
            zone: config.zone.as_deref().map(Into::into),
            members: MemberTable::new(config.zone.as_deref(), keys),
            swim: Swim::default(),
            phi: crate::membership::phi::PhiDetector::default(),
            state: crate::antientropy::KvStore::new(
                &identity.name,
                identity.generation,
                config.kv_limits.clone(),
                config.tombstone_grace,
            ),
            state_cursor: CompactString::default(),
            crdts: Default::default(),
            sealer: None,
            aggregates: Default::default(),
            state_syn_due: false,
            state_continued: VecDeque::new(),
            push_pull_due: false,
            seed_has_news: true,
            health: Health::new(if config.lifeguard { config.awareness_max_multiplier } else { 1 }),
            suspicions: HashMap::with_hasher(ahash::RandomState::with_seeds(keys[1], keys[0], keys[3], keys[2])),
            suspicion_deadlines: BTreeSet::new(),
            suspicion_checks: BTreeSet::new(),
            // Broadcast ids go with the origin's name only (the wire has no generation), so
            // each life numbers from its own point: a node restarted within the de-duplication
            // window would otherwise reuse ids its peers still hold, and its broadcasts vanish.
            dissemination: Dissemination::new(config.max_queued_rumors, keys).numbering_broadcasts_after(
                xxhash_rust::xxh3::xxh3_64_with_seed(identity.name.as_bytes(), identity.generation) >> 16,
            ),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            metrics: Metrics::default(),
            timers: TimerTable::default(),
            seeds: Vec::new(),
            joining: false,
            join_backoff: config.join_retry_initial,
            stray_seed_wait: 0,
            early_syncs: 0,
            gone: VecDeque::new(),
            forgotten: HashMap::with_hasher(ahash::RandomState::with_seeds(keys[2], keys[3], keys[0], keys[1])),
            forgotten_order: VecDeque::new(),
            views_sent: HashMap::with_hasher(ahash::RandomState::with_seeds(keys[0], keys[3], keys[1], keys[2])),
            merging: None,
            peer_marks: HashMap::with_hasher(ahash::RandomState::with_seeds(keys[2], keys[0], keys[3], keys[1])),
            sync_marks: HashMap::with_hasher(ahash::RandomState::with_seeds(keys[3], keys[1], keys[2], keys[0])),
            signed,
            source_limiter,
            answer_limits: crate::membership::limits::TokenBuckets::new(ANSWER_BURST, ANSWERS_PER_S, keys),
            buf: Vec::with_capacity(config.mtu),
            rng,
            config,
        };
        // Start periodic timers at random phases so nodes created together do not tick together.
        for (timer, period) in [
            (Timer::Probe, Some(node.config.probe_interval)),
            (Timer::Gossip, Some(node.config.gossip_interval)),
            (Timer::PushPull, node.config.push_pull_interval),
            (Timer::Reconnect, node.config.reconnect_interval),
            (Timer::Rejoin, Some(node.config.rejoin_interval)),
            (Timer::Reclaim, Some(node.reclaim_period())),
            (Timer::StateSync, node.config.state_sync_interval),
            (Timer::Aggregate, node.config.aggregate_interval),
        ] {
            if let Some(p) = period {
                let phase = p.mul_f64(node.rng.random::<f64>());
                node.timers.set(timer, now + phase);
            }
        }
        if let Some(ring) = keyring {
            // `validate` made sure the MTU leaves room for sealing.
            let mode = node.config.seal_mode;
            node.start_sealing(ring, mode);
        }
        node.refresh_self_proof();
        tracing::debug!(name = %node.name, generation = node.generation, "node created");
        Ok(node)
    }

    // ----- driving contract -------------------------------------------------------------

    /// Handles one datagram received from `from`.
    ///
    /// Never panics. A datagram that cannot be decoded, belongs to another cluster or protocol
    /// version, or names members invalidly is dropped whole, counted by reason in
    /// [`metrics`](Node::metrics), and reported as an error; nothing else changes then.
    pub fn handle_message(&mut self, now: Instant, from: A, bytes: &[u8]) -> Result<(), HandleError> {
        self.metrics.packets_in += 1;
        self.metrics.bytes_in += bytes.len() as u64;
        if let Some(limiter) = self.source_limiter.as_mut() {
            if !limiter.admit(now, &from) {
                self.metrics.drops[DropReason::RateLimited as usize] += 1;
                return Err(HandleError::RateLimited);
            }
        }
        let opened;
        let bytes = match self.unseal(bytes) {
            Ok(Some(plain)) => {
                opened = plain;
                opened.as_slice()
            }
            Ok(None) => bytes,
            Err(reason) => {
                self.metrics.drops[reason as usize] += 1;
                let n = self.metrics.drops[reason as usize];
                if reason == DropReason::Unopenable && n.is_power_of_two() {
                    // Said now and then, not for every datagram.
                    tracing::warn!(
                        node = %self.name,
                        ?from,
                        count = n,
                        "sealed datagrams that no key in the ring opens: if the cluster rotated its keys while \
                         this node was away, install the current key (Node::install_key; agent: `key install HEX`)"
                    );
                }
                tracing::debug!(?from, reason = reason.name(), "datagram dropped");
                return Err(HandleError::Sealing(reason.name()));
            }
        };
        let decoded = self.decode(bytes);
        let (sender, messages) = match decoded {
            Ok(v) => v,
            Err(e) => {
                let reason = match &e {
                    HandleError::Decode(d) => DropReason::of(d),
                    HandleError::InvalidName => DropReason::InvalidName,
                    HandleError::FromSelf => DropReason::FromSelf,
                    // Refused before decoding, counted there.
                    HandleError::Sealing(_) => DropReason::Unopenable,
                    HandleError::RateLimited => DropReason::RateLimited,
                };
                self.metrics.drops[reason as usize] += 1;
                tracing::debug!(?from, error = %e, "datagram dropped");
                return Err(e);
            }
        };
        let _span = tracing::trace_span!("handle_message", node = %self.name, from = %sender).entered();
        self.note_sender(now, &sender);
        let from_member =
            self.members.find(&sender).and_then(|slot| self.members.get(slot)).is_some_and(|m| m.addr == from);
        for (message, len) in messages {
            let kind = message.kind().index();
            self.metrics.messages_in[kind] += 1;
            self.metrics.message_bytes_in[kind] += len as u64;
            if message.asks_for_state() && !self.may_answer(now, &from, from_member) {
                continue;
            }
            self.on_message(now, &from, message);
        }
        Ok(())
    }

    /// Whether an anti-entropy request (a few bytes that can bring back many datagrams) from
    /// `from` is answered: only a member's, sent from the member's own address, and at most
    /// [`ANSWERS_PER_S`] a second per address. Anyone else could aim this node's answers at
    /// a victim by forging the source address (reflection, amplified up to
    /// `state_sync_datagrams` times); a member is at most held to a rate.
    fn may_answer(&mut self, now: Instant, from: &A, from_member: bool) -> bool {
        if !from_member {
            self.metrics.answers_refused += 1;
            return false;
        }
        if !self.answer_limits.take(now, from) {
            self.metrics.answers_throttled += 1;
            return false;
        }
        true
    }

    /// Opens a sealed datagram (`Some(plaintext)`), passes a plain one through (`None`), or
    /// says why it is refused.
    fn unseal(&mut self, bytes: &[u8]) -> Result<Option<Vec<u8>>, DropReason> {
        use crate::wire::security::{OpenError, SealMode, SEALED};
        let sealed = bytes.first() == Some(&SEALED);
        match (&mut self.sealer, sealed) {
            (None, false) => Ok(None),
            (None, true) => Err(DropReason::Unopenable),
            (Some(s), false) if s.mode == SealMode::Require => Err(DropReason::Unsealed),
            (Some(_), false) => Ok(None),
            (Some(s), true) => match s.open(bytes, &self.config.cluster_label) {
                Ok(plain) => Ok(Some(plain)),
                Err(OpenError::Truncated) => Err(DropReason::Truncated),
                Err(OpenError::Unopenable) => Err(DropReason::Unopenable),
                Err(OpenError::Replayed) => Err(DropReason::Replayed),
            },
        }
    }

    /// Installs a key that opens datagrams (and seals them once made primary). A node without
    /// a keyring gets one holding just this key, in [`SealMode::Open`](crate::wire::security::SealMode):
    /// it opens sealed datagrams and still sends plaintext until told to seal.
    pub fn install_key(&mut self, key: crate::wire::security::Key) -> Result<(), CommandError> {
        use crate::wire::security::{KeyError, Keyring, SealMode, SEAL_OVERHEAD};
        match &mut self.sealer {
            Some(s) => s.keyring.install(key),
            None => {
                let (mtu, min) = (self.config.mtu.saturating_sub(SEAL_OVERHEAD), self.config.min_mtu());
                if mtu < min {
                    return Err(KeyError::MtuTooSmall { mtu, min }.into());
                }
                self.start_sealing(Keyring::new(vec![key])?, SealMode::Open);
            }
        }
        Ok(())
    }

    /// Turns sealing on: datagrams packed `SEAL_OVERHEAD` bytes shorter (the caller checked
    /// the MTU allows it), and a nonce prefix and counter start random and different for
    /// every life of the node, even with one seed.
    fn start_sealing(&mut self, keyring: crate::wire::security::Keyring, mode: crate::wire::security::SealMode) {
        use crate::wire::security::{Sealer, SEAL_OVERHEAD};
        self.config.mtu -= SEAL_OVERHEAD;
        self.config.bulk_mtu = self.config.bulk_mtu.map(|b| b - SEAL_OVERHEAD);
        let life = xxhash_rust::xxh3::xxh3_64_with_seed(self.name.as_bytes(), self.generation) as u32;
        let prefix = (self.rng.random::<u32>() ^ life).to_be_bytes();
        let start = (self.rng.random::<u64>() ^ xxhash_rust::xxh3::xxh3_64_with_seed(&prefix, self.generation)) >> 2;
        self.sealer = Some(Sealer::new(keyring, mode, prefix).with_counter_after(start));
    }

    /// Makes the installed key `id` ([`Key::id`](crate::wire::security::Key::id)) the one
    /// that seals.
    pub fn use_key(&mut self, id: &str) -> Result<(), CommandError> {
        let s = self.sealer.as_mut().ok_or(crate::wire::security::KeyError::Empty)?;
        Ok(s.keyring.use_key(id)?)
    }

    /// Removes the key `id` (not the primary one).
    pub fn remove_key(&mut self, id: &str) -> Result<(), CommandError> {
        let s = self.sealer.as_mut().ok_or(crate::wire::security::KeyError::Empty)?;
        Ok(s.keyring.remove(id)?)
    }

    /// Sets how this node seals (see [`SealMode`](crate::wire::security::SealMode)).
    pub fn set_seal_mode(&mut self, mode: crate::wire::security::SealMode) -> Result<(), CommandError> {
        let s = self.sealer.as_mut().ok_or(crate::wire::security::KeyError::Empty)?;
        s.mode = mode;
        Ok(())
    }

    /// The ids of the installed keys, the primary first, and the seal mode; `None` without
    /// a keyring.
    pub fn keyring(&self) -> Option<(Vec<String>, crate::wire::security::SealMode)> {
        self.sealer.as_ref().map(|s| (s.keyring.keys().iter().map(|k| k.id()).collect(), s.mode))
    }

    /// Seals an outgoing datagram when this node seals.
    fn seal_outgoing(&mut self, plain: Vec<u8>) -> Vec<u8> {
        use crate::wire::security::SealMode;
        match &mut self.sealer {
            Some(s) if s.mode != SealMode::Open => s.seal(&plain, &self.config.cluster_label),
            _ => plain,
        }
    }

    /// Decodes and validates a whole datagram before anything is applied.
    fn decode(&self, bytes: &[u8]) -> Result<Decoded<A>, HandleError> {
        let (header, mut rest) = codec::decode_header(bytes, &self.config.cluster_label, self.config.max_inbound_size)?;
        if !valid_name(&header.sender) {
            return Err(HandleError::InvalidName);
        }
        if header.sender == self.name {
            return Err(HandleError::FromSelf);
        }
        let mut messages = Vec::new();
        while !rest.is_empty() {
            let (m, r) = codec::decode_message::<A>(rest)?;
            let names_ok = match &m {
                Message::Ping { target, .. } | Message::PingReq { target, .. } => valid_name(target),
                Message::Join { record } | Message::Member { record, accuser: None, .. } => valid_record(record),
                Message::Member { record, accuser: Some(a), .. } => valid_record(record) && valid_name(a),
                Message::SyncPage { members, .. } => members.iter().all(valid_record),
                Message::Broadcast { origin, .. } => valid_name(origin),
                Message::Ack { .. } | Message::Nack { .. } | Message::SyncDigest { .. } | Message::StateSyn { .. } => {
                    true
                }
                Message::StateDigest { entries, .. } => entries.iter().all(|d| valid_name(&d.node)),
                Message::StateDelta { deltas, .. } => deltas.iter().all(|d| valid_name(&d.node)),
                Message::StateUpdate { delta } => valid_name(&delta.node),
                Message::CrdtDelta { .. }
                | Message::CrdtSyn { .. }
                | Message::CrdtDigest { .. }
                | Message::CrdtState { .. }
                | Message::CrdtBuckets { .. }
                | Message::CrdtInterval { .. }
                | Message::CrdtAck { .. }
                | Message::PushSum { .. } => true, // checked where used
            };
            if !names_ok {
                return Err(HandleError::InvalidName);
            }
            messages.push((m, rest.len() - r.len()));
            rest = r;
        }
        Ok((header.sender, messages))
    }

    fn on_message(&mut self, now: Instant, from: &A, message: Message<A>) {
        match message {
            Message::Ping { seq, target } => self.on_ping(from, seq, &target),
            Message::Ack { seq } => self.on_ack(now, seq),
            Message::Nack { seq } => self.on_nack(seq),
            Message::PingReq { seq, target, target_addr } => self.on_ping_req(now, from, seq, target, target_addr),
            Message::Join { record } => self.on_join(now, from, record),
            Message::Member { record, accuser, signature } => {
                self.apply_record(now, record, accuser.as_ref(), signature, Source::Gossip, Some(from))
            }
            Message::SyncDigest { digest, since, .. } => self.on_sync_digest(now, from, digest, since),
            Message::SyncPage { end, members } => self.on_sync_page(now, from, end, members),
            Message::Broadcast { origin, id, payload } => self.on_broadcast(now, origin, id, payload),
            Message::StateSyn { hash } => self.on_state_syn(from, hash),
            Message::StateDigest { start, end, entries, reply } => {
                self.on_state_digest(from, start, end, entries, reply)
            }
            Message::StateDelta { deltas, more } => self.on_state_delta(now, from, deltas, more),
            Message::StateUpdate { delta } => self.on_state_update(now, delta),
            Message::CrdtDelta { object, delta, proof } => self.on_crdt_delta(object, delta, proof.as_deref()),
            Message::CrdtSyn { hash } => self.on_crdt_syn(from, hash),
            Message::CrdtDigest { start, end, entries, reply } => self.on_crdt_digest(from, start, end, entries, reply),
            Message::CrdtState { object, piece, proof } => self.on_crdt_state(now, object, piece, proof.as_deref()),
            Message::PushSum { shares } => self.on_push_sum(shares),
            Message::CrdtBuckets { object, hashes, reply } => self.on_crdt_buckets(from, object, hashes, reply),
            Message::CrdtInterval { object, send, part, parts, delta, proof } => {
                self.on_crdt_interval(from, object, (send, part, parts), delta, proof.as_deref())
            }
            Message::CrdtAck { object, send, part } => self.on_crdt_ack(from, object, send, part),
        }
    }

    /// Fires every timer due by `now`; returns the next deadline. (After a leave the node
    /// keeps gossiping so the news spreads: drop it when done.)
    pub fn poll_timer(&mut self, now: Instant) -> Option<Instant> {
        for timer in Timer::ALL {
            if self.timers.take_due(timer, now) {
                self.fire(now, timer);
            }
        }
        self.fire_suspicion_checks(now);
        self.fire_checks(now);
        self.fire_suspicions(now);
        self.fire_relays(now);
        self.metrics.health_score = self.health.score();
        self.next_deadline()
    }

    /// Earliest pending deadline of any timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.timers.next(),
            self.suspicion_deadlines.first().map(|(t, _)| *t),
            self.suspicion_checks.first().map(|(t, _)| *t),
            self.swim.next_relay_deadline(),
            self.swim.next_check_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn fire(&mut self, now: Instant, timer: Timer) {
        if self.self_state == MemberState::Left && !matches!(timer, Timer::Gossip | Timer::Reclaim) {
            return;
        }
        match timer {
            Timer::ProbeTimeout => self.probe_timeout(now),
            Timer::Probe => {
                self.probe_tick(now);
                let next = self.jittered(self.health.scale(self.config.probe_interval));
                self.timers.set(Timer::Probe, now + next);
            }
            Timer::Gossip => {
                if self.self_state != MemberState::Left {
                    self.convict_by_phi(now);
                }
                self.gossip_tick();
                let next = self.jittered(self.config.gossip_interval);
                self.timers.set(Timer::Gossip, now + next);
            }
            Timer::PushPull => {
                // The first exchanges after a join go to a seed (its view is the most complete
                // during a join storm) for as long as it has news for us; the rest ride on
                // probes to random members.
                let direct = self.early_syncs < 4 && self.seed_has_news;
                self.seed_has_news = false;
                self.push_pull_tick(direct);
                if let Some(p) = self.config.push_pull_interval {
                    // Soon after joining, compare views at doubling intervals (2, 4, 8, 16
                    // probe periods) before settling on the configured period.
                    let early = self.config.probe_interval * (2u32 << self.early_syncs.min(8));
                    let base = if self.early_syncs < 4 && early < p { early } else { p };
                    self.early_syncs = self.early_syncs.saturating_add(1);
                    let next = self.jittered(base);
                    self.timers.set(Timer::PushPull, now + next);
                }
            }
            Timer::Reconnect => {
                self.reconnect_tick();
                if let Some(p) = self.config.reconnect_interval {
                    let next = self.jittered(p);
                    self.timers.set(Timer::Reconnect, now + next);
                }
            }
            Timer::Join => self.join_retry(now),
            Timer::Rejoin => {
                self.rejoin_tick(now);
                let next = self.jittered(self.config.rejoin_interval);
                self.timers.set(Timer::Rejoin, now + next);
            }
            Timer::StateSync => {
                self.state_sync_tick();
                if let Some(period) = self.config.state_sync_interval {
                    let next = self.jittered(period);
                    self.timers.set(Timer::StateSync, now + next);
                }
            }
            Timer::Aggregate => {
                self.aggregate_tick();
                if let Some(period) = self.config.aggregate_interval {
                    let next = self.jittered(period);
                    self.timers.set(Timer::Aggregate, now + next);
                }
            }
            Timer::Reclaim => {
                self.reclaim(now);
                self.state.collect_tombstones(now);
                let next = self.reclaim_period();
                self.timers.set(Timer::Reclaim, now + next);
            }
        }
    }

    fn reclaim_period(&self) -> Duration {
        (self.config.dead_reclaim_time / 10).max(Duration::from_millis(100))
    }

    /// `d` plus up to `timer_jitter` of it, at random.
    pub(crate) fn jittered(&mut self, d: Duration) -> Duration {
        if self.config.timer_jitter <= 0.0 {
            return d;
        }
        let f: f64 = self.rng.random::<f64>() * self.config.timer_jitter;
        d + d.mul_f64(f)
    }

    /// The next datagram to send, packed up to the MTU with piggybacked rumors.
    pub fn poll_transmit(&mut self) -> Option<Transmit<A>> {
        while let Some(out) = self.outbox.pop_front() {
            codec::encode_header(&mut self.buf, &self.config.cluster_label, &self.name);
            let header_len = self.buf.len();
            for m in &out.messages {
                let len = codec::encode_message(&mut self.buf, m);
                self.count_sent(m.kind(), len);
            }
            // With a reliable bulk path, anti-entropy transfers go on it, alone.
            if self.config.bulk_mtu.is_some() && out.messages.iter().all(Message::is_bulk_transfer) {
                self.metrics.packets_out += 1;
                self.metrics.bytes_out += self.buf.len() as u64;
                let contents = std::mem::take(&mut self.buf);
                let contents = self.seal_outgoing(contents);
                return Some(Transmit { destination: out.dest, contents, reliable: true });
            }
            let piggyback = out.piggyback | self.coalesce_direct(&out.dest);
            if piggyback {
                self.fill_piggyback(header_len);
            }
            if self.buf.len() == header_len {
                continue; // nothing to say after all
            }
            self.metrics.packets_out += 1;
            self.metrics.bytes_out += self.buf.len() as u64;
            let contents = self.buf.clone();
            let contents = self.seal_outgoing(contents);
            return Some(Transmit { destination: out.dest, contents, reliable: false });
        }
        None
    }

    /// Moves later queued messages for `dest` into the datagram being built while they fit
    /// the MTU, so the replies one input produces travel together: an ack and the refutation
    /// it answers arrive (or are lost) as one. Returns whether any of them allowed rumors.
    fn coalesce_direct(&mut self, dest: &A) -> bool {
        let mut piggyback = false;
        let mut i = 0;
        while i < self.outbox.len().min(COALESCE_SCAN) {
            if self.outbox[i].dest != *dest {
                i += 1;
                continue;
            }
            let mark = self.buf.len();
            let lens: Vec<usize> =
                self.outbox[i].messages.iter().map(|m| codec::encode_message(&mut self.buf, m)).collect();
            if self.buf.len() > self.config.mtu {
                self.buf.truncate(mark);
                break;
            }
            if let Some(next) = self.outbox.remove(i) {
                for (m, len) in next.messages.iter().zip(lens) {
                    self.count_sent(m.kind(), len);
                }
                piggyback |= next.piggyback;
            }
        }
        piggyback
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event<A>> {
        self.events.pop_front()
    }

    // ----- commands ---------------------------------------------------------------------

    /// Joins a cluster through `seeds`: contacts each, retrying with exponential backoff
    /// (and jitter) until one answers with its membership. Later, whenever the node finds
    /// itself alone, it contacts the seeds again.
    pub fn join(&mut self, now: Instant, seeds: Vec<A>) {
        self.seeds = seeds.into_iter().filter(|s| *s != self.addr).collect();
        if self.seeds.is_empty() || self.self_state == MemberState::Left {
            return;
        }
        self.joining = true;
        self.join_backoff = self.config.join_retry_initial;
        self.timers.set(Timer::Join, now);
    }

    /// Leaves the cluster gracefully: announces the leave (to a few members directly and by
    /// gossip) and stops probing. Keep driving the node for a few gossip intervals so the
    /// news spreads, then drop it. A left node cannot rejoin; create a new one with a new
    /// generation.
    pub fn leave(&mut self, now: Instant) -> Result<(), CommandError> {
        if self.self_state == MemberState::Left {
            return Err(CommandError::Left);
        }
        let _ = now;
        self.self_state = MemberState::Left;
        self.incarnation = self.incarnation.saturating_add(1);
        self.refresh_self_proof();
        self.joining = false;
        self.queue_self_rumor(true);
        let record = self.self_record();
        let fanout = self.config.gossip_fanout.max(self.config.indirect_checks);
        for slot in self.pick_members(fanout, None) {
            if let Some(m) = self.members.get(slot) {
                let dest = m.addr.clone();
                self.send_record(dest, record.clone(), true);
            }
        }
        tracing::info!(name = %self.name, "leaving the cluster");
        Ok(())
    }

    /// Sends `payload` to every member, delivered once to each as [`Event::Broadcast`].
    /// Returns the broadcast id.
    pub fn broadcast(&mut self, now: Instant, payload: Vec<u8>) -> Result<u64, CommandError> {
        if self.self_state == MemberState::Left {
            return Err(CommandError::Left);
        }
        let max = self.max_broadcast_payload();
        if payload.len() > max {
            return Err(CommandError::PayloadTooLarge { len: payload.len(), max });
        }
        self.dissemination.next_broadcast_id = self.dissemination.next_broadcast_id.wrapping_add(1);
        let id = self.dissemination.next_broadcast_id;
        let key = (self.name.clone(), id);
        self.dissemination.first_sighting(now, &key);
        self.dissemination.queue_broadcast(key, payload);
        Ok(id)
    }

    /// Largest broadcast payload accepted: it must fit in one packet beside an envelope
    /// from any relaying node, whatever the length of its name or the origin's.
    pub fn max_broadcast_payload(&self) -> usize {
        let name = 2 + MAX_NAME_LEN;
        // version, label, sender name; message tag, origin name, id, payload length prefix.
        let overhead = 1 + 2 + self.config.cluster_label.len() + name + 1 + name + 10 + 3;
        self.config.mtu.saturating_sub(overhead)
    }

    // ----- read-only views --------------------------------------------------------------

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This node's own record as it announces it.
    pub fn self_record(&self) -> MemberRecord<A> {
        MemberRecord {
            name: self.name.clone(),
            addr: self.addr.clone(),
            generation: self.generation,
            incarnation: self.incarnation,
            state: self.self_state,
            zone: self.zone.clone(),
            proof: self.self_proof().map(Box::new),
        }
    }

    /// Live members (alive or suspect), excluding this node, in no particular order.
    pub fn members(&self) -> Vec<MemberRecord<A>> {
        let (local, remote) = self.members.live();
        local.iter().chain(remote).filter_map(|&s| self.record_out(s)).collect()
    }

    /// Number of live members, excluding this node.
    pub fn live_count(&self) -> usize {
        self.members.live_count()
    }

    /// Every member this node knows, including dead and left ones not yet forgotten.
    pub fn all_members(&self) -> Vec<MemberRecord<A>> {
        self.members.iter().filter_map(|(s, _)| self.record_out(s)).collect()
    }

    /// What this node believes of one member.
    pub fn member(&self, name: &str) -> Option<MemberRecord<A>> {
        self.members.find(name).and_then(|s| self.record_out(s))
    }

    /// Sets one of this node's keys, replicated to every member by anti-entropy; returns the
    /// version written.
    pub fn set(&mut self, key: &str, value: Vec<u8>) -> Result<u64, CommandError> {
        if self.self_state == MemberState::Left {
            return Err(CommandError::Left);
        }
        // One update must fit one datagram (deltas never skip a version, so one that never
        // fits would hold back every later write): the MTU may allow less than kv_limits.
        let fits = self.max_state_value(key);
        if value.len() > fits && value.len() <= self.config.kv_limits.max_value_len {
            return Err(crate::antientropy::KvError::ValueTooLarge { len: value.len(), max: fits }.into());
        }
        let version = self.state.set(key, value)?;
        self.sign_own_write(version);
        self.queue_state_rumor(self.name.clone(), version);
        Ok(version)
    }

    /// Deletes one of this node's keys (a tombstone replicates the deletion); returns the
    /// deletion's version, or `None` if the key was not set.
    pub fn delete(&mut self, now: Instant, key: &str) -> Result<Option<u64>, CommandError> {
        if self.self_state == MemberState::Left {
            return Err(CommandError::Left);
        }
        let version = self.state.delete(now, key)?;
        if let Some(v) = version {
            self.sign_own_write(v);
            self.queue_state_rumor(self.name.clone(), v);
        }
        Ok(version)
    }

    /// Member `node`'s value of `key` as this node knows it, with its version.
    pub fn get(&self, node: &str, key: &str) -> Option<(&[u8], u64)> {
        self.state.get(node, key)
    }

    /// Member `node`'s keys as this node knows them: (key, value, version).
    pub fn keys<'a>(&'a self, node: &str) -> impl Iterator<Item = (&'a str, &'a [u8], u64)> + 'a {
        self.state.entries(node)
    }

    /// Hash of this node's key/value digest: equal on members holding the same versions.
    pub fn state_digest_hash(&self) -> u64 {
        self.state.digest_hash()
    }

    /// Phi accrual suspicion level of member `name` at `now`: about `-log10` of the chance
    /// that a live member stays silent this long, judged by the intervals at which its
    /// datagrams have been arriving (1: 10 %, 3: 0.1 %, 8: Cassandra's conviction threshold).
    /// `None` if phi accrual is off ([`Config::phi_accrual`]), the member is unknown, or fewer
    /// than two of its datagrams have arrived.
    pub fn phi(&self, name: &str, now: Instant) -> Option<f64> {
        let config = self.config.phi_accrual.as_ref()?;
        let slot = self.members.find(name)?;
        self.phi.phi(config, slot, now)
    }

    /// Whether the node has left.
    pub fn has_left(&self) -> bool {
        self.self_state == MemberState::Left
    }

    /// Whether the node is still waiting for a seed to answer.
    pub fn is_joining(&self) -> bool {
        self.joining
    }

    /// Lifeguard local health score (0 = healthy).
    pub fn health_score(&self) -> u32 {
        self.health.score()
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> Metrics {
        let mut m = self.metrics.clone();
        m.health_score = self.health.score();
        m.rtt_us = self.swim.rtt.srtt().map_or(0, |d| d.as_micros() as u64);
        m.direct_probe_timeout_us = self.health.scale(self.direct_probe_timeout()).as_micros() as u64;
        m.live_members = self.members.live_count();
        m.queued_rumors = self.dissemination.members.len();
        m.queued_broadcasts = self.dissemination.broadcasts.len();
        m
    }

    /// Order-independent hash of this node's view of live members (itself included); two
    /// nodes with the same view have the same digest.
    pub fn membership_digest(&self) -> u64 {
        let own =
            if self.self_state.is_gone() { 0 } else { record_hash(&self.name, self.generation, self.incarnation) };
        self.members.digest() ^ own
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    // ----- packing ----------------------------------------------------------------------

    /// Retransmission limit for the current cluster size.
    pub(crate) fn retransmit_limit(&self) -> u32 {
        retransmit_limit(self.config.retransmit_mult, self.members.live_count() + 1)
    }

    /// Appends queued rumors to `self.buf` up to the MTU, keeping `broadcast_share` for user
    /// broadcasts when any are pending.
    fn fill_piggyback(&mut self, header_len: usize) {
        let mtu = self.config.mtu;
        let room = mtu.saturating_sub(self.buf.len());
        if room < 4 {
            return;
        }
        // User broadcasts keep their share of the packet, or room for the next pending one if
        // that is larger, so a big broadcast is never stuck behind a flood of rumors.
        let reserve = match self.dissemination.broadcasts.iter().next() {
            None => 0,
            Some(key) => {
                let share = (room as f64 * self.config.broadcast_share) as usize;
                let next = self.dissemination.payloads.get(key).map_or(0, |b| b.payload.len() + key.0.len() + 16);
                share.max(next).min(room)
            }
        };
        let mut taken = Vec::new();
        self.pack_member_rumors(mtu - reserve, &mut taken);
        self.pack_broadcasts(mtu, header_len);
        self.pack_member_rumors(mtu, &mut taken);
        self.pack_state_rumors(mtu);
        self.pack_crdt_rumors(mtu);
        let limit = self.retransmit_limit();
        for key in taken {
            self.dissemination.members.sent(&key, limit);
            // An accuser (or confirmer) keeps its own accusation in circulation until it is resolved: if its
            // transmissions were spent while it was cut off, the suspect would never hear of
            // it, never refute, and be declared dead on a stale suspicion.
            let own = self.suspicions.get(&key).is_some_and(|s| s.accusations.accusers.contains(&self.name));
            if own && !self.dissemination.members.contains(&key) {
                self.dissemination.members.push(key, crate::dissemination::Priority::Failure);
            }
        }
    }

    pub(crate) fn member_rumor_for(&mut self, key: u32) -> Option<Message<A>> {
        let record = if key == SELF_KEY { self.self_record() } else { self.record_out(key)? };
        let (accuser, signature) = match record.state {
            MemberState::Suspect | MemberState::Dead if key != SELF_KEY => {
                let announce = self.suspicions.get(&key).map(|s| s.accusations.announce.clone());
                if self.signed.is_none() && record.state == MemberState::Dead {
                    (None, None)
                } else {
                    self.accusation_out(key, &record, announce.as_ref())
                }
            }
            _ => (None, None),
        };
        Some(Message::Member { record, accuser, signature })
    }

    fn pack_member_rumors(&mut self, cap: usize, taken: &mut Vec<u32>) {
        let mut misses = 0;
        let mut stale = Vec::new();
        let keys: Vec<u32> = self.dissemination.members.iter().copied().take(256).collect();
        for key in keys {
            if self.buf.len() + 8 > cap || misses > 4 {
                break;
            }
            if taken.contains(&key) {
                continue;
            }
            let Some(msg) = self.member_rumor_for(key) else {
                stale.push(key);
                continue;
            };
            let before = self.buf.len();
            let len = codec::encode_message(&mut self.buf, &msg);
            if self.buf.len() > cap {
                self.buf.truncate(before);
                misses += 1;
                continue;
            }
            self.count_sent(msg.kind(), len);
            taken.push(key);
        }
        for key in stale {
            self.dissemination.members.remove(&key);
        }
    }

    fn pack_broadcasts(&mut self, cap: usize, header_len: usize) {
        let keys: Vec<(CompactString, u64)> = self.dissemination.broadcasts.iter().take(64).cloned().collect();
        let limit = retransmit_limit(self.config.broadcast_retransmit_mult, self.members.live_count() + 1);
        for key in keys {
            if self.buf.len() + 8 > cap {
                break;
            }
            let Some(b) = self.dissemination.payloads.get(&key) else { continue };
            let msg = Message::<A>::Broadcast { origin: key.0.clone(), id: key.1, payload: b.payload.clone() };
            let before = self.buf.len();
            let len = codec::encode_message(&mut self.buf, &msg);
            if self.buf.len() > cap {
                self.buf.truncate(before);
                if header_len + len > self.config.mtu {
                    // Can never fit beside an envelope here (a peer with a larger MTU sent it).
                    self.dissemination.broadcasts.remove(&key);
                    self.dissemination.payloads.remove(&key);
                }
                continue;
            }
            self.count_sent(msg.kind(), len);
            self.dissemination.broadcast_sent(&key, limit);
        }
    }

    /// Fresh key/value updates, in the room left after membership news and broadcasts.
    fn pack_state_rumors(&mut self, cap: usize) {
        let keys: Vec<(CompactString, u64)> = self.dissemination.states.iter().take(64).cloned().collect();
        let limit = retransmit_limit(self.config.state_retransmit_mult, self.members.live_count() + 1);
        for key in keys {
            if self.buf.len() + 16 > cap {
                break;
            }
            let Some(delta) = self.state.update_delta(&key.0, key.1) else {
                self.dissemination.states.remove(&key); // overwritten or collected since
                continue;
            };
            let msg = Message::<A>::StateUpdate { delta };
            let before = self.buf.len();
            let len = codec::encode_message(&mut self.buf, &msg);
            if self.buf.len() > cap {
                self.buf.truncate(before);
                if len > self.state_room() {
                    // A value only a bulk transfer carries: anti-entropy will.
                    self.dissemination.states.remove(&key);
                }
                continue;
            }
            self.count_sent(msg.kind(), len);
            self.dissemination.states.sent(&key, limit);
        }
    }

    /// CRDT deltas, in the room left after everything else.
    fn pack_crdt_rumors(&mut self, cap: usize) {
        let keys: Vec<(CompactString, u64)> = self.dissemination.crdts.iter().take(64).cloned().collect();
        let limit = retransmit_limit(self.config.state_retransmit_mult, self.members.live_count() + 1);
        for key in keys {
            if self.buf.len() + 16 > cap {
                break;
            }
            let Some(encoded) = self.crdts.rumors.encoded.get(&key) else {
                self.dissemination.crdts.remove(&key);
                continue;
            };
            let len = encoded.len();
            if self.buf.len() + len > cap {
                continue;
            }
            self.buf.extend_from_slice(encoded);
            self.count_sent(crate::wire::MessageKind::CrdtDelta, len);
            self.dissemination.crdts.sent(&key, limit);
            self.crdt_rumor_sent(&key);
        }
    }

    /// Sends one member record straight to `dest` (refutations, corrections, a leave).
    pub(crate) fn send_record(&mut self, dest: A, record: crate::wire::MemberRecord<A>, piggyback: bool) {
        self.outbox.push_back(Outgoing {
            dest,
            messages: vec![Message::Member { record, accuser: None, signature: None }],
            piggyback,
        });
    }

    /// Counts one sent message of `kind`, `len` bytes encoded.
    fn count_sent(&mut self, kind: crate::wire::MessageKind, len: usize) {
        self.metrics.messages_out[kind.index()] += 1;
        self.metrics.message_bytes_out[kind.index()] += len as u64;
    }

    /// Queues a rumor about this node itself.
    pub(crate) fn queue_self_rumor(&mut self, failure_news: bool) {
        use crate::dissemination::Priority;
        let p = if failure_news { Priority::Failure } else { Priority::Routine };
        self.metrics.rumors_queued += 1;
        self.dissemination.members.push(SELF_KEY, p);
    }

    fn on_broadcast(&mut self, now: Instant, origin: CompactString, id: u64, payload: Vec<u8>) {
        if origin == self.name || payload.len() > self.max_broadcast_payload() {
            return; // ours, or too big to relay: a well-behaved origin never sends that
        }
        let key = (origin, id);
        if !self.dissemination.first_sighting(now, &key) {
            return;
        }
        self.events.push_back(Event::Broadcast { origin: key.0.clone(), id, payload: payload.clone() });
        self.dissemination.queue_broadcast(key, payload);
    }

    /// Picks up to `n` distinct live members at random, preferring the own zone (crossing
    /// zones with `cross_zone_probability`), never `exclude`.
    pub(crate) fn pick_members(&mut self, n: usize, exclude: Option<Slot>) -> Vec<Slot> {
        let (local, remote) = self.members.live();
        let (nl, nr) = (local.len(), remote.len());
        let mut out: Vec<Slot> = Vec::with_capacity(n);
        let mut attempts = 0;
        while out.len() < n && attempts < n * 4 + 8 {
            attempts += 1;
            let use_remote = if nl == 0 {
                true
            } else if nr == 0 {
                false
            } else {
                self.rng.random_bool(self.config.cross_zone_probability)
            };
            let list = if use_remote { remote } else { local };
            if list.is_empty() {
                break;
            }
            let s = list[self.rng.random_range(0..list.len())];
            if Some(s) != exclude && !out.contains(&s) {
                out.push(s);
            }
        }
        if out.len() < n && nl + nr <= n * 4 {
            // Small clusters: fill deterministically from what is left.
            for &s in local.iter().chain(remote) {
                if out.len() >= n {
                    break;
                }
                if Some(s) != exclude && !out.contains(&s) {
                    out.push(s);
                }
            }
        }
        out
    }
}

pub(crate) fn valid_name(name: &CompactString) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && !name.chars().any(char::is_control)
}

fn valid_record<A>(record: &MemberRecord<A>) -> bool {
    valid_name(&record.name) && record.zone.as_ref().is_none_or(valid_name)
}
