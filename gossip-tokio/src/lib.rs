//! # gossip-tokio — gossip over tokio UDP
//!
//! Binds the sans-IO [`gossip_core::Node`] to a tokio `UdpSocket` and tokio timers. The
//! API is the shared one of [`gossip_driver`], with the same names as `gossip-smol`: a
//! [`Builder`] from a [`Config`], a bind address and seeds gives a cloneable [`Handle`] and
//! an [`EventStream`] (a `futures::Stream` that reports lag instead of dropping silently).
//!
//! ## Quick start
//!
//! ```
//! use futures::StreamExt;
//! use gossip_tokio::{Builder, Config, Event};
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let (alice, _) = Builder::new(Config::local()).bind(([127, 0, 0, 1], 0)).name("alice").spawn()?;
//!     let (bob, mut events) = Builder::new(Config::local()).name("bob").seeds([alice.local_addr()]).spawn()?;
//!     while let Some(event) = events.next().await {
//!         if let Ok(Event::MemberUp(member)) = event {
//!             println!("{} is up at {}", member.name, member.addr);
//!             break;
//!         }
//!     }
//!     bob.broadcast(b"hello, cluster".to_vec())?;
//!     bob.shutdown().await; // graceful leave
//!     Ok(())
//! }
//! ```
//!
//! The builder must be used inside a tokio runtime with I/O and time enabled (or be given
//! one with `Builder::with_runtime(config, TokioRuntime::with_handle(handle))`). Dropping
//! every [`Handle`] leaves the cluster gracefully.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use std::future::Future;

use tokio::io::ReadBuf;
use tokio::time::Sleep;

pub use gossip_driver::*;

/// The node builder on tokio: `Builder::new(config).bind(addr).name(..).seeds(..).spawn()`.
pub type Builder = gossip_driver::Builder<TokioRuntime>;

/// Runs nodes on tokio: on the given runtime, or on the one current when the node is built.
#[derive(Debug, Clone, Default)]
pub struct TokioRuntime {
    handle: Option<tokio::runtime::Handle>,
}

impl TokioRuntime {
    /// Runs nodes on the runtime of `handle`, wherever they are built from.
    pub fn with_handle(handle: tokio::runtime::Handle) -> Self {
        TokioRuntime { handle: Some(handle) }
    }

    fn handle(&self) -> io::Result<tokio::runtime::Handle> {
        match &self.handle {
            Some(h) => Ok(h.clone()),
            None => tokio::runtime::Handle::try_current().map_err(io::Error::other),
        }
    }
}

impl Runtime for TokioRuntime {
    fn new_timer(&self, at: Instant) -> Box<dyn AsyncTimer> {
        let sleep = match self.handle() {
            Ok(h) => {
                let _guard = h.enter();
                tokio::time::sleep_until(at.into())
            }
            Err(_) => tokio::time::sleep_until(at.into()),
        };
        Box::new(TokioTimer(Box::pin(sleep)))
    }

    fn spawn(&self, future: BoxFuture) {
        match self.handle() {
            Ok(h) => drop(h.spawn(future)),
            // `wrap_udp_socket` has already failed in this case, so nothing gets here.
            Err(e) => tracing::error!(error = %e, "cannot spawn the gossip driver: no tokio runtime"),
        }
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Box<dyn AsyncUdpSocket>> {
        let handle = self.handle()?;
        let _guard = handle.enter();
        socket.set_nonblocking(true)?;
        Ok(Box::new(TokioUdp(tokio::net::UdpSocket::from_std(socket)?)))
    }
}

#[derive(Debug)]
struct TokioTimer(Pin<Box<Sleep>>);

impl AsyncTimer for TokioTimer {
    fn reset(&mut self, at: Instant) {
        self.0.as_mut().reset(at.into());
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

#[derive(Debug)]
struct TokioUdp(tokio::net::UdpSocket);

impl AsyncUdpSocket for TokioUdp {
    fn poll_send_to(&self, cx: &mut Context<'_>, buf: &[u8], target: SocketAddr) -> Poll<io::Result<usize>> {
        self.0.poll_send_to(cx, buf, target)
    }

    fn poll_recv_from(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<(usize, SocketAddr)>> {
        let mut buf = ReadBuf::new(buf);
        let from = ready!(self.0.poll_recv_from(cx, &mut buf))?;
        Poll::Ready(Ok((buf.filled().len(), from)))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}
