//! Counters, read as a snapshot with `Node::metrics`.

use crate::wire::{DecodeError, MessageKind};

/// Why an inbound datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The datagram was empty.
    Empty,
    /// Longer than `max_inbound_size`.
    Oversized,
    /// Written by a protocol version this build does not speak.
    UnknownVersion,
    /// From another cluster (label mismatch).
    ForeignCluster,
    /// Ended in the middle of a field.
    Truncated,
    /// Not a valid encoding.
    Malformed,
    /// A member name or zone in it is empty, too long or has control characters.
    InvalidName,
    /// Claims to come from this node itself.
    FromSelf,
    /// A ping for another member arrived here (a different node now owns the address).
    WrongTarget,
    /// Plaintext while this node requires sealed datagrams.
    Unsealed,
    /// Sealed, and no key in the ring opens it: tampered, sealed with a key this node does not
    /// hold, for another cluster, or this node holds no keyring.
    Unopenable,
    /// Sealed and authentic, but seen before (or older than the replay window).
    Replayed,
    /// Over `source_rate_limit`: the source sent more datagrams this second than allowed.
    RateLimited,
}

impl DropReason {
    /// Every reason, in index order.
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::Empty,
        DropReason::Oversized,
        DropReason::UnknownVersion,
        DropReason::ForeignCluster,
        DropReason::Truncated,
        DropReason::Malformed,
        DropReason::InvalidName,
        DropReason::FromSelf,
        DropReason::WrongTarget,
        DropReason::Unsealed,
        DropReason::Unopenable,
        DropReason::Replayed,
        DropReason::RateLimited,
    ];

    /// Number of reasons.
    pub const COUNT: usize = 13;

    /// Short lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Empty => "empty",
            DropReason::Oversized => "oversized",
            DropReason::UnknownVersion => "unknown_version",
            DropReason::ForeignCluster => "foreign_cluster",
            DropReason::Truncated => "truncated",
            DropReason::Malformed => "malformed",
            DropReason::InvalidName => "invalid_name",
            DropReason::FromSelf => "from_self",
            DropReason::WrongTarget => "wrong_target",
            DropReason::Unsealed => "unsealed",
            DropReason::Unopenable => "unopenable",
            DropReason::Replayed => "replayed",
            DropReason::RateLimited => "rate_limited",
        }
    }

    pub(crate) fn of(e: &DecodeError) -> DropReason {
        match e {
            DecodeError::Empty => DropReason::Empty,
            DecodeError::Oversized { .. } => DropReason::Oversized,
            DecodeError::UnknownVersion(_) => DropReason::UnknownVersion,
            DecodeError::ForeignCluster(_) => DropReason::ForeignCluster,
            DecodeError::Truncated => DropReason::Truncated,
            DecodeError::Malformed(_) => DropReason::Malformed,
        }
    }
}

