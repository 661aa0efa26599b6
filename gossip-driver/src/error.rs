//! Typed errors of building a node and of the handle's operations.

use std::io;
use std::net::SocketAddr;

use thiserror::Error;

/// Why a node could not be built. Nothing was started.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The UDP socket could not be bound.
    #[error("cannot bind UDP socket to {addr}: {source}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: io::Error,
    },
    /// The socket could not be set up or registered with the async runtime (for tokio: the
    /// builder was used outside a runtime). A tokio runtime built without its I/O and time
    /// drivers makes tokio itself panic instead: build it with `enable_all()`.
    #[error("cannot set up the UDP socket: {0}")]
    Socket(#[source] io::Error),
    /// The socket is bound to an unspecified address (`0.0.0.0` or `::`) and no advertise
    /// address was given: other members would not know where to reach this node.
    #[error("bound to the unspecified address {0}; set an advertise address other members can reach")]
    UnspecifiedAddress(SocketAddr),
    /// The core refused the configuration or the name.
    #[error(transparent)]
    Node(#[from] gossip_core::NewNodeError),
    /// The operating system's random number generator failed (used for the node's RNG seed).
    #[error("cannot read OS randomness for the node's seed: {0}")]
    Random(String),
    /// The leave linger set on the builder is longer than
    /// [`MAX_LEAVE_LINGER`](crate::MAX_LEAVE_LINGER).
    #[error("leave linger of {0:?} is longer than the most allowed, one hour")]
    LeaveLinger(std::time::Duration),
    /// `Config::bulk_mtu` is set but the runtime only carries datagrams (see
    /// [`Runtime::has_reliable_path`](crate::Runtime::has_reliable_path)).
    #[error("Config::bulk_mtu needs a transport with a reliable path (QUIC); this one carries datagrams only")]
    BulkWithoutReliablePath,
}

/// Why a command on a [`Handle`](crate::Handle) was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The node's driver has stopped (after a leave, a shutdown, an abort, or because the
    /// runtime it ran on was shut down).
    #[error("the node has stopped")]
    Stopped,
    /// The core refused the command (the node has left, or a payload is too large).
    #[error(transparent)]
    Command(#[from] gossip_core::CommandError),
}

/// An event stream fell behind: this many events were dropped (the oldest ones) because the
/// consumer did not keep up with the stream's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("event stream lagged: {0} events were dropped")]
pub struct Lagged(pub u64);
