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
use std::time::{Duration, Instant};

use bytes::Bytes;
use gossip_driver::AsyncUdpSocket;
use tokio::sync::mpsc;

use crate::tls::CLUSTER_SERVER_NAME;

/// Datagrams and transfers waiting for the driver, from all connections.
const INBOUND_QUEUE: usize = 4096;
/// Bytes that incoming transfers may hold, being read or waiting for the driver: a transfer may
/// be 4 MiB, so counts alone would let a member flooding large streams pin gigabytes. Each
/// stream reserves the largest transfer before it is read and gives back what it did not use,
/// so at 4 MiB per transfer 64 are read at once at most. (Datagrams, at most a QUIC packet
/// each, are bounded by the item count alone, so a burst of transfers cannot starve probes.)
const INBOUND_STREAM_BYTES: usize = 256 << 20;
/// Datagrams waiting to be handed to connections.
const OUTBOUND_QUEUE: usize = 4096;
/// Datagrams kept for a peer while its connection is being opened.
const PENDING_PER_PEER: usize = 64;
/// Incoming streams being read at once, all peers together (QUIC itself holds each peer to
/// 16 at once); further ones are refused and counted.
const STREAMS_IN_FLIGHT: usize = 256;
/// Outgoing streams under way to one peer: QUIC lets 16 be open at once, so further ones
/// would only wait (holding their bytes) behind a slow or stalled peer. They are dropped and
/// counted; anti-entropy sends again at a later exchange.
const STREAMS_OUT_PER_PEER: usize = 16;

/// The key of an address in the cache: an IPv4 peer reached from an IPv6 endpoint shows up as
/// `::ffff:a.b.c.d`, which must be the same peer as `a.b.c.d` (the address the core knows).
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Counters of the QUIC transport (shared with [`crate::QuicRuntime::stats`]).
#[derive(Debug, Default)]
pub struct QuicStats {
    /// Connections opened (either side) and completed.
    pub connections_opened: AtomicU64,
    /// Handshakes that failed: untrusted or missing certificates, wrong ALPN, timeouts.
    pub handshakes_failed: AtomicU64,
    /// Incoming connections refused because the cache was full.
    pub connections_refused: AtomicU64,
    /// Connections closed to make room for one this node opened (the oldest goes first).
    pub connections_evicted: AtomicU64,
    /// Connections given up because the peer stayed silent while this node sent on them (a
    /// crashed peer, or one restarted without the connection): a fresh one is dialled.
    pub connections_unresponsive: AtomicU64,
    /// Datagrams dropped: queues full, too large for the path, or no connection.
    pub datagrams_dropped: AtomicU64,
    /// Reliable transfers sent on streams.
    pub streams_sent: AtomicU64,
    /// Streams that failed: could not be queued, opened or written, were dropped because 16
    /// were already under way to that peer, or arrived larger than the limit or cut short.
    /// (A peer opening more streams than QUIC's limit of 16 at once is held back by QUIC's own
    /// flow control.)
    pub streams_failed: AtomicU64,
    /// Incoming streams refused because too many were being read at once, or because those
    /// being read and waiting for the driver already held their 256 MiB.
    pub streams_refused: AtomicU64,
    /// Gauge: incoming streams being read.
    pub streams_in_flight: AtomicUsize,
    /// Gauge: connections in the cache.
    pub connections_open: AtomicUsize,
    /// Every live connection, for their transport statistics.
    live: Mutex<HashMap<usize, quinn::Connection>>,
    /// Ids of connections, unique among every socket sharing these counters.
    next_id: AtomicUsize,
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
    /// Most connections kept open at once. When the cache is full, further incoming ones are
    /// refused and counted; one this node opens (it has something to send) closes the oldest.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits { max_connections: 4096 }
    }
}

enum Control {
    Send(SocketAddr, Bytes, bool),
    /// A completed handshake, with the address it was opened for if this node opened it.
    Connected(quinn::Connection, Option<SocketAddr>),
    Failed(SocketAddr),
    Closed(SocketAddr, usize),
}

/// An item of the inbound queue: what arrived, from whom, and whether it is a transfer (whose
/// bytes count against [`INBOUND_STREAM_BYTES`] until the driver takes it).
type Inbound = (Bytes, SocketAddr, bool);

/// The sending side of the inbound queue, bounded in items, and for transfers in bytes.
#[derive(Clone)]
struct InboundTx {
    tx: mpsc::Sender<Inbound>,
    /// Bytes reserved by transfers being read or waiting for the driver (shared with
    /// [`QuicSocket`], which gives them back as the driver takes them).
    stream_bytes: Arc<AtomicUsize>,
}

