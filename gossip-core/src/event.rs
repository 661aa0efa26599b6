//! What the node tells its application, drained with `Node::poll_event`.

use compact_str::CompactString;

use crate::wire::MemberRecord;

/// An observable change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<A> {
    /// A member joined, or came back (refuted its death, or restarted after being removed).
    MemberUp(MemberRecord<A>),
    /// A member is suspected of having failed.
    MemberSuspect(MemberRecord<A>),
    /// A member was declared dead by the failure detector.
    MemberDown(MemberRecord<A>),
    /// A member left gracefully.
    MemberLeft(MemberRecord<A>),
    /// A live member changed: refuted a suspicion, restarted under a new generation, moved to
    /// a new address or zone.
    MemberUpdated(MemberRecord<A>),
    /// A seed answered: this node is part of a cluster.
    Joined,
    /// A user broadcast, delivered once.
    Broadcast {
        /// Name of the originating node.
        origin: CompactString,
        /// Per-origin id.
        id: u64,
        /// Application payload.
        payload: Vec<u8>,
    },
    /// A member's key has a new value (read it with `Node::get`).
    KeyChanged {
        /// The member owning the key.
        node: CompactString,
        /// The key.
        key: CompactString,
        /// The owner's version of this write.
        version: u64,
    },
    /// A replicated CRDT object changed by what a peer sent (read it with `Node::crdt`).
    CrdtChanged {
        /// The object's name.
        object: CompactString,
    },
    /// A member's key was deleted (version 0: dropped with the member's old generation).
    KeyDeleted {
        /// The member owning the key.
        node: CompactString,
        /// The key.
        key: CompactString,
        /// The owner's version of the deletion.
        version: u64,
    },
}
