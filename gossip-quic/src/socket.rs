//! A quinn endpoint seen as the datagram socket the shared driver expects: each datagram the
//! core sends to an address goes as a QUIC unreliable datagram on a cached connection to that
//! address (opened on first use), each reliable transfer (anti-entropy with `bulk_mtu`) on a
//! unidirectional stream of its own, and what arrives on every connection comes out of one
//! queue tagged with the connection's remote address (the peer's endpoint address, which is
//! its member address). No protocol logic here: connections, queues and counters only.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use gossip_driver::AsyncUdpSocket;
use tokio::sync::mpsc;

use crate::tls::CLUSTER_SERVER_NAME;

/// Datagrams waiting for the driver, from all connections.
const INBOUND_QUEUE: usize = 4096;
/// Datagrams waiting to be handed to connections.
const OUTBOUND_QUEUE: usize = 4096;
/// Datagrams kept for a peer while its connection is being opened.
const PENDING_PER_PEER: usize = 64;
/// Incoming streams being read at once, all peers together (QUIC itself holds each peer to
/// 16 at once); further ones are refused and counted.
const STREAMS_IN_FLIGHT: usize = 256;

/// Counters of the QUIC transport (shared with [`crate::QuicRuntime::stats`]).
#[derive(Debug, Default)]
pub struct QuicStats {
    /// Connections opened (either side) and completed.
    pub connections_opened: AtomicU64,
    /// Handshakes that failed: untrusted or missing certificates, wrong ALPN, timeouts.
    pub handshakes_failed: AtomicU64,
    /// Connections refused because the cache was full.
    pub connections_refused: AtomicU64,
    /// Datagrams dropped: queues full, too large for the path, or no connection.
    pub datagrams_dropped: AtomicU64,
    /// Reliable transfers sent on streams.
    pub streams_sent: AtomicU64,
    /// Streams that failed: could not be opened or written, or arrived larger than the limit
    /// or cut short. (A peer opening more streams than QUIC's limit of 16 at once is held
    /// back by QUIC's own flow control.)
    pub streams_failed: AtomicU64,
    /// Incoming streams refused because too many were being read at once.
    pub streams_refused: AtomicU64,
    /// Gauge: incoming streams being read.
    pub streams_in_flight: AtomicUsize,
    /// Gauge: connections in the cache.
    pub connections_open: AtomicUsize,
    /// Every live connection, for their transport statistics.
    live: Mutex<HashMap<usize, quinn::Connection>>,
    /// UDP bytes and datagrams sent by connections that have closed.
    closed_bytes: AtomicU64,
    closed_datagrams: AtomicU64,
}

impl QuicStats {
    /// UDP bytes and datagrams sent so far over the live connections: the wire cost of the
    /// core's datagrams with QUIC's headers, encryption, acknowledgements and handshakes.
    pub fn udp_sent(&self) -> (u64, u64) {
        let live = match self.live.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let closed = (self.closed_bytes.load(Ordering::Relaxed), self.closed_datagrams.load(Ordering::Relaxed));
        live.values().fold(closed, |(b, d), c| {
            let s = c.stats();
            (b + s.udp_tx.bytes, d + s.udp_tx.datagrams)
        })
    }

    fn track(&self, id: usize, conn: Option<quinn::Connection>) {
        let mut live = match self.live.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        match conn {
            Some(c) => {
                live.insert(id, c);
            }
            None => {
                if let Some(c) = live.remove(&id) {
                    let s = c.stats();
                    self.closed_bytes.fetch_add(s.udp_tx.bytes, Ordering::Relaxed);
                    self.closed_datagrams.fetch_add(s.udp_tx.datagrams, Ordering::Relaxed);
                }
            }
        }
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Limits of the connection cache.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Most connections kept open at once; further incoming ones are refused and counted.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits { max_connections: 4096 }
    }
}

enum Control {
    Send(SocketAddr, Bytes, bool),
    Connected(quinn::Connection),
    Failed(SocketAddr),
    Closed(SocketAddr, usize),
}

