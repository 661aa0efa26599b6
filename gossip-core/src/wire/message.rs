//! The messages nodes exchange, and the membership record they carry.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::bounded;

/// A member's liveness as one node believes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MemberState {
    /// Answering probes, or not yet suspected.
    Alive,
    /// Missed a probe; declared dead unless it refutes before the suspicion timeout.
    Suspect,
    /// Declared failed by the failure detector.
    Dead,
    /// Left the cluster gracefully.
    Left,
}

impl MemberState {
    /// Dead or left: not a member any more.
    pub fn is_gone(self) -> bool {
        matches!(self, MemberState::Dead | MemberState::Left)
    }

    /// Suspect or dead: someone says the member failed (the member may refute).
    pub fn is_accusation(self) -> bool {
        matches!(self, MemberState::Suspect | MemberState::Dead)
    }
}

/// What one node says about one member: who, where, which life (generation) and which
/// version of that life's liveness (incarnation).
///
/// Ordering between records of the same member follows SWIM with generations on top:
/// a higher generation wins outright (a restarted node supersedes its old self); within a
/// generation a higher incarnation wins, and at equal incarnation Dead/Left beat Suspect,
/// which beats Alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord<A> {
    /// Unique member name, stable across restarts.
    pub name: CompactString,
    /// Where the member receives datagrams.
    pub addr: A,
    /// Life of the member: chosen anew, larger, at each restart.
    pub generation: u64,
    /// Liveness version within a generation; only the member itself raises it to refute.
    pub incarnation: u32,
    /// Liveness claimed by this record.
    pub state: MemberState,
    /// Zone label (rack, datacenter), if any.
    pub zone: Option<CompactString>,
    /// With signed self-state ([`crate::Config::signing`]): the member's signature over its
    /// claim (for a suspect or dead record, over the alive claim accused). Boxed: records
    /// are moved and queued by the thousand, and most clusters sign nothing.
    pub proof: Option<Box<super::signing::Proof>>,
}

impl<A> MemberRecord<A> {
    /// Whether this record supersedes one in state `state` at (`generation`, `incarnation`).
    pub fn overrides(&self, generation: u64, incarnation: u32, state: MemberState) -> bool {
        if self.generation != generation {
            return self.generation > generation;
        }
        match self.state {
            MemberState::Alive => self.incarnation > incarnation,
            MemberState::Suspect => match state {
                MemberState::Alive => self.incarnation >= incarnation,
                _ => self.incarnation > incarnation,
            },
            MemberState::Dead | MemberState::Left => match state {
                MemberState::Alive | MemberState::Suspect => self.incarnation >= incarnation,
                // Left after dead at the same incarnation is news (it was graceful after all).
                MemberState::Dead => {
                    self.incarnation > incarnation
                        || (self.incarnation == incarnation && self.state == MemberState::Left)
                }
                MemberState::Left => self.incarnation > incarnation,
            },
        }
    }
}

/// Closes a membership view sent as [`Message::SyncPage`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewEnd {
    /// The sender's view digest.
    pub digest: u64,
    /// The sender's change watermark when it sent the view.
    pub mark: u32,
    /// Whether the sender wants the receiver's view back if, once merged, the two views still
    /// differ.
    pub reply: bool,
}

