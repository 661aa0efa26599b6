//! Outgoing datagrams, drained with `Node::poll_transmit`.

/// One datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit<A> {
    /// Where to send it.
    pub destination: A,
    /// The datagram, at most the configured MTU.
    pub contents: Vec<u8>,
}