/// A snapshot of a node's counters (monotonic since the node started, except gauges).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Datagrams received (including dropped ones).
    pub packets_in: u64,
    /// Datagrams sent.
    pub packets_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Messages received, by [`MessageKind`] index.
    pub messages_in: [u64; MessageKind::COUNT],
    /// Messages sent, by [`MessageKind`] index.
    pub messages_out: [u64; MessageKind::COUNT],
    /// Encoded bytes of messages received, by kind.
    pub message_bytes_in: [u64; MessageKind::COUNT],
    /// Encoded bytes of messages sent, by kind.
    pub message_bytes_out: [u64; MessageKind::COUNT],
    /// Dropped datagrams, by [`DropReason`] index (for [`DropReason::WrongTarget`]: dropped
    /// pings, counted per message).
    pub drops: [u64; DropReason::COUNT],
    /// Direct probes started.
    pub probes: u64,
    /// Probes that fell back to indirect probing.
    pub indirect_probes: u64,
    /// Probes that got no ack at all.
    pub probe_failures: u64,
    /// Nacks received from indirect helpers.
    pub nacks_received: u64,
    /// Suspicions of itself this node refuted.
    pub refutations: u64,
    /// Newer records sent straight back to a member that gossiped an accusation the accused
    /// had already refuted.
    pub corrections_sent: u64,
    /// Suspicions this node raised.
    pub suspicions_raised: u64,
    /// Of those, suspicions raised because a member's phi passed the conviction threshold.
    pub phi_convictions: u64,
    /// Suspicions that ran out and declared a member dead, here.
    pub suspicions_confirmed: u64,
    /// Membership rumors queued (news worth spreading, including this node's own).
    pub rumors_queued: u64,
    /// Records of new members dropped because the table held `max_members` already.
    pub members_refused: u64,
    /// Views (push-pull answers, join replies) not sent because the same peer got one
    /// moments ago.
    pub views_throttled: u64,
    /// Anti-entropy requests (key/value or CRDT digests and openings) not answered because
    /// their sender is not a member at the address they came from.
    pub answers_refused: u64,
    /// Anti-entropy requests not answered because their sender's address asked too often.
    pub answers_throttled: u64,
    /// Full membership views sent (join replies, first exchanges, reconnections).
    pub views_full: u64,
    /// Views sent as the changes since a watermark.
    pub views_delta: u64,
    /// Member records sent in views, full or delta.
    pub view_records: u64,
    /// Rumors dropped because the queue was full.
    pub rumors_evicted: u64,
    /// Join attempts sent to seeds.
    pub join_attempts: u64,
    /// Anti-entropy delta messages sent.
    pub state_deltas_sent: u64,
    /// Key/value updates from peers refused for breaking `kv_limits` (with the owner's later
    /// updates, which must not skip a version).
    pub state_updates_refused: u64,
    /// CRDT states and deltas from peers refused: malformed, of another type than the
    /// object, or past `max_crdt_objects`.
    pub crdt_refused: u64,
    /// Push-sum shares refused: of an older epoch, not finite, badly named or past
    /// `max_aggregates`.
    pub aggregate_refused: u64,
    /// Pieces of whole CRDT states sent by anti-entropy.
    pub crdt_pieces_sent: u64,
    /// CRDT delta intervals sent by anti-entropy: a peer's missing changes since it last
    /// acknowledged, in place of whole states or buckets.
    pub crdt_intervals_sent: u64,
    /// With signed self-state: member records refused because their author's proof was
    /// missing, invalid, or made with a key other than the one bound to the name.
    pub forged_records: u64,
    /// With signed self-state: key/value writes refused because they did not carry their
    /// owner's valid signature (with the owner's later writes in the same delta).
    pub forged_writes: u64,
    /// With signed self-state: CRDT states and deltas refused because a claim in them (a
    /// count, a write, a dot, dots issued) lacked its author's valid signature, or the author
    /// was not bound to the key given (nothing of such a state is joined).
    pub forged_crdt_states: u64,
    /// With signed self-state: CRDT parts this node did not send because it lacked a
    /// signature for a claim in them (anti-entropy sends them later, once it holds one), or
    /// because one claim with its signature did not fit a datagram.
    pub crdt_unprovable: u64,
    /// With signed self-state: accusations refused because no known key of the named accuser
    /// signed them (they are applied as the accused member's alive claim only).
    pub accusations_unsigned: u64,
    /// With signed self-state: accusations refused because their accuser exceeded
    /// `Signing::accusation_burst` / `accusations_per_s`.
    pub accusations_rate_limited: u64,
    /// Gauge: Lifeguard local health score (0 = healthy).
    pub health_score: u32,
    /// Gauge: smoothed round-trip time of direct pings in microseconds (0 until measured).
    pub rtt_us: u64,
    /// Gauge: how long a direct ping waits for its ack now, in microseconds.
    pub direct_probe_timeout_us: u64,
    /// Gauge: members believed alive or suspect, excluding this node.
    pub live_members: usize,
    /// Gauge: membership rumors waiting to be (re)transmitted.
    pub queued_rumors: usize,
    /// Gauge: user broadcasts waiting to be (re)transmitted.
    pub queued_broadcasts: usize,
}

impl Metrics {
    /// Messages received of one kind.
    pub fn received(&self, kind: MessageKind) -> u64 {
        self.messages_in[kind.index()]
    }

    /// Messages sent of one kind.
    pub fn sent(&self, kind: MessageKind) -> u64 {
        self.messages_out[kind.index()]
    }

    /// Datagrams dropped for one reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// All drops, whatever the reason.
    pub fn dropped_total(&self) -> u64 {
        self.drops.iter().sum()
    }
}