/// One protocol message. Several are packed into one datagram behind an envelope. (Not `Eq`:
/// push-sum shares carry floating-point mass.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message<A> {
    /// Failure-detector probe; `target` names the member meant, so a different node now at
    /// that address does not answer for it.
    Ping {
        /// Sequence number echoed by the ack.
        seq: u32,
        /// Name of the probed member.
        target: CompactString,
    },
    /// Answer to a [`Message::Ping`] (or relayed for a [`Message::PingReq`]).
    Ack {
        /// Sequence number of the ping answered.
        seq: u32,
    },
    /// Lifeguard: an indirect-probe helper telling the requester that the target did not
    /// answer in time; the requester knows the helper itself is reachable.
    Nack {
        /// Sequence number of the ping-req.
        seq: u32,
    },
    /// Ask a helper to probe `target` on the sender's behalf.
    PingReq {
        /// Sequence number the helper echoes in its ack or nack.
        seq: u32,
        /// Name of the member to probe.
        target: CompactString,
        /// Its address.
        target_addr: A,
    },
    /// A node asks a seed to let it in. The seed answers with its full membership view.
    Join {
        /// The joining node's own record.
        record: MemberRecord<A>,
    },
    /// A membership rumor.
    Member {
        /// The record.
        record: MemberRecord<A>,
        /// For suspicions (and, with signing, deaths): who accuses, so independent
        /// confirmations can be counted and accusations limited per accuser.
        accuser: Option<CompactString>,
        /// With signed self-state: the accuser's signature over the accusation.
        signature: Option<super::signing::Signature>,
    },
    /// Periodic push-pull, first step: a hash of the sender's membership view. A receiver
    /// whose view hashes differently answers with its view: all of it, or only what changed
    /// after `since` when the sender already holds everything up to that watermark.
    SyncDigest {
        /// Order-independent hash of the sender's live records.
        digest: u64,
        /// Live records in the sender's view.
        count: u32,
        /// The receiver's change watermark from the last exchange that left both views equal
        /// (0: send everything).
        since: u32,
    },
    /// One page of a membership view (full, or the changes since a watermark).
    SyncPage {
        /// Set on the last page.
        end: Option<ViewEnd>,
        /// Records of this page.
        #[serde(deserialize_with = "bounded::vec")]
        members: Vec<MemberRecord<A>>,
    },
    /// A user broadcast.
    Broadcast {
        /// Name of the node that broadcast it.
        origin: CompactString,
        /// Per-origin broadcast id, for duplicate suppression.
        id: u64,
        /// Application payload.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// Anti-entropy opening: a hash of the sender's key/value digest. Equal hashes end the
    /// exchange (one number when in sync); otherwise the receiver answers with a digest page.
    StateSyn {
        /// [`crate::antientropy::KvStore::digest_hash`] of the sender.
        hash: u64,
    },
    /// One page of a key/value digest: the participants named from `start` up to (excluding)
    /// `end` (to the last one if `None`).
    StateDigest {
        /// First participant name the page covers.
        start: CompactString,
        /// Where the page ends.
        end: Option<CompactString>,
        /// The sender's digest of those participants.
        #[serde(deserialize_with = "crate::wire::bounded::vec")]
        entries: Vec<crate::antientropy::ParticipantDigest>,
        /// Whether the receiver should answer with its own digest of the same range (after
        /// sending the deltas the sender lacks).
        reply: bool,
    },
    /// A fresh key/value update spread as a rumor: applied if it is the next version the
    /// receiver lacks (and passed on), ignored otherwise (anti-entropy repairs the gap).
    StateUpdate {
        /// One update, `after` = its version − 1.
        delta: crate::antientropy::ParticipantDelta,
    },
    /// Key/value updates the receiver lacks.
    StateDelta {
        /// Per participant, in version order, never skipping.
        #[serde(deserialize_with = "crate::wire::bounded::vec")]
        deltas: Vec<crate::antientropy::ParticipantDelta>,
        /// On the last two messages of a burst cut at `state_sync_datagrams`: the sender holds
        /// more for the receiver, and the receiver asks again at once (with its digest of the
        /// range) instead of waiting for the next exchange. A node far behind catches up at
        /// one burst per round trip.
        more: Option<StateContinuation>,
    },
    /// A CRDT delta spread as a rumor: joined into the receiver's object (and passed on if
    /// it changed anything).
    CrdtDelta {
        /// The object's name.
        object: CompactString,
        /// The delta.
        delta: crate::crdt::AnyCrdt,
        /// With signed self-state: the signatures of the state's claims (see
        /// [`crate::crdt::signed`]); `None` otherwise.
        proof: Option<Box<crate::crdt::signed::CrdtProof>>,
    },
    /// CRDT anti-entropy opening: a hash over every object's state. Equal hashes end it.
    CrdtSyn {
        /// [`crate::Node`]'s hash of its objects.
        hash: u64,
    },
    /// One page of (object, state hash), for the objects named from `start` up to
    /// (excluding) `end`.
    CrdtDigest {
        /// First object name the page covers.
        start: CompactString,
        /// Where the page ends (`None`: at the last object).
        end: Option<CompactString>,
        /// The sender's objects in the range.
        #[serde(deserialize_with = "crate::wire::bounded::vec")]
        entries: Vec<crate::crdt::replication::ObjectDigest>,
        /// Whether the receiver should answer with its own page of the same range.
        reply: bool,
    },
    /// Hashes of a large CRDT object's buckets ([`crate::crdt::Crdt::buckets`]): the receiver
    /// sends the buckets whose hashes differ.
    CrdtBuckets {
        /// The object's name.
        object: CompactString,
        /// One hash per bucket.
        #[serde(deserialize_with = "crate::wire::bounded::vec")]
        hashes: Vec<u64>,
        /// Whether the receiver should answer with its own hashes.
        reply: bool,
    },
    /// Push-sum shares: half of the sender's mass of each aggregate.
    PushSum {
        /// One share per aggregate.
        #[serde(deserialize_with = "crate::wire::bounded::vec")]
        shares: Vec<crate::aggregate::AggregateShare>,
    },
    /// A piece of an object's whole state (pieces join into the state).
    CrdtState {
        /// The object's name.
        object: CompactString,
        /// The piece.
        piece: crate::crdt::AnyCrdt,
        /// With signed self-state: the signatures of the state's claims (see
        /// [`crate::crdt::signed`]); `None` otherwise.
        proof: Option<Box<crate::crdt::signed::CrdtProof>>,
    },
    /// Part of a delta interval: every change of the sender's object after the last one the
    /// receiver is known to hold (or all of them: the whole state), up to change `seq`, in
    /// `parts` datagrams whose join is the interval.
    CrdtInterval {
        /// The object's name.
        object: CompactString,
        /// The sender's id for this transmission (acknowledgements name it).
        send: u32,
        /// Which part this is (below `parts`).
        part: u8,
        /// How many parts the interval has.
        parts: u8,
        /// This part of the join of the changes.
        delta: crate::crdt::AnyCrdt,
        /// With signed self-state: the signatures of the state's claims (see
        /// [`crate::crdt::signed`]); `None` otherwise.
        proof: Option<Box<crate::crdt::signed::CrdtProof>>,
    },
    /// Part `part` of the [`Message::CrdtInterval`] transmission `send` arrived: once every
    /// part has, the receiver holds the sender's changes up to the interval's last.
    CrdtAck {
        /// The object's name.
        object: CompactString,
        /// The transmission's id.
        send: u32,
        /// The part's index.
        part: u8,
    },
}