impl InboundTx {
    /// Reserves `len` bytes for a transfer, if the budget has room.
    fn reserve(&self, len: usize) -> bool {
        if self.stream_bytes.fetch_add(len, Ordering::Relaxed) + len > INBOUND_STREAM_BYTES {
            self.stream_bytes.fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn release(&self, len: usize) {
        self.stream_bytes.fetch_sub(len, Ordering::Relaxed);
    }

    /// Queues a datagram if there is room now; false if it was dropped.
    fn try_push_datagram(&self, bytes: Bytes, from: SocketAddr) -> bool {
        self.tx.try_send((bytes, from, false)).is_ok()
    }

    /// Queues a transfer read into `reserved` bytes, waiting for an item's room; gives back
    /// what the transfer does not hold. False if it was dropped (the node is stopping).
    async fn push_transfer(&self, bytes: Bytes, from: SocketAddr, reserved: usize) -> bool {
        let len = bytes.len();
        self.release(reserved.saturating_sub(len));
        if self.tx.send((bytes, from, true)).await.is_err() {
            self.release(len);
            return false;
        }
        true
    }
}

/// The endpoint as an [`AsyncUdpSocket`].
#[derive(Debug)]
pub struct QuicSocket {
    endpoint: quinn::Endpoint,
    inbound: Mutex<mpsc::Receiver<Inbound>>,
    /// Bytes reserved by transfers (see [`InboundTx`]), given back as the driver takes them.
    stream_bytes: Arc<AtomicUsize>,
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
        unresponsive_after: Duration,
    ) -> Self {
        let (in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
        let stream_bytes = Arc::new(AtomicUsize::new(0));
        let in_tx = InboundTx { tx: in_tx, stream_bytes: stream_bytes.clone() };
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
            unresponsive_after,
            reported_open: 0,
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(connections.run(ctl_rx, stop_rx));
        QuicSocket { endpoint, inbound: Mutex::new(in_rx), stream_bytes, control: ctl_tx, stats, _stop: stop_tx }
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
            return Poll::Ready(Err(queue_full()));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_send_reliable(&self, _cx: &mut Context<'_>, buf: &[u8], target: SocketAddr) -> Poll<io::Result<usize>> {
        // A transfer that cannot even be queued is dropped and counted: anti-entropy sends it
        // again at a later exchange.
        if self.control.try_send(Control::Send(target, Bytes::copy_from_slice(buf), true)).is_err() {
            QuicStats::bump(&self.stats.streams_failed);
            return Poll::Ready(Err(queue_full()));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_recv_from(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<(usize, SocketAddr)>> {
        let mut inbound = match self.inbound.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        match inbound.poll_recv(cx) {
            Poll::Ready(Some((bytes, from, transfer))) => {
                if transfer {
                    self.stream_bytes.fetch_sub(bytes.len(), Ordering::Relaxed);
                }
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

/// What a full send queue reports to the driver (which counts it in `IoMetrics::send_errors`),
/// as a full UDP socket buffer would: the datagram is dropped, not retried.
fn queue_full() -> io::Error {
    io::Error::new(io::ErrorKind::WouldBlock, "QUIC send queue full; dropped")
}

/// Accepts incoming connections; handshakes run in their own tasks.
async fn accept_loop(endpoint: quinn::Endpoint, control: mpsc::Sender<Control>, stats: Arc<QuicStats>) {
    while let Some(incoming) = endpoint.accept().await {
        let (control, stats) = (control.clone(), stats.clone());
        tokio::spawn(async move {
            match incoming.await {
                Ok(conn) => {
                    let _ = control.send(Control::Connected(conn, None)).await;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "incoming QUIC handshake failed");
                    QuicStats::bump(&stats.handshakes_failed);
                }
            }
        });
    }
}

/// A cached connection.
struct Open {
    conn: quinn::Connection,
    /// To tell a replaced connection's close apart, and the oldest one.
    id: usize,
    /// Outgoing streams under way on it.
    streams_out: Arc<AtomicUsize>,
    /// UDP datagrams received on it when last looked at, and since when that count has not
    /// moved while this node sent.
    rx_seen: u64,
    silent_since: Option<Instant>,
}

impl Open {
    fn new(conn: quinn::Connection, id: usize) -> Self {
        Open { conn, id, streams_out: Arc::new(AtomicUsize::new(0)), rx_seen: 0, silent_since: None }
    }

    /// Whether the peer has sent nothing on this connection (not even an acknowledgement) for
    /// `limit` while this node kept sending: it crashed, or restarted and lost the
    /// connection. A QUIC peer acknowledges within milliseconds. A peer restarted with its key
    /// is learnt of at once, from the stateless reset it answers with; one restarted with a
    /// certificate issued anew (or another process on its address) cannot send a reset this
    /// node believes, and without this the node would send into the void until the idle
    /// timeout.
    fn unresponsive(&mut self, now: Instant, limit: Duration) -> bool {
        let rx = self.conn.stats().udp_rx.datagrams;
        if rx != self.rx_seen {
            self.rx_seen = rx;
            self.silent_since = None;
            return false;
        }
        match self.silent_since {
            None => {
                self.silent_since = Some(now);
                false
            }
            Some(since) => now.saturating_duration_since(since) >= limit,
        }
    }
}

/// The connection cache, owned by one task: sends, connects, closes.
struct Connections {
    endpoint: quinn::Endpoint,
    /// By remote address (canonical).
    open: HashMap<SocketAddr, Open>,
    /// What waits for a peer whose connection is being opened (datagrams, and reliable
    /// transfers flagged `true`).
    pending: HashMap<SocketAddr, VecDeque<(Bytes, bool)>>,
    inbound: InboundTx,
    control: mpsc::Sender<Control>,
    stats: Arc<QuicStats>,
    limits: ConnectionLimits,
    /// Largest reliable transfer accepted from a peer.
    max_message: usize,
    /// How long a peer may stay silent while this node sends before its connection is
    /// replaced.
    unresponsive_after: Duration,
    /// `open.len()` as last added to the shared `connections_open` gauge.
    reported_open: usize,
}

/// However the cache's task ends (stopped, or its runtime shut down under it), its share of
/// the shared gauge and its connections' entries in the shared counters go with it: the
/// counters may outlive it (`QuicRuntime::stats`), and a connection held there would keep the
/// UDP port bound.
impl Drop for Connections {
    fn drop(&mut self) {
        for open in self.open.values() {
            self.stats.track(open.id, None);
        }
        self.report_open(0);
    }
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
                Control::Send(to, bytes, reliable) => self.send(canonical(to), bytes, reliable),
                Control::Connected(conn, opened_for) => self.connected(conn, opened_for),
                Control::Failed(to) => self.drop_pending(to),
                Control::Closed(addr, id) => {
                    if self.open.get(&addr).is_some_and(|open| open.id == id) {
                        self.open.remove(&addr);
                    }
                }
            }
            self.report_open(self.open.len());
        }
        for open in self.open.values() {
            open.conn.close(0u32.into(), b"bye");
        }
        self.endpoint.close(0u32.into(), b"bye");
    }

    /// Moves the shared gauge by this cache's change, so sockets sharing the counters add up.
    fn report_open(&mut self, now_open: usize) {
        if now_open >= self.reported_open {
            self.stats.connections_open.fetch_add(now_open - self.reported_open, Ordering::Relaxed);
        } else {
            self.stats.connections_open.fetch_sub(self.reported_open - now_open, Ordering::Relaxed);
        }
        self.reported_open = now_open;
    }

    /// Drops (and counts) what waited for a connection to `to` that will not come.
    fn drop_pending(&mut self, to: SocketAddr) {
        if let Some(dropped) = self.pending.remove(&to) {
            self.stats.datagrams_dropped.fetch_add(dropped.len() as u64, Ordering::Relaxed);
        }
    }

    fn send(&mut self, to: SocketAddr, bytes: Bytes, reliable: bool) {
        if let Some(open) = self.open.get_mut(&to) {
            if open.unresponsive(Instant::now(), self.unresponsive_after) {
                tracing::debug!(%to, "QUIC peer silent while we send; dialling a fresh connection");
                open.conn.close(0u32.into(), b"unresponsive");
                self.open.remove(&to);
                QuicStats::bump(&self.stats.connections_unresponsive);
            }
        }
        if let Some(open) = self.open.get(&to) {
            if reliable {
                send_stream(&open.conn, &open.streams_out, bytes, &self.stats);
                return;
            }
            match open.conn.send_datagram(bytes.clone()) {
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
                            let _ = control.send(Control::Connected(conn, Some(to))).await;
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
                self.drop_pending(to);
            }
        }
    }

    /// Caches a completed handshake. `opened_for` is the address this node dialled (the key
    /// its queued sends wait under); an incoming one is keyed by its remote address.
    fn connected(&mut self, conn: quinn::Connection, opened_for: Option<SocketAddr>) {
        let addr = opened_for.unwrap_or_else(|| canonical(conn.remote_address()));
        if !self.open.contains_key(&addr) && self.open.len() >= self.limits.max_connections {
            // This node has something to send to that peer (it dialled, or is dialling and the
            // peer dialled too): make room rather than strand the queue. Otherwise refuse.
            if opened_for.is_none() && !self.pending.contains_key(&addr) {
                QuicStats::bump(&self.stats.connections_refused);
                conn.close(1u32.into(), b"too many connections");
                return;
            }
            if let Some(oldest) = self.open.iter().min_by_key(|(_, open)| open.id).map(|(a, _)| *a) {
                if let Some(evicted) = self.open.remove(&oldest) {
                    evicted.conn.close(0u32.into(), b"evicted");
                    QuicStats::bump(&self.stats.connections_evicted);
                }
            }
        }
        QuicStats::bump(&self.stats.connections_opened);
        let id = self.stats.next_id.fetch_add(1, Ordering::Relaxed);
        let open = Open::new(conn.clone(), id);
        let streams_out = open.streams_out.clone();
        // The newest connection to an address carries our datagrams; an older one keeps
        // delivering what arrives on it until it closes.
        self.open.insert(addr, open);
        self.stats.track(id, Some(conn.clone()));
        for (bytes, reliable) in self.pending.remove(&addr).into_iter().flatten() {
            if reliable {
                send_stream(&conn, &streams_out, bytes, &self.stats);
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
                if !inbound.reserve(limit) {
                    stats.streams_in_flight.fetch_sub(1, Ordering::Relaxed);
                    QuicStats::bump(&stats.streams_refused);
                    let _ = recv.stop(1u32.into());
                    continue;
                }
                let (inbound, stats) = (inbound.clone(), stats.clone());
                tokio::spawn(async move {
                    match recv.read_to_end(limit).await {
                        Ok(bytes) => {
                            if !inbound.push_transfer(Bytes::from(bytes), addr, limit).await {
                                QuicStats::bump(&stats.streams_refused);
                            }
                        }
                        Err(e) => {
                            inbound.release(limit);
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
                if !inbound.try_push_datagram(bytes, addr) {
                    QuicStats::bump(&stats.datagrams_dropped);
                }
            }
            stats.track(id, None);
            let _ = control.send(Control::Closed(addr, id)).await;
        });
    }
}

/// Sends one reliable transfer on a unidirectional stream of its own, unless
/// [`STREAMS_OUT_PER_PEER`] are already under way on `conn`.
fn send_stream(conn: &quinn::Connection, streams_out: &Arc<AtomicUsize>, bytes: Bytes, stats: &Arc<QuicStats>) {
    if streams_out.fetch_add(1, Ordering::Relaxed) >= STREAMS_OUT_PER_PEER {
        streams_out.fetch_sub(1, Ordering::Relaxed);
        tracing::debug!(to = %conn.remote_address(), "QUIC stream dropped: too many under way to this peer");
        QuicStats::bump(&stats.streams_failed);
        return;
    }
    let (conn, streams_out, stats) = (conn.clone(), streams_out.clone(), stats.clone());
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
        streams_out.fetch_sub(1, Ordering::Relaxed);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_are_bounded_in_bytes_and_give_back_what_they_do_not_use() {
        let (tx, mut rx) = mpsc::channel(INBOUND_QUEUE);
        let inbound = InboundTx { tx, stream_bytes: Arc::new(AtomicUsize::new(0)) };
        let from: SocketAddr = ([127, 0, 0, 1], 1).into();
        let limit = 4 << 20;
        // Reads in progress hold the largest transfer each.
        let fits = INBOUND_STREAM_BYTES / limit;
        for _ in 0..fits {
            assert!(inbound.reserve(limit));
        }
        assert!(!inbound.reserve(limit), "over the byte budget");
        // Datagrams are not held back by transfers.
        assert!(inbound.try_push_datagram(Bytes::from_static(b"probe"), from));
        // A small transfer read into a reservation gives the rest back at once ...
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        assert!(rt.block_on(inbound.push_transfer(Bytes::from_static(b"digest"), from, limit)));
        assert_eq!(inbound.stream_bytes.load(Ordering::Relaxed), (fits - 1) * limit + 6);
        assert!(inbound.reserve(limit - 6), "room again");
        // ... and its own bytes when the driver takes it (as `poll_recv_from` does).
        let _datagram = rx.try_recv().expect("queued");
        let (taken, _, transfer) = rx.try_recv().expect("queued");
        assert!(transfer);
        inbound.release(taken.len());
        assert_eq!(inbound.stream_bytes.load(Ordering::Relaxed), fits * limit - 6);
    }
}