/// The endpoint as an [`AsyncUdpSocket`].
#[derive(Debug)]
pub struct QuicSocket {
    endpoint: quinn::Endpoint,
    inbound: Mutex<mpsc::Receiver<(Bytes, SocketAddr)>>,
    control: mpsc::Sender<Control>,
    stats: Arc<QuicStats>,
    /// Dropped with the socket: tells the connection task to close everything and let go of
    /// the endpoint (and so of the UDP port).
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl QuicSocket {
    /// Starts the endpoint's tasks on the current tokio runtime.
    pub(crate) fn start(
        endpoint: quinn::Endpoint,
        stats: Arc<QuicStats>,
        limits: ConnectionLimits,
        max_message: usize,
    ) -> Self {
        let (in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
        let (ctl_tx, ctl_rx) = mpsc::channel(OUTBOUND_QUEUE);
        tokio::spawn(accept_loop(endpoint.clone(), ctl_tx.clone(), stats.clone()));
        let connections = Connections {
            endpoint: endpoint.clone(),
            open: HashMap::new(),
            pending: HashMap::new(),
            inbound: in_tx,
            control: ctl_tx.clone(),
            stats: stats.clone(),
            limits,
            max_message,
            next_id: 0,
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(connections.run(ctl_rx, stop_rx));
        QuicSocket { endpoint, inbound: Mutex::new(in_rx), control: ctl_tx, stats, _stop: stop_tx }
    }
}

impl Drop for QuicSocket {
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"bye");
    }
}

impl AsyncUdpSocket for QuicSocket {
    fn poll_send_to(&self, _cx: &mut Context<'_>, buf: &[u8], target: SocketAddr) -> Poll<io::Result<usize>> {
        // Like UDP: a datagram that cannot be queued is dropped (and counted), not retried.
        if self.control.try_send(Control::Send(target, Bytes::copy_from_slice(buf), false)).is_err() {
            QuicStats::bump(&self.stats.datagrams_dropped);
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_send_reliable(&self, _cx: &mut Context<'_>, buf: &[u8], target: SocketAddr) -> Poll<io::Result<usize>> {
        // A transfer that cannot even be queued is dropped and counted: anti-entropy sends it
        // again at a later exchange.
        if self.control.try_send(Control::Send(target, Bytes::copy_from_slice(buf), true)).is_err() {
            QuicStats::bump(&self.stats.streams_failed);
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_recv_from(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<(usize, SocketAddr)>> {
        let mut inbound = match self.inbound.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        match inbound.poll_recv(cx) {
            Poll::Ready(Some((bytes, from))) => {
                let n = bytes.len().min(buf.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                Poll::Ready(Ok((n, from)))
            }
            Poll::Ready(None) => Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "QUIC endpoint closed"))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }
}

/// Accepts incoming connections; handshakes run in their own tasks.
async fn accept_loop(endpoint: quinn::Endpoint, control: mpsc::Sender<Control>, stats: Arc<QuicStats>) {
    while let Some(incoming) = endpoint.accept().await {
        let (control, stats) = (control.clone(), stats.clone());
        tokio::spawn(async move {
            match incoming.await {
                Ok(conn) => {
                    let _ = control.send(Control::Connected(conn)).await;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "incoming QUIC handshake failed");
                    QuicStats::bump(&stats.handshakes_failed);
                }
            }
        });
    }
}

/// The connection cache, owned by one task: sends, connects, closes.
struct Connections {
    endpoint: quinn::Endpoint,
    /// By remote address: the connection and its id (to tell a replaced one's close apart).
    open: HashMap<SocketAddr, (quinn::Connection, usize)>,
    /// What waits for a peer whose connection is being opened (datagrams, and reliable
    /// transfers flagged `true`).
    pending: HashMap<SocketAddr, VecDeque<(Bytes, bool)>>,
    inbound: mpsc::Sender<(Bytes, SocketAddr)>,
    control: mpsc::Sender<Control>,
    stats: Arc<QuicStats>,
    limits: ConnectionLimits,
    /// Largest reliable transfer accepted from a peer.
    max_message: usize,
    next_id: usize,
}

impl Connections {
    async fn run(mut self, mut rx: mpsc::Receiver<Control>, mut stop: tokio::sync::oneshot::Receiver<()>) {
        loop {
            let msg = tokio::select! {
                msg = rx.recv() => msg,
                _ = &mut stop => None,
            };
            let Some(msg) = msg else { break };
            match msg {
                Control::Send(to, bytes, reliable) => self.send(to, bytes, reliable),
                Control::Connected(conn) => self.connected(conn),
                Control::Failed(to) => {
                    if let Some(dropped) = self.pending.remove(&to) {
                        self.stats.datagrams_dropped.fetch_add(dropped.len() as u64, Ordering::Relaxed);
                    }
                }
                Control::Closed(addr, id) => {
                    if self.open.get(&addr).is_some_and(|(_, open_id)| *open_id == id) {
                        self.open.remove(&addr);
                    }
                }
            }
            self.stats.connections_open.store(self.open.len(), Ordering::Relaxed);
        }
        for (conn, _) in self.open.values() {
            conn.close(0u32.into(), b"bye");
        }
        self.endpoint.close(0u32.into(), b"bye");
        self.stats.connections_open.store(0, Ordering::Relaxed);
    }

    fn send(&mut self, to: SocketAddr, bytes: Bytes, reliable: bool) {
        if let Some((conn, _)) = self.open.get(&to) {
            if reliable {
                send_stream(conn.clone(), bytes, self.stats.clone());
                return;
            }
            match conn.send_datagram(bytes.clone()) {
                Ok(()) => return,
                Err(quinn::SendDatagramError::ConnectionLost(_)) => {
                    self.open.remove(&to); // gone (the peer restarted?): open a new one below
                }
                Err(e) => {
                    tracing::debug!(error = %e, %to, "QUIC datagram not sent");
                    QuicStats::bump(&self.stats.datagrams_dropped);
                    return;
                }
            }
        }
        let queue = self.pending.entry(to).or_default();
        if queue.len() >= PENDING_PER_PEER {
            QuicStats::bump(&self.stats.datagrams_dropped);
            return;
        }
        let first = queue.is_empty();
        queue.push_back((bytes, reliable));
        if first {
            self.connect(to);
        }
    }

    fn connect(&mut self, to: SocketAddr) {
        let control = self.control.clone();
        let stats = self.stats.clone();
        match self.endpoint.connect(to, CLUSTER_SERVER_NAME) {
            Ok(connecting) => {
                tokio::spawn(async move {
                    match connecting.await {
                        Ok(conn) => {
                            let _ = control.send(Control::Connected(conn)).await;
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, %to, "QUIC connection failed");
                            QuicStats::bump(&stats.handshakes_failed);
                            let _ = control.send(Control::Failed(to)).await;
                        }
                    }
                });
            }
            Err(e) => {
                tracing::debug!(error = %e, %to, "QUIC connect refused");
                if let Some(dropped) = self.pending.remove(&to) {
                    stats.datagrams_dropped.fetch_add(dropped.len() as u64, Ordering::Relaxed);
                }
            }
        }
    }

    fn connected(&mut self, conn: quinn::Connection) {
        let addr = conn.remote_address();
        if !self.open.contains_key(&addr) && self.open.len() >= self.limits.max_connections {
            QuicStats::bump(&self.stats.connections_refused);
            conn.close(1u32.into(), b"too many connections");
            return;
        }
        QuicStats::bump(&self.stats.connections_opened);
        self.next_id += 1;
        let id = self.next_id;
        // The newest connection to an address carries our datagrams; an older one keeps
        // delivering what arrives on it until it closes.
        self.open.insert(addr, (conn.clone(), id));
        self.stats.track(id, Some(conn.clone()));
        for (bytes, reliable) in self.pending.remove(&addr).into_iter().flatten() {
            if reliable {
                send_stream(conn.clone(), bytes, self.stats.clone());
            } else if conn.send_datagram(bytes).is_err() {
                QuicStats::bump(&self.stats.datagrams_dropped);
            }
        }
        // Reliable transfers from the peer, one stream each.
        let (streams_conn, inbound, stats, limit) =
            (conn.clone(), self.inbound.clone(), self.stats.clone(), self.max_message);
        tokio::spawn(async move {
            while let Ok(mut recv) = streams_conn.accept_uni().await {
                if stats.streams_in_flight.fetch_add(1, Ordering::Relaxed) >= STREAMS_IN_FLIGHT {
                    stats.streams_in_flight.fetch_sub(1, Ordering::Relaxed);
                    QuicStats::bump(&stats.streams_refused);
                    let _ = recv.stop(1u32.into());
                    continue;
                }
                let (inbound, stats) = (inbound.clone(), stats.clone());
                tokio::spawn(async move {
                    match recv.read_to_end(limit).await {
                        Ok(bytes) => {
                            let _ = inbound.send((Bytes::from(bytes), addr)).await;
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, %addr, "QUIC stream refused");
                            QuicStats::bump(&stats.streams_failed);
                        }
                    }
                    stats.streams_in_flight.fetch_sub(1, Ordering::Relaxed);
                });
            }
        });
        let (inbound, control, stats) = (self.inbound.clone(), self.control.clone(), self.stats.clone());
        tokio::spawn(async move {
            while let Ok(bytes) = conn.read_datagram().await {
                if inbound.try_send((bytes, addr)).is_err() {
                    QuicStats::bump(&stats.datagrams_dropped);
                }
            }
            stats.track(id, None);
            let _ = control.send(Control::Closed(addr, id)).await;
        });
    }
}

/// Sends one reliable transfer on a unidirectional stream of its own.
fn send_stream(conn: quinn::Connection, bytes: Bytes, stats: Arc<QuicStats>) {
    tokio::spawn(async move {
        let sent = async {
            let mut stream = conn.open_uni().await.map_err(io::Error::other)?;
            stream.write_all(&bytes).await.map_err(io::Error::other)?;
            stream.finish().map_err(io::Error::other)?;
            Ok::<(), io::Error>(())
        };
        match sent.await {
            Ok(()) => QuicStats::bump(&stats.streams_sent),
            Err(e) => {
                tracing::debug!(error = %e, "QUIC stream not sent");
                QuicStats::bump(&stats.streams_failed);
            }
        }
    });
}