/// What a peer holds more of: deltas in the participant names from `start` up to
/// (excluding) `end`, or to the last one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateContinuation {
    /// The sender's id for the burst: the receiver continues each burst once.
    pub burst: u32,
    /// First participant name in the range.
    pub start: CompactString,
    /// First name after the range; `None`: to the last one.
    pub end: Option<CompactString>,
}

/// Kinds of [`Message`], for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MessageKind {
    /// [`Message::Ping`].
    Ping,
    /// [`Message::Ack`].
    Ack,
    /// [`Message::Nack`].
    Nack,
    /// [`Message::PingReq`].
    PingReq,
    /// [`Message::Join`].
    Join,
    /// [`Message::Member`].
    Member,
    /// [`Message::SyncDigest`].
    SyncDigest,
    /// [`Message::SyncPage`].
    SyncPage,
    /// [`Message::Broadcast`].
    Broadcast,
    /// [`Message::StateSyn`].
    StateSyn,
    /// [`Message::StateDigest`].
    StateDigest,
    /// [`Message::StateDelta`].
    StateDelta,
    /// [`Message::StateUpdate`].
    StateUpdate,
    /// [`Message::CrdtDelta`].
    CrdtDelta,
    /// [`Message::CrdtSyn`].
    CrdtSyn,
    /// [`Message::CrdtDigest`].
    CrdtDigest,
    /// [`Message::CrdtState`].
    CrdtState,
    /// [`Message::PushSum`].
    PushSum,
    /// [`Message::CrdtBuckets`].
    CrdtBuckets,
    /// [`Message::CrdtInterval`].
    CrdtInterval,
    /// [`Message::CrdtAck`].
    CrdtAck,
}

impl MessageKind {
    /// Every kind, in index order.
    pub const ALL: [MessageKind; MessageKind::COUNT] = [
        MessageKind::Ping,
        MessageKind::Ack,
        MessageKind::Nack,
        MessageKind::PingReq,
        MessageKind::Join,
        MessageKind::Member,
        MessageKind::SyncDigest,
        MessageKind::SyncPage,
        MessageKind::Broadcast,
        MessageKind::StateSyn,
        MessageKind::StateDigest,
        MessageKind::StateDelta,
        MessageKind::StateUpdate,
        MessageKind::CrdtDelta,
        MessageKind::CrdtSyn,
        MessageKind::CrdtDigest,
        MessageKind::CrdtState,
        MessageKind::PushSum,
        MessageKind::CrdtBuckets,
        MessageKind::CrdtInterval,
        MessageKind::CrdtAck,
    ];

    /// Number of kinds.
    pub const COUNT: usize = 21;

