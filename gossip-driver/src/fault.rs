//! In-process fault injection: a socket wrapper that loses datagrams at random.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::runtime::AsyncUdpSocket;

/// Loss settings and counters shared between a [`FaultySocket`] and whoever controls it
/// (a test). Probabilities can be changed while the node runs.
#[derive(Debug)]
pub struct Faults {
    send_loss: AtomicU32,
    recv_loss: AtomicU32,
    dropped_sends: AtomicU64,
    dropped_recvs: AtomicU64,
    rng: Mutex<ChaCha8Rng>,
}

/// Probabilities are stored as parts per billion so they fit an atomic integer.
const SCALE: f64 = 1e9;

fn to_ppb(p: f64) -> u32 {
    (p.clamp(0.0, 1.0) * SCALE) as u32
}

impl Faults {
    /// Loses each outgoing datagram with probability `send_loss` and each incoming one with
    /// probability `recv_loss`; `seed` makes the losses reproducible.
    pub fn new(send_loss: f64, recv_loss: f64, seed: u64) -> Arc<Self> {
        Arc::new(Faults {
            send_loss: AtomicU32::new(to_ppb(send_loss)),
            recv_loss: AtomicU32::new(to_ppb(recv_loss)),
            dropped_sends: AtomicU64::new(0),
            dropped_recvs: AtomicU64::new(0),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        })
    }

    /// Changes the loss probabilities (1.0 and 1.0 cut the node off entirely).
    pub fn set_loss(&self, send_loss: f64, recv_loss: f64) {
        self.send_loss.store(to_ppb(send_loss), Ordering::Relaxed);
        self.recv_loss.store(to_ppb(recv_loss), Ordering::Relaxed);
    }

    /// Outgoing datagrams dropped so far.
    pub fn dropped_sends(&self) -> u64 {
        self.dropped_sends.load(Ordering::Relaxed)
    }

    /// Incoming datagrams dropped so far.
    pub fn dropped_recvs(&self) -> u64 {
        self.dropped_recvs.load(Ordering::Relaxed)
    }

    fn lose(&self, ppb: &AtomicU32) -> bool {
        let p = ppb.load(Ordering::Relaxed);
        if p == 0 {
            return false;
        }
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        rng.random_range(0..1_000_000_000u32) < p
    }
}

/// A socket wrapper that silently loses datagrams in both directions, for tests of lossy
/// networks with real sockets. Install it with
/// [`Builder::wrap_socket`](crate::Builder::wrap_socket):
///
/// ```no_run
/// # use gossip_driver::{Faults, FaultySocket};
/// let faults = Faults::new(0.3, 0.3, 42);
/// let f = faults.clone();
/// let wrap = move |inner| Box::new(FaultySocket::new(inner, f)) as Box<dyn gossip_driver::AsyncUdpSocket>;
/// # let _ = wrap;
/// ```
#[derive(Debug)]
pub struct FaultySocket {
    inner: Box<dyn AsyncUdpSocket>,
    faults: Arc<Faults>,
}

impl FaultySocket {
    /// Wraps `inner`, losing datagrams as `faults` says.
    pub fn new(inner: Box<dyn AsyncUdpSocket>, faults: Arc<Faults>) -> Self {
        FaultySocket { inner, faults }
    }
}

impl AsyncUdpSocket for FaultySocket {
    fn poll_send_to(&self, cx: &mut Context<'_>, buf: &[u8], target: SocketAddr) -> Poll<io::Result<usize>> {
        if self.faults.lose(&self.faults.send_loss) {
            self.faults.dropped_sends.fetch_add(1, Ordering::Relaxed);
            return Poll::Ready(Ok(buf.len()));
        }
        self.inner.poll_send_to(cx, buf, target)
    }

    fn poll_send_reliable(&self, cx: &mut Context<'_>, buf: &[u8], target: SocketAddr) -> Poll<io::Result<usize>> {
        self.inner.poll_send_reliable(cx, buf, target) // reliable: not for losing
    }

    fn poll_recv_from(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<(usize, SocketAddr)>> {
        loop {
            match self.inner.poll_recv_from(cx, buf) {
                Poll::Ready(Ok(r)) if self.faults.lose(&self.faults.recv_loss) => {
                    let _ = r;
                    self.faults.dropped_recvs.fetch_add(1, Ordering::Relaxed);
                }
                other => return other,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}
