//! Outgoing datagrams, drained with `Node::poll_transmit`.

/// One datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit<A> {
    /// Where to send it.
    pub destination: A,
    /// The datagram, at most the configured MTU (or `bulk_mtu` when `reliable`).
    pub contents: Vec<u8>,
    /// An anti-entropy transfer that the transport should carry reliably (a QUIC stream)
    /// when it can: only ever set with `Config::bulk_mtu`. Datagram transports send it as
    /// any other datagram.
    pub reliable: bool,
}