    /// Short lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            MessageKind::Ping => "ping",
            MessageKind::Ack => "ack",
            MessageKind::Nack => "nack",
            MessageKind::PingReq => "ping_req",
            MessageKind::Join => "join",
            MessageKind::Member => "member",
            MessageKind::SyncDigest => "sync_digest",
            MessageKind::SyncPage => "sync_page",
            MessageKind::Broadcast => "broadcast",
            MessageKind::StateSyn => "state_syn",
            MessageKind::StateDigest => "state_digest",
            MessageKind::StateDelta => "state_delta",
            MessageKind::StateUpdate => "state_update",
            MessageKind::CrdtDelta => "crdt_delta",
            MessageKind::CrdtSyn => "crdt_syn",
            MessageKind::CrdtDigest => "crdt_digest",
            MessageKind::CrdtState => "crdt_state",
            MessageKind::PushSum => "push_sum",
            MessageKind::CrdtBuckets => "crdt_buckets",
            MessageKind::CrdtInterval => "crdt_interval",
            MessageKind::CrdtAck => "crdt_ack",
        }
    }

    /// Position in [`MessageKind::ALL`] and in the per-kind metric arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl<A> Message<A> {
    /// Whether this is an anti-entropy transfer (digest pages, deltas, CRDT state): what may
    /// exceed a datagram and travel on a reliable stream with `Config::bulk_mtu`.
    pub fn is_bulk_transfer(&self) -> bool {
        matches!(
            self,
            Message::StateDigest { .. }
                | Message::StateDelta { .. }
                | Message::CrdtDigest { .. }
                | Message::CrdtState { .. }
                | Message::CrdtBuckets { .. }
                | Message::CrdtInterval { .. }
        )
    }

    /// Whether this is an anti-entropy request: a few bytes (an opening hash, a digest page)
    /// whose answer may be many datagrams of state.
    pub fn asks_for_state(&self) -> bool {
        matches!(
            self,
            Message::StateSyn { .. }
                | Message::StateDigest { .. }
                | Message::CrdtSyn { .. }
                | Message::CrdtDigest { .. }
                | Message::CrdtBuckets { .. }
        )
    }

    /// The kind of this message.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Ping { .. } => MessageKind::Ping,
            Message::Ack { .. } => MessageKind::Ack,
            Message::Nack { .. } => MessageKind::Nack,
            Message::PingReq { .. } => MessageKind::PingReq,
            Message::Join { .. } => MessageKind::Join,
            Message::Member { .. } => MessageKind::Member,
            Message::SyncDigest { .. } => MessageKind::SyncDigest,
            Message::SyncPage { .. } => MessageKind::SyncPage,
            Message::Broadcast { .. } => MessageKind::Broadcast,
            Message::StateSyn { .. } => MessageKind::StateSyn,
            Message::StateDigest { .. } => MessageKind::StateDigest,
            Message::StateDelta { .. } => MessageKind::StateDelta,
            Message::StateUpdate { .. } => MessageKind::StateUpdate,
            Message::CrdtDelta { .. } => MessageKind::CrdtDelta,
            Message::CrdtSyn { .. } => MessageKind::CrdtSyn,
            Message::CrdtDigest { .. } => MessageKind::CrdtDigest,
            Message::CrdtState { .. } => MessageKind::CrdtState,
            Message::PushSum { .. } => MessageKind::PushSum,
            Message::CrdtBuckets { .. } => MessageKind::CrdtBuckets,
            Message::CrdtInterval { .. } => MessageKind::CrdtInterval,
            Message::CrdtAck { .. } => MessageKind::CrdtAck,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(generation: u64, incarnation: u32, state: MemberState) -> MemberRecord<u32> {
        MemberRecord { name: "a".into(), addr: 1, generation, incarnation, state, zone: None, proof: None }
    }

    #[test]
    fn precedence_follows_swim_with_generations() {
        use MemberState::*;
        assert!(rec(1, 2, Alive).overrides(1, 1, Suspect));
        assert!(!rec(1, 1, Alive).overrides(1, 1, Suspect));
        assert!(rec(1, 1, Suspect).overrides(1, 1, Alive));
        assert!(!rec(1, 1, Suspect).overrides(1, 1, Suspect));
        assert!(rec(1, 1, Dead).overrides(1, 1, Suspect));
        assert!(!rec(1, 1, Alive).overrides(1, 1, Dead));
        assert!(rec(1, 2, Alive).overrides(1, 1, Dead), "refutation beats death");
        assert!(rec(2, 0, Alive).overrides(1, 9, Dead), "new generation beats old");
        assert!(!rec(1, 9, Alive).overrides(2, 0, Alive), "old generation never wins");
        assert!(rec(1, 1, Left).overrides(1, 1, Dead));
        assert!(!rec(1, 1, Dead).overrides(1, 1, Left));
    }
}
