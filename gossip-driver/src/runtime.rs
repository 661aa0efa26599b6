//! The small surface an async runtime must provide: a UDP socket, a timer and a way to spawn.
//!
//! Modelled on quinn's `runtime` module: an adapter crate implements [`Runtime`] in a few
//! dozen lines (see `gossip-tokio` and `gossip-smol`) and everything else — the driver loop,
//! the handle, the event stream — is shared.

use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// A future the runtime runs to completion in the background.
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// An async runtime: what the driver needs from tokio, smol, async-std or any other.
pub trait Runtime: Send + Sync + Debug + 'static {
    /// A timer that completes at `at`.
    fn new_timer(&self, at: Instant) -> Box<dyn AsyncTimer>;

    /// Runs `future` in the background.
    fn spawn(&self, future: BoxFuture);

    /// Registers a bound, non-blocking standard UDP socket with the runtime's reactor.
    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Box<dyn AsyncUdpSocket>>;

    /// Whether its sockets carry transfers larger than a datagram on a reliable path
    /// ([`AsyncUdpSocket::poll_send_reliable`], as QUIC streams do). Only then may
    /// [`Config::bulk_mtu`](gossip_core::Config::bulk_mtu) be set: a datagram runtime (the
    /// default) refuses it when the node is built, rather than fail every large transfer.
    fn has_reliable_path(&self) -> bool {
        false
    }
}

/// A resettable one-shot timer.
pub trait AsyncTimer: Send + Debug + 'static {
    /// Moves the deadline to `at` (earlier or later).
    fn reset(&mut self, at: Instant);

    /// `Ready` once the deadline has passed; otherwise registers the waker and returns
    /// `Pending`.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

/// A non-blocking UDP socket driven by polling, as the runtime's reactor provides it.
///
/// Implementations register `cx`'s waker when they return `Pending`. Wrappers (such as
/// [`FaultySocket`](crate::FaultySocket)) can be layered over any implementation.
pub trait AsyncUdpSocket: Send + Sync + Debug + 'static {
    /// Sends one datagram to `target`.
    fn poll_send_to(&self, cx: &mut Context<'_>, buf: &[u8], target: SocketAddr) -> Poll<io::Result<usize>>;

    /// Sends an anti-entropy transfer that may exceed a datagram
    /// ([`Transmit::reliable`](gossip_core::Transmit::reliable)) on a reliable path when the
    /// transport has one (QUIC streams). Datagram transports keep this default: a datagram.
    fn poll_send_reliable(&self, cx: &mut Context<'_>, buf: &[u8], target: SocketAddr) -> Poll<io::Result<usize>> {
        self.poll_send_to(cx, buf, target)
    }

    /// Receives one datagram into `buf`: its length and its sender.
    fn poll_recv_from(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<(usize, SocketAddr)>>;

    /// The address the socket is bound to.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}
