//! # gossip-smol — gossip over async-io UDP, for smol and async-std
//!
//! Binds the sans-IO [`gossip_core::Node`] to an [`async_io::Async`]`<UdpSocket>` and
//! [`async_io::Timer`]s, so it runs under smol and under any executor that drives the
//! async-io reactor — async-std included. **async-std is deprecated in favour of smol**:
//! new code should use smol; existing async-std programs work unchanged.
//!
//! The API is the shared one of [`gossip_driver`], with the same names as `gossip-tokio`: a
//! [`Builder`] from a [`Config`], a bind address and seeds gives a cloneable [`Handle`] and
//! an [`EventStream`] (a `futures::Stream` that reports lag instead of dropping silently).
//!
//! ## Quick start
//!
//! ```
//! use futures::StreamExt;
//! use gossip_smol::{Builder, Config, Event};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     smol::block_on(async {
//!         let (alice, _) = Builder::new(Config::local()).bind(([127, 0, 0, 1], 0)).name("alice").spawn()?;
//!         let (bob, mut events) = Builder::new(Config::local()).name("bob").seeds([alice.local_addr()]).spawn()?;
//!         while let Some(event) = events.next().await {
//!             if let Ok(Event::MemberUp(member)) = event {
//!                 println!("{} is up at {}", member.name, member.addr);
//!                 break;
//!             }
//!         }
//!         bob.broadcast(b"hello, cluster".to_vec())?;
//!         bob.shutdown().await; // graceful leave
//!         Ok(())
//!     })
//! }
//! ```
//!
//! `spawn` runs the driver on smol's global executor, whatever executor the caller uses.
//! To run it on another one (async-std's, say), give the runtime a spawner,
//! `Builder::with_runtime(config, SmolRuntime::with_spawner(|f| { async_std::task::spawn(f); }))`,
//! or take the driver future from `Builder::build` and spawn it yourself.
//! Dropping every [`Handle`] leaves the cluster gracefully.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use async_io::{Async, Timer};

pub use gossip_driver::*;

/// The node builder on async-io: `Builder::new(config).bind(addr).name(..).seeds(..).spawn()`.
pub type Builder = gossip_driver::Builder<SmolRuntime>;

type Spawner = Arc<dyn Fn(BoxFuture) + Send + Sync>;

/// Runs nodes on async-io's reactor and timers; drivers are spawned on smol's global
/// executor unless a spawner is given.
#[derive(Clone, Default)]
pub struct SmolRuntime {
    spawner: Option<Spawner>,
}

impl fmt::Debug for SmolRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmolRuntime").field("custom_spawner", &self.spawner.is_some()).finish()
    }
}

impl SmolRuntime {
    /// Spawns drivers with `spawn` (for instance `async_std::task::spawn`, or a local
    /// `smol::Executor`).
    pub fn with_spawner(spawn: impl Fn(BoxFuture) + Send + Sync + 'static) -> Self {
        SmolRuntime { spawner: Some(Arc::new(spawn)) }
    }
}

impl Runtime for SmolRuntime {
    fn new_timer(&self, at: Instant) -> Box<dyn AsyncTimer> {
        Box::new(SmolTimer(Timer::at(at)))
    }

    fn spawn(&self, future: BoxFuture) {
        match &self.spawner {
            Some(spawn) => spawn(future),
            None => smol::spawn(future).detach(),
        }
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Box<dyn AsyncUdpSocket>> {
        Ok(Box::new(SmolUdp(Async::new(socket)?)))
    }
}

#[derive(Debug)]
struct SmolTimer(Timer);

impl AsyncTimer for SmolTimer {
    fn reset(&mut self, at: Instant) {
        self.0.set_at(at);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(drop)
    }
}

#[derive(Debug)]
struct SmolUdp(Async<std::net::UdpSocket>);

impl AsyncUdpSocket for SmolUdp {
    fn poll_send_to(&self, cx: &mut Context<'_>, buf: &[u8], target: SocketAddr) -> Poll<io::Result<usize>> {
        loop {
            match self.0.get_ref().send_to(buf, target) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = std::task::ready!(self.0.poll_writable(cx)) {
                        return Poll::Ready(Err(e));
                    }
                }
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_recv_from(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<(usize, SocketAddr)>> {
        loop {
            match self.0.get_ref().recv_from(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = std::task::ready!(self.0.poll_readable(cx)) {
                        return Poll::Ready(Err(e));
                    }
                }
                other => return Poll::Ready(other),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }
}
