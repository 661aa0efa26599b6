//! Errors of the node's operations. Each says whether state changed.

use thiserror::Error;

pub use crate::config::ConfigError;
pub use crate::wire::DecodeError;

/// Why `Node::handle_message` dropped a datagram. In every case nothing changed but the
/// counters: datagrams and bytes received, and the drop counter for the reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HandleError {
    /// The datagram could not be decoded or is not for this cluster.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A record in the datagram has an unusable member name.
    #[error("invalid member name in datagram")]
    InvalidName,
    /// The datagram claims to come from this node itself.
    #[error("datagram claims to come from this node")]
    FromSelf,
    /// Sealing refused it: plaintext where sealing is required, no key opens it, or a replay
    /// (the [`DropReason`](crate::DropReason) name).
    #[error("datagram refused by the keyring: {0}")]
    Sealing(&'static str),
    /// The source sent more datagrams this second than `Config::source_rate_limit` allows.
    #[error("source over its datagram rate limit")]
    RateLimited,
}

/// Why a command was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The node has left the cluster; create a new node (new generation) to come back.
    #[error("the node has left the cluster")]
    Left,
    /// A broadcast payload does not fit in one packet.
    #[error("broadcast payload of {len} bytes exceeds the limit of {max}")]
    PayloadTooLarge {
        /// Size given.
        len: usize,
        /// Largest size accepted with this MTU.
        max: usize,
    },
    /// A key/value write broke a limit.
    #[error(transparent)]
    Kv(#[from] crate::antientropy::KvError),
    /// An aggregate's name or value was refused, or there are too many aggregates.
    #[error("aggregate refused: {0}")]
    BadAggregate(String),
    /// A keyring command was refused.
    #[error(transparent)]
    Key(#[from] crate::wire::security::KeyError),

    /// A CRDT update was refused.
    #[error(transparent)]
    Crdt(#[from] crate::crdt::CrdtError),
}

/// Why `Node::new` refused.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum NewNodeError {
    /// The configuration is impossible.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
}
